// Chat bundles (docs/receipt.md "Chat receipts", crates/vouch-verify/src/chat.rs): the chat
// receipt, its signature domain, request / token / completion digests, the answer object
// and a streamed answer's hash chain — the checks of `verify_chat_bundle` and
// `StreamVerifier`, in order, with their codes.
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, hexDecode, hexEncode, u32le, utf8, utf8Decode } from "./bytes.js";
import { InvalidArgument, VerifyFailure } from "./fail.js";
import { canonicalJson } from "./jcs.js";
import { numberValue, parseJson } from "./json.js";
import { verifyLogEvidence } from "./log.js";
import { CHAT_RECEIPT_DOMAIN, checkSignature, engine, parseSignature, payment, signingMessage, tier, type BundleSignature, type Tier } from "./receipt.js";
import { ShapeError, U32_MAX, digest, isObj, join, nodeKey, opt, str, struct, uint, unitVariant, type Obj } from "./serde.js";
import { verifyBundleTee } from "./tee.js";
import { configDigest, failureOf, logFinding, readOptions, type Given, type Report, type TierReport, type Verdict, type VerifyOptions } from "./verify.js";

interface ChatReceipt {
  kind: "chat";
  version: number;
  request_id: string;
  request_digest: string;
  model: string;
  model_ref?: string;
  config_digest?: string;
  executed_by?: string;
  sampling: Obj;
  prompt_tokens_digest?: string;
  completion_tokens_digest?: string;
  completion_digest: string;
  finish_reason: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  stream?: { chunks: number; head: string };
  engine: Obj;
  tiers: Tier[];
  node_key: string;
  issued_at: string;
  payment?: Obj;
}

function finite(v: unknown, path: string): number {
  const x = numberValue(v);
  if (x === undefined || !Number.isFinite(x)) throw new ShapeError(`${path}: a finite number is required`, path);
  return x === 0 ? 0 : x; // -0 → 0, as FiniteF64
}

function parseChatReceipt(v: unknown, path = "receipt"): ChatReceipt {
  const p = (k: string) => join(path, k);
  const r = struct(
    v,
    path,
    ["kind", "version", "request_id", "request_digest", "model", "sampling", "completion_digest", "finish_reason", "usage", "engine", "tiers", "node_key", "issued_at"],
    ["model_ref", "config_digest", "executed_by", "prompt_tokens_digest", "completion_tokens_digest", "stream", "payment"],
  );
  if (r.kind !== "chat") throw new ShapeError(`${p("kind")}: receipt kind is not "chat"`, p("kind"));
  const s = struct(r.sampling, p("sampling"), ["temperature", "top_p", "max_tokens", "stop"], ["seed"]);
  if (!Array.isArray(s.stop)) throw new ShapeError(`${p("sampling.stop")}: expected an array`, p("sampling.stop"));
  const sampling: Obj = {
    temperature: finite(s.temperature, p("sampling.temperature")),
    top_p: finite(s.top_p, p("sampling.top_p")),
    max_tokens: uint(s.max_tokens, p("sampling.max_tokens"), U32_MAX),
    stop: s.stop.map((x, i) => str(x, `${p("sampling.stop")}[${i}]`)),
  };
  const seed = opt(s, "seed", (x) => str(x, p("sampling.seed")));
  if (seed !== undefined) {
    if (!/^(0|[1-9][0-9]*)$/.test(seed) || BigInt(seed) > 0xffffffffffffffffn)
      throw new ShapeError(`${p("sampling.seed")}: seed is not a decimal u64 without leading zeros`, p("sampling.seed"));
    sampling.seed = seed;
  }
  const finishReason = unitVariant(r.finish_reason, ["stop", "length", "cancelled"]);
  if (finishReason === undefined) throw new ShapeError(`${p("finish_reason")}: unknown finish reason`, p("finish_reason"));
  const u = struct(r.usage, p("usage"), ["prompt_tokens", "completion_tokens", "total_tokens"]);
  const stream = opt(r, "stream", (x) => {
    const st = struct(x, p("stream"), ["chunks", "head"]);
    return { chunks: uint(st.chunks, p("stream.chunks"), U32_MAX), head: digest(st.head, p("stream.head")) };
  });
  if (!Array.isArray(r.tiers)) throw new ShapeError(`${p("tiers")}: expected an array`, p("tiers"));
  return {
    kind: "chat",
    version: uint(r.version, p("version"), U32_MAX),
    request_id: str(r.request_id, p("request_id")),
    request_digest: digest(r.request_digest, p("request_digest")),
    model: digest(r.model, p("model")),
    model_ref: opt(r, "model_ref", (x) => str(x, p("model_ref"))),
    config_digest: opt(r, "config_digest", (x) => digest(x, p("config_digest"))),
    executed_by: opt(r, "executed_by", (x) => str(x, p("executed_by"))),
    sampling,
    prompt_tokens_digest: opt(r, "prompt_tokens_digest", (x) => digest(x, p("prompt_tokens_digest"))),
    completion_tokens_digest: opt(r, "completion_tokens_digest", (x) => digest(x, p("completion_tokens_digest"))),
    completion_digest: digest(r.completion_digest, p("completion_digest")),
    finish_reason: finishReason,
    usage: {
      prompt_tokens: uint(u.prompt_tokens, p("usage.prompt_tokens"), U32_MAX),
      completion_tokens: uint(u.completion_tokens, p("usage.completion_tokens"), U32_MAX),
      total_tokens: uint(u.total_tokens, p("usage.total_tokens"), U32_MAX),
    },
    stream,
    engine: engine(r.engine, p("engine")),
    tiers: r.tiers.map((t, i) => tier(t, `${p("tiers")}[${i}]`)),
    node_key: nodeKey(r.node_key, p("node_key")),
    issued_at: str(r.issued_at, p("issued_at")),
    payment: opt(r, "payment", (x) => payment(x, p("payment"))),
  };
}

interface ChatBundle {
  format: string;
  receipt: ChatReceipt;
  signature?: BundleSignature;
  prompt_tokens?: number[];
  completion_tokens?: number[];
  evidence: Obj;
}

function tokenIds(v: unknown, path: string): number[] {
  if (!Array.isArray(v)) throw new ShapeError(`${path}: expected an array of token ids`, path);
  return v.map((x, i) => uint(x, `${path}[${i}]`, U32_MAX));
}

function parseChatBundle(v: unknown, path = ""): ChatBundle {
  const b = struct(v, path, ["format", "receipt"], ["signature", "prompt_tokens", "completion_tokens", "evidence"]);
  const f = (k: string) => join(path, k);
  if (b.evidence !== undefined && !isObj(b.evidence)) throw new ShapeError("evidence: expected a map", f("evidence"));
  return {
    format: str(b.format, f("format")),
    receipt: parseChatReceipt(b.receipt, f("receipt")),
    signature: opt(b, "signature", (x) => parseSignature(x, f("signature"))),
    prompt_tokens: opt(b, "prompt_tokens", (x) => tokenIds(x, f("prompt_tokens"))),
    completion_tokens: opt(b, "completion_tokens", (x) => tokenIds(x, f("completion_tokens"))),
    evidence: (b.evidence as Obj | undefined) ?? {},
  };
}

const sha = (b: Uint8Array) => "sha256:" + hexEncode(sha256(b));

export function tokensDigest(ids: number[]): string {
  return sha(concat(utf8("vouch.tokens.v1\0"), u32le(ids.length), ...ids.map(u32le)));
}

export function streamStart(requestDigest: string, requestId: string): string {
  return sha(concat(utf8("vouch.chat-stream.v1\0"), hexDecode(requestDigest.slice(7))!, utf8(requestId)));
}

export function chainLink(prev: string, data: Uint8Array): string {
  return sha(concat(utf8("vouch.chat-chunk.v1\0"), hexDecode(prev.slice(7))!, sha256(data)));
}

/** The request digest: SHA-256 of RFC 8785, refusing integers beyond ±(2^53 − 1). */
export function requestDigest(body: unknown): string {
  const walk = (v: unknown, path: string): void => {
    if ((typeof v === "number" && Number.isInteger(v) && Math.abs(v) > Number.MAX_SAFE_INTEGER) || typeof v === "bigint")
      throw new VerifyFailure("request_invalid", `the request file has no request digest: the request holds the integer ${v} at ${path}, beyond ±(2^53 − 1)`);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  walk(body, "$");
  return sha(utf8(canonicalJson(body)));
}

const STREAM_NOT_CHECKED = "the streamed chunks:";
const ANSWER_NOT_CHECKED = "that the answer you hold is the one committed:";

function mismatch(code: string, what: string, receipt: string, response: string): VerifyFailure {
  return new VerifyFailure(code, `the response's ${what} does not match the receipt: receipt says ${receipt}, response has ${[...response].slice(0, 200).join("")}`, what);
}
type Finding = { check: string; detail: string };
function checkField(code: string, what: string, receipt: string, response: string, proven: Finding[]): void {
  if (receipt !== response) throw mismatch(code, what, receipt, response);
  proven.push({ check: what, detail: `${what} is the receipt's (${receipt})` });
}
const usageText = (p: number | bigint, c: number | bigint, t: number | bigint) => `prompt ${p}, completion ${c}, total ${t}`;

// The answer's usage: three u64 (integer literals: numbers, or bigints beyond 2^53).
interface ChunkUsage { prompt_tokens: number | bigint; completion_tokens: number | bigint; total_tokens: number | bigint }
function readUsage(u: unknown): ChunkUsage | null {
  if (!isObj(u)) return null;
  const ok = (x: unknown) => (typeof x === "number" && Number.isInteger(x) && x >= 0) || (typeof x === "bigint" && x >= 0n && x < 2n ** 64n);
  if (!ok(u.prompt_tokens) || !ok(u.completion_tokens) || !ok(u.total_tokens)) return null;
  return { prompt_tokens: u.prompt_tokens as number, completion_tokens: u.completion_tokens as number, total_tokens: u.total_tokens as number };
}

function checkResponse(resp: Obj, b: ChatBundle, proven: Finding[]): void {
  const r = b.receipt;
  const invalid = (m: string) => new VerifyFailure("response_invalid", `the response is not a chat completion this verifier can read: ${m}`);
  let legacy: boolean;
  if (resp.object === "chat.completion") legacy = false;
  else if (resp.object === "text_completion") legacy = true;
  else throw invalid('its object is neither "chat.completion" nor "text_completion" (a stream is checked with StreamVerifier)');
  const choice = Array.isArray(resp.choices) ? resp.choices[0] : undefined;
  if (choice === undefined) throw invalid("it has no choices[0]");
  const content = legacy ? (isObj(choice) ? choice.text : undefined) : isObj(choice) && isObj(choice.message) ? choice.message.content : undefined;
  if (content !== undefined && content !== null && typeof content !== "string") throw invalid("choices[0].message.content (choices[0].text) is not a string");
  checkField("completion_mismatch", "choices[0].message.content", r.completion_digest, sha(utf8((content as string | null | undefined) ?? "")), proven);
  const finish = isObj(choice) && typeof choice.finish_reason === "string" ? choice.finish_reason : "";
  checkField("finish_reason_mismatch", "choices[0].finish_reason", r.finish_reason, finish, proven);
  if (!("usage" in resp)) throw invalid("it has no usage");
  const u = readUsage(resp.usage);
  if (!u) throw invalid("usage: malformed");
  checkField("usage_mismatch", "usage", usageText(r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens), usageText(u.prompt_tokens, u.completion_tokens, u.total_tokens), proven);
  checkField("response_model_mismatch", "model", r.model_ref ?? r.model, typeof resp.model === "string" ? resp.model : "", proven);
}

function digestMatch(code: string, what: string, expected: string, actual: string, proven: Finding[], field: string): void {
  if (actual !== expected) throw new VerifyFailure(code, `${what} does not match the receipt: receipt says ${expected}, ${what} hashes to ${actual}`, field);
  proven.push({ check: what, detail: `the ${what} hash to the receipt's ${expected}` });
}

function requestBody(request: unknown): unknown {
  if (typeof request === "string" || request instanceof Uint8Array) {
    const text = typeof request === "string" ? request : utf8Decode(request);
    if (text === null) throw new VerifyFailure("request_invalid", "the request file has no request digest: not JSON: not UTF-8");
    try {
      return parseJson(text);
    } catch (e) {
      throw new VerifyFailure("request_invalid", `the request file has no request digest: not JSON: ${(e as Error).message}`);
    }
  }
  return request;
}

/** `verify_chat_bundle`. */
function verifyChatBundle(b: ChatBundle, request: unknown, response: Obj | undefined, o: VerifyOptions, g: Given): Report {
  const r = b.receipt;
  if (b.format !== "vouch.chat-bundle.v1")
    throw new VerifyFailure("not_a_chat_bundle", `not a Vouch chat bundle: format is ${JSON.stringify(b.format.slice(0, 64))}, expected "vouch.chat-bundle.v1"`, "format");
  if (r.version !== 1) throw new VerifyFailure("unsupported_receipt_version", `receipt version ${r.version} is not supported by this verifier (it knows version 1)`, "receipt.version");
  const gatewayMode = r.executed_by !== undefined;
  for (const [given, what] of [
    [o.inputs !== undefined, "an input file"],
    [o.outputs !== undefined, "an output file"],
    [o.model !== undefined && gatewayMode, "a model file (the receipt says an upstream endpoint generated the answer, so no weights file can be checked against it)"],
  ] as [boolean, string][])
    if (given) throw new InvalidArgument(`${what} does not apply to a chat bundle`);
  const inconsistent = (m: string, field: string) => new VerifyFailure("chat_receipt_invalid", `the chat receipt contradicts itself: ${m}`, field);
  const u = r.usage;
  if (u.prompt_tokens + u.completion_tokens !== u.total_tokens)
    throw inconsistent(`usage.total_tokens ${u.total_tokens} is not prompt_tokens ${u.prompt_tokens} + completion_tokens ${u.completion_tokens}`, "receipt.usage");
  const canon = [...new Set(r.tiers)].sort((a, b) => ["signed", "tee", "zk"].indexOf(a) - ["signed", "tee", "zk"].indexOf(b));
  if (canon.join() !== r.tiers.join()) throw inconsistent("tiers are not sorted and free of duplicates", "receipt.tiers");
  if (!gatewayMode && (r.prompt_tokens_digest === undefined || r.completion_tokens_digest === undefined))
    throw inconsistent("a receipt of a local run (no executed_by) must commit to its prompt and completion tokens", "receipt.prompt_tokens_digest");
  if (gatewayMode && (!r.executed_by!.startsWith("upstream ") || r.executed_by === "upstream "))
    throw inconsistent(`executed_by ${JSON.stringify(r.executed_by!.slice(0, 80))} is not "upstream <url>"`, "receipt.executed_by");
  if (r.stream && r.stream.chunks === 0) throw inconsistent("a streamed answer has at least one chunk", "receipt.stream.chunks");
  if (r.tiers.includes("zk"))
    throw new VerifyFailure("tier_uncheckable", "the receipt lists the zk tier, whose evidence this verifier cannot check yet: refusing to report it as verified", "receipt.tiers");
  const proven: Finding[] = [];
  const notProven: string[] = [];
  const tiers: TierReport[] = [];
  // The Rust gateway URL: `executed_by` with every leading "upstream " removed.
  let gateway = r.executed_by;
  while (gateway !== undefined && gateway.startsWith("upstream ")) gateway = gateway.slice(9);
  const message = signingMessage(CHAT_RECEIPT_DOMAIN, sha256(utf8(canonicalJson(r))));
  if (!b.signature) {
    if (r.tiers.includes("signed")) throw new VerifyFailure("signature_missing", "the receipt lists the signed tier but the bundle carries no signature", "signature");
    notProven.push("who produced this receipt: it is unsigned (tiers [])");
  } else {
    checkSignature(message, r.node_key, b.signature, g.trusted, "receipt.node_key");
    const trust = g.trusted !== undefined ? "the key you trust" : "a key you did not pin (pass --trust-key)";
    proven.push({ check: "signature", detail: `node ${r.node_key} signed this chat receipt (${trust})` });
    if (r.tiers.includes("signed"))
      tiers.push({
        tier: "signed",
        proven: `node key ${r.node_key} signed this chat receipt (${trust})`,
        trust_assumption: gateway === undefined ? "the node's operator: whoever holds that key" : `the gateway's operator, for what the upstream endpoint ${gateway} answered`,
        simulated: false,
      });
  }
  let teeSummary: string | undefined;
  if (r.tiers.includes("tee")) {
    // The signature was checked above; verify_chat_bundle asks only that it is present.
    const v = verifyBundleTee(r.node_key, message, b.signature, b.evidence, g.tee);
    proven.push({ check: "tee", detail: `${v.platform} evidence binds node key ${v.nodeKey} to measured code` });
    tiers.push({
      tier: "tee",
      proven: `code measured as ${v.measurements.map(([k, x]) => `${k}=${x}`).join(", ")} holds node key ${v.nodeKey}, which signed this chat receipt`,
      trust_assumption: v.trustAssumption,
      simulated: v.simulated,
    });
    teeSummary = v.summary;
  }
  if (!g.log)
    notProven.push(
      "log" in b.evidence
        ? "that the receipt is in the public log: pass --log-key (and --witness) to check its inclusion proof"
        : "that the receipt is in a transparency log: the bundle carries no log evidence",
    );
  else {
    const entry = concat(utf8("vouch-log/v1 chat-receipt\n"), utf8(canonicalJson(r)));
    proven.push(logFinding(verifyLogEvidence(b.evidence.log, entry, g.log.key, g.log.witnesses, g.log.threshold)));
  }
  if (request !== undefined) digestMatch("request_mismatch", "request file", r.request_digest, requestDigest(requestBody(request)), proven, "receipt.request_digest");
  else notProven.push(`which request this answers: the receipt names request digest ${r.request_digest}; pass --request with the body you sent`);
  for (const [what, expected, ids, count, field] of [
    ["prompt token ids", r.prompt_tokens_digest, b.prompt_tokens, r.usage.prompt_tokens, "prompt_tokens"],
    ["completion token ids", r.completion_tokens_digest, b.completion_tokens, r.usage.completion_tokens, "completion_tokens"],
  ] as [string, string | undefined, number[] | undefined, number, string][]) {
    if (expected !== undefined && ids !== undefined) {
      digestMatch("tokens_mismatch", what, expected, tokensDigest(ids), proven, field);
      if (ids.length !== count) throw new VerifyFailure("tokens_mismatch", `the bundle carries ${ids.length} ${what} but the receipt's usage counts ${count}`, field);
    } else if (expected !== undefined) notProven.push(`the ${what}: the receipt commits to them but the bundle does not carry them`);
    else if (ids !== undefined) throw new VerifyFailure("chat_receipt_invalid", `the chat receipt contradicts itself: the bundle carries ${what} but the receipt commits to none`, field);
  }
  if (gateway === undefined) {
    if (g.model) digestMatch("model_mismatch", "model file", r.model, sha(g.model), proven, "receipt.model");
    else notProven.push("which weights file this is: pass --model to compare it with the receipt's model digest");
  }
  if (r.config_digest === undefined && g.config !== undefined)
    throw new VerifyFailure("config_not_in_receipt", "a configuration was given but the receipt names none: the node ran the model unconfigured", "receipt.config_digest");
  if (r.config_digest !== undefined && g.config !== undefined) digestMatch("config_mismatch", "configuration", r.config_digest, configDigest(g.config), proven, "receipt.config_digest");
  else if (r.config_digest !== undefined)
    notProven.push(`which configuration (system prompt, settings) was in force: the receipt names ${r.config_digest}; pass --config`);
  if (response) checkResponse(response, b, proven);
  else notProven.push(`${ANSWER_NOT_CHECKED} pass --response (the completion object), or check a stream with StreamVerifier`);
  if (r.stream) notProven.push(`${STREAM_NOT_CHECKED} the receipt commits to ${r.stream.chunks} streamed chunks; check them as they arrive (StreamVerifier)`);
  for (const t of g.require)
    if (!tiers.some((x) => x.tier === t)) throw new VerifyFailure("tier_not_proven", `the ${t} tier is required but not proven: the receipt does not carry the ${t} tier`, "receipt.tiers");
  let summary: string;
  if (gateway !== undefined) {
    notProven.push(
      `which model produced the answer: the receipt says the upstream endpoint ${gateway} did (gateway mode); its identity rests on the gateway's word, and the model digest proves nothing about it`,
    );
    summary = `gateway: the node vouches for what ${gateway} answered; the model's identity is NOT proven`;
  } else {
    notProven.push(
      teeSummary !== undefined
        ? "that the committed weights really produced this text: the tee tier vouches for the measured code's word; re-run with the receipt's seed and sampling to check"
        : "that the committed weights really produced this text: a signature only vouches for the node's word; re-run with the receipt's seed and sampling to check",
    );
    summary = teeSummary ?? (b.signature ? "signature only: trusts the node" : "unsigned: integrity of the given files only");
  }
  return { ok: true, summary, tiers, proven, not_proven: notProven };
}

/** `StreamVerifier`: each chunk's data bytes checked against the chain as it arrives. */
class StreamState {
  firstPrev?: string;
  link = "sha256:" + "00".repeat(32);
  chunks = 0;
  text: string[] = [];
  finish?: string;
  usage?: ChunkUsage;
  model?: string;

  push(data: Uint8Array): void {
    const index = this.chunks;
    const chainErr = (code: string, m: string) => new VerifyFailure(code, m, `stream[${index}]`);
    const malformed = (reason: string) => chainErr("stream_chunk_malformed", `stream chunk ${index} is not a chat.completion.chunk with a vouch link: ${reason}`);
    let value: unknown;
    try {
      const text = utf8Decode(data);
      if (text === null) throw new Error("not UTF-8");
      value = parseJson(text);
    } catch (e) {
      throw malformed((e as Error).message);
    }
    const object = isObj(value) && typeof value.object === "string" ? value.object : "";
    if (object !== "chat.completion.chunk" && object !== "text_completion") throw malformed(`object is ${JSON.stringify(object.slice(0, 40))}`);
    const c = value as Obj;
    const bad = () => malformed("its fields do not have the chunk's types");
    if (c.model !== undefined && c.model !== null && typeof c.model !== "string") throw bad();
    if (c.choices !== undefined && !Array.isArray(c.choices)) throw bad();
    const choices = (c.choices as unknown[] | undefined) ?? [];
    const optStr = (x: unknown) => x === undefined || x === null || typeof x === "string";
    for (const ch of choices) {
      if (!isObj(ch) || !optStr(ch.text) || !optStr(ch.finish_reason)) throw bad();
      if (ch.index !== undefined && !(typeof ch.index === "number" && Number.isInteger(ch.index) && ch.index >= 0 && ch.index <= U32_MAX)) throw bad();
      if (ch.delta !== undefined && ch.delta !== null && !(isObj(ch.delta) && optStr(ch.delta.content))) throw bad();
    }
    let usage: ChunkUsage | undefined;
    if (c.usage !== undefined && c.usage !== null) {
      usage = readUsage(c.usage) ?? undefined;
      if (!usage) throw bad();
    }
    if (c.vouch === undefined || c.vouch === null) throw malformed("it has no `vouch` field");
    const l = c.vouch;
    if (!isObj(l) || typeof l.index !== "number" || !Number.isInteger(l.index) || l.index < 0 || l.index > U32_MAX) throw bad();
    let prev: string;
    try {
      prev = digest(l.prev, "vouch.prev");
    } catch {
      throw bad();
    }
    if (l.index > index) throw chainErr("stream_chunk_missing", `stream chunk ${index} is missing: chunk ${l.index} came in its place (dropped, or chunks reordered)`);
    if (l.index < index) throw chainErr("stream_chunk_out_of_order", `stream chunk ${l.index} arrived again or out of order where chunk ${index} was due`);
    if (index === 0) this.firstPrev = prev;
    else if (prev !== this.link)
      throw new VerifyFailure("stream_chain_broken", `the chain breaks at stream chunk ${index - 1}: its bytes differ from what the node sent (or the next chunk's link was forged)`, `stream[${index - 1}]`);
    this.chunks = index + 1;
    this.link = chainLink(prev, data);
    for (const ch of choices as Obj[]) {
      if ((ch.index ?? 0) !== 0) continue;
      const delta = ch.delta as Obj | undefined | null;
      const content = (delta && typeof delta.content === "string" ? delta.content : undefined) ?? (typeof ch.text === "string" ? ch.text : undefined);
      if (content !== undefined) this.text.push(content);
      if (typeof ch.finish_reason === "string") this.finish = ch.finish_reason;
    }
    if (usage) this.usage = usage;
    if (this.model === undefined && typeof c.model === "string") this.model = c.model;
  }

  finish_(b: ChatBundle, request: unknown, o: VerifyOptions, g: Given): Report {
    const report = verifyChatBundle(b, request, undefined, o, g);
    const r = b.receipt;
    if (!r.stream) throw new VerifyFailure("stream_not_committed", "the receipt commits to no stream: this answer was not streamed", "receipt.stream");
    const { chunks, head } = r.stream;
    if (this.chunks < chunks)
      throw new VerifyFailure("stream_truncated", `the stream is truncated: ${this.chunks} chunks received, the receipt commits to ${chunks} (chunk ${this.chunks} onwards missing)`, `stream[${this.chunks}]`);
    if (this.chunks > chunks)
      throw new VerifyFailure("stream_too_long", `the stream has ${this.chunks} chunks but the receipt commits to ${chunks}: chunk ${chunks} onwards was not sent by the node`, `stream[${chunks}]`);
    if (this.firstPrev !== streamStart(r.request_digest, r.request_id))
      throw new VerifyFailure("stream_start_mismatch", "stream chunk 0 does not start the chain of this request", "stream[0]");
    if (this.link !== head)
      throw new VerifyFailure("stream_chain_broken", `the chain's head after chunk ${this.chunks - 1} is not the one the receipt commits to: chunk ${this.chunks - 1} was altered`, `stream[${this.chunks - 1}]`);
    report.proven.push({ check: "stream", detail: `the ${this.chunks} chunks received are exactly the ones the node committed to, in order, none missing or added` });
    report.not_proven = report.not_proven.filter((n) => !n.startsWith(STREAM_NOT_CHECKED) && !n.startsWith(ANSWER_NOT_CHECKED));
    checkField("completion_mismatch", "choices[0].message.content", r.completion_digest, sha(utf8(this.text.join(""))), report.proven);
    checkField("finish_reason_mismatch", "choices[0].finish_reason", r.finish_reason, this.finish ?? "", report.proven);
    checkField("response_model_mismatch", "model", r.model_ref ?? r.model, this.model ?? "", report.proven);
    if (this.usage) {
      const u = this.usage;
      checkField("usage_mismatch", "usage", usageText(r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens), usageText(u.prompt_tokens, u.completion_tokens, u.total_tokens), report.proven);
    } else report.not_proven.push("the stream's usage: no chunk carried it (ask with stream_options.include_usage)");
    return report;
  }
}

/** The SSE body's data events up to [DONE], as `vouch verify` reads them. */
function readStream(text: string): { chunks: Uint8Array[]; bundle?: ChatBundle } {
  const t = text.replace(/\r\n/g, "\n");
  const chunks: Uint8Array[] = [];
  let bundle: ChatBundle | undefined;
  for (const event of t.split("\n\n")) {
    // Rust's str::lines: split at "\n", and a "\r" right before a "\n" is part of the ending.
    const lines = event.split("\n").map((l, i, all) => (i < all.length - 1 && l.endsWith("\r") ? l.slice(0, -1) : l));
    const data = lines
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5))
      .map((d) => (d.startsWith(" ") ? d.slice(1) : d));
    if (data.length === 0) continue;
    const d = data.join("\n");
    if (d === "[DONE]") break;
    if (bundle) throw new InvalidArgument("not a valid server-sent event stream: an event follows the vouch.receipt event");
    let v: unknown;
    try {
      v = parseJson(d);
    } catch {
      v = undefined;
    }
    if (isObj(v) && v.object === "vouch.receipt") bundle = bundleInResponse(v, true);
    else chunks.push(utf8(d));
  }
  return { chunks, bundle };
}

function bundleInResponse(v: Obj, asArgument = false): ChatBundle {
  const fail = (m: string) => (asArgument ? new InvalidArgument(m) : new VerifyFailure("response_invalid", `the response is not a chat completion this verifier can read: ${m}`, "vouch"));
  if (!("vouch" in v)) throw fail("it has no `vouch` field (the receipt bundle)");
  try {
    return parseChatBundle(v.vouch, "vouch");
  } catch (e) {
    throw fail(`its \`vouch\` field: ${(e as Error).message}`);
  }
}

/** An SSE body: `data:` after ASCII white space only (Rust's `trim_ascii_start`). */
export const SSE_START = /^[ \t\n\f\r]*data:/;

/** Dispatch for chat files: a chat bundle, an answer object, or a streamed answer's SSE text. */
export function verifyChat(file: unknown, o: VerifyOptions): Verdict {
  try {
    if (typeof file === "string" && SSE_START.test(file)) {
      const { chunks, bundle } = readStream(file);
      const g = readOptions(o);
      const s = new StreamState();
      for (const c of chunks) s.push(c);
      if (!bundle) throw new VerifyFailure("response_invalid", "the response is not a chat completion this verifier can read: the stream ends without its vouch.receipt event: nothing vouches for it");
      return s.finish_(bundle, o.request, o, g);
    }
    let v = file;
    if (typeof v === "string") {
      try {
        v = parseJson(v);
      } catch (e) {
        throw new InvalidArgument(`not a valid receipt bundle: ${(e as Error).message}`);
      }
    }
    if (isObj(v) && v.format === "vouch.chat-bundle.v1") {
      const b = parseChatBundle(v);
      return verifyChatBundle(b, o.request, undefined, o, readOptions(o));
    }
    if (isObj(v) && (v.object === "chat.completion" || v.object === "text_completion")) {
      const b = bundleInResponse(v, true);
      return verifyChatBundle(b, o.request, v, o, readOptions(o));
    }
    return { ok: false, code: "internal", message: "not a chat file", below_policy: false };
  } catch (e) {
    return failureOf(e);
  }
}
