import { ApiError, enc, getJson, isMissingRoute } from '../api.ts';
import { errorBox, h } from '../dom.ts';
import { verifiedLog } from '../logcheck.ts';
import type { EntriesPage, LogEntry } from '../types.ts';
import { entryView } from './log.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How far back the fallback search goes on a node without GET /v1/log/receipts/{id}. */
const SCAN = 1000;

export async function receiptView(query: string): Promise<HTMLElement> {
  const input = h('input', { type: 'search', id: 'receipt-q', name: 'q', placeholder: 'request id (UUID) or log index', value: query, autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Request id or log index' });
  const form = h('form', { class: 'row search', role: 'search' }, input, h('button', { type: 'submit', class: 'primary' }, 'Look up'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (q) location.hash = `#/receipt/${enc(q)}`;
  });
  const head = [h('h1', null, 'Receipt lookup'), form];
  if (!query) return h('div', null, ...head, h('p', { class: 'muted' }, 'Every receipt the node issues is a log entry. Give its request id (in the bundle and the X-Request-Id header) or its log index.'));
  let result: HTMLElement;
  try {
    const e = await find(query.trim());
    result = await entryView(e, await verifiedLog());
  } catch (e) {
    result = errorBox(e);
  }
  return h('div', null, ...head, h('div', { 'data-testid': 'receipt-result' }, result));
}

async function find(q: string): Promise<LogEntry> {
  if (/^\d+$/.test(q)) return getJson<LogEntry>(`/v1/log/entries/${q}`);
  if (!UUID.test(q)) throw new Error(`"${q}" is neither a request id (UUID) nor a log index (digits)`);
  try {
    return await getJson<LogEntry>(`/v1/log/receipts/${enc(q)}`);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'not_found') throw new Error(`no receipt with request id ${q} in this log`);
    if (!isMissingRoute(e)) throw e;
  }
  return scan(q.toLowerCase());
}

// Older node without the lookup route: read the newest entries and match the request id.
async function scan(id: string): Promise<LogEntry> {
  const size = (await verifiedLog()).result.checkpoint.size;
  for (let end = size; end > Math.max(0, size - SCAN); end -= 20) {
    const start = Math.max(0, end - 20);
    let entries: LogEntry[];
    try {
      entries = (await getJson<EntriesPage>(`/v1/log/entries?start=${start}&limit=${end - start}`)).entries;
    } catch {
      entries = await Promise.all(Array.from({ length: end - start }, (_, i) => getJson<LogEntry>(`/v1/log/entries/${start + i}`)));
    }
    const hit = entries.find((e) => (e.kind === 'receipt' || e.kind === 'chat-receipt') && e.entry.toLowerCase().includes(`"request_id":"${id}"`));
    if (hit) return hit;
  }
  throw new Error(`no receipt with request id ${id} in the newest ${SCAN} entries (this node has no lookup route)`);
}
