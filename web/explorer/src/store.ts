// What the browser remembers between visits (localStorage): the trust settings the user pinned
// and checkpoints verified before, whose roots later consistency checks compare against.
export interface Trust {
  trustKey: string;
  logKey: string;
  witnessKeys: string[];
  witnessThreshold: number;
  /** True once the user edited the settings; until then they are the node's own keys. */
  pinned: boolean;
}

const TRUST = 'vouch.explorer.trust';
const CPS = 'vouch.explorer.checkpoints';

function read<T>(key: string): T | null {
  try {
    const v = localStorage.getItem(key);
    return v ? (JSON.parse(v) as T) : null;
  } catch {
    return null;
  }
}

export function loadTrust(): Trust | null {
  return read<Trust>(TRUST);
}

export function saveTrust(t: Trust): void {
  localStorage.setItem(TRUST, JSON.stringify(t));
}

export function clearTrust(): void {
  localStorage.removeItem(TRUST);
}

export interface SavedCheckpoint {
  origin: string;
  size: number;
  /** base64 root hash */
  root: string;
  note: string;
  savedAt: string;
}

export function savedCheckpoints(origin: string): SavedCheckpoint[] {
  return (read<SavedCheckpoint[]>(CPS) ?? []).filter((c) => c.origin === origin).sort((a, b) => a.size - b.size);
}

/** Remembers a checkpoint that verified; keeps the 50 most recent sizes. */
export function rememberCheckpoint(c: SavedCheckpoint): void {
  const all = (read<SavedCheckpoint[]>(CPS) ?? []).filter((x) => !(x.origin === c.origin && x.size === c.size));
  all.push(c);
  all.sort((a, b) => a.savedAt.localeCompare(b.savedAt));
  localStorage.setItem(CPS, JSON.stringify(all.slice(-50)));
}
