// The `tee` tier (docs/tee.md): the evidence envelope, the binding of the node key into the
// platform's report data, simulated evidence, and the checks of crates/vouch-attest/src/tee/
// in their order. Nitro is verified in nitro.ts; Intel DCAP and AMD SEV-SNP are not
// implemented here (README.md): such evidence fails `tier_uncheckable` rather than passing.
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { b64decode, concat, equalBytes, hexDecode, hexEncode, utf8, utf8Decode } from "./bytes.js";
import { VerifyFailure } from "./fail.js";
import { canonicalJson } from "./jcs.js";
import { parseJson } from "./json.js";
import { formatTime, verifyNitroDocument } from "./nitro.js";
import { checkSignature, validEd25519Key, verifyStrict, type BundleSignature } from "./receipt.js";
import { isObj, nodeKey, unitVariant, type Obj } from "./serde.js";

export type Platform = "aws-nitro" | "intel-tdx" | "intel-sgx" | "amd-sev-snp" | "simulated";
const PLATFORMS: Platform[] = ["aws-nitro", "intel-tdx", "intel-sgx", "amd-sev-snp", "simulated"];

export interface PlatformReport {
  platform: Platform;
  measurements: Map<string, string>;
  reportData?: Uint8Array;
  reportDataField: string;
  evidenceTime?: Date;
  trustAssumption: string;
  boundPublicKey?: Uint8Array;
  boundNonce?: Uint8Array;
}

export interface TeeVerdict {
  platform: Platform;
  measurements: [string, string][];
  trustAssumption: string;
  nodeKey: string;
  simulated: boolean;
  summary: string;
}

const F = "evidence.tee";
const malformed = (m: string, field = F) => new VerifyFailure("tee_malformed", `tee tier: malformed tee evidence: ${m}`, field);
const receiptErr = (m: string, field?: string) => new VerifyFailure("tee_receipt", `tee tier: receipt: ${m}`, field);
const bindingErr = (m: string, field = `${F}.binding`) => new VerifyFailure("tee_binding", `tee tier: binding: ${m}`, field);

/** report_data = SHA-512("vouch.tee.binding.v1\0" ‖ node key ‖ nonce frame). */
export function bindingReportData(nodeKey32: Uint8Array, nonce?: Uint8Array): Uint8Array {
  if (nonce && (nonce.length < 1 || nonce.length > 64)) throw malformed(`nonce must be 1 to 64 bytes, got ${nonce.length}`);
  const frame = nonce ? concat(new Uint8Array([1, nonce.length]), nonce) : new Uint8Array([0]);
  return sha512(concat(utf8("vouch.tee.binding.v1\0"), nodeKey32, frame));
}

interface Envelope {
  format: string;
  type: Platform;
  evidence: string;
  collateral?: unknown;
  collateral_time?: string;
  certs?: { vcek: string; ask?: string };
  binding: { scheme: string; node_key: string; nonce?: string };
  produced_at: string;
}

/** `TeeEvidence` parsed strictly (deny_unknown_fields), in normal form (for its digest). */
function parseEnvelope(v: Obj): Envelope {
  const bad = (m: string, field = F) => malformed(`tee evidence envelope: ${m}`, field);
  const allowed = ["format", "type", "evidence", "collateral", "collateral_time", "certs", "binding", "produced_at"];
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw bad(`unknown field ${k}`, `${F}.${k}`);
  for (const k of ["format", "type", "evidence", "binding", "produced_at"]) if (!(k in v)) throw bad(`missing field ${k}`, `${F}.${k}`);
  const s = (x: unknown, f: string) => {
    if (typeof x !== "string") throw bad(`${f} is not a string`, `${F}.${f}`);
    return x;
  };
  const o = (x: unknown) => x === undefined || x === null;
  const type = unitVariant(v.type, PLATFORMS);
  if (type === undefined) throw bad("type is not a known platform", `${F}.type`);
  const env: Envelope = {
    format: s(v.format, "format"),
    type: type as Platform,
    evidence: s(v.evidence, "evidence"),
    binding: { scheme: "", node_key: "" },
    produced_at: s(v.produced_at, "produced_at"),
  };
  if (!o(v.collateral)) env.collateral = v.collateral;
  if (!o(v.collateral_time)) env.collateral_time = s(v.collateral_time, "collateral_time");
  if (!o(v.certs)) {
    const c = v.certs;
    if (!isObj(c) || Object.keys(c).some((k) => k !== "vcek" && k !== "ask") || typeof c.vcek !== "string" || !(o(c.ask) || typeof c.ask === "string"))
      throw bad("certs is malformed", `${F}.certs`);
    env.certs = { vcek: c.vcek };
    if (typeof c.ask === "string") env.certs.ask = c.ask;
  }
  const b = v.binding;
  if (!isObj(b) || Object.keys(b).some((k) => !["scheme", "node_key", "nonce"].includes(k)) || typeof b.scheme !== "string" || !("node_key" in b) || !(o(b.nonce) || typeof b.nonce === "string"))
    throw bad("binding is malformed", `${F}.binding`);
  let nk: string;
  try {
    nk = nodeKey(b.node_key, `${F}.binding.node_key`);
  } catch {
    throw bad("binding.node_key is not a node key", `${F}.binding.node_key`);
  }
  env.binding = { scheme: b.scheme, node_key: nk };
  if (typeof b.nonce === "string") env.binding.nonce = b.nonce;
  return env;
}

/** SHA-256 of the envelope's RFC 8785 form: what a `vouch.tee.ref.v1` reference names. */
export function envelopeDigest(v: unknown): string {
  if (!isObj(v)) throw malformed("tee evidence envelope: not an object");
  return "sha256:" + hexEncode(sha256(utf8(canonicalJson(parseEnvelope(v)))));
}

/** `TeeEvidence::from_json` + `resolve`: the envelope itself, or the supplied one a reference names. */
function resolve(value: unknown, supplied: unknown[]): Envelope {
  const format = isObj(value) ? value.format : undefined;
  if (typeof format !== "string") throw malformed('tee evidence has no "format" string');
  if (format === "vouch.tee.v1") return parseEnvelope(value as Obj);
  if (format !== "vouch.tee.ref.v1") throw malformed(`unknown tee evidence format ${JSON.stringify(format.slice(0, 40))}`, `${F}.format`);
  const r = value as Obj;
  if (Object.keys(r).some((k) => k !== "format" && k !== "digest") || typeof r.digest !== "string") throw malformed("tee evidence reference is malformed");
  const d = r.digest.startsWith("sha256:") ? r.digest.slice(7) : r.digest;
  if (d.length !== 64 || !hexDecode(d)) throw malformed("tee evidence reference: invalid digest", `${F}.digest`);
  const want = "sha256:" + d.toLowerCase();
  if (supplied.length === 0)
    throw new VerifyFailure("tee_evidence_referenced", `tee tier: tee evidence is referenced by digest ${want}, not included: fetch it from the issuing node (GET /v1/attestation/${want}) and supply it to the verifier`, `${F}.digest`);
  const envs = supplied.map((s) => {
    if (!isObj(s) || s.format !== "vouch.tee.v1") throw new VerifyFailure("invalid_argument", "a supplied tee evidence envelope is not vouch.tee.v1");
    return parseEnvelope(s);
  });
  const digests = envs.map((e) => "sha256:" + hexEncode(sha256(utf8(canonicalJson(e)))));
  const i = digests.indexOf(want);
  if (i < 0) throw new VerifyFailure("tee_reference_mismatch", `tee tier: the receipt references tee evidence ${want}, but the supplied evidence has digest ${digests.join(", ")}`, `${F}.digest`);
  return envs[i];
}

const SIMULATED_LABEL = "vouch simulated TEE: NOT HARDWARE, development only";

function fixedHex(s: string, n: number, field: string, bad: (m: string) => VerifyFailure): Uint8Array {
  if (/[A-Z]/.test(s)) throw bad(`${field} must be lowercase hex`);
  const b = hexDecode(s);
  if (!b || b.length !== n) throw bad(`${field} must be ${n} bytes of hex`);
  return b;
}

/** Simulated evidence (docs/tee.md "Simulated evidence"): canonical JSON signed by its own root. */
export function verifySimulatedStatement(bytes: Uint8Array): PlatformReport {
  const bad = (m: string) => new VerifyFailure("tee_not_authentic", `tee tier: simulated: evidence is not authentic: ${m}`, `${F}.evidence`);
  const text = utf8Decode(bytes);
  let ev: unknown;
  try {
    if (text === null) throw new Error("not UTF-8");
    ev = parseJson(text);
  } catch (e) {
    throw bad(`not a simulated statement: ${(e as Error).message}`);
  }
  const st = isObj(ev) ? ev.statement : undefined;
  const shapeOk =
    isObj(ev) && Object.keys(ev).length === 2 && typeof ev.signature === "string" && isObj(st) &&
    Object.keys(st).sort().join() === "label,measurement,report_data,root_key,timestamp_ms" &&
    typeof st.label === "string" && typeof st.root_key === "string" && typeof st.measurement === "string" && typeof st.report_data === "string" &&
    typeof st.timestamp_ms === "number" && Number.isSafeInteger(st.timestamp_ms) && st.timestamp_ms >= 0;
  if (!shapeOk) throw bad("not a simulated statement");
  const e = ev as { signature: string; statement: Record<string, string> & { timestamp_ms: number } };
  if (canonicalJson(e) !== text) throw bad("the statement is not in RFC 8785 canonical form");
  const s = e.statement;
  if (s.label !== SIMULATED_LABEL) throw bad(`label is ${JSON.stringify(s.label)}, not ${JSON.stringify(SIMULATED_LABEL)}`);
  const root = fixedHex(s.root_key, 32, "root_key", bad);
  if (!validEd25519Key(root)) throw bad("root_key is not an Ed25519 public key");
  const sig = b64decode(e.signature);
  if (!sig || sig.length !== 64) throw bad("signature is not 64 bytes of standard base64");
  if (!verifyStrict(sig, concat(utf8("vouch.tee.simulated.v1\0"), utf8(canonicalJson(s))), root))
    throw bad("the signature does not verify under the statement's root key");
  const measurement = fixedHex(s.measurement, 48, "measurement", bad);
  const reportData = fixedHex(s.report_data, 64, "report_data", bad);
  if (s.timestamp_ms > 253402300799999) throw bad("timestamp out of range");
  const time = new Date(s.timestamp_ms);
  return {
    platform: "simulated",
    measurements: new Map([["MEASUREMENT", hexEncode(measurement)]]),
    reportData,
    reportDataField: "report_data",
    evidenceTime: time,
    trustAssumption: `simulated TEE: development only, no hardware guarantee (self-signed by runtime root ${s.root_key}; self-reported MEASUREMENT=${hexEncode(measurement)}, ${formatTime(time)})`,
  };
}

export interface TeeCheckOptions {
  allowSimulated: boolean;
  time: Date;
  supplied: unknown[];
  expect: Record<string, string>;
}

/** `verify_bundle_tee`: the receipt's signature by its own key, then the envelope's checks. */
export function verifyBundleTee(
  receiptNodeKey: string,
  signingMessage: Uint8Array,
  signature: BundleSignature | undefined,
  evidence: Obj,
  opts: TeeCheckOptions,
): TeeVerdict {
  if (!signature) throw receiptErr("a tee receipt needs the attested key's signature over it (bundle.signature)", "signature");
  try {
    checkSignature(signingMessage, receiptNodeKey, signature, undefined, "receipt.node_key");
  } catch (e) {
    throw receiptErr((e as Error).message, (e as VerifyFailure).field);
  }
  if (!("tee" in evidence)) throw receiptErr('the bundle has no evidence["tee"]', F);
  const env = resolve(evidence.tee, opts.supplied);
  if (env.format !== "vouch.tee.v1") throw malformed(`format ${JSON.stringify(env.format)} is not vouch.tee.v1`, `${F}.format`);
  if (env.type === "simulated" && !opts.allowSimulated)
    throw new VerifyFailure(
      "tee_simulated_not_allowed",
      "tee tier: simulated tee evidence rejected: its root was made at runtime and proves nothing about hardware (allow it for development with --allow-simulated)",
      `${F}.type`,
    );
  if (env.evidence.length > Math.floor((64 * 1024) / 3) * 4 + 4) throw malformed(`"evidence" is ${env.evidence.length} base64 characters`, `${F}.evidence`);
  const bytes = b64decode(env.evidence);
  if (!bytes) throw malformed('"evidence" is not standard base64', `${F}.evidence`);
  let report: PlatformReport;
  switch (env.type) {
    case "aws-nitro":
      report = verifyNitroDocument(bytes);
      break;
    case "simulated":
      report = verifySimulatedStatement(bytes);
      break;
    case "intel-tdx":
    case "intel-sgx":
      if (env.collateral === undefined) throw malformed(`${env.type} evidence needs stored "collateral"`);
      if (env.collateral_time === undefined) throw malformed(`${env.type} evidence needs "collateral_time"`);
      throw new VerifyFailure("tier_uncheckable", `tee tier: ${env.type} evidence is not checked by the TypeScript verifier: check it with \`vouch verify\``, `${F}.type`);
    case "amd-sev-snp":
      if (!env.certs) throw malformed('amd-sev-snp evidence needs "certs" with the VCEK');
      throw new VerifyFailure("tier_uncheckable", "tee tier: amd-sev-snp evidence is not checked by the TypeScript verifier: check it with `vouch verify`", `${F}.type`);
  }
  // Time: the evidence may not be later than the verification time plus 5 minutes of skew.
  if (report.evidenceTime && report.evidenceTime.getTime() > opts.time.getTime() + 300_000)
    throw new VerifyFailure(
      "tee_from_the_future",
      `tee tier: evidence time ${formatTime(report.evidenceTime)} is after the verification time ${formatTime(opts.time)}`,
      `${F}.evidence`,
    );
  for (const name of Object.keys(opts.expect).sort()) {
    const want = opts.expect[name].trim().toLowerCase();
    const found = report.measurements.get(name);
    if (found === undefined)
      throw new VerifyFailure(
        "tee_measurement_unknown",
        `tee tier: ${report.platform}: the policy expects measurement ${name}, which this evidence does not have (it has ${[...report.measurements.keys()].sort().join(", ")})`,
        `${F}.evidence`,
      );
    if (found !== want)
      throw new VerifyFailure("tee_measurement_mismatch", `tee tier: ${report.platform}: measurement ${name} is ${found}, the policy expects ${want}`, `${F}.evidence`);
  }
  // Binding.
  if (env.binding.scheme !== "vouch.tee.binding.v1")
    throw bindingErr(`unknown binding scheme ${JSON.stringify(env.binding.scheme)}: this verifier knows vouch.tee.binding.v1`, `${F}.binding.scheme`);
  if (env.binding.node_key !== receiptNodeKey)
    throw new VerifyFailure(
      "tee_key_mismatch",
      `tee tier: binding: the evidence commits to node key ${env.binding.node_key}, but the receipt is signed by ${receiptNodeKey}`,
      `${F}.binding.node_key`,
    );
  let nonce: Uint8Array | undefined;
  if (env.binding.nonce !== undefined) {
    const n = hexDecode(env.binding.nonce);
    if (!n) throw malformed(`nonce ${JSON.stringify(env.binding.nonce.slice(0, 130))} is not hex`, `${F}.binding.nonce`);
    if (n.length < 1 || n.length > 64) throw malformed(`nonce must be 1 to 64 bytes, got ${n.length}`, `${F}.binding.nonce`);
    nonce = n;
  }
  const key = hexDecode(receiptNodeKey.slice(8))!;
  const expected = bindingReportData(key, nonce);
  const f = report.reportData;
  if (!f) throw bindingErr(`the evidence has no ${report.reportDataField}, so it does not commit to node key ${receiptNodeKey}`, `${F}.evidence`);
  if (f.length !== 64) throw bindingErr(`${report.reportDataField} is ${f.length} bytes, a Vouch binding is 64`, `${F}.evidence`);
  if (!equalBytes(f, expected))
    throw bindingErr(`${report.reportDataField} is ${hexEncode(f)}, but the binding of node key ${receiptNodeKey} is ${hexEncode(expected)}: the evidence was made for another key or nonce`, `${F}.evidence`);
  if (report.boundPublicKey) {
    const spki = concat(new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]), key);
    if (!equalBytes(report.boundPublicKey, spki)) throw bindingErr(`the document's public_key is ${hexEncode(report.boundPublicKey)}, not the SubjectPublicKeyInfo of node key ${receiptNodeKey}`, `${F}.evidence`);
  }
  if (report.boundNonce && !(nonce && equalBytes(nonce, report.boundNonce)))
    throw bindingErr(`the document's nonce field is ${hexEncode(report.boundNonce)}, but the binding names ${nonce ? hexEncode(nonce) : "no nonce"}`, `${F}.evidence`);
  const simulated = report.platform === "simulated";
  return {
    platform: report.platform,
    measurements: [...report.measurements.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
    trustAssumption: report.trustAssumption,
    nodeKey: receiptNodeKey,
    simulated,
    summary: simulated ? `tee: simulated — ${report.trustAssumption}` : `tee: ${report.trustAssumption} — node key ${receiptNodeKey} is held by that code`,
  };
}
