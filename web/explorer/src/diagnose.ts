// When a bundle's signature does not verify, the verifier cannot tell whether the receipt or the
// signature was altered (it names `signature.sig`). The page then looks for the altered receipt
// field with what it can check itself:
//  - offline: the bundle's own outputs must hash to `receipt.output_digest`;
//  - online, optional: the receipt the log holds at `evidence.log.index`, whose inclusion in a
//    checkpoint verified under the log key is checked here first; fields that differ from it
//    were altered after logging.
import { getJson } from './api.ts';
import { checkInclusion, verifiedLog } from './logcheck.ts';
import type { LogEntry } from './types.ts';
import { canonicalJson, tensorMapDigest } from '../../../clients/ts/src/index.ts';

export interface Finding {
  field: string;
  how: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

export function diagnoseOffline(bundle: unknown): Finding[] {
  if (!isObj(bundle) || !isObj(bundle.receipt) || !isObj(bundle.outputs)) return [];
  const claimed = bundle.receipt.output_digest;
  try {
    const actual = tensorMapDigest(bundle.outputs);
    if (typeof claimed === 'string' && actual !== claimed)
      return [{ field: 'receipt.output_digest', how: `the bundle's outputs hash to ${actual}, the receipt says ${claimed} (checked offline)` }];
  } catch {
    /* outputs that do not parse: the verifier reports those itself */
  }
  return [];
}

export async function diagnoseAgainstLog(bundle: unknown): Promise<Finding[]> {
  if (!isObj(bundle) || !isObj(bundle.receipt) || !isObj(bundle.evidence) || !isObj(bundle.evidence.log)) return [];
  const index = bundle.evidence.log.index;
  if (typeof index !== 'number') return [];
  const [e, log] = await Promise.all([getJson<LogEntry>(`/v1/log/entries/${index}`), verifiedLog()]);
  await checkInclusion(e, log); // throws unless the logged entry is proven in the checkpoint
  const nl = e.entry.indexOf('\n');
  const logged = JSON.parse(e.entry.slice(nl + 1)) as Obj;
  const mine = bundle.receipt;
  const keys = [...new Set([...Object.keys(logged), ...Object.keys(mine)])].sort();
  const c = (v: unknown): string => (v === undefined ? '(absent)' : canonicalJson(v));
  return keys
    .filter((k) => c(logged[k]) !== c(mine[k]))
    .map((k) => ({ field: `receipt.${k}`, how: `log entry ${index} (included in checkpoint ${log.result.checkpoint.size}, verified in your browser) says ${c(logged[k])}, the bundle says ${c(mine[k])}` }));
}
