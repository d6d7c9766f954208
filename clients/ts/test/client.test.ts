// VouchClient against a real node: the prebuilt `vouch` binary ($VOUCH_BIN, default
// /tmp/vouch-bin), started here with a private data dir and stopped after. Skipped (with the
// reason) where no binary is available, e.g. a CI job without the Rust build.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VouchClient, VerifyFailure } from "../src/index.js";
import { REPO, readJson } from "./util.js";

const BIN = process.env.VOUCH_BIN ?? "/tmp/vouch-bin";
const skip = existsSync(BIN) ? false : `no vouch binary at ${BIN} (set VOUCH_BIN)`;
let node: ChildProcess | undefined;
let url = "";
let dir = "";

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "vouch-ts-client-"));
  node = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "node")], {
    env: { ...process.env, ORT_DYLIB_PATH: process.env.ORT_DYLIB_PATH ?? "/root/.cache/vouch/ort/libonnxruntime.so" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  url = await new Promise<string>((resolve, reject) => {
    const seen = (d: Buffer) => {
      log += d.toString();
      const m = log.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) resolve(m[0]);
    };
    node!.stdout!.on("data", seen);
    node!.stderr!.on("data", seen);
    node!.on("exit", (c) => reject(new Error(`vouch serve exited ${c}: ${log}`)));
  });
  const token = readFileSync(join(dir, "node", "admin.token"), "utf8").trim();
  const res = await fetch(`${url}/v1/models?name=mlp&version=1`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: readFileSync(join(REPO, "models", "mlp.onnx")),
  });
  assert.ok(res.ok, `register: ${res.status}`);
});

after(() => {
  node?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("VouchClient.infer returns answers verified against the node key it trusts", { skip }, async () => {
  const info = (await (await fetch(`${url}/v1/node`)).json()) as { node_key: string };
  const inputs = readJson(join(REPO, "models", "mlp.input.json"));
  const client = new VouchClient(url, { trustKey: info.node_key });
  const t0 = performance.now();
  const { answer, verdict } = await client.infer({ model: "mlp@1", inputs });
  console.log(`infer + verify: ${(performance.now() - t0).toFixed(1)} ms`);
  assert.equal((answer as { format: string }).format, "vouch.bundle.v1");
  assert.deepEqual(verdict.proven.map((p) => p.check), ["signature", "bundled outputs", "input file"]);
});

test("VouchClient.infer throws with the code when the answer does not verify", { skip }, async () => {
  const inputs = readJson(join(REPO, "models", "mlp.input.json"));
  const client = new VouchClient(url, { trustKey: "ed25519:" + "44".repeat(32) });
  await assert.rejects(client.infer({ model: "mlp@1", inputs }), (e: unknown) => e instanceof VerifyFailure && e.code === "signer_untrusted");
});
