// parseJson keeps what serde_json keeps: integer vs integral float, 64-bit integers exactly,
// and refuses what it refuses. Verdicts on files given as text follow.
import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import { b64encode, parseJson, tensorMapDigest, verifyBundle } from "../src/index.js";
import { FIXTURES, readText } from "./util.js";

test("parseJson: numbers as serde_json reads them", () => {
  assert.equal(parseJson("1"), 1);
  assert.ok(parseJson("1.0") instanceof Number, "an integral float is boxed");
  assert.ok(parseJson("1e2") instanceof Number);
  assert.equal(parseJson("1.5"), 1.5);
  assert.ok(Object.is((parseJson("-0") as number).valueOf(), -0) && parseJson("-0") instanceof Number, "serde_json reads -0 as the float -0.0");
  assert.ok(Object.is((parseJson("-0.0") as number).valueOf(), -0), "the float -0.0 keeps its sign");
  assert.equal(parseJson("9007199254740993"), 9007199254740993n);
  assert.equal(parseJson("-9223372036854775808"), -9223372036854775808n);
  assert.equal(parseJson("18446744073709551615"), 18446744073709551615n);
  assert.ok(parseJson("18446744073709551616") instanceof Number, "beyond u64: a float");
  for (const bad of ["1e400", "01", "1.", ".5", "+1", '"\\ud800"', '"\\udc00x"', '"a\nb"', "[1,]", "{} x", "\ufeff{}", "[".repeat(128) + "]".repeat(128)])
    assert.throws(() => parseJson(bad), undefined, bad);
  assert.doesNotThrow(() => parseJson("[".repeat(127) + "]".repeat(127)));
  assert.deepEqual(Object.keys(parseJson('{"__proto__": 1}') as object), ["__proto__"]);
});

test("int64 beyond 2^53 in a tensor digests exactly (JSON data equals its little-endian bytes)", () => {
  const le = new Uint8Array(8);
  new DataView(le.buffer).setBigInt64(0, 9007199254740993n, true);
  const fromBytes = tensorMapDigest({ x: { dtype: "int64", shape: [1], b64: b64encode(le) } });
  assert.equal(tensorMapDigest(parseJson('{"x": {"dtype": "int64", "shape": [1], "data": [9007199254740993]}}')), fromBytes);
  // A JavaScript number that large may already be rounded: refused rather than guessed.
  assert.throws(() => tensorMapDigest({ x: { dtype: "int64", shape: [1], data: [2 ** 60] } }));
});

test("files given as text: 1.0 in an integer field and -0 vs -0.0 get the Rust verdicts", async () => {
  const text = readText(join(FIXTURES, "unsigned.bundle.json"));
  assert.equal((await verifyBundle(text)).ok, true);
  const v = await verifyBundle(text.replace('"version":1', '"version":1.0'));
  assert.equal(v.ok ? "ok" : v.code, "invalid_argument");
  // A float32 output changed to 0, -0 or -0.0: serde_json reads both -0 and -0.0 as negative
  // zero, 0 as positive zero; none is the node's value.
  const b = JSON.parse(text);
  const name = Object.keys(b.outputs)[0];
  const spell = (s: string) => {
    const c = JSON.parse(text);
    c.outputs[name].data[0] = "@";
    return JSON.stringify(c).replace('"@"', s);
  };
  const codes = await Promise.all(["0", "-0", "-0.0"].map(async (s) => {
    const r = await verifyBundle(spell(s));
    return r.ok ? "ok" : r.code;
  }));
  assert.deepEqual(codes, ["outputs_mismatch", "outputs_mismatch", "outputs_mismatch"]);
  const d = (s: string) => tensorMapDigest(parseJson(JSON.stringify({ t: { dtype: "float32", shape: [1], data: ["@"] } }).replace('"@"', s)));
  assert.notEqual(d("0"), d("-0"));
  assert.equal(d("-0"), d("-0.0"));
});
