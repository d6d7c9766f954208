import { enc, getJson, isMissingRoute } from '../api.ts';
import { badge, copyable, errorBox, facts, h, link, section, table } from '../dom.ts';
import { when } from '../format.ts';
import { checkInclusion, verifiedLog, type VerifiedLog } from '../logcheck.ts';
import { savedCheckpoints, type SavedCheckpoint } from '../store.ts';
import { b64decode, b64encode, noteSignatures, verifyConsistency } from '../tlog.ts';
import type { EntriesPage, LogEntry } from '../types.ts';
import { configDigest } from '../verifier.ts';

const PAGE = 20;

export async function logView(): Promise<HTMLElement> {
  let log: VerifiedLog;
  try {
    log = await verifiedLog(true);
  } catch (e) {
    return h(
      'div',
      null,
      h('h1', null, 'Transparency log'),
      h('p', { class: 'verdict bad', 'data-testid': 'checkpoint-failed' }, 'checkpoint NOT verified'),
      errorBox(e),
      h('p', null, 'The node\'s checkpoint does not verify under the log key and witnesses in use (', link('#/verify', 'your pinned settings'), ', or this node\'s own keys). Nothing this log says can be trusted here until it does.'),
    );
  }
  const cp = log.result.checkpoint;
  const entriesBox = h('div', null, h('p', { class: 'muted' }, 'Loading entries…'));
  const view = h(
    'div',
    null,
    h('h1', null, 'Transparency log'),
    section('Log', facts([['Origin', h('code', null, log.info.origin)], ['Size', String(log.info.size)], ['Log key', copyable(log.logKey)], ['Keys from', keysFrom(log)]])),
    checkpointSection(log),
    consistencySection(log),
    section('Entries, newest first', entriesBox),
  );
  await showEntries(entriesBox, Math.max(0, cp.size - PAGE), cp.size);
  return view;
}

export function keysFrom(log: VerifiedLog): Node {
  return log.pinned
    ? h('span', null, 'your pinned settings (', link('#/verify', 'change'), ')')
    : h('span', { class: 'warn' }, 'this node — pin your own on the ', link('#/verify', 'Verify'), ' page to not trust it');
}

function checkpointSection(log: VerifiedLog): HTMLElement {
  const cp = log.result.checkpoint;
  const sigs = noteSignatures(log.note);
  const cos = new Map(log.result.cosignatures.map((c) => [c.witness, c]));
  const missing = log.result.cosignatures.filter((c) => c.timestamp === null);
  return section(
    'Latest checkpoint',
    h('p', { class: 'verdict ok', 'data-testid': 'checkpoint-verified' }, `verified: checkpoint ${cp.size} is signed by the log key`, log.witnessKeys.length ? `, ${log.result.witnessesOk} of ${log.witnessKeys.length} witnesses cosigned (threshold ${log.threshold})` : ''),
    facts([
      ['Size', h('span', { 'data-testid': 'checkpoint-size' }, String(cp.size))],
      ['Root', h('code', { class: 'mono' }, b64encode(cp.root))],
    ]),
    h(
      'div',
      { class: 'tablebox' },
      h(
        'table',
        null,
        h('thead', null, h('tr', null, ['Signer', 'Key ID', 'Kind', 'Time', 'Checked'].map((c) => h('th', null, c)))),
        h(
          'tbody',
          null,
          sigs.map((s) => {
            const c = cos.get(s.name);
            const isLog = s.name === log.info.origin && s.timestamp === null;
            const ok = isLog || (c !== undefined && c.timestamp !== null);
            return h(
              'tr',
              { 'data-testid': isLog ? 'log-sig-row' : 'cosig-row', 'data-witness': isLog ? null : s.name },
              h('td', null, h('code', null, s.name)),
              h('td', null, h('code', null, s.id)),
              h('td', null, s.timestamp === null ? 'log signature' : 'witness cosignature'),
              h('td', null, s.timestamp === null ? '—' : new Date(s.timestamp * 1000).toISOString()),
              h('td', null, ok ? badge(true, 'verified', '') : h('span', { class: 'muted' }, 'not a trusted key here')),
            );
          }),
        ),
      ),
    ),
    missing.length ? h('p', { class: 'warn' }, `No cosignature from trusted witness ${missing.map((c) => c.witness).join(', ')} on this checkpoint.`) : null,
    h('pre', { class: 'note' }, log.note),
  );
}

function consistencySection(log: VerifiedLog): HTMLElement {
  const cp = log.result.checkpoint;
  // Every saved checkpoint was verified under the log key when it was saved; the current one
  // was verified just now (and saved too).
  const saved = savedCheckpoints(cp.origin).filter((c) => c.size <= cp.size);
  const older = saved.filter((c) => c.size < cp.size);
  const option = (c: SavedCheckpoint): HTMLOptionElement =>
    h('option', { value: String(c.size) }, c.size === cp.size ? `${c.size} (current)` : `${c.size} (saved ${when(c.savedAt)})`);
  const oldSel = h('select', { id: 'cons-old', 'aria-label': 'Old size' }, saved.map(option));
  const newSel = h('select', { id: 'cons-new', 'aria-label': 'New size' }, saved.map(option));
  const dflt = older[older.length - 1] ?? saved[0];
  if (dflt) oldSel.value = String(dflt.size);
  newSel.value = String(cp.size);
  const out = h('div', { 'data-testid': 'consistency-result' });
  const run = async (): Promise<void> => {
    const old = saved.find((c) => c.size === Number(oldSel.value));
    const neu = saved.find((c) => c.size === Number(newSel.value));
    if (!old || !neu) return;
    if (old.size > neu.size) {
      out.replaceChildren(errorBox('Pick an old size no larger than the new size.'));
      return;
    }
    out.replaceChildren(h('p', { class: 'muted' }, 'Checking…'));
    let hashes: Uint8Array[];
    try {
      hashes = (await getJson<{ hashes: string[] }>(`/v1/log/consistency?old=${old.size}&new=${neu.size}`)).hashes.map(b64decode);
    } catch (e) {
      out.replaceChildren(h('p', null, 'Could not fetch the consistency proof (nothing was checked):'), errorBox(e));
      return;
    }
    try {
      verifyConsistency(old.size, neu.size, b64decode(old.root), b64decode(neu.root), hashes);
      out.replaceChildren(
        h('p', { class: 'verdict ok' }, `verified: checkpoint ${neu.size} extends checkpoint ${old.size} you saw before (${hashes.length} hashes checked in your browser)`),
      );
    } catch (e) {
      out.replaceChildren(
        h('p', { class: 'verdict splitview' }, 'SPLIT VIEW'),
        h('p', null, `The log at size ${neu.size} does not extend the checkpoint of size ${old.size} this browser saved: the log was rewritten, or you and others are shown different logs. Keep both checkpoints (below) as evidence.`),
        errorBox(e),
        h('pre', { class: 'note' }, old.note),
        h('pre', { class: 'note' }, neu.note),
      );
    }
  };
  const button = h('button', { type: 'button', class: 'primary' }, 'Check consistency');
  button.addEventListener('click', () => void run());
  return section(
    'Consistency',
    h(
      'p',
      null,
      'A checkpoint only protects you if later ones extend it. This browser saves every checkpoint it verifies (in localStorage); to compare against a root you saw before, you must have saved it then, by opening this page. Roots come from those saved checkpoints, never from the node.',
    ),
    saved.length
      ? h('div', { class: 'row' }, h('label', { for: 'cons-old' }, 'Old size '), oldSel, h('label', { for: 'cons-new' }, ' → new size '), newSel, button)
      : h('p', { class: 'muted' }, 'No saved checkpoint yet.'),
    out,
  );
}

async function fetchEntries(start: number, end: number): Promise<LogEntry[]> {
  try {
    const page = await getJson<EntriesPage>(`/v1/log/entries?start=${start}&limit=${end - start}`);
    return page.entries;
  } catch (e) {
    if (!isMissingRoute(e)) throw e;
    // Older node without the list route: one request per entry.
    const idx = Array.from({ length: end - start }, (_, i) => start + i);
    return Promise.all(idx.map((i) => getJson<LogEntry>(`/v1/log/entries/${i}`)));
  }
}

async function showEntries(box: HTMLElement, start: number, end: number): Promise<void> {
  try {
    const entries = (await fetchEntries(start, end)).sort((a, b) => b.index - a.index);
    const nav = h('div', { class: 'row' });
    const size = (await verifiedLog()).result.checkpoint.size;
    if (end < size) {
      const newer = h('button', { type: 'button' }, '← newer');
      newer.addEventListener('click', () => void showEntries(box, end, Math.min(end + PAGE, size)));
      nav.append(newer);
    }
    if (start > 0) {
      const older = h('button', { type: 'button' }, 'older →');
      older.addEventListener('click', () => void showEntries(box, Math.max(0, start - PAGE), start));
      nav.append(older);
    }
    box.replaceChildren(
      table(
        ['Index', 'Kind', 'Summary', 'Time'],
        entries.map((e) => {
          const d = decodeEntry(e.entry);
          return [link(`#/log/${e.index}`, `#${e.index}`), e.kind, summary(e.kind, d.payload), typeof d.payload.at === 'string' ? when(d.payload.at) : typeof d.payload.issued_at === 'string' ? when(d.payload.issued_at) : '—'];
        }),
        'entries',
      ),
      nav,
    );
  } catch (e) {
    box.replaceChildren(errorBox(e));
  }
}

export interface Decoded {
  header: string;
  payload: Record<string, unknown>;
}

/** Splits `vouch-log/v1 <kind>\n<canonical JSON>`. */
export function decodeEntry(text: string): Decoded {
  const nl = text.indexOf('\n');
  const header = nl < 0 ? text : text.slice(0, nl);
  try {
    return { header, payload: JSON.parse(text.slice(nl + 1)) as Record<string, unknown> };
  } catch {
    return { header, payload: {} };
  }
}

function summary(kind: string, p: Record<string, unknown>): string {
  const s = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
  switch (kind) {
    case 'receipt':
      return `${s(p.model_ref ?? p.model)} · ${Array.isArray(p.tiers) ? p.tiers.join('+') : ''} · ${s(p.request_id)}`;
    case 'chat-receipt':
      return `chat ${s(p.model_ref ?? p.model)} · ${s(p.request_id)}`;
    case 'model-registered':
      return `${s(p.model)} (${s(p.format)}, ${s(p.size)} bytes)`;
    case 'pointer-moved':
      return `${s(p.name)}${p.version ? '@' + s(p.version) : ''} → ${p.to ? s(p.to) : 'removed'}`;
    case 'policy-changed': {
      const pol = (p.policy ?? {}) as Record<string, unknown>;
      return `${s(pol.subject)}: min ${s(pol.min_tier ?? 'none')} (was ${s(pol.previous ?? 'none')})`;
    }
    case 'config-changed':
      return `${s(p.model)} config ${s(p.config_digest)}`;
    default:
      return '';
  }
}

export async function logEntry(index: number): Promise<HTMLElement> {
  const [e, log] = await Promise.all([getJson<LogEntry>(`/v1/log/entries/${index}`), verifiedLog()]);
  return entryView(e, log);
}

/** One entry: decoded fields and its inclusion in the verified checkpoint, checked here. */
export async function entryView(e: LogEntry, log: VerifiedLog): Promise<HTMLElement> {
  const d = decodeEntry(e.entry);
  let inclusion: HTMLElement;
  try {
    const r = await checkInclusion(e, log);
    inclusion = h(
      'p',
      { class: 'verdict ok', 'data-testid': 'inclusion-verified' },
      `included in checkpoint ${r.size}, verified in your browser`,
    );
  } catch (err) {
    inclusion = h('div', null, h('p', { class: 'verdict bad', 'data-testid': 'inclusion-failed' }, 'inclusion NOT verified'), errorBox(err));
  }
  const fields = Object.entries(d.payload).map(([k, v]): [string, Node] => [k, typeof v === 'string' ? h('code', { class: 'mono' }, v) : h('pre', { class: 'json small' }, JSON.stringify(v, null, 2))]);
  const model = typeof d.payload.model === 'string' ? d.payload.model : null;
  const configCheck = e.kind === 'config-changed' ? configDigestCheck(d.payload.config, d.payload.config_digest) : null;
  return h(
    'div',
    null,
    h('h1', null, `Log entry #${e.index}`),
    section(
      'Inclusion',
      inclusion,
      h('p', { class: 'muted' }, 'The leaf hash is recomputed from the entry text below, the proof hashes lead to the root of the checkpoint verified under the log key (', keysFrom(log), ').'),
    ),
    section(`${e.kind}`, configCheck, facts([['Kind', e.kind], ['Leaf hash', h('code', { class: 'mono' }, e.leaf_hash)], ...fields]), model ? h('p', null, link(`#/models/${enc(model)}`, 'The model →')) : null),
    section('Entry text (what is hashed)', h('pre', { class: 'note' }, e.entry)),
  );
}

/** The configuration text shown must hash to the digest receipts carry: recomputed here. */
export function configDigestCheck(config: unknown, digest: unknown): HTMLElement {
  let got: string;
  try {
    got = configDigest(config);
  } catch (e) {
    return h('p', { class: 'verdict bad' }, `configuration has no canonical form: ${e instanceof Error ? e.message : String(e)}`);
  }
  return got === digest
    ? h('p', { class: 'verdict ok', 'data-testid': 'config-digest-verified' }, `verified: this configuration hashes to ${got} in your browser`)
    : h('p', { class: 'verdict bad' }, `configuration hashes to ${got}, not to the digest shown (${String(digest)})`);
}
