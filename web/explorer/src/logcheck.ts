// The log checks every view shares: the current checkpoint verified in the browser under the
// log key (pinned by the user, else the node's own, said so on screen), and an entry's
// inclusion in it recomputed from the entry text.
import { getJson, getText, enc } from './api.ts';
import { loadTrust, rememberCheckpoint } from './store.ts';
import { b64decode, b64encode, leafHash, verifyCheckpoint, verifyInclusion, type CheckpointResult } from './tlog.ts';
import type { LogEntry, LogInfo } from './types.ts';

export interface VerifiedLog {
  info: LogInfo;
  note: string;
  result: CheckpointResult;
  logKey: string;
  witnessKeys: string[];
  threshold: number;
  /** Whether the keys came from the user's pinned settings rather than from this node. */
  pinned: boolean;
}

let cached: Promise<VerifiedLog> | null = null;

/** Fetches and verifies the latest checkpoint (once per page view; `fresh` refetches). */
export function verifiedLog(fresh = false): Promise<VerifiedLog> {
  if (!cached || fresh) cached = load();
  cached.catch(() => (cached = null));
  return cached;
}

async function load(): Promise<VerifiedLog> {
  const [info, note] = await Promise.all([getJson<LogInfo>('/v1/log'), getText('/log/checkpoint')]);
  const trust = loadTrust();
  const pinned = !!trust?.pinned && trust.logKey.trim() !== '';
  const logKey = pinned ? trust!.logKey : info.log_key;
  const witnessKeys = pinned ? trust!.witnessKeys : info.witnesses;
  const threshold = pinned ? trust!.witnessThreshold : 0;
  const result = verifyCheckpoint(note, logKey, witnessKeys, threshold);
  rememberCheckpoint({
    origin: result.checkpoint.origin,
    size: result.checkpoint.size,
    root: b64encode(result.checkpoint.root),
    note,
    savedAt: new Date().toISOString(),
  });
  return { info, note, result, logKey, witnessKeys, threshold, pinned };
}

export interface Inclusion {
  leafOk: boolean;
  size: number;
}

/**
 * Recomputes the entry's leaf hash from its text, fetches its inclusion proof at the verified
 * checkpoint's size and checks it against that checkpoint's root. Throws on any mismatch.
 */
export async function checkInclusion(e: LogEntry, log: VerifiedLog): Promise<Inclusion> {
  const leaf = leafHash(e.entry);
  if (b64encode(leaf) !== e.leaf_hash) throw new Error(`the entry text hashes to ${b64encode(leaf)}, not to the leaf hash the node sent (${e.leaf_hash})`);
  // An entry newer than the checkpoint this page verified: verify the latest one first.
  if (e.index >= log.result.checkpoint.size) log = await verifiedLog(true);
  const size = log.result.checkpoint.size;
  if (e.index >= size) throw new Error(`entry ${e.index} is not yet in checkpoint ${size}; reload in a moment`);
  const p = await getJson<{ hashes: string[] }>(`/v1/log/proof/${e.index}?size=${enc(String(size))}`);
  verifyInclusion(leaf, e.index, size, p.hashes.map(b64decode), log.result.checkpoint.root);
  return { leafOk: true, size };
}

/**
 * Checks that log entry `index` is in the verified checkpoint and that its payload says what a
 * history row says (`expect`: payload fields, dotted paths for nested ones; null and absent are
 * the same). Null when it does, else what differs.
 */
export async function entrySays(index: number, kind: string, expect: Record<string, unknown>): Promise<string | null> {
  const [e, log] = await Promise.all([getJson<LogEntry>(`/v1/log/entries/${index}`), verifiedLog()]);
  await checkInclusion(e, log);
  if (e.kind !== kind) return `entry ${index} is a ${e.kind} entry, not ${kind}`;
  const payload = JSON.parse(e.entry.slice(e.entry.indexOf('\n') + 1)) as Record<string, unknown>;
  const at = (path: string): unknown =>
    path.split('.').reduce<unknown>((o, key) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[key] : undefined), payload);
  for (const [k, v] of Object.entries(expect)) {
    const got = at(k);
    if (JSON.stringify(got ?? null) !== JSON.stringify(v ?? null)) return `entry ${index} says ${k} = ${JSON.stringify(got ?? null)}, the node's history says ${JSON.stringify(v)}`;
  }
  return null;
}
