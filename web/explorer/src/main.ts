// The explorer: a hash router over views that each fetch from the node's same-origin API and
// run their checks in the browser. `body[data-ready="1"]` marks a view rendered with its data
// (the Playwright test and the load benchmark wait for it).
import { errorBox, h } from './dom.ts';
import { overview } from './views/overview.ts';
import { modelDetail, modelList } from './views/models.ts';
import { logEntry, logView } from './views/log.ts';
import { receiptView } from './views/receipt.ts';
import { verifyView } from './views/verify.ts';
import { analyticsView } from './views/analytics.ts';
import { installBench } from './bench.ts';

type View = (arg: string) => Promise<HTMLElement>;

const routes: [RegExp, string, View][] = [
  [/^\/?$/, 'overview', () => overview()],
  [/^\/models\/?$/, 'models', () => modelList()],
  [/^\/models\/(.+)$/, 'model', (r) => modelDetail(r)],
  [/^\/log\/?$/, 'log', () => logView()],
  [/^\/log\/(\d+)$/, 'entry', (i) => logEntry(Number(i))],
  [/^\/receipt\/?$/, 'receipt', () => receiptView('')],
  [/^\/receipt\/(.+)$/, 'receipt', (q) => receiptView(q)],
  [/^\/verify\/?$/, 'verify', () => verifyView()],
  [/^\/analytics\/?$/, 'analytics', () => analyticsView()],
];

let generation = 0;

async function render(): Promise<void> {
  const gen = ++generation;
  const path = location.hash.replace(/^#/, '') || '/';
  const main = document.getElementById('view')!;
  document.body.dataset.ready = '0';
  const hit = routes.find(([re]) => re.test(path));
  const route = hit?.[1] ?? 'not-found';
  document.body.dataset.route = route;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#nav a')) {
    const target = a.getAttribute('href')!.replace(/^#/, '');
    const current = target === '/' ? path === '/' : path.startsWith(target);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  let content: HTMLElement;
  try {
    if (!hit) content = h('div', null, h('h1', null, 'Not found'), h('p', null, `No view at ${path}.`));
    else {
      const m = hit[0].exec(path)!;
      content = await hit[2](decodeURIComponent(m[1] ?? ''));
    }
  } catch (e) {
    content = h('div', null, h('h1', null, 'Could not load this view'), errorBox(e));
  }
  if (gen !== generation) return; // a newer navigation won
  main.replaceChildren(content);
  // The load benchmark reads this mark: navigation start to the first view with its data.
  if (!performance.getEntriesByName('vouch-ready').length) performance.mark('vouch-ready');
  document.body.dataset.ready = '1';
}

function setupNav(): void {
  const toggle = document.getElementById('navtoggle')!;
  const nav = document.getElementById('nav')!;
  toggle.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  nav.addEventListener('click', () => {
    nav.classList.remove('open');
    toggle.setAttribute('aria-expanded', 'false');
  });
}

setupNav();
installBench();
window.addEventListener('hashchange', () => void render());
void render();
