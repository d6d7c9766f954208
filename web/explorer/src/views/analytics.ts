import { getJson, isMissingRoute } from '../api.ts';
import { h, section, table } from '../dom.ts';
import { lineChart, PALETTE, type Line } from '../chart.ts';
import { ms, pct } from '../format.ts';
import type { Analytics } from '../types.ts';

export async function analyticsView(): Promise<HTMLElement> {
  const minutes = h('select', { id: 'minutes', 'aria-label': 'Window' }, [15, 60, 360, 1440].map((m) => h('option', { value: String(m) }, m < 60 ? `${m} min` : `${m / 60} h`)));
  minutes.value = '60';
  const body = h('div');
  const load = async (): Promise<void> => {
    try {
      body.replaceChildren(render(await getJson<Analytics>(`/v1/analytics?minutes=${minutes.value}`), Number(minutes.value)));
    } catch (e) {
      if (!isMissingRoute(e)) throw e;
      body.replaceChildren(h('p', { class: 'muted' }, 'This node does not serve GET /v1/analytics yet.'));
    }
  };
  minutes.addEventListener('change', () => void load());
  await load();
  return h('div', null, h('h1', null, 'Tier analytics'), h('p', { class: 'lead' }, 'Traffic, latency and revenue per tier set, as the node measures them (not proven: the node reports these).'), h('div', { class: 'row' }, h('label', { for: 'minutes' }, 'Window '), minutes), body);
}

function render(a: Analytics, minutes: number): HTMLElement {
  const color = new Map(a.series.map((s, i) => [s.tiers, PALETTE[i % PALETTE.length]!]));
  const starts = a.series.flatMap((s) => s.buckets.map((b) => Date.parse(b.start)));
  const now = Date.now();
  const t0 = starts.length ? Math.min(...starts) : now - minutes * 60_000;
  const t1 = starts.length ? Math.max(...starts) : now;
  const lines = (f: (b: Analytics['series'][number]['buckets'][number]) => number | null, suffix = '', dashed = false): Line[] =>
    a.series.map((s) => ({ label: s.tiers + suffix, color: color.get(s.tiers)!, dashed, points: s.buckets.map((b) => ({ t: Date.parse(b.start), v: f(b) })) }));
  // Per bucket: each tier set's requests over all requests in that bucket (no traffic: no point).
  const totalAt = new Map<string, number>();
  for (const s of a.series) for (const b of s.buckets) totalAt.set(b.start, (totalAt.get(b.start) ?? 0) + b.requests);
  const shareLines = (): Line[] =>
    lines((b) => {
      const t = totalAt.get(b.start) ?? 0;
      return t ? (100 * b.requests) / t : null;
    });
  const charts = a.series.length
    ? h(
        'div',
        { class: 'charts', 'data-testid': 'charts' },
        lineChart(`Requests per ${a.bucket_seconds} s`, 'requests', lines((b) => b.requests), t0, t1),
        lineChart('Share of traffic', '%', shareLines(), t0, t1),
        lineChart('Latency p50 (solid) and p95 (dashed)', 'ms', [...lines((b) => b.p50_ms, ' p50'), ...lines((b) => b.p95_ms, ' p95', true)], t0, t1),
        lineChart('Revenue', a.asset, lines((b) => Number(b.revenue)), t0, t1),
      )
    : h('p', { class: 'muted' }, `No traffic in the last ${minutes} minutes.`);
  return h(
    'div',
    null,
    section(
      'Totals',
      table(
        ['Tier set', 'Requests', 'Share of traffic', 'Errors', 'p50', 'p95', `Revenue (${a.asset})`],
        a.totals.map((t) => [h('strong', null, t.tiers), String(t.requests), pct(t.share), String(t.errors), ms(t.p50_ms), ms(t.p95_ms), t.revenue]),
        'totals',
      ),
    ),
    section('Over time', charts),
  );
}
