// Byte helpers with the Rust side's strictness: Vouch's verifiers decode base64 with the
// `base64` crate's STANDARD engine (padding required, no whitespace, zero trailing bits) and
// hex with the `hex` crate (either case, even length), so these do the same.

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX: Int16Array = (() => {
  const t = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

/** Standard base64, canonical: returns null for anything the Rust STANDARD engine refuses. */
export function b64decode(s: string): Uint8Array | null {
  if (s.length % 4 !== 0) return null;
  let pad = 0;
  if (s.endsWith("==")) pad = 2;
  else if (s.endsWith("=")) pad = 1;
  const n = s.length;
  const out = new Uint8Array((n / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < n; i += 4) {
    const last = i + 4 === n;
    const v: number[] = [];
    for (let j = 0; j < 4; j++) {
      const c = s.charCodeAt(i + j);
      if (last && c === 61 /* = */ && j >= 4 - pad) {
        v.push(0);
        continue;
      }
      const x = c < 256 ? B64_INDEX[c] : -1;
      if (x < 0) return null;
      v.push(x);
    }
    const w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    if (last && pad === 2) {
      if (v[1] & 0x0f) return null; // non-zero trailing bits
      out[o++] = w >> 16;
    } else if (last && pad === 1) {
      if (v[2] & 0x03) return null;
      out[o++] = w >> 16;
      out[o++] = (w >> 8) & 0xff;
    } else {
      out[o++] = w >> 16;
      out[o++] = (w >> 8) & 0xff;
      out[o++] = w & 0xff;
    }
  }
  return out;
}

export function b64encode(b: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const w = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64[w >> 18] + B64[(w >> 12) & 63] + B64[(w >> 6) & 63] + B64[w & 63];
  }
  if (i < b.length) {
    const w = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8);
    s += B64[w >> 18] + B64[(w >> 12) & 63];
    s += i + 1 < b.length ? B64[(w >> 6) & 63] + "=" : "==";
  }
  return s;
}

/** Hex of either case (as the `hex` crate accepts); null when not hex or odd length. */
export function hexDecode(s: string): Uint8Array | null {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

export function hexEncode(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** UTF-8 decoding that refuses invalid bytes (as Rust's `str::from_utf8`). */
export function utf8Decode(b: Uint8Array): string | null {
  try {
    return STRICT_UTF8.decode(b);
  } catch {
    return null;
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

export function u64le(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
