// A JSON parser that keeps what `serde_json` keeps and JSON.parse loses, so a file read from
// text gets the Rust verifier's verdict: an integer and an integral float are different things
// (`1` fits a u32 field, `1.0` does not; `-0`, like `-0.0`, is the float negative zero),
// integers up to 64 bits are exact, and what serde_json refuses is refused (numbers out of
// f64 range, lone surrogate escapes, control characters in strings, nesting deeper than 127).
//
// Values: integers within ±(2^53 − 1) are numbers; larger ones within the i64/u64 range are
// bigints; floats are numbers, except integral floats, which are boxed (`new Number(x)`) so
// that integer fields refuse them and float fields unbox them (`numberValue`).

export class JsonError extends Error {}

const U64_MAX = 0xffffffffffffffffn;
const I64_MIN = -0x8000000000000000n;

/** The numeric value of a JSON number as this parser returns it, or undefined. */
export function numberValue(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (v instanceof Number) return v.valueOf();
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

export function parseJson(text: string): unknown {
  let i = 0;
  const n = text.length;
  const fail = (m: string): never => {
    throw new JsonError(`${m} at character ${i}`);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const hex4 = (): number => {
    if (i + 4 > n) fail("truncated \\u escape");
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("invalid \\u escape");
    i += 4;
    return parseInt(h, 16);
  };
  const string = (): string => {
    i++; // opening quote
    let out = "";
    let start = i;
    for (;;) {
      if (i >= n) fail("EOF while parsing a string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character (\\u0000-\\u001F) found while parsing a string");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      i++;
      const e = text[i++];
      switch (e) {
        case '"': out += '"'; break;
        case "\\": out += "\\"; break;
        case "/": out += "/"; break;
        case "b": out += "\b"; break;
        case "f": out += "\f"; break;
        case "n": out += "\n"; break;
        case "r": out += "\r"; break;
        case "t": out += "\t"; break;
        case "u": {
          const u = hex4();
          if (u >= 0xd800 && u <= 0xdbff) {
            if (text[i] !== "\\" || text[i + 1] !== "u") fail("lone leading surrogate in hex escape");
            i += 2;
            const lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("lone leading surrogate in hex escape");
            out += String.fromCharCode(u, lo);
          } else if (u >= 0xdc00 && u <= 0xdfff) fail("lone trailing surrogate in hex escape");
          else out += String.fromCharCode(u);
          break;
        }
        default:
          fail("invalid escape");
      }
      start = i;
    }
  };
  const number = (): unknown => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400)) ?? fail("invalid number");
    const lex = m![0];
    if (lex === "-" || lex === "") fail("invalid number");
    i += lex.length;
    if (i < n && /[0-9.eE+-]/.test(text[i])) fail("invalid number");
    if (m![2] === undefined && m![3] === undefined) {
      // serde_json reads "-0" as the float -0.0, not the integer 0.
      if (lex === "-0") return new Number(-0);
      const b = BigInt(lex);
      if (b >= -9007199254740991n && b <= 9007199254740991n) return Number(b);
      if (b >= I64_MIN && b <= U64_MAX) return b;
      const f = Number(lex);
      if (!Number.isFinite(f)) fail("number out of range");
      return new Number(f); // beyond 64 bits serde_json reads a float
    }
    const f = Number(lex);
    if (!Number.isFinite(f)) fail("number out of range");
    return Number.isInteger(f) || Object.is(f, -0) ? new Number(f) : f;
  };
  const value = (depth: number): unknown => {
    ws();
    if (i >= n) fail("EOF while parsing a value");
    const c = text[i];
    if (c === "{") {
      if (depth >= 127) fail("recursion limit exceeded");
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text[i] === "}") {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("key must be a string");
        const k = string();
        ws();
        if (text[i++] !== ":") fail("expected `:`");
        const v = value(depth + 1);
        // Own data property even for "__proto__"; a later duplicate replaces an earlier one, as in serde_json's map.
        Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        const d = text[i++];
        if (d === "}") return o;
        if (d !== ",") fail("expected `,` or `}`");
      }
    }
    if (c === "[") {
      if (depth >= 127) fail("recursion limit exceeded");
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        const d = text[i++];
        if (d === "]") return a;
        if (d !== ",") fail("expected `,` or `]`");
      }
    }
    if (c === '"') return string();
    if (text.startsWith("true", i)) { i += 4; return true; }
    if (text.startsWith("false", i)) { i += 5; return false; }
    if (text.startsWith("null", i)) { i += 4; return null; }
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    return fail("expected value");
  };
  const v = value(0);
  ws();
  if (i < n) fail("trailing characters");
  return v;
}
