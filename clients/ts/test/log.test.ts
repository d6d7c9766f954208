// The transparency log's formats: docs/log.md §1 entry vectors, §4 checkpoint, §5 cosignature,
// §7 tlog-proof; transparency-dev/merkle's inclusion and consistency probes (copied into
// crates/vouch-log/tests/data/ by the Rust tests, read from there); and RFC 6962 proofs over
// trees built here from the RFC's recursive definitions (RFC 6962 §2.1.1, §2.1.2).
import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { hexEncode, leafHash, parseSignedNote, parseTlogProof, verifyCheckpoint, verifyConsistency, verifyInclusion, b64decode } from "../src/index.js";
import { REPO, jsonFiles, readJson } from "./util.js";

const te = new TextEncoder();
const b64 = (s: string) => b64decode(s)!;

// docs/log.md §1: the five entries and their leaf hashes.
const ENTRIES: [string, string][] = [
  ['vouch-log/v1 receipt\n{"engine":{"name":"tract","profile":{"batch":1,"deterministic":true,"threads":1},"version":"0.23.9"},"input_digest":"sha256:582967534d0f909d196b97f9e6921342777aea87b46fa52df165389db1fb8ccf","issued_at":"2026-11-25T12:00:00.000Z","model":"sha256:9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48","model_ref":"mnist-cnn@1","node_key":"ed25519:0707070707070707070707070707070707070707070707070707070707070707","output_digest":"sha256:762069bc07a6e1b5df123a5ae7bd91c10daa04694fbaa17fba0cd6a8dcce8f22","request_id":"018f6b6e-0000-7000-8000-000000000001","tiers":["signed"],"version":1}', "0ced615aa9146ca08e6d0be8daf2ae3e930b4a088685f41ddd335ba37bb86c00"],
  ['vouch-log/v1 model-registered\n{"at":"2026-11-25T12:00:00.000Z","format":"onnx","model":"sha256:9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48","size":1234}', "12a792da9a27df534d9341fedf4af2c14b4b1c5340f3688b92a397bbb32ee37b"],
  ['vouch-log/v1 pointer-moved\n{"at":"2026-11-25T12:00:00.000Z","from":"sha256:9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48","name":"mnist-cnn","to":"sha256:395cfba8ed7d3b16af07258af269aff7e3b7a73d53142755327e0eb0327cff07","version":"2"}', "06f920241a9fb8b3184a3369559541aa0ff25e88b88c395bb1958bdf1aab39a8"],
  ['vouch-log/v1 policy-changed\n{"at":"2026-11-25T12:00:00.000Z","model":"sha256:9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48","policy":{"min_tiers":["signed"],"price":{"amount":"1000","asset":"USDC"}}}', "bd367dc00616ee91fcec4e76af7224e8fd66411174e3fa3f5240b04a38294d30"],
  ['vouch-log/v1 config-changed\n{"at":"2026-11-25T12:00:00.000Z","config_digest":"sha256:75357d685f238b6afd7738be9786fdafde641eb6ca9a3be7471939715a68a4de","model":"sha256:9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48"}', "67c9b3353b2463ec8c9625a577f14c7bee4474a21cae60f6f339e9c388d65bf3"],
];
const LOG_KEY = "vouch.example/log+7c173ca3+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";
const WITNESS_KEY = "witness.example/w1+df1c0a35+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU";
const CHECKPOINT =
  "vouch.example/log\n5\nJwS/dTpDsHNVcFhM8DNMQymNKybXsD1/9vLi67ATrDc=\n\n" +
  "— vouch.example/log fBc8o76GTMxZ8xghFHRzoBIkUxC66KV0QTO+dw01Va0igsAKc5a6b4t7lq5B5mt7FnKCus/qqMRsKbyU/pEAvaJflAc=\n";
const COSIGNATURE = "— witness.example/w1 3xwKNQAAAABpJZpAIo3wn5+g3sXm/Pbin8IiG/gj5Z/Y6j/sl/PPfvr8P1sMNCffjV1lQ7AglRniiYLYbrouE0WT/5qwjr5u2+6RCA==\n";
const TLOG_PROOF =
  "c2sp.org/tlog-proof@v1\nindex 2\nvTZ9wAYW7pH87E52r3Ik6P1mQRF04/o/UkCwSjgpTTA=\nL/+os5uX0jRsZQXQHtNtzvabTYQOH3Z6ZU/hzGuci9s=\nZ8mzNTskY+yMliWld/FMe+5EdKIcrmD28znpw4jWW/M=\n\n" +
  CHECKPOINT + COSIGNATURE;

// RFC 6962 §2.1: MTH, PATH and PROOF from their recursive definitions (independent of the
// iterative RFC 9162 verifier under test).
const node = (l: Uint8Array, r: Uint8Array) => sha256(new Uint8Array([1, ...l, ...r]));
const k = (n: number) => 2 ** Math.floor(Math.log2(n - 1));
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256(new Uint8Array());
  if (d.length === 1) return d[0];
  const s = k(d.length);
  return node(mth(d.slice(0, s)), mth(d.slice(s)));
}
function path(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s ? [...path(m, d.slice(0, s)), mth(d.slice(s))] : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}
function subproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  const n = d.length;
  if (m === n) return b ? [] : [mth(d)];
  const s = k(n);
  return m <= s ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))] : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}

test("docs/log.md §1: entry leaf hashes, and the tree of the five entries is the checkpoint's root", () => {
  const leaves = ENTRIES.map(([e, want]) => {
    const h = leafHash(te.encode(e));
    assert.equal(hexEncode(h), want);
    return h;
  });
  assert.deepEqual(mth(leaves), b64("JwS/dTpDsHNVcFhM8DNMQymNKybXsD1/9vLi67ATrDc="));
});

test("docs/log.md §4/§5: the checkpoint verifies under the log key, with the witness's cosignature", () => {
  const note = parseSignedNote(CHECKPOINT + COSIGNATURE);
  assert.equal(note.signatures.length, 2);
  const v = verifyCheckpoint(CHECKPOINT + COSIGNATURE, LOG_KEY, [WITNESS_KEY], 1);
  assert.equal(v.checkpoint.size, 5n);
  assert.deepEqual(v.witnesses, [{ witness: "witness.example/w1", timestamp: 1764072000n }]);
  const code = (f: () => unknown) => {
    try {
      f();
      return "ok";
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };
  // The log signature altered, the text altered, the cosignature missing or forged.
  const forged = CHECKPOINT.replace("fBc8o76G", "fBc8o76H");
  assert.equal(code(() => verifyCheckpoint(forged, LOG_KEY)), "log_proof_invalid");
  assert.equal(code(() => verifyCheckpoint(CHECKPOINT.replace("\n5\n", "\n6\n"), LOG_KEY)), "log_proof_invalid");
  assert.equal(code(() => verifyCheckpoint(CHECKPOINT, LOG_KEY, [WITNESS_KEY])), "log_witnesses_insufficient");
  assert.equal(code(() => verifyCheckpoint(CHECKPOINT + COSIGNATURE.replace("3xwKNQAAAABpJZpA", "3xwKNQAAAABpJZpB"), LOG_KEY, [WITNESS_KEY])), "log_proof_invalid");
  assert.equal(code(() => verifyCheckpoint(CHECKPOINT, WITNESS_KEY)), "invalid_argument");
  assert.equal(code(() => verifyCheckpoint(CHECKPOINT, "other.example/log+7c173ca3+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c")), "invalid_argument");
});

test("docs/log.md §7: the tlog-proof proves entry 2 under the cosigned checkpoint", () => {
  const p = parseTlogProof(TLOG_PROOF);
  assert.equal(p.index, 2n);
  const v = verifyCheckpoint(p.checkpoint, LOG_KEY, [WITNESS_KEY]);
  const leaf = leafHash(te.encode(ENTRIES[2][0]));
  assert.ok(verifyInclusion(leaf, p.index, v.checkpoint.size, p.hashes, v.checkpoint.root));
  assert.ok(!verifyInclusion(leaf, 3, v.checkpoint.size, p.hashes, v.checkpoint.root));
  assert.ok(!verifyInclusion(leafHash(te.encode(ENTRIES[1][0])), 2, v.checkpoint.size, p.hashes, v.checkpoint.root));
});

test("RFC 6962: every inclusion and consistency proof of trees up to 33 leaves verifies; altered ones do not", () => {
  const all = Array.from({ length: 33 }, (_, i) => leafHash(te.encode(`leaf ${i}`)));
  let checked = 0;
  for (let n = 1; n <= all.length; n++) {
    const d = all.slice(0, n);
    const root = mth(d);
    for (let m = 0; m < n; m++) {
      const p = path(m, d);
      assert.ok(verifyInclusion(d[m], m, n, p, root), `inclusion ${m}/${n}`);
      if (p.length) {
        const bad = p.map((x) => x.slice());
        bad[p.length - 1][0] ^= 1;
        assert.ok(!verifyInclusion(d[m], m, n, bad, root));
      }
      if (n > 1) assert.ok(!verifyInclusion(d[(m + 1) % n], m, n, p, root), `another leaf ${m}/${n}`);
      checked++;
    }
    for (let m = 1; m <= n; m++) {
      const p = m === n ? [] : subproof(m, d, true);
      assert.ok(verifyConsistency(m, n, mth(d.slice(0, m)), root, p), `consistency ${m}→${n}`);
      if (p.length) {
        const bad = p.map((x) => x.slice());
        bad[0][31] ^= 0x80;
        assert.ok(!verifyConsistency(m, n, mth(d.slice(0, m)), root, bad));
        assert.ok(!verifyConsistency(m, n, mth(d.slice(0, m)), root, p.slice(1)));
      }
      checked++;
    }
  }
  assert.ok(checked > 1000);
});

// transparency-dev/merkle testdata, as copied by crates/vouch-log/tests/known_answers.rs.
const TD = join(REPO, "crates", "vouch-log", "tests", "data", "transparency-dev-merkle");
const h32 = (s: string | null | undefined) => {
  const b = typeof s === "string" ? b64decode(s) : null;
  return b && b.length === 32 ? b : null;
};

test("transparency-dev/merkle inclusion probes", () => {
  let ok = 0, rejected = 0;
  for (const f of jsonFiles(join(TD, "inclusion"))) {
    const v = readJson(f);
    const leaf = h32(v.leafHash), root = h32(v.root);
    const proof = (v.proof ?? []).map(h32);
    const got = leaf !== null && root !== null && !proof.includes(null) && verifyInclusion(leaf, v.leafIdx, v.treeSize, proof, root);
    assert.equal(got, !v.wantErr, `${f}: ${v.desc}`);
    got ? ok++ : rejected++;
  }
  assert.ok(ok >= 5 && rejected >= 50, `ok ${ok} rejected ${rejected}`);
});

test("transparency-dev/merkle consistency probes", () => {
  let ok = 0, rejected = 0, unrepresentable = 0;
  for (const f of jsonFiles(join(TD, "consistency"))) {
    const v = readJson(f);
    const r1 = h32(v.root1), r2 = h32(v.root2);
    if (!v.wantErr && (r1 === null || r2 === null)) {
      unrepresentable++; // Go compares equal-size roots of any length; 32-byte hashes only here
      continue;
    }
    const proof = (v.proof ?? []).map(h32);
    const got = r1 !== null && r2 !== null && !proof.includes(null) && verifyConsistency(v.size1, v.size2, r1, r2, proof);
    assert.equal(got, !v.wantErr, `${f}: ${v.desc}`);
    got ? ok++ : rejected++;
  }
  assert.ok(ok >= 5 && rejected >= 50, `ok ${ok} rejected ${rejected}`);
  assert.equal(unrepresentable, 1);
});

test("signed notes: key names refuse Unicode white space as Rust's char::is_whitespace does", () => {
  const line = (name: string) => `vouch.example/log\n5\nJwS/dTpDsHNVcFhM8DNMQymNKybXsD1/9vLi67ATrDc=\n\n— ${name} fBc8o76GTMxZ8xghFHRzoBIkUxC66KV0QTO+dw01Va0igsAKc5a6b4t7lq5B5mt7FnKCus/qqMRsKbyU/pEAvaJflAc=\n`;
  assert.doesNotThrow(() => parseSignedNote(line("a\ufeffb")), "U+FEFF is not white space in Rust");
  for (const ws of ["\u0085", "\u00a0", "\u2003", "\u3000", "+"]) assert.throws(() => parseSignedNote(line(`a${ws}b`)), `U+${ws.charCodeAt(0).toString(16)}`);
  // Malformed notes: no blank line, no final newline, a control character, an empty signature block.
  for (const bad of [CHECKPOINT.replace("\n\n", "\n"), CHECKPOINT.slice(0, -1), CHECKPOINT.replace("5\n", "5\t\n"), "vouch.example/log\n5\n\n\n"])
    assert.throws(() => parseSignedNote(bad));
});
