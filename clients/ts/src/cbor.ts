// A minimal, strict CBOR (RFC 8949) decoder for COSE_Sign1 and the Nitro attestation document:
// definite lengths only (what the NSM writes), no trailing bytes. Maps keep their entries in
// order as [key, value] pairs so integer and text keys stay apart.

export type Cbor =
  | { t: "uint"; v: bigint }
  | { t: "nint"; v: bigint }
  | { t: "bytes"; v: Uint8Array }
  | { t: "text"; v: string }
  | { t: "array"; v: Cbor[] }
  | { t: "map"; v: [Cbor, Cbor][] }
  | { t: "tag"; tag: bigint; v: Cbor }
  | { t: "simple"; v: "false" | "true" | "null" | "undefined" }
  | { t: "float"; v: number };

export class CborError extends Error {}

export function decodeCbor(bytes: Uint8Array): Cbor {
  let pos = 0;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (n: number) => {
    if (pos + n > bytes.length) throw new CborError("truncated CBOR");
  };
  const arg = (info: number): bigint => {
    if (info < 24) return BigInt(info);
    if (info === 24) { need(1); return BigInt(bytes[pos++]); }
    if (info === 25) { need(2); const x = dv.getUint16(pos); pos += 2; return BigInt(x); }
    if (info === 26) { need(4); const x = dv.getUint32(pos); pos += 4; return BigInt(x); }
    if (info === 27) { need(8); const x = dv.getBigUint64(pos); pos += 8; return x; }
    throw new CborError("indefinite or reserved length");
  };
  const len = (info: number): number => {
    const n = arg(info);
    if (n > BigInt(bytes.length)) throw new CborError("length beyond the input");
    return Number(n);
  };
  const item = (depth: number): Cbor => {
    if (depth > 16) throw new CborError("CBOR nested too deep");
    need(1);
    const ib = bytes[pos++];
    const major = ib >> 5, info = ib & 31;
    switch (major) {
      case 0: return { t: "uint", v: arg(info) };
      case 1: return { t: "nint", v: -1n - arg(info) };
      case 2: { const n = len(info); need(n); const v = bytes.slice(pos, pos + n); pos += n; return { t: "bytes", v }; }
      case 3: {
        const n = len(info); need(n);
        const v = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(pos, pos + n));
        pos += n;
        return { t: "text", v };
      }
      case 4: { const n = len(info); const v: Cbor[] = []; for (let i = 0; i < n; i++) v.push(item(depth + 1)); return { t: "array", v }; }
      case 5: { const n = len(info); const v: [Cbor, Cbor][] = []; for (let i = 0; i < n; i++) v.push([item(depth + 1), item(depth + 1)]); return { t: "map", v }; }
      case 6: { const tag = arg(info); return { t: "tag", tag, v: item(depth + 1) }; }
      default: {
        if (info === 20) return { t: "simple", v: "false" };
        if (info === 21) return { t: "simple", v: "true" };
        if (info === 22) return { t: "simple", v: "null" };
        if (info === 23) return { t: "simple", v: "undefined" };
        if (info === 25) { need(2); const h = dv.getUint16(pos); pos += 2; return { t: "float", v: halfToNumber(h) }; }
        if (info === 26) { need(4); const v = dv.getFloat32(pos); pos += 4; return { t: "float", v }; }
        if (info === 27) { need(8); const v = dv.getFloat64(pos); pos += 8; return { t: "float", v }; }
        throw new CborError("unsupported CBOR simple value");
      }
    }
  };
  const out = item(0);
  if (pos !== bytes.length) throw new CborError("trailing bytes after the CBOR item");
  return out;
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function head(major: number, n: number): Uint8Array {
  if (n < 24) return new Uint8Array([(major << 5) | n]);
  if (n < 0x100) return new Uint8Array([(major << 5) | 24, n]);
  if (n < 0x10000) return new Uint8Array([(major << 5) | 25, n >> 8, n & 0xff]);
  return new Uint8Array([(major << 5) | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/** Encodes the COSE Sig_structure's pieces: an array of text and byte strings. */
export function encodeArray(items: (string | Uint8Array)[]): Uint8Array {
  const parts: Uint8Array[] = [head(4, items.length)];
  for (const it of items) {
    const b = typeof it === "string" ? new TextEncoder().encode(it) : it;
    parts.push(head(typeof it === "string" ? 3 : 2, b.length), b);
  }
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function mapGet(m: Cbor, key: string | number): Cbor | undefined {
  if (m.t !== "map") return undefined;
  for (const [k, v] of m.v) {
    if (typeof key === "string" && k.t === "text" && k.v === key) return v;
    if (typeof key === "number" && ((k.t === "uint" && key >= 0) || (k.t === "nint" && key < 0)) && k.v === BigInt(key)) return v;
  }
  return undefined;
}
