// AWS Nitro attestation documents (docs/tee.md, crates/vouch-attest/src/tee/nitro.rs): a
// COSE_Sign1 (RFC 9052) signed with ES384 by a leaf certificate that chains to the pinned
// AWS Nitro Enclaves root G1; every certificate judged at the document's own timestamp.
import { p384 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { hexEncode } from "./bytes.js";
import { decodeCbor, encodeArray, mapGet, type Cbor } from "./cbor.js";
import { parseCertificate, type Certificate } from "./der.js";
import { VerifyFailure } from "./fail.js";
import type { PlatformReport } from "./tee.js";

export const AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";
const ECDSA_SHA384 = "1.2.840.10045.4.3.3";
const EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const SECP384R1 = "1.3.132.0.34";
const ES384 = -35n;

const auth = (reason: string) => new VerifyFailure("tee_not_authentic", `tee tier: aws-nitro: evidence is not authentic: ${reason}`, "evidence.tee.evidence");

function bytesOf(c: Cbor | undefined, what: string, optional = false): Uint8Array | undefined {
  if (c === undefined || (c.t === "simple" && c.v === "null")) {
    if (optional) return undefined;
    throw auth(`the payload is not a Nitro attestation document (missing ${what})`);
  }
  if (c.t !== "bytes") throw auth(`the payload is not a Nitro attestation document (${what} is not a byte string)`);
  return c.v;
}

function formatTime(d: Date): string {
  // The `time` crate's RFC 3339: fractional seconds only when non-zero, trailing zeros dropped
  // (910 ms is ".91").
  const iso = d.toISOString();
  const ms = d.getUTCMilliseconds();
  if (ms === 0) return iso.slice(0, -5) + "Z";
  return iso.slice(0, -5) + "." + String(ms).padStart(3, "0").replace(/0+$/, "") + "Z";
}

// Every document of an enclave carries the same CA bundle, and a P-384 verification in
// JavaScript costs milliseconds: remember certificates already seen to be signed by an issuer
// key (keyed by a hash of both, so only that exact pair is ever skipped).
const verifiedCerts = new Map<string, true>();
function certSignedBy(der: Uint8Array, c: Certificate, issuerKey: Uint8Array): boolean {
  const key = hexEncode(sha256(new Uint8Array([...sha256(issuerKey), ...sha256(der)])));
  if (verifiedCerts.has(key)) return true;
  let ok = false;
  try {
    ok = p384.verify(c.signature, c.tbs, issuerKey, { format: "der", lowS: false });
  } catch {
    ok = false;
  }
  if (ok) {
    if (verifiedCerts.size >= 256) verifiedCerts.clear();
    verifiedCerts.set(key, true);
  }
  return ok;
}

export function verifyNitroDocument(cose: Uint8Array): PlatformReport {
  let sign1: Cbor;
  try {
    sign1 = decodeCbor(cose);
  } catch (e) {
    throw auth(`not a COSE_Sign1 structure: ${(e as Error).message}`);
  }
  if (sign1.t === "tag" && sign1.tag === 18n) sign1 = sign1.v;
  if (sign1.t !== "array" || sign1.v.length !== 4) throw auth("not a COSE_Sign1 structure");
  const [protectedC, unprotectedC, payloadC, sigC] = sign1.v;
  if (protectedC.t !== "bytes" || unprotectedC.t !== "map" || sigC.t !== "bytes" || !(payloadC.t === "bytes" || (payloadC.t === "simple" && payloadC.v === "null")))
    throw auth("not a COSE_Sign1 structure");
  let prot: Cbor;
  try {
    prot = protectedC.v.length === 0 ? { t: "map", v: [] } : decodeCbor(protectedC.v);
  } catch {
    throw auth("not a COSE_Sign1 structure: bad protected header");
  }
  const alg = mapGet(prot, 1);
  if (!alg || alg.t !== "nint" || alg.v !== ES384) throw auth("the COSE algorithm is not ES384; Nitro documents are signed with ES384");
  if (payloadC.t !== "bytes") throw auth("the COSE_Sign1 has no payload");
  const payload = payloadC.v;
  let doc: Cbor;
  try {
    doc = decodeCbor(payload);
  } catch (e) {
    throw auth(`the payload is not a Nitro attestation document (its CBOR does not decode: ${(e as Error).message})`);
  }
  if (doc.t !== "map") throw auth("the payload is not a Nitro attestation document");
  const moduleId = mapGet(doc, "module_id");
  const digestC = mapGet(doc, "digest");
  const ts = mapGet(doc, "timestamp");
  const pcrsC = mapGet(doc, "pcrs");
  const cabundleC = mapGet(doc, "cabundle");
  if (moduleId?.t !== "text" || moduleId.v === "" || digestC?.t !== "text" || !["SHA256", "SHA384", "SHA512"].includes(digestC.v) || ts?.t !== "uint" || pcrsC?.t !== "map" || cabundleC?.t !== "array")
    throw auth("the payload is not a Nitro attestation document");
  const certificate = bytesOf(mapGet(doc, "certificate"), "certificate")!;
  const cabundle = cabundleC.v.map((c, i) => bytesOf(c, `cabundle[${i}]`)!);
  const publicKey = bytesOf(mapGet(doc, "public_key"), "public_key", true);
  const userData = bytesOf(mapGet(doc, "user_data"), "user_data", true);
  const nonce = bytesOf(mapGet(doc, "nonce"), "nonce", true);
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of pcrsC.v) {
    if (k.t !== "uint" || k.v > 31n || v.t !== "bytes" || ![32, 48, 64].includes(v.v.length)) throw auth("the document's PCRs are malformed");
    pcrs.set(Number(k.v), v.v);
  }
  if (pcrs.size === 0) throw auth("the document has no PCRs");
  if (ts.v > 8_640_000_000_000_000n) throw auth("document timestamp out of range");
  const docTime = new Date(Number(ts.v));
  if (cabundle.length === 0) throw auth("the document's CA bundle is empty");
  const rootFp = hexEncode(sha256(cabundle[0]));
  if (rootFp !== AWS_NITRO_ROOT_SHA256)
    throw auth(`the chain's root certificate has SHA-256 ${rootFp}, not the AWS Nitro root ${AWS_NITRO_ROOT_SHA256}`);
  // The chain root → … → leaf, each certificate valid at the document's second and signed by
  // the one before it with ECDSA P-384 / SHA-384.
  const at = new Date(Math.floor(Number(ts.v) / 1000) * 1000);
  const chain: Certificate[] = [];
  for (const [i, der] of [...cabundle, certificate].entries()) {
    let c: Certificate;
    try {
      c = parseCertificate(der);
    } catch (e) {
      throw auth(`certificate ${i} does not parse: ${(e as Error).message}`);
    }
    if (c.keyAlg !== EC_PUBLIC_KEY || c.keyCurve !== SECP384R1) throw auth(`certificate ${i} does not hold a P-384 key`);
    if (at < c.notBefore) throw auth(`certificate ${i} (${c.subject}) is valid only from ${formatTime(c.notBefore)}, after the document time ${formatTime(at)}`);
    if (at > c.notAfter) throw auth(`certificate ${i} (${c.subject}) expired at ${formatTime(c.notAfter)} before the document time ${formatTime(at)}`);
    const issuer = i === 0 ? c : chain[i - 1];
    const ok = c.sigAlg === ECDSA_SHA384 && certSignedBy(der, c, issuer.publicKey);
    if (!ok) throw auth(`certificate ${i} (${c.subject}) is not signed by its issuer`);
    chain.push(c);
  }
  const leaf = chain[chain.length - 1];
  const toBeSigned = encodeArray(["Signature1", protectedC.v, new Uint8Array(0), payload]);
  let sigOk = false;
  try {
    sigOk = sigC.v.length === 96 && p384.verify(sigC.v, toBeSigned, leaf.publicKey, { format: "compact", lowS: false });
  } catch {
    sigOk = false;
  }
  if (!sigOk) throw auth("the COSE ES384 signature does not verify under the leaf certificate");
  const pcr0 = pcrs.get(0);
  if (!pcr0) throw new VerifyFailure("tee_debug_mode", "tee tier: aws-nitro: debug-mode TEE rejected: the document has no PCR0", "evidence.tee.evidence");
  if (pcr0.every((b) => b === 0))
    throw new VerifyFailure(
      "tee_debug_mode",
      "tee tier: aws-nitro: debug-mode TEE rejected: PCR0 is all zeros: the enclave runs in debug mode, where its parent instance can read its memory",
      "evidence.tee.evidence",
    );
  const measurements = new Map<string, string>();
  for (const [i, v] of [...pcrs.entries()].sort((a, b) => a[0] - b[0]))
    if (v.some((b) => b !== 0)) measurements.set(`PCR${i}`, hexEncode(v));
  const get = (k: string) => measurements.get(k) ?? "absent";
  return {
    platform: "aws-nitro",
    measurements,
    reportData: userData,
    reportDataField: "user_data",
    evidenceTime: docTime,
    trustAssumption: `AWS Nitro hardware + PCR0=${get("PCR0")} (PCR1=${get("PCR1")}, PCR2=${get("PCR2")}); chain to the AWS Nitro root sha256:${AWS_NITRO_ROOT_SHA256}, document signed ${formatTime(docTime)}`,
    boundPublicKey: publicKey,
    boundNonce: nonce,
  };
}
export { formatTime };
