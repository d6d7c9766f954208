// A small client for web developers: calls a Vouch node and verifies every answer with this
// library before returning it; a failed verification throws with the failure's code.
import { VerifyFailure } from "./fail.js";
import { parseJson } from "./json.js";
import type { Verdict, VerifyOptions } from "./verify.js";
import { verifyBundleSync } from "./index.js";

export interface InferRequest {
  model: string; // "name@version" or "sha256:<hex>"
  inputs: unknown; // tensor map JSON
  tiers?: ("signed" | "tee" | "zk")[];
}

export interface Verified<T> {
  answer: T;
  verdict: Extract<Verdict, { ok: true }>;
}

export class VouchClient {
  private readonly base: string;
  constructor(
    baseUrl: string,
    private readonly trust: VerifyOptions = {},
    private readonly fetchImpl: typeof fetch = (...a) => fetch(...a),
  ) {
    this.base = baseUrl.replace(/\/+$/, "");
  }

  private async post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    const res = await this.fetchImpl(this.base + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${text.slice(0, 500)}`);
    return parseJson(text); // keeps integer/float spellings as the Rust verifier reads them
  }

  private check<T>(answer: T, file: unknown, extra: VerifyOptions): Verified<T> {
    const verdict = verifyBundleSync(file, { ...this.trust, ...extra });
    if (!verdict.ok) throw new VerifyFailure(verdict.code, `the node's answer does not verify: ${verdict.message}`, verdict.field);
    return { answer, verdict };
  }

  /** POST /v1/infer; the bundle is verified (with the inputs sent) before it is returned. */
  async infer(req: InferRequest): Promise<Verified<Record<string, unknown>>> {
    const bundle = (await this.post("/v1/infer", { model: req.model, inputs: req.inputs, tiers: req.tiers ?? ["signed"] })) as Record<string, unknown>;
    return this.check(bundle, bundle, { inputs: req.inputs });
  }

  /** POST /v1/chat/completions (not streamed); the answer and its `vouch` bundle are verified against the request sent. */
  async chat(body: Record<string, unknown>): Promise<Verified<Record<string, unknown>>> {
    const answer = (await this.post("/v1/chat/completions", { ...body, stream: false })) as Record<string, unknown>;
    return this.check(answer, answer, { request: { ...body, stream: false } });
  }
}
