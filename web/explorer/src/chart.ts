// Line charts drawn as SVG elements (presentation attributes only: the CSP allows no inline
// style). One line per series over a shared time axis.
import { h, s } from './dom.ts';

export const PALETTE = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#a16207'];

export interface Line {
  label: string;
  color: string;
  dashed?: boolean;
  points: { t: number; v: number | null }[];
}

export function lineChart(title: string, unit: string, lines: Line[], t0: number, t1: number): HTMLElement {
  const W = 640;
  const H = 220;
  const L = 52;
  const R = 12;
  const T = 12;
  const B = 28;
  const vals = lines.flatMap((l) => l.points.map((p) => p.v).filter((v): v is number => v !== null));
  const max = niceMax(vals.length ? Math.max(...vals) : 1);
  const x = (t: number): number => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v: number): number => T + (1 - v / max) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title, preserveAspectRatio: 'xMidYMid meet' });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#d4d4d8', 'stroke-width': 1 }));
    svg.append(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#52525b' }, fmt(v)));
  }
  for (const t of [t0, (t0 + t1) / 2, t1]) {
    svg.append(s('text', { x: x(t), y: H - 8, 'text-anchor': t === t0 ? 'start' : t === t1 ? 'end' : 'middle', 'font-size': 11, fill: '#52525b' }, new Date(t).toISOString().slice(11, 16) + 'Z'));
  }
  lines.forEach((l) => {
    // Break the line where a bucket has no value (no traffic).
    let d = '';
    let pen = false;
    for (const p of l.points) {
      if (p.v === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
    }
    const g = s('g', { class: 'series', 'data-series': l.label });
    if (d) g.append(s('path', { d, fill: 'none', stroke: l.color, 'stroke-width': 2, 'stroke-dasharray': l.dashed ? '5 4' : null }));
    for (const p of l.points) if (p.v !== null) g.append(s('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, fill: l.color }, s('title', null, `${l.label}: ${fmt(p.v)} ${unit} at ${new Date(p.t).toISOString()}`)));
    svg.append(g);
  });
  const legend = h('ul', { class: 'legend' }, lines.map((l) => h('li', null, swatch(l.color, l.dashed), l.label)));
  return h('figure', { class: 'chartbox' }, h('figcaption', null, `${title} (${unit})`), svg, legend);
}

function swatch(color: string, dashed?: boolean): SVGElement {
  return s('svg', { width: 18, height: 10, viewBox: '0 0 18 10', 'aria-hidden': 'true' }, s('line', { x1: 0, x2: 18, y1: 5, y2: 5, stroke: color, 'stroke-width': 3, 'stroke-dasharray': dashed ? '4 3' : null }));
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}
