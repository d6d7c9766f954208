// The ONNX receipt (docs/receipt.md): strict parsing as vouch-core's `Receipt`, its canonical
// bytes, hash, and the `signed` tier's Ed25519 signature (crates/vouch-attest/src/verify.rs).
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { b64decode, concat, hexDecode, utf8 } from "./bytes.js";
import { VerifyFailure } from "./fail.js";
import { canonicalJson } from "./jcs.js";
import { ShapeError, U32_MAX, bool, digest, join, nodeKey, opt, show, str, struct, uint, unitVariant, type Obj } from "./serde.js";

export type Tier = "signed" | "tee" | "zk";
export const TIERS: Tier[] = ["signed", "tee", "zk"];

export function tier(v: unknown, path: string): Tier {
  const t = unitVariant(v, TIERS);
  if (t === undefined) throw new ShapeError(`${path}: unknown tier ${show(v)}: expected signed, tee or zk`, path);
  return t as Tier;
}

export function engine(v: unknown, path: string): Obj {
  const e = struct(v, path, ["name", "version", "profile"]);
  const p = struct(e.profile, join(path, "profile"), ["threads", "deterministic", "batch"]);
  return {
    name: str(e.name, join(path, "name")),
    version: str(e.version, join(path, "version")),
    profile: {
      threads: uint(p.threads, join(path, "profile.threads"), U32_MAX),
      deterministic: bool(p.deterministic, join(path, "profile.deterministic")),
      batch: uint(p.batch, join(path, "profile.batch"), U32_MAX),
    },
  };
}

export function payment(v: unknown, path: string): Obj {
  const keys = ["scheme", "network", "asset", "amount", "payer", "settlement"];
  const p = struct(v, path, keys);
  const out: Obj = {};
  for (const k of keys) out[k] = str(p[k], join(path, k));
  return out;
}

/** A receipt in normal form: what vouch-core's serialiser writes back after parsing. */
export interface Receipt {
  version: number;
  request_id: string;
  model: string;
  model_ref?: string;
  input_digest: string;
  output_digest: string;
  engine: Obj;
  config_digest?: string;
  tiers: Tier[];
  node_key: string;
  issued_at: string;
  payment?: Obj;
}

export function parseReceipt(v: unknown, path = "receipt"): Receipt {
  const r = struct(
    v,
    path,
    ["version", "request_id", "model", "input_digest", "output_digest", "engine", "tiers", "node_key", "issued_at"],
    ["model_ref", "config_digest", "payment"],
  );
  const p = (k: string) => join(path, k);
  if (!Array.isArray(r.tiers)) throw new ShapeError(`${p("tiers")}: expected an array`, p("tiers"));
  const out: Receipt = {
    version: uint(r.version, p("version"), U32_MAX),
    request_id: str(r.request_id, p("request_id")),
    model: digest(r.model, p("model")),
    model_ref: opt(r, "model_ref", (x) => str(x, p("model_ref"))),
    input_digest: digest(r.input_digest, p("input_digest")),
    output_digest: digest(r.output_digest, p("output_digest")),
    engine: engine(r.engine, p("engine")),
    config_digest: opt(r, "config_digest", (x) => digest(x, p("config_digest"))),
    tiers: r.tiers.map((t, i) => tier(t, `${p("tiers")}[${i}]`)),
    node_key: nodeKey(r.node_key, p("node_key")),
    issued_at: str(r.issued_at, p("issued_at")),
    payment: opt(r, "payment", (x) => payment(x, p("payment"))),
  };
  return out;
}

/** Canonical bytes of a normalised receipt (optional fields absent, never null). */
export function canonicalBytes(r: object): Uint8Array {
  return utf8(canonicalJson(r));
}

/** SHA-256 of the receipt's RFC 8785 bytes. Accepts a receipt JSON object (parsed strictly). */
export function receiptHash(receipt: unknown): Uint8Array {
  return sha256(canonicalBytes(parseReceipt(receipt)));
}

export const RECEIPT_DOMAIN = "vouch.receipt.v1\0";
export const CHAT_RECEIPT_DOMAIN = "vouch.chat-receipt.v1\0";

/**
 * Ed25519 verified as ed25519-dalek's `verify_strict`: canonical encodings (RFC 8032) and no
 * small-order public key or R. Returns false on any mismatch.
 */
export function verifyStrict(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  try {
    const A = ed25519.Point.fromBytes(pub, false);
    const R = ed25519.Point.fromBytes(sig.subarray(0, 32), false);
    if (A.isSmallOrder() || R.isSmallOrder()) return false;
    return ed25519.verify(sig, msg, pub, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Whether 32 bytes decode to an Ed25519 point as dalek's `VerifyingKey::from_bytes` decides
 * (curve25519-dalek's decompression accepts non-canonical y, as ZIP-215 decoding does); such a
 * key then fails strict verification (`signature_invalid`), not decoding (`node_key_invalid`).
 */
export function validEd25519Key(pub: Uint8Array): boolean {
  try {
    ed25519.Point.fromBytes(pub, true);
    return true;
  } catch {
    return false;
  }
}

export interface BundleSignature {
  alg: string;
  sig: string;
}

export function parseSignature(v: unknown, path = "signature"): BundleSignature {
  const s = struct(v, path, ["alg", "sig"]);
  return { alg: str(s.alg, join(path, "alg")), sig: str(s.sig, join(path, "sig")) };
}

/** `verify_signed_message`: the checks and codes of crates/vouch-attest/src/verify.rs, in order. */
export function checkSignature(message: Uint8Array, nodeKeyStr: string, sig: BundleSignature, trusted: string | undefined, keyField: string): void {
  if (sig.alg !== "ed25519")
    throw new VerifyFailure("signature_algorithm_unsupported", `signature check failed: unsupported signature algorithm ${JSON.stringify(sig.alg.slice(0, 32))}: this verifier knows ed25519`, "signature.alg");
  const raw = b64decode(sig.sig);
  if (!raw || raw.length !== 64)
    throw new VerifyFailure("signature_malformed", "signature check failed: signature is not 64 bytes of standard base64", "signature.sig");
  const key = hexDecode(nodeKeyStr.slice(8))!;
  if (!validEd25519Key(key))
    throw new VerifyFailure("node_key_invalid", `signature check failed: node key ${nodeKeyStr} is not a valid Ed25519 public key`, keyField);
  if (!verifyStrict(raw, message, key))
    throw new VerifyFailure(
      "signature_invalid",
      `signature check failed: signature does not match the receipt under node key ${nodeKeyStr}: the receipt or signature was altered, or another key signed it`,
      "signature.sig",
    );
  if (trusted !== undefined && trusted !== nodeKeyStr)
    throw new VerifyFailure("signer_untrusted", `signature check failed: receipt was signed by ${nodeKeyStr}, which is not the trusted key ${trusted}`, keyField);
}

export function signingMessage(domain: string, hash: Uint8Array): Uint8Array {
  return concat(utf8(domain), hash);
}
