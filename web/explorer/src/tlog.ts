// Transparency-log checks the explorer runs in the browser: signed-note checkpoints (C2SP
// signed-note, tlog-checkpoint), witness cosignatures (C2SP tlog-cosignature, cosignature/v1),
// and RFC 6962 / RFC 9162 §2.1.3–2.1.4 inclusion and consistency proofs.
// TO BE REPLACED by the same functions of the independent verifier in clients/ts/ once its
// branch (ts-verify) lands with them; kept small and self-contained until then.
import { sha256 } from '@noble/hashes/sha2.js';
import { ed25519 } from '@noble/curves/ed25519.js';

const te = new TextEncoder();

export function b64decode(s: string): Uint8Array {
  const bin = atob(s.trim());
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(b: Uint8Array): string {
  let bin = '';
  for (const x of b) bin += String.fromCharCode(x);
  return btoa(bin);
}

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array | string): Uint8Array {
  return sha256(concat(Uint8Array.of(0), typeof entry === 'string' ? te.encode(entry) : entry));
}

function nodeHash(l: Uint8Array, r: Uint8Array): Uint8Array {
  return sha256(concat(Uint8Array.of(1), l, r));
}

// ---- signed notes ----

export interface NoteKey {
  name: string;
  id: number;
  alg: number;
  key: Uint8Array;
  vkey: string;
}

function keyId(name: string, alg: number, key: Uint8Array): number {
  const d = sha256(concat(te.encode(name + '\n'), Uint8Array.of(alg), key));
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}

/** Parses a verifier key `name+hex8+base64(alg ‖ key32)` and checks its key ID. */
export function parseVkey(vkey: string): NoteKey {
  const v = vkey.trim();
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(v);
  if (!m) throw new Error(`not a verifier key (name+keyid+base64): ${v}`);
  const material = b64decode(m[3]!);
  if (material.length !== 33) throw new Error('verifier key: expected 1 type byte and a 32-byte Ed25519 key');
  const alg = material[0]!;
  const key = material.slice(1);
  const id = parseInt(m[2]!, 16) >>> 0;
  if (keyId(m[1]!, alg, key) !== id) throw new Error('verifier key: key ID does not match name and key (altered key)');
  return { name: m[1]!, id, alg, key, vkey: v };
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  /** The signed body: the text up to and including the newline before the blank line. */
  body: string;
}

export interface Cosig {
  witness: string;
  timestamp: number;
  ok: boolean;
}

export interface CheckpointResult {
  checkpoint: Checkpoint;
  cosignatures: Cosig[];
  witnessesOk: number;
}

interface SigLine {
  name: string;
  id: number;
  sig: Uint8Array;
}

function parseNote(note: string): { body: string; sigs: SigLine[] } {
  const at = note.indexOf('\n\n');
  if (at < 0) throw new Error('checkpoint: no blank line between body and signatures');
  const body = note.slice(0, at + 1);
  const sigs: SigLine[] = [];
  for (const line of note.slice(at + 2).split('\n')) {
    if (line === '') continue;
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new Error(`checkpoint: malformed signature line: ${line}`);
    const raw = b64decode(m[2]!);
    if (raw.length < 5) throw new Error('checkpoint: signature too short');
    const id = ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0;
    sigs.push({ name: m[1]!, id, sig: raw.slice(4) });
  }
  return { body, sigs };
}

function parseBody(body: string): Checkpoint {
  const lines = body.split('\n');
  const [origin, size, root] = lines;
  if (!origin || !size || !root || !/^\d+$/.test(size)) throw new Error('checkpoint: malformed body');
  const r = b64decode(root);
  if (r.length !== 32) throw new Error('checkpoint: root hash is not 32 bytes');
  return { origin, size: Number(size), root: r, body };
}

/**
 * Verifies a checkpoint note: the log key's signature is required; each witness key's
 * cosignature is checked and counted; fewer than `threshold` valid cosignatures is an error.
 */
export function verifyCheckpoint(note: string, logKey: string, witnessKeys: string[] = [], threshold = 0): CheckpointResult {
  const lk = parseVkey(logKey);
  if (lk.alg !== 0x01) throw new Error('log key: not an Ed25519 note key (type byte 0x01)');
  const { body, sigs } = parseNote(note);
  const cp = parseBody(body);
  if (cp.origin !== lk.name) throw new Error(`checkpoint origin ${cp.origin} is not the log key's name ${lk.name}`);
  const mine = sigs.find((s) => s.name === lk.name && s.id === lk.id);
  if (!mine) throw new Error('checkpoint: no signature by the log key');
  if (mine.sig.length !== 64 || !ed25519.verify(mine.sig, te.encode(body), lk.key, { zip215: false }))
    throw new Error('checkpoint: the log key signature does not verify (altered checkpoint or another key)');
  const cosignatures: Cosig[] = [];
  for (const w of witnessKeys.filter((k) => k.trim() !== '')) {
    const wk = parseVkey(w);
    if (wk.alg !== 0x04) throw new Error(`witness key ${wk.name}: not a cosignature/v1 key (type byte 0x04)`);
    const line = sigs.find((s) => s.name === wk.name && s.id === wk.id);
    if (!line) {
      cosignatures.push({ witness: wk.name, timestamp: 0, ok: false });
      continue;
    }
    let ok = false;
    let ts = 0;
    if (line.sig.length === 72) {
      const t = new DataView(line.sig.buffer, line.sig.byteOffset, 8).getBigUint64(0);
      ts = Number(t);
      const msg = te.encode(`cosignature/v1\ntime ${t}\n${body}`);
      ok = ed25519.verify(line.sig.slice(8), msg, wk.key, { zip215: false });
    }
    cosignatures.push({ witness: wk.name, timestamp: ts, ok });
  }
  const witnessesOk = cosignatures.filter((c) => c.ok).length;
  if (witnessesOk < threshold) throw new Error(`checkpoint: ${witnessesOk} valid witness cosignatures, ${threshold} required`);
  return { checkpoint: cp, cosignatures, witnessesOk };
}

/** Other signature lines on a note (for display: name and, for cosignatures, time). */
export function noteSignatures(note: string): { name: string; id: string; timestamp: number | null }[] {
  return parseNote(note).sigs.map((s) => ({
    name: s.name,
    id: s.id.toString(16).padStart(8, '0'),
    timestamp: s.sig.length === 72 ? Number(new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0)) : null,
  }));
}

// ---- Merkle proofs (RFC 9162 §2.1.3.2 and §2.1.4.2) ----

export function rootFromInclusion(leaf: Uint8Array, index: number, size: number, proof: Uint8Array[]): Uint8Array {
  if (index >= size) throw new Error(`inclusion: index ${index} is not below size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error('inclusion: proof too long');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('inclusion: proof too short');
  return r;
}

export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: Uint8Array[], root: Uint8Array): void {
  if (!eq(rootFromInclusion(leaf, index, size, proof), root)) throw new Error('inclusion: the proof does not lead to the checkpoint root');
}

export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: Uint8Array[]): void {
  if (oldSize > newSize) throw new Error('consistency: old size is larger than new size');
  if (oldSize === newSize) {
    if (proof.length !== 0) throw new Error('consistency: proof must be empty for equal sizes');
    if (!eq(oldRoot, newRoot)) throw new Error('consistency: same size, different roots');
    return;
  }
  if (oldSize === 0) {
    if (proof.length !== 0) throw new Error('consistency: proof must be empty from size 0');
    return;
  }
  if (proof.length === 0) throw new Error('consistency: empty proof');
  let path = proof;
  // If the old size is a power of two, the old root itself starts the path.
  if ((oldSize & (oldSize - 1)) === 0) path = [oldRoot, ...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new Error('consistency: proof too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('consistency: proof too short');
  if (!eq(fr, oldRoot)) throw new Error('consistency: the proof does not lead to the old root');
  if (!eq(sr, newRoot)) throw new Error('consistency: the proof does not lead to the new root');
}
