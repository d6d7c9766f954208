// Strict readers mirroring serde's derive with `deny_unknown_fields`: a JSON shape the Rust
// verifier refuses to parse is refused here too (there it is `invalid_argument`, exit 1).
import { hexDecode } from "./bytes.js";

export class ShapeError extends Error {
  constructor(
    message: string,
    public readonly field: string,
  ) {
    super(message);
  }
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Number);
}

/** A value for an error message (bigints and boxed numbers included). */
export function show(v: unknown): string {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Number) return String(v.valueOf());
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** An object with exactly the allowed keys (missing required ones and unknown ones refused). */
export function struct(v: unknown, path: string, required: string[], optional: string[] = []): Obj {
  if (!isObj(v)) throw new ShapeError(`${path}: expected an object`, path);
  for (const k of Object.keys(v)) {
    if (!required.includes(k) && !optional.includes(k))
      throw new ShapeError(`${path}: unknown field ${JSON.stringify(k)}`, join(path, k));
  }
  for (const k of required) {
    if (!(k in v)) throw new ShapeError(`${path}: missing field ${JSON.stringify(k)}`, join(path, k));
  }
  return v;
}

/**
 * A unit variant of a serde enum: its name as a string, or (serde_json's externally tagged
 * form) an object with that name as its only key and null as its value.
 */
export function unitVariant(v: unknown, names: readonly string[]): string | undefined {
  if (typeof v === "string") return names.includes(v) ? v : undefined;
  if (isObj(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && names.includes(keys[0]) && v[keys[0]] === null) return keys[0];
  }
  return undefined;
}

export const join = (path: string, k: string): string => (path ? `${path}.${k}` : k);

export function str(v: unknown, path: string): string {
  if (typeof v !== "string") throw new ShapeError(`${path}: expected a string`, path);
  return v;
}

/** serde's `Option<T>` with `default`: absent and `null` are both None. */
export function opt<T>(o: Obj, k: string, read: (v: unknown) => T): T | undefined {
  const v = o[k];
  return v === undefined || v === null ? undefined : read(v);
}

export function uint(v: unknown, path: string, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max)
    throw new ShapeError(`${path}: expected an integer in 0..=${max}`, path);
  return v;
}

export const U32_MAX = 0xffffffff;

export function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") throw new ShapeError(`${path}: expected a boolean`, path);
  return v;
}

/** `Digest::from_str`: `sha256:` prefix optional, 64 hex digits of either case; normalised. */
export function digest(v: unknown, path: string): string {
  const s = str(v, path);
  const h = s.startsWith("sha256:") ? s.slice(7) : s;
  if (h.length !== 64 || hexDecode(h) === null)
    throw new ShapeError(`${path}: invalid digest ${JSON.stringify(s.slice(0, 80))}`, path);
  return "sha256:" + h.toLowerCase();
}

/** `NodeKey::from_str`: `ed25519:` prefix optional, 64 hex digits of either case; normalised. */
export function nodeKey(v: unknown, path: string): string {
  const s = str(v, path);
  const h = s.startsWith("ed25519:") ? s.slice(8) : s;
  if (h.length !== 64 || hexDecode(h) === null)
    throw new ShapeError(`${path}: invalid node key ${JSON.stringify(s.slice(0, 80))}`, path);
  return "ed25519:" + h.toLowerCase();
}
