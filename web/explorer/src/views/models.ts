import { enc, getJson, isMissingRoute } from '../api.ts';
import { copyable, errorBox, facts, h, link, section, table } from '../dom.ts';
import { bytes, ms, when } from '../format.ts';
import { configDigest } from '../verifier.ts';
import { entrySays } from '../logcheck.ts';
import type { Assurance, ConfigChange, ModelInfo, ModelList, PointerChange, PolicyChange } from '../types.ts';

function refOf(m: ModelInfo): string {
  const n = m.names[0];
  return n ? `${n.name}@${n.version}` : m.digest;
}

export async function modelList(): Promise<HTMLElement> {
  const [list, policies] = await Promise.all([
    getJson<ModelList>('/v1/models?limit=100'),
    getJson<{ changes: PolicyChange[] }>('/v1/policies').catch((e: unknown) => (isMissingRoute(e) ? null : Promise.reject(e))),
  ]);
  const rows = list.models.map((m) => [
    h('a', { href: `#/models/${enc(refOf(m))}`, class: 'mono', 'data-testid': 'model-digest' }, m.digest),
    m.names.map((n) => h('div', null, `${n.name}@${n.version}`)),
    m.engine,
    bytes(m.size_bytes),
    m.llm ? 'LLM' : m.upstream ? 'gateway (upstream)' : 'tensor',
    m.zk ? m.zk.status : '—',
  ]);
  return h(
    'div',
    null,
    h('h1', null, 'Models'),
    h('p', { class: 'lead' }, 'A model is its SHA-256 digest; names are pointers the operator can move, and every move is a log entry.'),
    table(['Digest', 'Names', 'Engine', 'Size', 'Kind', 'zk'], rows, 'models'),
    section(
      'Policy changes',
      policies
        ? policies.changes.length
          ? table(
              ['When', 'Subject', 'Minimum tier', 'Before', 'Log'],
              policies.changes.map((c) => [
                when(c.changed_at),
                h('code', null, c.subject),
                c.min_tier ?? 'removed',
                c.previous ?? '—',
                h(
                  'div',
                  null,
                  logLink(c.log_index),
                  c.log_index === null
                    ? null
                    : rowCheck(c.log_index, 'policy-changed', { 'policy.subject': c.subject, 'policy.seq': c.seq, 'policy.min_tier': c.min_tier, 'policy.previous': c.previous }),
                ),
              ]),
            )
          : h('p', null, 'No policy was ever set.')
        : h('p', { class: 'muted' }, 'This node does not serve GET /v1/policies yet.'),
    ),
  );
}

export function logLink(i: number | null | undefined): Node {
  return i === null || i === undefined ? h('span', { class: 'muted', title: 'not in the log' }, 'not logged') : link(`#/log/${i}`, `#${i}`);
}

export async function modelDetail(ref: string): Promise<HTMLElement> {
  const view = await getJson<{ model: ModelInfo; zk?: ModelInfo['zk'] }>(`/v1/models/${enc(ref)}`);
  const m = { ...view.model, zk: view.model.zk ?? view.zk };
  const names = [...new Set(m.names.map((n) => n.name))];
  const optional = <T,>(p: Promise<T>): Promise<T | Error> => p.catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  const [assurance, config, configHistory, policyByDigest, ...rest] = await Promise.all([
    optional(getJson<Assurance>(`/v1/models/${enc(ref)}/assurance`)),
    optional(getJson<{ config: { config: unknown; config_digest: string; updated_at: string } | null }>(`/v1/models/${enc(m.digest)}/config`)),
    optional(getJson<{ changes: ConfigChange[] }>(`/v1/models/${enc(m.digest)}/config/history`)),
    optional(getJson<{ subject: string; policy: { min_tier: string; updated_at: string } | null }>(`/v1/models/${enc(m.digest)}/policy`)),
    ...names.map((n) => optional(getJson<{ subject: string; policy: { min_tier: string; updated_at: string } | null }>(`/v1/models/${enc(n)}/policy`))),
    ...names.map((n) => optional(getJson<{ name: string; changes: PointerChange[] }>(`/v1/log/history/${enc(n)}`))),
  ]);
  const namePolicies = rest.slice(0, names.length) as (Error | { subject: string; policy: { min_tier: string; updated_at: string } | null })[];
  const histories = rest.slice(names.length) as (Error | { name: string; changes: PointerChange[] })[];

  return h(
    'div',
    null,
    h('h1', null, m.names.length ? m.names.map((n) => `${n.name}@${n.version}`).join(', ') : 'Model'),
    section(
      'Identity',
      facts([
        ['Digest', h('span', { 'data-testid': 'model-digest' }, copyable(m.digest))],
        ['Size', `${bytes(m.size_bytes)} (${m.size_bytes} bytes)`],
        ['Engine', m.engine],
        ['Registered', when(m.created_at)],
        ['Inputs', m.signature ? m.signature.inputs.map((i) => `${i.name}: ${i.dtype}[${i.shape.join(', ')}]`).join('; ') : '—'],
        ['Outputs', m.signature ? m.signature.outputs.map((i) => `${i.name}: ${i.dtype}[${i.shape.join(', ')}]`).join('; ') : '—'],
        ...(m.llm ? ([['LLM', h('pre', { class: 'json' }, JSON.stringify(m.llm, null, 2))]] as [string, Node][]) : []),
        ['zk', m.zk ? `${m.zk.status}${m.zk.system ? ` (${m.zk.system})` : ''}${m.zk.reason ? `: ${m.zk.reason}` : ''}` : '—'],
      ]),
    ),
    section('Tiers available', assurance instanceof Error ? errorBox(assurance) : assuranceTable(assurance)),
    section(
      'Policy',
      policyByDigest instanceof Error ? errorBox(policyByDigest) : policyLine('this digest', policyByDigest.policy),
      namePolicies.map((p, i) => (p instanceof Error ? errorBox(p) : policyLine(`name ${names[i]}`, p.policy))),
    ),
    section(
      'Configuration in force',
      config instanceof Error
        ? errorBox(config)
        : config.config
          ? [
              facts([['Digest', h('span', null, copyable(config.config.config_digest), digestBadge(config.config.config, config.config.config_digest))], ['Since', when(config.config.updated_at)]]),
              h('pre', { class: 'json' }, JSON.stringify(config.config.config, null, 2)),
            ]
          : h('p', null, 'No configuration set (receipts carry no config digest).'),
    ),
    section(
      'Configuration history',
      configHistory instanceof Error
        ? isMissingRoute(configHistory)
          ? h('p', { class: 'muted' }, 'This node does not serve the configuration history yet; the log entries of kind config-changed hold it.')
          : errorBox(configHistory)
        : configHistory.changes.length
          ? table(
              ['When', 'Digest', 'Configuration', 'Log'],
              configHistory.changes.map((c) => [
                when(c.changed_at),
                h('div', null, h('code', { class: 'mono' }, c.config_digest), digestBadge(c.config, c.config_digest)),
                h('pre', { class: 'json small' }, JSON.stringify(c.config, null, 2)),
                h('div', null, logLink(c.log_index), c.log_index === null ? null : rowCheck(c.log_index, 'config-changed', { model: m.digest, config_digest: c.config_digest })),
              ]),
            )
          : h('p', null, 'Never configured.'),
    ),
    histories.map((hist, i) =>
      section(
        `History of the name ${names[i]}`,
        hist instanceof Error
          ? errorBox(hist)
          : [
              hist.changes.some((c) => c.unlogged_move_before)
                ? h('p', { class: 'alarm', 'data-testid': 'unlogged-move' }, 'WARNING: this name moved without a log entry at least once (flagged rows). The node changed what the name points to without saying so publicly.')
                : null,
              table(
                ['When', 'Version', 'From', 'To', 'Log', ''],
                hist.changes.map((c) => [
                  when(c.at),
                  c.version ?? '(all)',
                  c.from ? h('code', { class: 'mono' }, c.from) : '—',
                  c.to ? h('code', { class: 'mono' }, c.to) : 'removed',
                  h('div', null, logLink(c.index), rowCheck(c.index, 'pointer-moved', { name: c.name, version: c.version, from: c.from, to: c.to })),
                  c.unlogged_move_before ? h('span', { class: 'badge bad' }, 'UNLOGGED MOVE BEFORE THIS') : '',
                ]),
              ),
            ],
      ),
    ),
  );
}

function policyLine(what: string, p: { min_tier: string; updated_at: string } | null): HTMLElement {
  return h('p', null, p ? `Minimum tier for ${what}: ` : `No policy on ${what}.`, p ? h('strong', null, p.min_tier) : null, p ? ` (since ${when(p.updated_at)})` : null);
}

function assuranceTable(a: Assurance): HTMLElement {
  return h(
    'div',
    null,
    a.policy ? h('p', null, `Policy: at least `, h('strong', null, a.policy.min_tier), ` (set on ${a.policy.subject})`) : null,
    table(
      ['Tier', 'Available', 'Proves', 'Trusts', `Price (${a.asset})`, 'p50 / p95', 'Requests'],
      a.tiers.map((t) => [
        h('strong', null, t.tier),
        t.available ? (t.meets_policy ? h('span', { class: 'ok' }, 'yes') : h('span', { class: 'warn' }, 'below policy')) : h('span', { class: 'bad' }, `no: ${t.unavailable_reason ?? ''}`),
        t.proves,
        t.trusts,
        `${t.price} (request ${t.request_price})`,
        t.measured ? `${ms(t.measured.p50_ms)} / ${ms(t.measured.p95_ms)}` : '—',
        t.measured ? String(t.measured.requests) : '0',
      ]),
      'assurance',
    ),
  );
}

/** Recomputes a configuration's digest here: the text shown is the one the digest names. */
function digestBadge(config: unknown, digest: string): HTMLElement {
  let ok = false;
  try {
    ok = configDigest(config) === digest;
  } catch {
    ok = false;
  }
  return h('span', { class: ok ? 'badge ok' : 'badge bad', title: 'SHA-256 of the RFC 8785 canonical JSON, computed in your browser', 'data-testid': 'config-digest-badge' }, ok ? 'digest verified' : 'DIGEST MISMATCH');
}

/** A badge that fills in once the row's log entry is proven included and says the same. */
function rowCheck(index: number, kind: string, expect: Record<string, unknown>): HTMLElement {
  const b = h('span', { class: 'badge', 'data-testid': 'row-check' }, 'checking…');
  entrySays(index, kind, expect).then(
    (problem) => {
      b.className = problem ? 'badge bad' : 'badge ok';
      b.textContent = problem ? 'MISMATCH' : 'in log, verified';
      if (problem) b.title = problem;
    },
    (e: unknown) => {
      b.className = 'badge bad';
      b.textContent = 'not verified';
      b.title = e instanceof Error ? e.message : String(e);
    },
  );
  return b;
}
