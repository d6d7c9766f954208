// The log checks the explorer runs in the browser, as thin adapters over the independent
// verifier (clients/ts): checkpoints under the log key and witness keys (C2SP signed-note,
// tlog-checkpoint, tlog-cosignature) and RFC 9162 inclusion and consistency proofs. The
// adapters turn the library's booleans into errors that say what failed, for the page.
import {
  b64decode as libB64decode,
  b64encode,
  hexEncode,
  leafHash as libLeafHash,
  parseSignedNote,
  verifyCheckpoint as libVerifyCheckpoint,
  verifyConsistency as libVerifyConsistency,
  verifyInclusion as libVerifyInclusion,
} from '../../../clients/ts/src/index.ts';

export { b64encode };
export const hex = hexEncode;

export function b64decode(s: string): Uint8Array {
  const b = libB64decode(s.trim());
  if (!b) throw new Error(`not base64: ${s}`);
  return b;
}

/** RFC 6962 leaf hash of the entry text's UTF-8 bytes. */
export function leafHash(entry: string): Uint8Array {
  return libLeafHash(new TextEncoder().encode(entry));
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
}

export interface Cosig {
  witness: string;
  /** Unix seconds, or null when this trusted witness did not cosign. */
  timestamp: number | null;
}

export interface CheckpointResult {
  checkpoint: Checkpoint;
  cosignatures: Cosig[];
  witnessesOk: number;
}

/** Throws (with the verifier's message) unless the log key signed the note and at least
 * `threshold` of `witnessKeys` cosigned it; a bad cosignature by a trusted witness also throws. */
export function verifyCheckpoint(note: string, logKey: string, witnessKeys: string[], threshold: number): CheckpointResult {
  const keys = witnessKeys.filter((k) => k.trim() !== '');
  const v = libVerifyCheckpoint(note, logKey, keys, Math.min(threshold, keys.length));
  const names = keys.map((k) => k.trim().split('+')[0]!);
  return {
    checkpoint: { origin: v.checkpoint.origin, size: Number(v.checkpoint.size), root: v.checkpoint.root },
    cosignatures: names.map((n) => {
      const w = v.witnesses.find((x) => x.witness === n);
      return { witness: n, timestamp: w ? Number(w.timestamp) : null };
    }),
    witnessesOk: v.witnesses.length,
  };
}

/** Every signature line on a note, for display (cosignatures carry a time). */
export function noteSignatures(note: string): { name: string; id: string; timestamp: number | null }[] {
  return parseSignedNote(note).signatures.map((s) => ({
    name: s.name,
    id: s.keyId.toString(16).padStart(8, '0'),
    timestamp: s.sig.length === 72 ? Number(new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0)) : null,
  }));
}

export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: Uint8Array[], root: Uint8Array): void {
  if (!libVerifyInclusion(leaf, index, size, proof, root)) throw new Error(`inclusion proof of entry ${index} does not lead to the root of checkpoint ${size}`);
}

export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: Uint8Array[]): void {
  if (!libVerifyConsistency(oldSize, newSize, oldRoot, newRoot, proof))
    throw new Error(`consistency proof from size ${oldSize} to ${newSize} does not connect the saved root to the current one`);
}
