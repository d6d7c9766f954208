// The transparency log's offline checks (docs/log.md §4, §5, §7): C2SP signed notes,
// checkpoints, cosignature/v1 witness signatures, RFC 6962 / RFC 9162 Merkle proofs and the
// c2sp.org/tlog-proof@v1 text a bundle carries (crates/vouch-log/src/).
import { sha256 } from "@noble/hashes/sha2.js";
import { b64decode, b64encode, concat, equalBytes, utf8, utf8Decode } from "./bytes.js";
import { VerifyFailure } from "./fail.js";
import { verifyStrict, validEd25519Key } from "./receipt.js";
import { isObj } from "./serde.js";

export class LogError extends VerifyFailure {}
const invalid = (m: string, field = "evidence.log.proof") => new LogError("log_proof_invalid", m, field);

// ---- Merkle trees (RFC 6962 hashing, RFC 9162 §2.1.3.2 / §2.1.4.2 verification) ----

export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256(concat(new Uint8Array([0]), entry));
}
export function nodeHash(l: Uint8Array, r: Uint8Array): Uint8Array {
  return sha256(concat(new Uint8Array([1]), l, r));
}

function bitLen(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}
function popCount(x: bigint): number {
  return [...x.toString(2)].filter((c) => c === "1").length;
}

/** Why an inclusion proof fails, or null when it holds (ProofError of merkle.rs). */
export function inclusionError(leaf: Uint8Array, index: bigint, size: bigint, proof: Uint8Array[], root: Uint8Array): string | null {
  if (index >= size) return `leaf index ${index} is not in a tree of size ${size}`;
  const inner = bitLen(index ^ (size - 1n));
  const border = popCount(index >> BigInt(inner));
  if (proof.length !== inner + border)
    return `inclusion proof for index ${index} in a tree of size ${size} must have ${inner + border} hashes, got ${proof.length}`;
  let h = leaf;
  for (let i = 0; i < inner; i++) h = (index >> BigInt(i)) & 1n ? nodeHash(proof[i], h) : nodeHash(h, proof[i]);
  for (let i = inner; i < proof.length; i++) h = nodeHash(proof[i], h);
  return equalBytes(h, root) ? null : `inclusion proof for index ${index} does not lead to the root of the tree of size ${size}`;
}

export function verifyInclusion(leaf: Uint8Array, index: bigint | number, size: bigint | number, proof: Uint8Array[], root: Uint8Array): boolean {
  return inclusionError(leaf, BigInt(index), BigInt(size), proof, root) === null;
}

/** RFC 9162 §2.1.4.2; an old size of 0 is refused, as in vouch-log and transparency-dev. */
export function verifyConsistency(oldSize: bigint | number, newSize: bigint | number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: Uint8Array[]): boolean {
  const m = BigInt(oldSize);
  const n = BigInt(newSize);
  if (n < m || m === 0n) return false;
  if (m === n) return proof.length === 0 && equalBytes(oldRoot, newRoot);
  let p = proof;
  // When the old tree is a complete subtree, its root is the proof's implicit first element.
  if ((m & (m - 1n)) === 0n) p = [oldRoot, ...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  if (p.length === 0) return false;
  let fr = p[0];
  let sr = p[0];
  for (const c of p.slice(1)) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!(fn & 1n)) {
        while (!(fn & 1n) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equalBytes(fr, oldRoot) && equalBytes(sr, newRoot);
}

// ---- Signed notes (c2sp.org/signed-note) ----

export interface NoteSignature {
  name: string;
  keyId: number;
  sig: Uint8Array;
}
export interface SignedNote {
  text: Uint8Array; // up to and including the newline before the blank line
  signatures: NoteSignature[];
}

export class NoteError extends Error {}

/** Key names: non-empty, no '+', no character with Unicode's White_Space property (Rust's `char::is_whitespace`, which unlike JavaScript's `\s` includes U+0085 and excludes U+FEFF). */
export function validKeyName(name: string): boolean {
  return name.length > 0 && !/[+\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/.test(name);
}

export function parseSignedNote(input: string | Uint8Array): SignedNote {
  const bytes = typeof input === "string" ? utf8(input) : input;
  if (bytes.length > 1_000_000) throw new NoteError("note larger than 1 MB");
  const s = utf8Decode(bytes);
  if (s === null) throw new NoteError("not a signed note (text, blank line, signature lines)");
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 && c !== 0x0a) throw new NoteError("not a signed note (text, blank line, signature lines)");
  }
  const split = s.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("not a signed note (text, blank line, signature lines)");
  const text = s.slice(0, split + 1);
  const sigs = s.slice(split + 2);
  if (sigs.length === 0 || !sigs.endsWith("\n")) throw new NoteError("not a signed note (text, blank line, signature lines)");
  const signatures: NoteSignature[] = [];
  for (const line of sigs.slice(0, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) throw new NoteError("not a signed note (text, blank line, signature lines)");
    const rest = line.slice(2);
    const sp = rest.indexOf(" ");
    if (sp < 0) throw new NoteError("not a signed note (text, blank line, signature lines)");
    const name = rest.slice(0, sp);
    const raw = b64decode(rest.slice(sp + 1));
    if (!validKeyName(name) || !raw || raw.length < 5) throw new NoteError("not a signed note (text, blank line, signature lines)");
    signatures.push({ name, keyId: new DataView(raw.buffer, raw.byteOffset).getUint32(0, false), sig: raw.slice(4) });
  }
  if (signatures.length > 100) throw new NoteError("not a signed note (too many signatures)");
  return { text: utf8(text), signatures };
}

export interface NoteKey {
  name: string;
  alg: number;
  key: Uint8Array;
  id: number;
  vkey: string;
}

function keyId(name: string, material: Uint8Array): number {
  const h = sha256(concat(utf8(name), utf8("\n"), material));
  return new DataView(h.buffer, h.byteOffset).getUint32(0, false);
}

/** A verifier key `<name>+<8 hex id>+<base64(alg ‖ key)>` (NoteKey::parse_with_alg). */
export function parseNoteKey(vkey: string, alg: number): NoteKey {
  const v = vkey.trim();
  const a = v.indexOf("+");
  const b = a < 0 ? -1 : v.indexOf("+", a + 1);
  if (a < 0 || b < 0) throw new NoteError(`invalid verifier key: expected name+keyid+base64`);
  const name = v.slice(0, a), idHex = v.slice(a + 1, b), b64 = v.slice(b + 1);
  if (idHex.length !== 8 || !/^[0-9a-fA-F]{8}$/.test(idHex)) throw new NoteError("invalid verifier key: key ID must be 8 hex digits");
  const material = b64decode(b64);
  if (!material) throw new NoteError("invalid verifier key: key material is not base64");
  if (material.length === 0) throw new NoteError("invalid verifier key: empty key material");
  if (material[0] !== alg) throw new NoteError(`invalid verifier key: wrong key type (expected 0x0${alg})`);
  if (material.length !== 33) throw new NoteError("invalid verifier key: Ed25519 keys are 32 bytes");
  if (!validKeyName(name)) throw new NoteError("invalid key name");
  const key = material.slice(1);
  if (!validEd25519Key(key)) throw new NoteError("invalid verifier key: not a valid Ed25519 public key");
  const id = keyId(name, material);
  if (id !== parseInt(idHex, 16)) throw new NoteError("invalid verifier key: key ID does not match name and key (wrong or altered key)");
  return { name, alg, key, id, vkey: `${name}+${id.toString(16).padStart(8, "0")}+${b64encode(material)}` };
}

// ---- Checkpoints (c2sp.org/tlog-checkpoint) ----

export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  extensions: string[];
}

export function parseCheckpointText(text: Uint8Array): Checkpoint {
  const bad = (m: string) => invalid(`log checkpoint: malformed checkpoint: ${m}`);
  const s = utf8Decode(text);
  if (s === null) throw bad("not UTF-8");
  if (!s.endsWith("\n")) throw bad("text must end with a newline");
  const lines = s.slice(0, -1).split("\n");
  const origin = lines[0];
  if (!origin) throw bad("empty origin line");
  if (lines.length < 2) throw bad("missing tree size line");
  if (!/^\d+$/.test(lines[1]) || BigInt(lines[1]) > 0xffffffffffffffffn) throw bad("tree size is not a decimal number");
  const size = BigInt(lines[1]);
  if (size.toString() !== lines[1]) throw bad("tree size has leading zeroes or a sign");
  if (lines.length < 3) throw bad("missing root hash line");
  const root = b64decode(lines[2]);
  if (!root || root.length !== 32) throw bad("root hash is not base64 of 32 bytes");
  const extensions = lines.slice(3);
  if (extensions.some((e) => e === "")) throw bad("empty extension line");
  return { origin, size, root, extensions };
}

export interface WitnessedBy {
  witness: string;
  timestamp: bigint;
}
export interface CheckpointVerified {
  checkpoint: Checkpoint;
  note: SignedNote;
  witnesses: WitnessedBy[];
}

/**
 * A checkpoint note signed by `logKey`, with the cosignatures of `witnessKeys` (threshold
 * defaults to all of them, as `vouch verify`). Throws a VerifyFailure with the Rust code.
 */
export function verifyCheckpoint(note: string | Uint8Array, logKey: string, witnessKeys: string[] = [], threshold?: number): CheckpointVerified {
  let log: NoteKey;
  let wits: NoteKey[];
  try {
    log = parseNoteKey(logKey, 0x01);
    wits = witnessKeys.map((w) => parseNoteKey(w, 0x04));
  } catch (e) {
    throw new VerifyFailure("invalid_argument", `--log-key/--witness: ${(e as Error).message}`);
  }
  const need = threshold ?? wits.length;
  if (need > wits.length)
    throw new VerifyFailure("invalid_argument", `--log-key/--witness: witness threshold ${need} is larger than the ${wits.length} trusted witnesses given`);
  let n: SignedNote;
  try {
    n = parseSignedNote(note);
  } catch (e) {
    throw invalid(`log checkpoint: malformed signed note: ${(e as Error).message}`, "evidence.log.proof");
  }
  const checkpoint = parseCheckpointText(n.text);
  if (checkpoint.origin !== log.name)
    throw invalid(`log checkpoint: checkpoint is for log ${JSON.stringify(checkpoint.origin)}, expected ${JSON.stringify(log.name)}`, "evidence.log.proof");
  let found = false;
  for (const s of n.signatures.filter((s) => s.name === log.name && s.keyId === log.id)) {
    if (s.sig.length !== 64 || !verifyStrict(s.sig, n.text, log.key))
      throw invalid(`log checkpoint: signature by ${log.vkey} on the checkpoint does not verify (forged or altered note)`, "evidence.log.proof");
    found = true;
  }
  if (!found) throw invalid(`log checkpoint: checkpoint has no signature by the trusted log key ${log.vkey}`, "evidence.log.proof");
  const witnesses: WitnessedBy[] = [];
  for (const w of wits) {
    for (const s of n.signatures.filter((s) => s.name === w.name && s.keyId === w.id)) {
      if (s.sig.length !== 72) throw invalid("witness cosignature: cosignature line is malformed: cosignature/v1 signatures are 72 bytes (timestamp, Ed25519)", "evidence.log.proof");
      const ts = new DataView(s.sig.buffer, s.sig.byteOffset).getBigUint64(0, false);
      if (ts > 0x7fffffffffffffffn) throw invalid("witness cosignature: cosignature line is malformed: timestamp above 2^63-1", "evidence.log.proof");
      const msg = concat(utf8(`cosignature/v1\ntime ${ts}\n`), n.text);
      if (!verifyStrict(s.sig.slice(8), msg, w.key))
        throw invalid(`witness cosignature: cosignature by witness ${w.name} does not verify (forged, or for another checkpoint)`, "evidence.log.proof");
      if (!witnesses.some((o) => o.witness === w.name)) witnesses.push({ witness: w.name, timestamp: ts });
    }
  }
  if (witnesses.length < need)
    throw new VerifyFailure(
      "log_witnesses_insufficient",
      `transparency log: only ${witnesses.length} of the ${need} required trusted witness cosignatures verified`,
      "evidence.log.proof",
    );
  return { checkpoint, note: n, witnesses };
}

// ---- tlog-proof (c2sp.org/tlog-proof@v1) and the bundle's log evidence ----

export interface TlogProof {
  extra?: Uint8Array;
  index: bigint;
  hashes: Uint8Array[];
  checkpoint: Uint8Array;
}

export function parseTlogProof(text: string): TlogProof {
  const t = utf8(text);
  if (t.length > 1_000_000 + 4096) throw invalid("tlog-proof is larger than the limit");
  const at = text.indexOf("\n\n");
  if (at < 0) throw invalid("tlog-proof has no blank line before the checkpoint");
  const head = text.slice(0, at).split("\n");
  const checkpoint = utf8(text.slice(at + 2));
  if (head[0] !== "c2sp.org/tlog-proof@v1") throw invalid('not a tlog-proof: first line must be "c2sp.org/tlog-proof@v1"');
  let i = 1;
  let extra: Uint8Array | undefined;
  if (i < head.length && head[i].startsWith("extra ")) {
    const e = b64decode(head[i].slice(6));
    if (!e) throw invalid("tlog-proof extra line is not base64");
    extra = e;
    i++;
  }
  const il = head[i];
  if (il === undefined || !il.startsWith("index ")) throw invalid("tlog-proof has no valid `index N` line");
  const n = il.slice(6);
  if (!/^\d+$/.test(n) || BigInt(n) > 0xffffffffffffffffn || BigInt(n).toString() !== n) throw invalid("tlog-proof has no valid `index N` line");
  const hashes: Uint8Array[] = [];
  for (const [j, l] of head.slice(i + 1).entries()) {
    if (hashes.length === 63) throw invalid("tlog-proof has more than 63 proof hashes");
    const h = b64decode(l);
    if (!h || h.length !== 32) throw invalid(`tlog-proof line ${i + 2 + j} is not a base64 SHA-256 hash`, "evidence.log.proof");
    hashes.push(h);
  }
  return { extra, index: BigInt(n), hashes, checkpoint };
}

export interface InclusionVerified {
  origin: string;
  index: bigint;
  treeSize: bigint;
  witnesses: WitnessedBy[];
}

/** `verify_log_evidence`: the bundle's `evidence.log` against the trusted log and witnesses. */
export function verifyLogEvidence(ev: unknown, entry: Uint8Array, logKey: string, witnessKeys: string[], threshold: number | undefined): InclusionVerified {
  if (ev === undefined)
    throw new VerifyFailure("log_proof_missing", "transparency log: bundle has no `log` evidence (it was made by a node without a transparency log)", "evidence.log");
  // LogEvidence { format, index: u64, proof?: string }, deny_unknown_fields.
  const shapeOk =
    isObj(ev) &&
    Object.keys(ev).every((k) => ["format", "index", "proof"].includes(k)) &&
    typeof ev.format === "string" &&
    ((typeof ev.index === "number" && Number.isInteger(ev.index) && ev.index >= 0) || (typeof ev.index === "bigint" && ev.index >= 0n && ev.index < 2n ** 64n)) &&
    (ev.proof === undefined || ev.proof === null || typeof ev.proof === "string");
  if (!shapeOk) throw invalid("transparency log: log evidence is malformed", "evidence.log");
  if (ev.format !== "vouch.log.v1") throw invalid(`transparency log: log evidence is malformed: unknown format`, "evidence.log.format");
  if (typeof ev.proof !== "string")
    throw new VerifyFailure("log_proof_missing", `transparency log: the bundle names log entry ${ev.index} but carries no inclusion proof yet: run \`vouch log prove BUNDLE\``, "evidence.log.proof");
  const proof = parseTlogProof(ev.proof);
  if (proof.index !== BigInt(ev.index as number | bigint))
    throw invalid(`transparency log: the log evidence names entry ${ev.index} but its proof is for entry ${proof.index}`, "evidence.log.index");
  const cp = verifyCheckpoint(proof.checkpoint, logKey, witnessKeys, threshold);
  const err = inclusionError(leafHash(entry), proof.index, cp.checkpoint.size, proof.hashes, cp.checkpoint.root);
  if (err) throw invalid(`transparency log: inclusion proof: ${err}`, "evidence.log.proof");
  return { origin: cp.checkpoint.origin, index: proof.index, treeSize: cp.checkpoint.size, witnesses: cp.witnesses };
}
