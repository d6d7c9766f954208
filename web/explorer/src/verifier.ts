// The one import point of the independent TypeScript verifier (clients/ts), bundled by esbuild.
export { verifyBundle, sha256Hex } from '../../../clients/ts/src/index.ts';
export type { Verdict, VerifyOptions } from '../../../clients/ts/src/index.ts';
