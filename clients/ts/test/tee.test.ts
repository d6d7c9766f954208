// The tee tier: docs/tee.md binding vectors, and the real AWS Nitro attestation document of
// crates/vouch-attest/fixtures/nitro/ (from the nitro_attest crate's tests; see
// crates/vouch-attest/tests/tee_real_evidence.rs), verified to the pinned AWS root at its own time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import { bindingReportData, hexEncode, verifyBundle, verifyNitroDocument, AWS_NITRO_ROOT_SHA256, sha256Hex, b64encode } from "../src/index.js";
import { FIXTURES, REPO, clone, readBytes, readJson } from "./util.js";

const NITRO = join(REPO, "crates", "vouch-attest", "fixtures", "nitro");

test("docs/tee.md: binding report data vectors", () => {
  const key = new Uint8Array(32).fill(0x11);
  assert.equal(
    hexEncode(bindingReportData(key)),
    "255645aea61c84e2a047c3b9516390451b12a5a93f6146ffb9018447bd115108b6917237cdc2fe6889311f153c30214f0da616e6bbeb13c63e005322d47418a5",
  );
  assert.equal(
    hexEncode(bindingReportData(key, new Uint8Array([0xaa, 0xbb, 0xcc]))),
    "6fee84804445075a716f66f1f3e29a4fb0048a2a9071e3f269182c141b3e3ed14b3e25342356925e9cd8e183398432c89ce6ca87cb62075b631f1c3c8f42182f",
  );
});

test("Nitro: the real document verifies to the pinned AWS root at its own time", () => {
  const doc = readBytes(join(NITRO, "attestation.cose"));
  assert.equal(sha256Hex(readBytes(join(NITRO, "0.der"))), AWS_NITRO_ROOT_SHA256);
  const r = verifyNitroDocument(doc);
  assert.equal(r.platform, "aws-nitro");
  assert.equal(r.evidenceTime?.toISOString(), "2025-01-06T16:07:05.472Z");
  assert.equal(
    r.measurements.get("PCR0"),
    "8bb159f202bb95d6d4d98e0e103918246cea734f1d57cd263e4fd56075ed53f6fa8c68854817a32749a241e11874c26b",
  );
  assert.equal(r.measurements.size, 5);
  assert.equal(r.reportData, undefined, "this document carries no user_data");
  assert.ok(r.trustAssumption.startsWith("AWS Nitro hardware + PCR0=8bb159f2"));
});

test("Nitro: altered documents are not authentic (signature, payload, certificates, protected header)", () => {
  const doc = readBytes(join(NITRO, "attestation.cose"));
  const code = (b: Uint8Array) => {
    try {
      verifyNitroDocument(b);
      return "ok";
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };
  // Every 53rd byte, bit 0 and bit 7: a sample of the exhaustive flip test the Rust suite runs.
  let flips = 0;
  for (let i = 0; i < doc.length; i += 53) {
    for (const mask of [0x01, 0x80]) {
      const b = doc.slice();
      b[i] ^= mask;
      assert.equal(code(b), "tee_not_authentic", `byte ${i} ^ ${mask}`);
      flips++;
    }
  }
  const last = doc.slice();
  last[last.length - 1] ^= 1; // inside the ES384 signature
  assert.equal(code(last), "tee_not_authentic");
  assert.ok(flips > 150, `${flips} flips`);
});

test("Nitro: an envelope in a bundle passes authenticity and fails the binding (it commits to no Vouch key), as vouch verify does", async () => {
  const bundle = readJson(join(FIXTURES, "tee.bundle.json"));
  const doc = readBytes(join(NITRO, "attestation.cose"));
  const b = clone(bundle);
  b.evidence.tee = {
    format: "vouch.tee.v1",
    type: "aws-nitro",
    evidence: b64encode(doc),
    binding: { scheme: "vouch.tee.binding.v1", node_key: b.receipt.node_key },
    produced_at: "2025-01-06T16:07:05Z",
  };
  const v = await verifyBundle(b);
  assert.equal(v.ok ? "ok" : v.code, "tee_binding");
  // Another platform's name on the same bytes; the wrong node key in the binding.
  const k = clone(b);
  k.evidence.tee.binding.node_key = "ed25519:" + "11".repeat(32);
  const kv = await verifyBundle(k);
  assert.equal(kv.ok ? "ok" : kv.code, "tee_key_mismatch");
  const f = clone(b);
  const tampered = doc.slice();
  tampered[doc.length - 5] ^= 1;
  f.evidence.tee.evidence = b64encode(tampered);
  const fv = await verifyBundle(f);
  assert.equal(fv.ok ? "ok" : fv.code, "tee_not_authentic");
  if (!fv.ok) assert.equal(fv.below_policy, false);
  // A policy pinning another PCR0: genuine but below policy.
  const pv = await verifyBundle(b, { tee: { expect: { PCR0: "00".repeat(48) } } });
  assert.equal(pv.ok ? "ok" : pv.code, "tee_measurement_mismatch");
  if (!pv.ok) assert.equal(pv.below_policy, true);
});

test("times in reports are written as the time crate writes RFC 3339 (fraction trimmed)", async () => {
  const { formatTime } = await import("../src/nitro.js");
  assert.equal(formatTime(new Date("2026-12-07T23:40:06.910Z")), "2026-12-07T23:40:06.91Z");
  assert.equal(formatTime(new Date("2026-12-07T23:40:06.000Z")), "2026-12-07T23:40:06Z");
  assert.equal(formatTime(new Date("2025-01-06T16:07:05.472Z")), "2025-01-06T16:07:05.472Z");
  assert.equal(formatTime(new Date("2025-01-06T16:07:05.400Z")), "2025-01-06T16:07:05.4Z");
});
