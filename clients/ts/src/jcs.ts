// RFC 8785 (JSON Canonicalization Scheme). ECMAScript's own number-to-string and
// JSON.stringify string escaping are exactly what RFC 8785 §3.2.2 prescribes, so the work left
// is key order (UTF-16 code units, which is JavaScript's default string comparison) and
// refusing what has no canonical form.

export class CanonicalError extends Error {}

export function canonicalJson(v: unknown): string {
  if (v === null) return "null";
  // Numbers from parseJson: boxed integral floats and 64-bit integers are written as doubles.
  if (v instanceof Number) return canonicalJson(v.valueOf());
  if (typeof v === "bigint") return canonicalJson(Number(v));
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new CanonicalError(`${v} has no JSON form`);
      return JSON.stringify(v); // -0 → "0", ES6 shortest round-trip form
    case "string":
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) return "[" + v.map(canonicalJson).join(",") + "]";
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
      return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(o[k])).join(",") + "}";
    }
    default:
      throw new CanonicalError(`a ${typeof v} has no JSON form`);
  }
}
