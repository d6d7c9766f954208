// Same-origin JSON API of the node that served the page. Nothing read here is trusted for what
// the page calls "verified": those checks run on the data in the browser (see verify-log.ts).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A route this node does not have yet (older binary): views say so instead of failing. */
export function isMissingRoute(e: unknown): boolean {
  return e instanceof ApiError && (e.status === 404 || e.status === 405) && e.code !== 'not_found';
}

async function get(path: string): Promise<Response> {
  const r = await fetch(path, { headers: { accept: 'application/json, text/plain' } });
  if (!r.ok) {
    let code = `http_${r.status}`;
    let message = `${path}: HTTP ${r.status}`;
    try {
      const body = (await r.json()) as { error?: { code?: string; message?: string } };
      if (body.error?.code) code = body.error.code;
      if (body.error?.message) message = `${path}: ${body.error.message}`;
    } catch {
      /* not JSON: keep the status */
    }
    throw new ApiError(r.status, code, message);
  }
  return r;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await get(path)).json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await get(path)).text();
}

export const enc = encodeURIComponent;
