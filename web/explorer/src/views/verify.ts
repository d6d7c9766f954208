import { getJson } from '../api.ts';
import { h, section } from '../dom.ts';
import { bytes } from '../format.ts';
import { sha256File } from '../hashfile.ts';
import { jsonView } from '../jsonview.ts';
import { diagnoseAgainstLog, diagnoseOffline, type Finding } from '../diagnose.ts';
import { clearTrust, loadTrust, saveTrust, type Trust } from '../store.ts';
import type { LogInfo, NodeInfo } from '../types.ts';
import { parseJson, verifyBundle, type Verdict, type VerifyOptions } from '../verifier.ts';

interface Picked {
  /** `text` is what the verifier reads (as the CLI reads a file: JSON numbers kept exact);
   * `value` is a plain parse for display, or the text itself when it is not JSON (SSE). */
  bundle?: { name: string; text: string; value: unknown };
  inputs?: { name: string; value: unknown };
  model?: { name: string; size: number; digest: string };
}

/** The node's own keys, as a default the page says it took from the node. */
async function nodeTrust(): Promise<Trust | null> {
  try {
    const [node, log] = await Promise.all([getJson<NodeInfo>('/v1/node'), getJson<LogInfo>('/v1/log')]);
    return { trustKey: node.node_key, logKey: log.log_key, witnessKeys: log.witnesses, witnessThreshold: log.witnesses.length ? 1 : 0, pinned: false };
  } catch {
    return null; // offline: only pinned settings
  }
}

function displayValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text; // a streamed answer's raw SSE body
  }
}

export async function verifyView(): Promise<HTMLElement> {
  const saved = loadTrust();
  const fromNode = saved?.pinned ? null : await nodeTrust();
  const trust: Trust = saved?.pinned ? saved : (fromNode ?? { trustKey: '', logKey: '', witnessKeys: [], witnessThreshold: 0, pinned: false });
  const picked: Picked = {};

  const trustKey = h('input', { id: 'trust-key', class: 'mono', value: trust.trustKey, spellcheck: 'false', placeholder: 'ed25519:<hex>' });
  const logKey = h('input', { id: 'log-key', class: 'mono', value: trust.logKey, spellcheck: 'false', placeholder: 'origin+keyid+base64' });
  const witnesses = h('textarea', { id: 'witness-keys', class: 'mono', rows: 2, spellcheck: 'false', placeholder: 'one witness key per line' });
  witnesses.value = trust.witnessKeys.join('\n');
  const threshold = h('input', { id: 'witness-threshold', type: 'number', min: 0, value: String(trust.witnessThreshold) });
  const simulated = h('input', { id: 'allow-simulated', type: 'checkbox' });
  const note = h('p', { class: trust.pinned ? 'muted' : 'warn', 'data-testid': 'trust-note' });
  const setNote = (pinned: boolean): void => {
    note.className = pinned ? 'muted' : 'warn';
    note.textContent = pinned ? 'Your pinned keys (saved in this browser).' : 'From this node — pin your own to not trust it. Edit any field to pin it (saved in this browser).';
  };
  setNote(trust.pinned);
  const current = (): Trust => ({
    trustKey: trustKey.value.trim(),
    logKey: logKey.value.trim(),
    witnessKeys: witnesses.value.split('\n').map((s) => s.trim()).filter(Boolean),
    witnessThreshold: Math.max(0, Number(threshold.value) || 0),
    pinned: true,
  });
  for (const el of [trustKey, logKey, witnesses, threshold]) {
    el.addEventListener('input', () => {
      saveTrust(current());
      setNote(true);
    });
  }
  const reset = h('button', { type: 'button' }, "Use this node's keys");
  reset.addEventListener('click', () => {
    clearTrust();
    void nodeTrust().then((t) => {
      if (!t) return;
      trustKey.value = t.trustKey;
      logKey.value = t.logKey;
      witnesses.value = t.witnessKeys.join('\n');
      threshold.value = String(t.witnessThreshold);
      setNote(false);
    });
  });

  const result = h('div', { id: 'verify-result', 'aria-live': 'polite' });
  const status = h('p', { class: 'muted', id: 'picked' }, 'No bundle yet.');
  const progress = h('progress', { id: 'model-progress', max: 1, value: 0, hidden: true });

  const showPicked = (): void => {
    status.replaceChildren(
      picked.bundle ? h('span', null, 'Bundle: ', h('strong', null, picked.bundle.name)) : 'No bundle yet.',
      picked.inputs ? h('span', null, ` · inputs: ${picked.inputs.name}`) : '',
      picked.model ? h('span', null, ` · model: ${picked.model.name} (${bytes(picked.model.size)}) ${picked.model.digest}`) : '',
    );
  };

  const run = async (): Promise<void> => {
    if (!picked.bundle) return;
    const t = current();
    const opts: VerifyOptions = {};
    if (t.trustKey) opts.trustKey = t.trustKey;
    if (t.logKey) {
      opts.logKey = t.logKey;
      opts.witnessKeys = t.witnessKeys;
      opts.witnessThreshold = t.witnessThreshold;
    }
    if (picked.inputs) opts.inputs = picked.inputs.value;
    if (simulated.checked) opts.tee = { allowSimulated: true };
    const t0 = performance.now();
    let verdict: Verdict = await verifyBundle(picked.bundle.text, opts);
    const took = performance.now() - t0;
    verdict = checkModel(verdict, picked);
    result.replaceChildren(renderVerdict(verdict, picked.bundle.value, took));
  };

  const takeFiles = async (files: FileList | File[], role?: 'bundle' | 'inputs' | 'model'): Promise<void> => {
    for (const f of Array.from(files)) {
      const kind = role ?? guessRole(f);
      if (kind === 'model') {
        progress.hidden = false;
        const digest = await sha256File(f, (d, n) => {
          progress.value = n ? d / n : 1;
        });
        picked.model = { name: f.name, size: f.size, digest };
      } else {
        const text = await f.text();
        if (kind === 'inputs') {
          let value: unknown;
          try {
            value = parseJson(text);
          } catch {
            value = text; // the verifier reports the inputs file as unreadable
          }
          picked.inputs = { name: f.name, value };
        } else picked.bundle = { name: f.name, text, value: displayValue(text) };
      }
    }
    showPicked();
    await run();
  };

  const bundleInput = h('input', { type: 'file', id: 'bundle-file', accept: '.json,.txt,.sse,application/json' });
  bundleInput.addEventListener('change', () => void takeFiles(bundleInput.files ?? [], 'bundle'));
  const inputsInput = h('input', { type: 'file', id: 'inputs-file', accept: '.json,application/json' });
  inputsInput.addEventListener('change', () => void takeFiles(inputsInput.files ?? [], 'inputs'));
  const modelInput = h('input', { type: 'file', id: 'model-file' });
  modelInput.addEventListener('change', () => void takeFiles(modelInput.files ?? [], 'model'));

  const drop = h('div', { class: 'dropzone', id: 'dropzone', tabindex: 0 }, h('p', null, h('strong', null, 'Drop a bundle here'), ' (and optionally the inputs JSON and the model file).'), h('p', { class: 'muted' }, 'Nothing is uploaded: files are read and hashed in this page, which needs no network to verify.'));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer?.files.length) void takeFiles(e.dataTransfer.files);
  });
  const again = h('button', { type: 'button', class: 'primary' }, 'Verify again');
  again.addEventListener('click', () => void run());

  return h(
    'div',
    null,
    h('h1', null, 'Verify a bundle'),
    h('p', { class: 'lead' }, 'The same checks as ', h('code', null, 'vouch verify'), ', by an independent TypeScript verifier running in your browser.'),
    drop,
    h('div', { class: 'files' }, h('label', null, 'Bundle ', bundleInput), h('label', null, 'Inputs (optional) ', inputsInput), h('label', null, 'Model file (optional, hashed locally) ', modelInput), progress),
    status,
    section(
      'Trust settings',
      note,
      h('div', { class: 'form' }, h('label', { for: 'trust-key' }, 'Node key you trust'), trustKey, h('label', { for: 'log-key' }, 'Log key'), logKey, h('label', { for: 'witness-keys' }, 'Witness keys'), witnesses, h('label', { for: 'witness-threshold' }, 'Witnesses required'), threshold, h('label', { for: 'allow-simulated' }, 'Accept simulated TEE evidence (development only)'), simulated),
      h('div', { class: 'row' }, reset, again),
    ),
    result,
  );
}

function guessRole(f: File): 'bundle' | 'inputs' | 'model' {
  const n = f.name.toLowerCase();
  if (!/\.(json|txt|sse)$/.test(n)) return 'model';
  if (/input/.test(n)) return 'inputs';
  return 'bundle';
}

function receiptOf(b: unknown): Record<string, unknown> | null {
  if (!b || typeof b !== 'object') return null;
  const o = b as Record<string, unknown>;
  const r = (o.receipt ?? (o.vouch as Record<string, unknown> | undefined)?.receipt) as Record<string, unknown> | undefined;
  return r && typeof r === 'object' ? r : null;
}

/** A model file the user dropped, hashed here, must be the model the receipt names. */
function checkModel(v: Verdict, p: Picked): Verdict {
  if (!p.model || !v.ok) return v;
  const r = receiptOf(p.bundle?.value);
  const named = typeof r?.model === 'string' ? r.model : null;
  if (named !== p.model.digest)
    return { ok: false, code: 'model_mismatch', message: `the model file ${p.model.name} hashes to ${p.model.digest}, the receipt names ${named ?? 'no model'}`, below_policy: false, field: 'receipt.model' };
  return {
    ...v,
    proven: [...v.proven, { check: 'model file', detail: `${p.model.name} is the model the receipt names (${p.model.digest}, hashed in your browser)` }],
    // The verifier was not given the file (it is hashed here, streamed), so it lists it as unproven.
    not_proven: v.not_proven.filter((s) => !s.startsWith('which model file')),
  };
}

function renderVerdict(v: Verdict, bundle: unknown, took: number): HTMLElement {
  // The browser verifier has no zk verifier: a zk tier is listed as not proven, and said so.
  const tiers = receiptOf(bundle)?.tiers;
  const zk = Array.isArray(tiers) && tiers.includes('zk');
  const zkNote = zk
    ? h('p', { class: 'warn', 'data-testid': 'zk-note' }, 'This receipt claims the zk tier: check its proof with ', h('code', null, 'vouch verify'), '. This page does not run the zk verifier, so zk is not proven here.')
    : null;
  if (v.ok) {
    return h(
      'div',
      { 'data-testid': 'verdict' },
      h('p', { class: 'banner ok', 'data-testid': 'verdict-banner' }, 'verified'),
      h('p', null, v.summary, h('span', { class: 'muted' }, ` (${took.toFixed(1)} ms in your browser)`)),
      zkNote,
      section(
        'Tiers',
        h('div', { class: 'tablebox' }, h('table', null, h('thead', null, h('tr', null, h('th', null, 'Tier'), h('th', null, 'Proved'), h('th', null, 'Trusted'))), h('tbody', null, v.tiers.map((t) => h('tr', null, h('td', null, h('strong', null, t.tier), t.simulated ? h('span', { class: 'badge bad' }, 'simulated') : ''), h('td', null, t.proven), h('td', null, t.trust_assumption)))))),
      ),
      section('What was proven', h('ul', { class: 'proven' }, v.proven.map((p) => h('li', null, h('strong', null, p.check), ': ', p.detail)))),
      section('Not proven', v.not_proven.length ? h('ul', { class: 'notproven' }, v.not_proven.map((s) => h('li', null, s))) : h('p', null, 'Nothing listed.')),
    );
  }
  const fields = v.field ? [v.field] : [];
  const findings = h('div', { 'data-testid': 'findings' });
  const pretty = h('div');
  const draw = (found: Finding[]): void => {
    const { el, hit } = jsonView(bundle, [...fields, ...found.map((f) => f.field)]);
    pretty.replaceChildren(typeof bundle === 'string' ? h('pre', { class: 'json bundle' }, bundle) : el);
    if (hit) queueMicrotask(() => hit.scrollIntoView?.({ block: 'nearest' }));
  };
  const showFindings = (found: Finding[], note: string | null): void => {
    findings.replaceChildren(
      found.length
        ? h('div', null, h('p', null, 'Altered field found:'), h('ul', null, found.map((f) => h('li', null, h('code', { class: 'hlfield', 'data-testid': 'altered-field' }, f.field), ': ', f.how))))
        : '',
      note ? h('p', { class: 'muted' }, note) : '',
    );
    draw(found);
  };
  const offline = diagnoseOffline(bundle);
  showFindings(offline, null);
  if (v.code === 'signature_invalid') {
    void diagnoseAgainstLog(bundle).then(
      (logged) => {
        const all = [...offline, ...logged.filter((f) => !offline.some((o) => o.field === f.field))];
        showFindings(all, logged.length ? null : 'The receipt the log holds for this bundle matches it field by field: the signature itself was altered, or another key signed.');
      },
      (e: unknown) => showFindings(offline, `Could not compare with the log (${e instanceof Error ? e.message : String(e)}); offline checks only.`),
    );
  }
  return h(
    'div',
    { 'data-testid': 'verdict' },
    h('p', { class: 'banner bad', 'data-testid': 'verdict-banner' }, 'failed'),
    h('p', null, h('code', { 'data-testid': 'verdict-code' }, v.code), v.below_policy ? ' (below policy)' : ''),
    h('p', { class: 'error', 'data-testid': 'verdict-message' }, v.message),
    zkNote,
    v.field ? h('p', null, 'Field named by the verifier: ', h('code', { class: 'hlfield', 'data-testid': 'verdict-field' }, v.field)) : null,
    findings,
    pretty,
  );
}
