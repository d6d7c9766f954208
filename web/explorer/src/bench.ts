// Benchmark hook for the Playwright test: times verifyBundle in this page with performance.now().
import { verifyBundle, type VerifyOptions } from './verifier.ts';

declare global {
  interface Window {
    __vouchBench?: (bundle: unknown, opts: VerifyOptions, runs: number) => Promise<{ ok: boolean; times: number[] }>;
  }
}

export function installBench(): void {
  window.__vouchBench = async (bundle, opts, runs) => {
    const times: number[] = [];
    let ok = true;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const v = await verifyBundle(bundle, opts);
      times.push(performance.now() - t0);
      ok &&= v.ok;
    }
    return { ok, times };
  };
}
