// Tensor and tensor-map digests (docs/receipt.md "Tensor digests"), parsing JSON tensors the
// way vouch-core's `Tensor` deserialiser does (crates/vouch-core/src/tensor.rs).
import { sha256 } from "@noble/hashes/sha2.js";
import { b64decode, concat, hexEncode, u32le, u64le, utf8 } from "./bytes.js";
import { ShapeError, isObj, join, show } from "./serde.js";

type DType = "float32" | "float64" | "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32" | "uint64" | "bool";

const ALIASES: Record<string, DType> = {
  float32: "float32", f32: "float32", float: "float32",
  float64: "float64", f64: "float64", double: "float64",
  int8: "int8", i8: "int8", int16: "int16", i16: "int16", int32: "int32", i32: "int32",
  int64: "int64", i64: "int64", int: "int64",
  uint8: "uint8", u8: "uint8", uint16: "uint16", u16: "uint16", uint32: "uint32", u32: "uint32",
  uint64: "uint64", u64: "uint64", bool: "bool", boolean: "bool",
};
const CODE: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9, float64: 11, uint32: 12, uint64: 13,
};
const SIZE: Record<DType, number> = {
  float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1,
};
const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127], int16: [-32768, 32767], int32: [-2147483648, 2147483647],
  uint8: [0, 255], uint16: [0, 65535], uint32: [0, 4294967295],
  // 64-bit integers beyond 2^53 arrive as bigints from parseJson (exact); a plain JavaScript
  // number that large is refused, since it may already have been rounded.
  int64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

export interface ParsedTensor {
  dtype: DType;
  shape: bigint[];
  bytes: Uint8Array; // little-endian elements
}

function elementBytes(dtype: DType, data: unknown[], path: string): Uint8Array {
  const size = SIZE[dtype];
  const out = new Uint8Array(data.length * size);
  const dv = new DataView(out.buffer);
  data.forEach((x, i) => {
    const bad = () => new ShapeError(`${path}[${i}] (${show(x).slice(0, 40)}) is not a valid ${dtype}`, `${path}[${i}]`);
    if (dtype === "bool") {
      if (x === true || x === 1) out[i] = 1;
      else if (x === false || x === 0) out[i] = 0;
      else throw bad();
      return;
    }
    // Floats take any JSON number (u64 → f64 → f32 rounds twice, as Rust's `as` casts do);
    // integers only integer literals (a number or, beyond 2^53, a bigint).
    const fx = typeof x === "number" ? x : x instanceof Number ? x.valueOf() : typeof x === "bigint" ? Number(x) : undefined;
    if (fx === undefined) throw bad();
    if (dtype === "float32") {
      const f = Math.fround(fx); // f64 → nearest f32, as Rust's `as f32`
      if (!Number.isFinite(f)) throw new ShapeError(`${path}[${i}] is out of range for float32`, `${path}[${i}]`);
      dv.setFloat32(i * 4, f, true);
      return;
    }
    if (dtype === "float64") {
      dv.setFloat64(i * 8, fx, true);
      return;
    }
    if (typeof x === "bigint") {
      if (dtype === "int64" && x >= -(2n ** 63n) && x < 2n ** 63n) dv.setBigInt64(i * 8, x, true);
      else if (dtype === "uint64" && x >= 0n && x < 2n ** 64n) dv.setBigUint64(i * 8, x, true);
      else throw bad();
      return;
    }
    if (typeof x !== "number") throw bad();
    const [lo, hi] = INT_RANGE[dtype]!;
    if (!Number.isInteger(x) || x < lo || x > hi) throw bad();
    switch (dtype) {
      case "int8": dv.setInt8(i, x); break;
      case "uint8": dv.setUint8(i, x); break;
      case "int16": dv.setInt16(i * 2, x, true); break;
      case "uint16": dv.setUint16(i * 2, x, true); break;
      case "int32": dv.setInt32(i * 4, x, true); break;
      case "uint32": dv.setUint32(i * 4, x, true); break;
      case "int64": dv.setBigInt64(i * 8, BigInt(x), true); break;
      case "uint64": dv.setBigUint64(i * 8, BigInt(x), true); break;
    }
  });
  return out;
}

export function parseTensor(v: unknown, path: string): ParsedTensor {
  if (!isObj(v)) throw new ShapeError(`${path}: expected a tensor object`, path);
  for (const k of Object.keys(v))
    if (!["dtype", "shape", "data", "b64"].includes(k)) throw new ShapeError(`${path}: unknown field ${k}`, join(path, k));
  if (!("dtype" in v)) throw new ShapeError(`${path}: missing field dtype`, join(path, "dtype"));
  if (typeof v.dtype !== "string") throw new ShapeError(`${path}.dtype: expected a string`, join(path, "dtype"));
  const dtype = ALIASES[v.dtype.toLowerCase()];
  if (!dtype) throw new ShapeError(`${path}.dtype: unknown dtype ${JSON.stringify(v.dtype)}`, join(path, "dtype"));
  if (!("shape" in v)) throw new ShapeError(`${path}: missing field shape`, join(path, "shape"));
  if (!Array.isArray(v.shape)) throw new ShapeError(`${path}.shape: expected an array`, join(path, "shape"));
  const shape = v.shape.map((d, i) => {
    if (typeof d === "bigint" && d >= 0n && d < 2n ** 64n) return d;
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)
      throw new ShapeError(`${path}.shape[${i}]: expected a u64`, `${path}.shape[${i}]`);
    return BigInt(d);
  });
  if (v.b64 !== undefined && v.b64 !== null && typeof v.b64 !== "string")
    throw new ShapeError(`${path}.b64: expected a string`, join(path, "b64"));
  const hasData = v.data !== undefined && v.data !== null;
  const hasB64 = typeof v.b64 === "string";
  let bytes: Uint8Array;
  if (hasData && !hasB64) {
    if (!Array.isArray(v.data)) throw new ShapeError(`${path}.data: tensor data must be a JSON array`, join(path, "data"));
    bytes = elementBytes(dtype, v.data, join(path, "data"));
  } else if (!hasData && hasB64) {
    const b = b64decode(v.b64 as string);
    if (!b) throw new ShapeError(`${path}.b64: not valid standard base64`, join(path, "b64"));
    if (b.length % SIZE[dtype] !== 0) throw new ShapeError(`${path}.b64: not a whole number of ${dtype} elements`, join(path, "b64"));
    if (dtype === "bool" && b.some((x) => x > 1)) throw new ShapeError(`${path}.b64: bool bytes must be 0 or 1`, join(path, "b64"));
    bytes = b;
  } else {
    throw new ShapeError(`${path}: give exactly one of "data" or "b64"`, path);
  }
  const count = shape.reduce((a, d) => a * d, 1n);
  // Rust multiplies in u128, saturating; a product that large never matches a real length.
  if (count !== BigInt(bytes.length / SIZE[dtype]))
    throw new ShapeError(`${path}: shape holds ${count} elements but ${bytes.length / SIZE[dtype]} were given`, join(path, "shape"));
  return { dtype, shape, bytes };
}

export function tensorDigestBytes(t: ParsedTensor): Uint8Array {
  return sha256(
    concat(utf8("vouch.tensor.v1\0"), new Uint8Array([CODE[t.dtype]]), u32le(t.shape.length), ...t.shape.map(u64le), t.bytes),
  );
}

export type TensorMap = Map<string, ParsedTensor>;

export function parseTensorMap(v: unknown, path: string): TensorMap {
  if (!isObj(v)) throw new ShapeError(`${path}: expected a map of tensor names to tensors`, path);
  const m: TensorMap = new Map();
  for (const [k, t] of Object.entries(v)) m.set(k, parseTensor(t, join(path, k)));
  return m;
}

/** Byte order of UTF-8 names (Rust's `BTreeMap<String, _>`), not UTF-16 order. */
function compareUtf8(a: string, b: string): number {
  const x = utf8(a), y = utf8(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

export function tensorMapDigestOf(m: TensorMap): string {
  const names = [...m.keys()].sort(compareUtf8);
  const parts: Uint8Array[] = [utf8("vouch.tensors.v1\0"), u32le(names.length)];
  for (const n of names) {
    const nb = utf8(n);
    parts.push(u32le(nb.length), nb, tensorDigestBytes(m.get(n)!));
  }
  return "sha256:" + hexEncode(sha256(concat(...parts)));
}

/** The tensor-map digest (`sha256:<hex>`) of a tensor map in its JSON form. */
export function tensorMapDigest(map: unknown): string {
  return tensorMapDigestOf(parseTensorMap(map, ""));
}
