// The published test vectors: docs/receipt.md (receipt1, chat1, chat2 with its SSE body),
// read from crates/vouch-verify/tests/vectors/ where the Rust tests check them too.
import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import { canonicalJson, receiptHash, sha256Hex, tensorMapDigest, verifyBundle, hexEncode } from "../src/index.js";
import { VECTORS, clone, readJson, readText } from "./util.js";

const v = (f: string) => join(VECTORS, f);
// The node key of every vector: Ed25519 from the 32-byte seed 42×32 (docs/receipt.md).
const NODE_KEY = "ed25519:197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61";

function receipt1Bundle() {
  const receipt = JSON.parse(readText(v("receipt1.canonical.json")));
  return {
    format: "vouch.bundle.v1",
    receipt,
    signature: { alg: "ed25519", sig: readText(v("receipt1.sig")).trim() },
    outputs: { y: { dtype: "float32", shape: [1, 3], data: [0.25, -1.5, 3] } },
  };
}

test("receipt1: canonical bytes, hash and tensor digests are the published ones", () => {
  const canonical = readText(v("receipt1.canonical.json")).replace(/\n$/, "");
  const receipt = JSON.parse(canonical);
  assert.equal(canonicalJson(receipt), canonical);
  assert.equal("sha256:" + hexEncode(receiptHash(receipt)), readText(v("receipt1.hash")).trim());
  assert.equal("sha256:" + hexEncode(receiptHash(receipt)), "sha256:236d575fcbcbe05c43cfa866d0e585fb49d6d7ee940d57a837949c8143b6feee");
  assert.equal(tensorMapDigest({ x: { dtype: "float32", shape: [1, 2], data: [1, 2] } }), receipt.input_digest);
  assert.equal(tensorMapDigest({ y: { dtype: "float32", shape: [1, 3], data: [0.25, -1.5, 3] } }), receipt.output_digest);
  // The same tensor as little-endian bytes in base64 has the same digest.
  const le = new Uint8Array(new Float32Array([0.25, -1.5, 3]).buffer);
  assert.equal(tensorMapDigest({ y: { dtype: "float32", shape: [1, 3], b64: Buffer.from(le).toString("base64") } }), receipt.output_digest);
  assert.equal(sha256Hex(new TextEncoder().encode("pretend these are ONNX bytes")), receipt.model.slice(7));
});

test("receipt1: the bundle verifies with every file, and fails naming each altered one", async () => {
  const model = new TextEncoder().encode("pretend these are ONNX bytes");
  const inputs = { x: { dtype: "float32", shape: [1, 2], data: [1, 2] } };
  const ok = await verifyBundle(receipt1Bundle(), { trustKey: NODE_KEY, model, inputs });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  if (ok.ok) {
    assert.deepEqual(ok.proven.map((p) => p.check), ["signature", "bundled outputs", "model file", "input file"]);
    assert.deepEqual(ok.tiers.map((t) => t.tier), ["signed"]);
    assert.equal(ok.summary, "signature only: trusts the node");
  }
  const fails: [string, any, object, string, string | undefined][] = [
    ["model", receipt1Bundle(), { model: new TextEncoder().encode("other bytes") }, "model_mismatch", "receipt.model"],
    ["inputs", receipt1Bundle(), { inputs: { x: { dtype: "float32", shape: [1, 2], data: [1, 3] } } }, "inputs_mismatch", "receipt.input_digest"],
    ["trust", receipt1Bundle(), { trustKey: "ed25519:" + "11".repeat(32) }, "signer_untrusted", "receipt.node_key"],
  ];
  const b = receipt1Bundle();
  b.outputs.y.data[2] = 3.5;
  fails.push(["output value", b, {}, "outputs_mismatch", "outputs.y"]);
  const s = receipt1Bundle();
  s.receipt.issued_at = "2026-11-25T12:00:00.001Z";
  fails.push(["receipt field", s, {}, "signature_invalid", "signature.sig"]);
  for (const [what, bundle, opts, code, field] of fails) {
    const r = await verifyBundle(bundle, opts);
    assert.equal(r.ok, false, what);
    if (!r.ok) {
      assert.equal(r.code, code, `${what}: ${r.message}`);
      assert.equal(r.field, field, what);
    }
  }
});

test("chat1: the chat.completion answer verifies against its request; each altered part is named", async () => {
  const response = readJson(v("chat1.response.json"));
  const request = readText(v("chat1.request.json"));
  const ok = await verifyBundle(response, { request, trustKey: NODE_KEY, model: new TextEncoder().encode("pretend these are GGUF bytes") });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  if (ok.ok)
    assert.deepEqual(ok.proven.map((p) => p.check), [
      "signature",
      "request file",
      "prompt token ids",
      "completion token ids",
      "model file",
      "choices[0].message.content",
      "choices[0].finish_reason",
      "usage",
      "model",
    ]);
  assert.equal(hexEncode(receiptHash0(response.vouch.receipt)), readText(v("chat1.hash")).trim().slice(7));

  const cases: [string, (r: any) => void, string][] = [
    ["content", (r) => (r.choices[0].message.content = "Hello?"), "completion_mismatch"],
    ["finish", (r) => (r.choices[0].finish_reason = "length"), "finish_reason_mismatch"],
    ["usage", (r) => (r.usage.total_tokens = 16), "usage_mismatch"],
    ["model", (r) => (r.model = "other@1"), "response_model_mismatch"],
    ["tokens", (r) => (r.vouch.completion_tokens[0] = 1), "tokens_mismatch"],
    ["signature", (r) => (r.vouch.receipt.finish_reason = "length"), "signature_invalid"],
  ];
  for (const [what, change, code] of cases) {
    const r = clone(response);
    change(r);
    const got = await verifyBundle(r, { request });
    assert.equal(got.ok ? "ok" : got.code, code, what);
  }
  const otherRequest = request.replace("Say hello.", "Say goodbye.");
  const got = await verifyBundle(response, { request: otherRequest });
  assert.equal(got.ok ? "ok" : got.code, "request_mismatch");
});

// The chat receipt hash (RFC 8785 of the chat receipt), computed the way the verifier does.
import { sha256 } from "@noble/hashes/sha2.js";
function receiptHash0(r: unknown): Uint8Array {
  return sha256(new TextEncoder().encode(canonicalJson(r)));
}

test("chat2: the streamed answer's SSE body verifies chunk by chunk; a changed chunk breaks the chain", async () => {
  const sse = readText(v("chat2.sse"));
  const request = readText(v("chat2.request.json"));
  const ok = await verifyBundle(sse, { request, trustKey: NODE_KEY });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  if (ok.ok) assert.ok(ok.proven.some((p) => p.check === "stream"));
  const altered = sse.replace('"content":"Hello"', '"content":"Jello"');
  assert.notEqual(altered, sse);
  const r = await verifyBundle(altered, { request });
  assert.equal(r.ok ? "ok" : r.code, "stream_chain_broken");
  // Dropping the second chunk: the third arrives where the second was due.
  const events = sse.split("\n\n");
  const dropped = [events[0], ...events.slice(2)].join("\n\n");
  const d = await verifyBundle(dropped, { request });
  assert.equal(d.ok ? "ok" : d.code, "stream_chunk_missing");
  const noReceipt = events.filter((e) => !e.includes('"object":"vouch.receipt"')).join("\n\n");
  const n = await verifyBundle(noReceipt, { request });
  assert.equal(n.ok ? "ok" : n.code, "response_invalid");
});

test("node keys at the edges of Ed25519 decoding get vouch verify's codes (checked with the CLI)", async () => {
  // Non-canonical y (≥ p), small-order points, the identity: they decode as in curve25519-dalek
  // and then fail strict verification; a y with no x on the curve does not decode.
  const cases: [string, string][] = [
    ["ed" + "ff".repeat(30) + "7f", "signature_invalid"],
    ["ee" + "ff".repeat(30) + "7f", "signature_invalid"],
    ["00".repeat(32), "signature_invalid"],
    ["01" + "00".repeat(31), "signature_invalid"],
    ["ff".repeat(32), "signature_invalid"],
    ["02" + "00".repeat(31), "node_key_invalid"],
  ];
  for (const [key, code] of cases) {
    const b = receipt1Bundle();
    b.receipt.node_key = "ed25519:" + key;
    const r = await verifyBundle(b);
    assert.equal(r.ok ? "ok" : r.code, code, key);
  }
});
