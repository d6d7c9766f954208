import { getJson } from '../api.ts';
import { copyable, facts, h, link, section } from '../dom.ts';
import type { ModelList, NodeInfo } from '../types.ts';

export async function overview(): Promise<HTMLElement> {
  const [node, models] = await Promise.all([getJson<NodeInfo>('/v1/node'), getJson<ModelList>('/v1/models?limit=100')]);
  return h(
    'div',
    null,
    h('h1', null, 'Overview'),
    h('p', { class: 'lead' }, 'What this node says about itself. The log, receipts and bundles can be checked in your browser: follow the links.'),
    section(
      'Node',
      facts([
        ['Version', node.vouch_version],
        ['Node key', copyable(node.node_key)],
        ['Key', node.key_ephemeral ? 'ephemeral (new on every start: receipts from an earlier run name another key)' : 'persistent'],
        ['Engines', node.engines.map((e) => `${e.name} ${e.version}`).join(', ')],
        ['Tiers', node.tiers.join(', ')],
        ['TEE', node.tee ? `${node.tee.platform}${node.tee.simulated ? ' (simulated: development only)' : ''}` : 'none'],
        ['Payments', node.payments ? `on (${node.price_unit ?? ''})` : 'off'],
      ]),
    ),
    section(
      'Transparency log',
      node.log
        ? facts([
            ['Origin', h('code', null, node.log.origin)],
            ['Log key', copyable(node.log.log_key)],
            ['Size', h('span', { 'data-testid': 'log-size' }, String(node.log.size))],
          ])
        : h('p', null, 'This node runs no log.'),
      h('p', null, link('#/log', 'Checkpoint, entries and consistency, verified in your browser →')),
    ),
    section(
      'Models',
      h('p', null, `${models.total} registered. `, link('#/models', 'All models →')),
    ),
    section(
      'Check something',
      h('ul', null, [
        h('li', null, link('#/receipt', 'Look up a receipt'), ' by request id or log index'),
        h('li', null, link('#/verify', 'Verify a bundle'), ' you hold, offline, in this page'),
        h('li', null, link('#/analytics', 'Tier analytics'), ': traffic, latency and revenue per tier set'),
      ]),
    ),
  );
}
