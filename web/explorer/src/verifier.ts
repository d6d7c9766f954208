// The one import point of the independent TypeScript verifier (clients/ts), bundled by esbuild.
export { verifyBundle, sha256Hex, parseJson } from '../../../clients/ts/src/index.ts';
export type { Verdict, VerifyOptions } from '../../../clients/ts/src/index.ts';

import { canonicalJson, sha256Hex } from '../../../clients/ts/src/index.ts';

/** `sha256:<hex>` of a configuration's RFC 8785 canonical JSON, as receipts and the log name it. */
export function configDigest(config: unknown): string {
  return `sha256:${sha256Hex(new TextEncoder().encode(canonicalJson(config)))}`;
}
