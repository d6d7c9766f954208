// `verify_bundle` of crates/vouch-verify/src/lib.rs: the same checks, in the same order, with
// the same failure codes and the same report (`vouch verify --json`).
import { sha256 } from "@noble/hashes/sha2.js";
import { b64decode, concat, hexEncode, utf8 } from "./bytes.js";
import { InvalidArgument, VerifyFailure } from "./fail.js";
import { CanonicalError, canonicalJson } from "./jcs.js";
import { verifyLogEvidence, type InclusionVerified } from "./log.js";
import { RECEIPT_DOMAIN, canonicalBytes, checkSignature, parseReceipt, parseSignature, signingMessage, type BundleSignature, type Tier } from "./receipt.js";
import { ShapeError, isObj, nodeKey, type Obj } from "./serde.js";
import { parseTensorMap, tensorMapDigestOf, type TensorMap } from "./tensor.js";
import { verifyBundleTee } from "./tee.js";

export interface VerifyOptions {
  trustKey?: string;
  logKey?: string;
  witnessKeys?: string[];
  witnessThreshold?: number;
  require?: ("signed" | "tee" | "zk")[];
  model?: Uint8Array;
  inputs?: unknown;
  outputs?: unknown;
  config?: unknown;
  request?: unknown;
  tee?: { allowSimulated?: boolean; time?: Date; evidence?: unknown; expect?: Record<string, string> };
}
export interface TierReport {
  tier: string;
  proven: string;
  trust_assumption: string;
  simulated: boolean;
}
export type Verdict =
  | { ok: true; summary: string; tiers: TierReport[]; proven: { check: string; detail: string }[]; not_proven: string[] }
  | { ok: false; code: string; message: string; below_policy: boolean; field?: string };
export type Report = Extract<Verdict, { ok: true }>;

/** The verifier's own inputs, read as `vouch verify` reads its options (errors: invalid_argument). */
export interface Given {
  trusted?: string;
  model?: Uint8Array;
  inputs?: TensorMap;
  outputs?: TensorMap;
  config?: unknown;
  require: Tier[];
  log?: { key: string; witnesses: string[]; threshold?: number };
  tee: { allowSimulated: boolean; time: Date; supplied: unknown[]; expect: Record<string, string> };
}

export function readOptions(o: VerifyOptions): Given {
  const shape = <T>(f: () => T, what: string): T => {
    try {
      return f();
    } catch (e) {
      throw new InvalidArgument(`${what}: ${(e as Error).message}`);
    }
  };
  const require = (o.require ?? []).map((t) => {
    const s = String(t).trim();
    if (s !== "signed" && s !== "tee" && s !== "zk") throw new InvalidArgument(`unknown tier ${JSON.stringify(s)}: expected signed, tee or zk`);
    return s as Tier;
  });
  const expect: Record<string, string> = {};
  for (const [name, hex] of Object.entries(o.tee?.expect ?? {})) {
    if (!name || !hex || !/^[0-9a-fA-F]+$/.test(hex)) throw new InvalidArgument(`--tee-expect ${name}=${hex}: expected NAME=HEX with a non-empty name and hex value`);
    expect[name] = hex;
  }
  const ev = o.tee?.evidence;
  return {
    trusted: o.trustKey === undefined ? undefined : shape(() => nodeKey(o.trustKey, "--trust-key"), "--trust-key"),
    model: o.model,
    inputs: o.inputs === undefined ? undefined : shape(() => parseTensorMap(o.inputs, "inputs"), "inputs file"),
    outputs: o.outputs === undefined ? undefined : shape(() => parseTensorMap(o.outputs, "outputs"), "outputs file"),
    config: o.config,
    require,
    log: o.logKey === undefined ? undefined : { key: o.logKey, witnesses: o.witnessKeys ?? [], threshold: o.witnessThreshold },
    tee: { allowSimulated: o.tee?.allowSimulated ?? false, time: o.tee?.time ?? new Date(), supplied: ev === undefined ? [] : Array.isArray(ev) ? ev : [ev], expect },
  };
}

export function failureOf(e: unknown): Extract<Verdict, { ok: false }> {
  if (e instanceof VerifyFailure) {
    const v: Extract<Verdict, { ok: false }> = { ok: false, code: e.code, message: e.message, below_policy: BELOW.has(e.code) };
    if (e.field !== undefined) v.field = e.field;
    return v;
  }
  if (e instanceof ShapeError) return { ok: false, code: "invalid_argument", message: e.message, below_policy: false, field: e.field };
  return { ok: false, code: "internal", message: `internal error: ${(e as Error)?.message ?? String(e)}`, below_policy: false };
}
import { BELOW_POLICY as BELOW } from "./fail.js";

const NOT_IN_LOG_PASS = "that the receipt is in the public log: pass --log-key (and --witness) to check its inclusion proof";
const NOT_IN_LOG = "that the receipt is in a transparency log: the bundle carries no log evidence";

export function logFinding(v: InclusionVerified): { check: string; detail: string } {
  const w = v.witnesses.length ? `, cosigned by ${v.witnesses.map((x) => x.witness).join(", ")}` : "";
  return {
    check: "log",
    detail: `the receipt is entry ${v.index} of log ${v.origin} under its signed checkpoint of size ${v.treeSize}${w}: anyone auditing that log sees it`,
  };
}

export function configDigest(config: unknown): string {
  try {
    return "sha256:" + hexEncode(sha256(utf8(canonicalJson(config))));
  } catch (e) {
    if (e instanceof CanonicalError) throw new VerifyFailure("config_invalid", `the configuration given has no canonical JSON form: ${e.message}`);
    throw e;
  }
}

export interface ParsedBundle {
  format: string;
  receipt: ReturnType<typeof parseReceipt>;
  signature?: BundleSignature;
  outputs?: TensorMap;
  evidence: Obj;
}

export function parseBundle(v: unknown): ParsedBundle {
  if (!isObj(v)) throw new ShapeError("not a receipt bundle: expected a JSON object", "");
  for (const k of Object.keys(v))
    if (!["format", "receipt", "signature", "outputs", "evidence"].includes(k)) throw new ShapeError(`unknown field ${JSON.stringify(k)}`, k);
  if (!("format" in v)) throw new ShapeError("missing field format", "format");
  if (typeof v.format !== "string") throw new ShapeError("format: expected a string", "format");
  if (!("receipt" in v)) throw new ShapeError("missing field receipt", "receipt");
  const receipt = parseReceipt(v.receipt);
  const signature = v.signature === undefined || v.signature === null ? undefined : parseSignature(v.signature);
  const outputs = v.outputs === undefined || v.outputs === null ? undefined : parseTensorMap(v.outputs, "outputs");
  if (v.evidence !== undefined && !isObj(v.evidence)) throw new ShapeError("evidence: expected a map", "evidence");
  return { format: v.format, receipt, signature, outputs, evidence: (v.evidence as Obj | undefined) ?? {} };
}

/**
 * A signature that no longer matches says only "the receipt or the signature was altered". For
 * the explorer's "this field was altered", name the receipt field that disagrees with what the
 * verifier can recompute itself (the bundled outputs, the files given), when one does. The code
 * stays `signature_invalid`, as in Rust, which checks the signature first.
 */
function blameSignedField(e: unknown, b: ParsedBundle, g: Given): unknown {
  if (!(e instanceof VerifyFailure) || e.code !== "signature_invalid") return e;
  const r = b.receipt;
  let field: string | undefined;
  if (b.outputs && tensorMapDigestOf(b.outputs) !== r.output_digest) field = "receipt.output_digest";
  else if (g.outputs && tensorMapDigestOf(g.outputs) !== r.output_digest) field = "receipt.output_digest";
  else if (g.model && "sha256:" + hexEncode(sha256(g.model)) !== r.model) field = "receipt.model";
  else if (g.inputs && tensorMapDigestOf(g.inputs) !== r.input_digest) field = "receipt.input_digest";
  return field ? new VerifyFailure(e.code, e.message, field) : e;
}

const ZK_NOT_CHECKED = "zk proof: check with `vouch verify`";

/** verify_bundle for an ONNX receipt bundle, given parsed options. Throws VerifyFailure. */
export function verifyReceiptBundle(b: ParsedBundle, g: Given): Report {
  const r = b.receipt;
  if (b.format !== "vouch.bundle.v1")
    throw new VerifyFailure("not_a_bundle", `not a Vouch bundle: format is ${JSON.stringify([...b.format].slice(0, 64).join(""))}, expected "vouch.bundle.v1"`, "format");
  if (r.version !== 1)
    throw new VerifyFailure("unsupported_receipt_version", `receipt version ${r.version} is not supported by this verifier (it knows version 1)`, "receipt.version");
  const claimsZk = r.tiers.includes("zk");
  if (claimsZk && !("zk" in b.evidence) && !("zk_job" in b.evidence))
    throw new VerifyFailure(
      "zk_evidence_missing",
      "the receipt lists the zk tier but the bundle carries neither a proof (evidence.zk) nor a proof job (evidence.zk_job)",
      "evidence.zk",
    );
  const proven: { check: string; detail: string }[] = [];
  const notProven: string[] = [];
  const tiers: TierReport[] = [];
  const claimsTee = r.tiers.includes("tee");
  const message = signingMessage(RECEIPT_DOMAIN, sha256(canonicalBytes(r)));

  if (!b.signature) {
    if (r.tiers.includes("signed")) throw new VerifyFailure("signature_missing", "the receipt lists the signed tier but the bundle carries no signature", "signature");
    notProven.push("who produced this receipt: it is unsigned (tiers [])");
  } else {
    try {
      checkSignature(message, r.node_key, b.signature, g.trusted, "receipt.node_key");
    } catch (e) {
      throw blameSignedField(e, b, g);
    }
    const trust = g.trusted !== undefined ? "the key you trust" : "a key you did not pin (pass --trust-key)";
    proven.push({ check: "signature", detail: `node ${r.node_key} signed this receipt (${trust})` });
    if (r.tiers.includes("signed"))
      tiers.push({ tier: "signed", proven: `node key ${r.node_key} signed this receipt (${trust})`, trust_assumption: "the node's operator: whoever holds that key", simulated: false });
  }

  let teeSummary: string | undefined;
  if (claimsTee) {
    const v = verifyBundleTee(r.node_key, message, b.signature, b.evidence, g.tee);
    proven.push({ check: "tee", detail: `${v.platform} evidence binds node key ${v.nodeKey} to measured code` });
    tiers.push({
      tier: "tee",
      proven: `code measured as ${v.measurements.map(([k, x]) => `${k}=${x}`).join(", ")} holds node key ${v.nodeKey}, which signed this receipt`,
      trust_assumption: v.trustAssumption,
      simulated: v.simulated,
    });
    teeSummary = v.summary;
  }

  if (!g.log) notProven.push("log" in b.evidence ? NOT_IN_LOG_PASS : NOT_IN_LOG);
  else {
    const entry = concat(utf8("vouch-log/v1 receipt\n"), canonicalBytes(r));
    proven.push(logFinding(verifyLogEvidence(b.evidence.log, entry, g.log.key, g.log.witnesses, g.log.threshold)));
  }

  const digestCheck = (what: string, code: string, expected: string, actual: string | undefined, missing: string, field: string) => {
    if (actual === undefined) {
      notProven.push(missing);
      return;
    }
    if (actual !== expected)
      throw new VerifyFailure(code, `${what} does not match the receipt: receipt says ${expected}, ${what} hashes to ${actual}`, field);
    proven.push({ check: what, detail: `${what} hashes to the receipt's ${expected}` });
  };
  // A mismatch between the bundled outputs and the receipt: name the output that differs when
  // only the receipt's digest can tell (the explorer shows "this field was altered").
  digestCheck("bundled outputs", "outputs_mismatch", r.output_digest, b.outputs && tensorMapDigestOf(b.outputs), "the outputs' values: the bundle does not carry them", b.outputs && b.outputs.size === 1 ? `outputs.${[...b.outputs.keys()][0]}` : "outputs");
  digestCheck("model file", "model_mismatch", r.model, g.model && "sha256:" + hexEncode(sha256(g.model)), "which model file this is: pass --model to compare it with the receipt's model digest", "receipt.model");
  digestCheck("input file", "inputs_mismatch", r.input_digest, g.inputs && tensorMapDigestOf(g.inputs), "which inputs were used: pass --inputs to compare them with the receipt's input digest", "receipt.input_digest");
  digestCheck("output file", "outputs_mismatch", r.output_digest, g.outputs && tensorMapDigestOf(g.outputs), "your copy of the outputs: pass --outputs to compare it", "receipt.output_digest");
  if (r.config_digest === undefined && g.config !== undefined)
    throw new VerifyFailure("config_not_in_receipt", "a configuration was given but the receipt names none: the node ran the model unconfigured", "receipt.config_digest");
  if (r.config_digest !== undefined && g.config !== undefined) digestCheck("configuration", "config_mismatch", r.config_digest, configDigest(g.config), "", "receipt.config_digest");
  else if (r.config_digest !== undefined)
    notProven.push(
      `which configuration (system prompt, settings) was in force: the receipt names ${r.config_digest}; pass --config (GET /v1/models/{model}/config, or the log's config-changed entry)`,
    );

  // zk: this verifier has no Spartan2 verifier; a claimed zk tier is reported as not proven.
  let zkWhy: string | undefined;
  if (claimsZk) {
    const raw = b.evidence.zk;
    if (raw === undefined) {
      const job = b.evidence.zk_job;
      const id = isObj(job) && typeof job.id === "string" ? job.id : "?";
      zkWhy = `zk: pending (job ${id}), not proven: complete the bundle with \`vouch proofs wait ${id} --bundle <this file>\``;
    } else zkWhy = ZK_NOT_CHECKED;
    notProven.push(zkWhy);
  }
  for (const t of g.require) {
    if (tiers.some((x) => x.tier === t)) continue;
    const why = t === "zk" && zkWhy ? zkWhy : `the receipt does not carry the ${t} tier`;
    throw new VerifyFailure("tier_not_proven", `the ${t} tier is required but not proven: ${why}`, "receipt.tiers");
  }
  notProven.push(
    claimsTee
      ? "that the model really produced these outputs: the tee tier vouches for the measured code's word; check by re-execution with `vouch replay`"
      : "that the model really produced these outputs: a signature only vouches for the node's word; check by re-execution with `vouch replay`",
  );
  const summary = teeSummary ?? (b.signature ? "signature only: trusts the node" : "unsigned: integrity of the given files only");
  return { ok: true, summary, tiers, proven, not_proven: notProven };
}

export { b64decode };
