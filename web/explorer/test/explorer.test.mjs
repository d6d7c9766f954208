// Drives the explorer in Debian's Chromium against a live node.
// Env: VOUCH_URL (serves /explorer and the API), VOUCH_FIXTURES (valid.bundle.json,
// tampered.bundle.json, expected.json; see make-fixtures.sh), VOUCH_ARTIFACTS (screenshots).
// Prints one JSON benchmark line; asserts no timings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright';

const url = process.env.VOUCH_URL;
const fixtures = process.env.VOUCH_FIXTURES;
const artifacts = process.env.VOUCH_ARTIFACTS ?? path.resolve('test-artifacts');
const skip = !url || !fixtures ? 'VOUCH_URL and VOUCH_FIXTURES are not set' : false;

let browser;
let expected;
let validPath;
let tamperedPath;
const problems = []; // console errors, page errors, CSP violations: any fails the run

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  expected = JSON.parse(readFileSync(path.join(fixtures, 'expected.json'), 'utf8'));
  validPath = path.join(fixtures, 'valid.bundle.json');
  // The model digest the page must show is the one the fixture's receipt names.
  expected.model_digest = JSON.parse(readFileSync(validPath, 'utf8')).receipt.model;
  tamperedPath = path.join(fixtures, 'tampered.bundle.json');
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
});

const viewports = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

async function newPage(vp = 'desktop') {
  const page = await browser.newPage({ viewport: viewports[vp], isMobile: vp === 'phone', hasTouch: vp === 'phone' });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()} (${page.url()})`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message} (${page.url()})`));
  // CSP violations, reported explicitly (not only through Chromium's console message).
  await page.addInitScript(() =>
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)),
  );
  return page;
}

async function open(page, hash) {
  // A full load every time: a goto that only changes the hash would not reload the page, and
  // the previous view's data-ready could be read before the new view starts.
  await page.goto('about:blank');
  await page.goto(`${url}/explorer${hash}`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

async function noHorizontalScroll(page, what) {
  const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(sw <= cw, `${what}: page scrolls horizontally on a phone (${sw} > ${cw})`);
}

async function dropFile(page, file) {
  // A real drop event carrying a File built from the fixture's bytes.
  const text = readFileSync(file, 'utf8');
  const dt = await page.evaluateHandle(
    ([t, name]) => {
      const d = new DataTransfer();
      d.items.add(new File([t], name, { type: 'application/json' }));
      return d;
    },
    [text, path.basename(file)],
  );
  await page.dispatchEvent('#dropzone', 'drop', { dataTransfer: dt });
}

const views = [
  ['overview', '#/'],
  ['models', '#/models'],
  ['model', null],
  ['log', '#/log'],
  ['entry', null],
  ['receipt', null],
  ['verify', '#/verify'],
  ['analytics', '#/analytics'],
];

test('every view renders the node\'s data and its in-browser checks pass', { skip }, async () => {
  const page = await newPage();
  await open(page, '#/');
  assert.match(await page.textContent('main'), /Node key/);
  assert.match(await page.textContent('[data-testid=log-size]'), /^\d+$/);
  await shot(page, 'desktop-overview');

  await open(page, '#/models');
  const digests = await page.$$eval('[data-testid=model-digest]', (els) => els.map((e) => e.textContent));
  assert.ok(digests.includes(expected.model_digest), `model list shows ${expected.model_digest}: ${digests}`);
  // Policy changes (the fixture sets one), each checked against its log entry.
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=row-check]')].every((b) => b.textContent !== 'checking…'));
  const policyRows = await page.$$eval('[data-testid=row-check]', (els) => els.map((e) => `${e.textContent} ${e.title}`));
  assert.ok(policyRows.length >= 1 && policyRows.every((r) => r.startsWith('in log, verified')), `policy rows: ${JSON.stringify(policyRows)}`);
  await shot(page, 'desktop-models');

  await open(page, `#/models/${encodeURIComponent(expected.model)}`);
  assert.match(await page.textContent('[data-testid=model-digest] code'), new RegExp(`^${expected.model_digest}$`));
  assert.match(await page.textContent('main'), /Tiers available[\s\S]*signed/);
  // The configuration (set by the fixture) and its history: digests recomputed in the page;
  // the newest change links to its log entry, whose inclusion the page then proves.
  const badges = await page.$$eval('[data-testid=config-digest-badge]', (els) => els.map((e) => e.textContent));
  assert.ok(badges.length >= 2 && badges.every((b) => b === 'digest verified'), `config digests: ${badges}`);
  // Every history row (name moves, configuration changes) is checked against its log entry.
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=row-check]')].every((b) => b.textContent !== 'checking…'));
  const rows = await page.$$eval('[data-testid=row-check]', (els) => els.map((e) => `${e.textContent} ${e.title}`));
  assert.ok(rows.length >= 3 && rows.every((r) => r.startsWith('in log, verified')), `history rows: ${JSON.stringify(rows)}`);
  await shot(page, 'desktop-model');
  await page.click('section:has(h2:text-is("Configuration history")) tbody tr:first-child a');
  await page.waitForSelector('[data-testid=inclusion-verified], [data-testid=inclusion-failed]');
  assert.match(await page.textContent('[data-testid=inclusion-verified]'), /verified in your browser/);
  assert.match(await page.textContent('[data-testid=config-digest-verified]'), /^verified/);

  await open(page, '#/log');
  assert.match(await page.textContent('[data-testid=checkpoint-verified]'), /^verified/);
  for (const w of expected.witness_keys ?? []) {
    // The fixture's log is quiet here, so its latest checkpoint carries every cosignature.
    const name = w.split('+')[0];
    const row = await page.textContent(`[data-testid=cosig-row][data-witness="${name}"]`);
    assert.match(row, /witness cosignature.*\d{4}-\d\d-\d\dT.*verified/s, `cosignature of ${name} shown and verified`);
  }
  // Consistency against the checkpoint this browser just saved (same size: trivially consistent).
  await page.click('text=Check consistency');
  await page.waitForSelector('[data-testid=consistency-result] .verdict');
  assert.match(await page.textContent('[data-testid=consistency-result]'), /verified/);
  await shot(page, 'desktop-log');

  // Grow the log (one more logged inference), then prove the new checkpoint extends the one
  // this browser saved; then corrupt the saved root and expect the page to cry SPLIT VIEW.
  const oldSize = Number((await page.textContent('[data-testid=checkpoint-size]')).trim());
  const inputs = JSON.parse(readFileSync(new URL('../../../models/mlp.input.json', import.meta.url), 'utf8'));
  // Past one page of entries (20), so paging is exercised too; the last waits for its checkpoint.
  const grow = Math.max(1, 22 - oldSize);
  for (let i = 0; i < grow; i++) {
    const r = await fetch(`${url}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: expected.model, inputs, tiers: ['signed'], log_proof: i === grow - 1 }),
    });
    assert.equal(r.status, 200, `inference to grow the log: ${await r.clone().text()}`);
  }
  await open(page, '#/log');
  const newSize = Number((await page.textContent('[data-testid=checkpoint-size]')).trim());
  assert.ok(newSize > oldSize, `the log grew (${oldSize} -> ${newSize})`);
  const shown = async () => page.$$eval('table.entries tbody tr td:first-child', (t) => t.map((x) => Number(x.textContent.slice(1))));
  const first = await shown();
  assert.deepEqual(first, Array.from({ length: 20 }, (_, i) => newSize - 1 - i), 'newest 20 entries, newest first');
  await page.click('text=older →');
  await page.waitForFunction((n) => document.querySelector('table.entries tbody tr td')?.textContent === `#${n}`, newSize - 21);
  const second = await shown();
  assert.deepEqual(second, Array.from({ length: Math.min(20, newSize - 20) }, (_, i) => newSize - 21 - i), 'the page before');
  await page.selectOption('#cons-old', String(oldSize));
  await page.click('text=Check consistency');
  await page.waitForSelector('[data-testid=consistency-result] .verdict');
  assert.match(await page.textContent('[data-testid=consistency-result]'), new RegExp(`verified: checkpoint ${newSize} extends checkpoint ${oldSize}`));
  await page.evaluate((size) => {
    const all = JSON.parse(localStorage.getItem('vouch.explorer.checkpoints'));
    const c = all.find((x) => x.size === size);
    c.root = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
    localStorage.setItem('vouch.explorer.checkpoints', JSON.stringify(all));
  }, oldSize);
  await open(page, '#/log');
  await page.selectOption('#cons-old', String(oldSize));
  await page.click('text=Check consistency');
  await page.waitForSelector('[data-testid=consistency-result] .verdict');
  assert.match(await page.textContent('[data-testid=consistency-result] .verdict'), /SPLIT VIEW/);
  await shot(page, 'desktop-log-split-view');

  // A log key the user pinned that did not sign this log: the checkpoint must fail loudly.
  // (A well-formed key of another log: the node key's point under another name, type 0x01.)
  const point = Buffer.from(expected.trust_key.replace(/^ed25519:/, ''), 'hex');
  const material = Buffer.concat([Buffer.from([1]), point]);
  const id = createHash('sha256').update(Buffer.concat([Buffer.from('another-log\n'), material])).digest().subarray(0, 4).toString('hex');
  const otherKey = `another-log+${id}+${material.toString('base64')}`;
  await page.evaluate((k) => localStorage.setItem('vouch.explorer.trust', JSON.stringify({ trustKey: '', logKey: k, witnessKeys: [], witnessThreshold: 0, pinned: true })), otherKey);
  await open(page, '#/log');
  assert.match(await page.textContent('[data-testid=checkpoint-failed]'), /NOT verified/);
  assert.match(await page.textContent('main .error'), /expected "another-log"/, 'fails because the checkpoint is of another log');
  await page.evaluate(() => localStorage.removeItem('vouch.explorer.trust'));

  await open(page, `#/log/${expected.log_index}`);
  assert.match(await page.textContent('[data-testid=inclusion-verified]'), /included in checkpoint \d+, verified in your browser/);
  assert.match(await page.textContent('main'), new RegExp(expected.request_id));
  await shot(page, 'desktop-entry');

  for (const q of [expected.request_id, String(expected.log_index)]) {
    await open(page, '#/receipt');
    await page.fill('#receipt-q', q);
    await page.click('form.search button');
    await page.waitForSelector('[data-testid=receipt-result]');
    await page.waitForSelector('body[data-ready="1"]');
    const text = await page.textContent('[data-testid=receipt-result]');
    assert.match(text, new RegExp(`Log entry #${expected.log_index}(?!\\d)`), `lookup ${q}`);
    assert.match(text, new RegExp(expected.request_id));
    assert.match(text, /verified in your browser/);
  }
  await shot(page, 'desktop-receipt');

  await open(page, '#/analytics');
  await page.waitForSelector('[data-testid=charts] svg.chart g.series', { timeout: 5_000 });
  const series = await page.$$eval('[data-testid=charts] svg.chart:first-of-type g.series', (g) => g.length);
  assert.ok(series >= 1, 'the requests chart draws at least one series');
  assert.match(await page.textContent('table.totals'), /signed/);
  await shot(page, 'desktop-analytics');
  await page.close();
});

test('a dropped valid bundle verifies; a tampered one fails naming the field', { skip }, async () => {
  const page = await newPage();
  await open(page, '#/verify');
  // Pin the fixture's keys (as a user who does not trust the serving node would).
  await page.fill('#trust-key', expected.trust_key);
  await page.fill('#log-key', expected.log_key);
  // Witnesses as the fixture lists them (none: no witness requirement).
  const witnesses = expected.witness_keys ?? [];
  await page.fill('#witness-keys', witnesses.join('\n'));
  await page.fill('#witness-threshold', String(witnesses.length));
  await page.press('#log-key', 'Tab');
  assert.match(await page.textContent('[data-testid=trust-note]'), /pinned/);
  // Verifying needs no network once the page is loaded.
  await page.context().setOffline(true);
  await dropFile(page, validPath);
  await page.waitForSelector('[data-testid=verdict-banner]');
  assert.equal((await page.textContent('[data-testid=verdict-banner]')).trim(), 'verified');
  await page.context().setOffline(false);
  const verdict = await page.textContent('[data-testid=verdict]');
  assert.match(verdict, new RegExp(`entry ${expected.log_index} of log`), 'the inclusion proof was checked with the log key');
  assert.match(verdict, /the key you trust/, 'the pinned node key was used');
  await shot(page, 'desktop-verify-valid');

  // The model file, hashed in the page, must be the one the receipt names.
  await page.setInputFiles('#model-file', fileURLToPath(new URL('../../../models/mlp.onnx', import.meta.url)));
  await page.waitForSelector('[data-testid=verdict] ul.proven >> text=model file');
  assert.equal((await page.textContent('[data-testid=verdict-banner]')).trim(), 'verified');
  assert.doesNotMatch(await page.textContent('ul.notproven'), /which model file/);
  // Another model file: the same bundle now fails, naming receipt.model.
  await page.setInputFiles('#model-file', fileURLToPath(new URL('../../../models/cnn.onnx', import.meta.url)));
  await page.waitForFunction(() => document.querySelector('[data-testid=verdict-banner]')?.textContent === 'failed');
  assert.equal((await page.textContent('[data-testid=verdict-code]')).trim(), 'model_mismatch');
  assert.equal((await page.textContent('[data-testid=verdict-field]')).trim(), 'receipt.model');
  await page.setInputFiles('#model-file', fileURLToPath(new URL('../../../models/mlp.onnx', import.meta.url)));
  await page.waitForFunction(() => document.querySelector('[data-testid=verdict-banner]')?.textContent === 'verified');

  await page.setInputFiles('#bundle-file', tamperedPath);
  await page.waitForFunction(() => document.querySelector('[data-testid=verdict-banner]')?.textContent === 'failed');
  assert.equal((await page.textContent('[data-testid=verdict-code]')).trim(), expected.tampered_code);
  // The verifier may name the signature (it cannot tell which side was altered); the page then
  // finds the altered receipt field itself. Either way the page must name the tampered field.
  await page.waitForSelector('[data-testid=verdict-field], [data-testid=altered-field]');
  const named = await page.$$eval('[data-testid=verdict-field], [data-testid=altered-field]', (els) => els.map((e) => e.textContent.trim()));
  assert.ok(named.includes(expected.tampered_field), `the page names ${expected.tampered_field}: ${JSON.stringify(named)}`);
  const highlighted = await page.$$eval('.jline.hl', (els) => els.map((e) => e.getAttribute('data-path')));
  assert.ok(highlighted.includes(expected.tampered_field), `the bundle view highlights ${expected.tampered_field}: ${JSON.stringify(highlighted)}`);
  await shot(page, 'desktop-verify-tampered');

  // Optional fixture (make-fixtures.sh writes it): a zk bundle. The page has no zk verifier and
  // must say so, sending the user to `vouch verify`.
  const zkPath = path.join(fixtures, 'zk.bundle.json');
  if (existsSync(zkPath)) {
    await page.setInputFiles('#bundle-file', zkPath);
    await page.waitForSelector('[data-testid=zk-note]');
    assert.equal((await page.textContent('[data-testid=verdict-banner]')).trim(), 'verified', 'its signature and inclusion verify');
    assert.match(await page.textContent('[data-testid=zk-note]'), /check its proof with vouch verify/);
    assert.match(await page.textContent('ul.notproven'), /zk/);
    await shot(page, 'desktop-verify-zk');
  }
  await page.close();
});

test('phone-sized screen: no horizontal page scroll, the nav collapses', { skip }, async () => {
  const page = await newPage('phone');
  const hashes = ['#/', '#/models', `#/models/${encodeURIComponent(expected.model)}`, '#/log', `#/log/${expected.log_index}`, `#/receipt/${expected.request_id}`, '#/verify', '#/analytics'];
  const names = views.map(([n]) => n);
  for (const [i, h] of hashes.entries()) {
    await open(page, h);
    await noHorizontalScroll(page, h);
    await shot(page, `phone-${names[i]}`);
  }
  // The verdict of a tampered bundle (banner, message, highlighted JSON) fits a phone too.
  await open(page, '#/verify');
  await page.setInputFiles('#bundle-file', tamperedPath);
  await page.waitForSelector('[data-testid=altered-field]');
  await noHorizontalScroll(page, 'verify, tampered');
  await shot(page, 'phone-verify-tampered');
  await page.setInputFiles('#bundle-file', validPath);
  await page.waitForFunction(() => document.querySelector('[data-testid=verdict-banner]')?.textContent === 'verified');
  await noHorizontalScroll(page, 'verify, valid');
  await shot(page, 'phone-verify-valid');
  assert.equal(await page.isVisible('#nav'), false, 'nav is collapsed');
  await page.click('#navtoggle');
  assert.equal(await page.isVisible('#nav a[href="#/log"]'), true, 'nav opens');
  await page.close();
});

test('benchmarks (printed, not asserted) and a clean console', { skip }, async () => {
  const page = await newPage();
  const loads = [];
  for (let i = 0; i < 10; i++) {
    await page.goto(`${url}/explorer#/`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    // Marked by the page when its first view rendered with data; time origin = navigation start.
    loads.push(await page.evaluate(() => performance.getEntriesByName('vouch-ready')[0].startTime));
  }
  // The bundle as the page hands it to the verifier: the file's text (parsed inside).
  const bundle = readFileSync(validPath, 'utf8');
  const runs = 50;
  const r = await page.evaluate(([b, logKey, n]) => window.__vouchBench(b, { logKey }, n), [bundle, expected.log_key, runs]);
  assert.equal(r.ok, true, 'the benchmarked verification succeeds');
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const round = (x) => Math.round(x * 1000) / 1000;
  console.log(JSON.stringify({ bench: 'explorer', verify_ms_median: round(median(r.times)), verify_runs: runs, load_to_interactive_ms_median: round(median(loads)), loads: loads.length }));
  await page.close();
  assert.deepEqual(problems, [], 'no console errors, page errors or CSP violations');
});
