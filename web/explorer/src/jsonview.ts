// Pretty-printed JSON as elements, each value tagged with its JSON path (`a.b[0].c`), so a
// verifier failure's `field` can be highlighted where it sits in the bundle.
import { h } from './dom.ts';

export function jsonView(value: unknown, highlight: string[]): { el: HTMLElement; hit: HTMLElement | null } {
  const want = new Set(highlight.map(normalise));
  let hit: HTMLElement | null = null;
  const pre = h('pre', { class: 'json bundle' });
  const walk = (v: unknown, path: string, indent: string, key: string | null, last: boolean): void => {
    const line = h('span', { class: 'jline', 'data-path': path || '$' });
    if (want.has(normalise(path))) {
      line.classList.add('hl');
      hit ??= line;
    }
    line.append(indent);
    if (key !== null) line.append(h('span', { class: 'jkey' }, JSON.stringify(key)), ': ');
    const comma = last ? '' : ',';
    if (Array.isArray(v) || (v !== null && typeof v === 'object')) {
      const entries: [string | null, unknown, string][] = Array.isArray(v)
        ? v.map((x, i) => [null, x, `${path}[${i}]`])
        : Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, x, path ? `${path}.${k}` : k]);
      const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
      if (entries.length === 0) {
        line.append(open + close + comma + '\n');
        pre.append(line);
        return;
      }
      // Short arrays of numbers (tensor data) stay on one line.
      if (Array.isArray(v) && v.every((x) => typeof x === 'number') && v.length > 0) {
        line.append(h('span', { class: 'jnum' }, JSON.stringify(v)), comma + '\n');
        pre.append(line);
        return;
      }
      line.append(open + '\n');
      pre.append(line);
      entries.forEach(([k, x, p], i) => walk(x, p, indent + '  ', k, i === entries.length - 1));
      pre.append(h('span', { class: 'jline' }, indent + close + comma + '\n'));
      return;
    }
    const cls = typeof v === 'string' ? 'jstr' : typeof v === 'number' ? 'jnum' : 'jlit';
    line.append(h('span', { class: cls }, JSON.stringify(v)), comma + '\n');
    pre.append(line);
  };
  walk(value, '', '', null, true);
  return { el: pre, hit };
}

function normalise(p: string): string {
  return p.replace(/^\$\.?/, '').replace(/\[(\d+)\]/g, '.$1').replace(/^\./, '');
}
