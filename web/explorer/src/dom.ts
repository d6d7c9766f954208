// Tiny DOM builder: the CSP forbids inline styles and scripts, so views are built as elements
// (text is always set with textContent, never parsed as HTML).
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag: string, attrs: Attrs | null = null, ...children: (Child | Child[])[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs | null): void {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

/** A definition list from label/value pairs; values may be nodes. */
export function facts(rows: [string, Child | Child[]][]): HTMLDListElement {
  return h('dl', { class: 'facts' }, rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v as Child)]));
}

/** A table inside a horizontally scrolling box (phones). */
export function table(head: string[], rows: (Child | Child[])[][], cls = ''): HTMLDivElement {
  return h(
    'div',
    { class: 'tablebox' },
    h(
      'table',
      { class: cls || null },
      h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, c as Child))))),
    ),
  );
}

/** A digest or key shown in full, with a copy button. */
export function copyable(text: string, cls = 'mono'): HTMLSpanElement {
  const btn = h('button', { type: 'button', class: 'copy', title: 'Copy' }, 'copy');
  btn.addEventListener('click', () => {
    void navigator.clipboard?.writeText(text).then(
      () => (btn.textContent = 'copied'),
      () => (btn.textContent = 'select it'),
    );
  });
  return h('span', { class: 'copyable' }, h('code', { class: cls }, text), btn);
}

export function badge(ok: boolean, yes: string, no: string): HTMLSpanElement {
  return h('span', { class: ok ? 'badge ok' : 'badge bad' }, ok ? yes : no);
}

export function section(title: string, ...children: (Child | Child[])[]): HTMLElement {
  return h('section', { class: 'card' }, h('h2', null, title), ...children);
}

export function errorBox(e: unknown): HTMLElement {
  return h('p', { class: 'error' }, e instanceof Error ? e.message : String(e));
}

export function link(href: string, text: string): HTMLAnchorElement {
  return h('a', { href }, text);
}
