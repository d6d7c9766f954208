// A minimal DER reader for X.509 certificates (RFC 5280): enough to check a Nitro chain —
// the signed TBS bytes, the signature algorithm and value, validity, and the subject key.

export class DerError extends Error {}

export interface Tlv {
  tag: number;
  start: number; // offset of the tag byte
  body: Uint8Array;
  end: number; // offset after the value
}

export function readTlv(b: Uint8Array, pos: number): Tlv {
  if (pos + 2 > b.length) throw new DerError("truncated DER");
  const tag = b[pos];
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte DER tags are not used in certificates");
  let len = b[pos + 1];
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > b.length) throw new DerError("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i];
    if (len < 0x80 || (n > 1 && b[p] === 0)) throw new DerError("non-minimal DER length");
    p += n;
  }
  if (p + len > b.length) throw new DerError("DER value runs past its container");
  return { tag, start: pos, body: b.subarray(p, p + len), end: p + len };
}

export function children(t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = 0;
  while (p < t.body.length) {
    const c = readTlv(t.body, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

function oid(b: Uint8Array): string {
  const parts: number[] = [Math.floor(b[0] / 40), b[0] % 40];
  let v = 0;
  for (const x of b.subarray(1)) {
    v = v * 128 + (x & 0x7f);
    if (!(x & 0x80)) { parts.push(v); v = 0; }
  }
  return parts.join(".");
}

function time(t: Tlv): Date {
  const s = new TextDecoder().decode(t.body);
  let m: RegExpMatchArray | null;
  if (t.tag === 0x17 && (m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/))) {
    const yy = +m[1];
    return new Date(Date.UTC(yy < 50 ? 2000 + yy : 1900 + yy, +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  }
  if (t.tag === 0x18 && (m = s.match(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/)))
    return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  throw new DerError("bad certificate time");
}

export interface Certificate {
  tbs: Uint8Array; // the DER bytes the issuer signed
  sigAlg: string; // OID
  signature: Uint8Array; // DER ECDSA-Sig-Value
  notBefore: Date;
  notAfter: Date;
  keyAlg: string;
  keyCurve?: string;
  publicKey: Uint8Array; // SEC1 point
  subject: string;
}

export function parseCertificate(der: Uint8Array): Certificate {
  const cert = readTlv(der, 0);
  if (cert.tag !== 0x30 || cert.end !== der.length) throw new DerError("not a DER certificate");
  const [tbsT, algT, sigT, ...rest] = children(cert);
  if (!tbsT || !algT || !sigT || rest.length || tbsT.tag !== 0x30 || sigT.tag !== 0x03) throw new DerError("not an X.509 certificate");
  const tbsF = children(tbsT);
  let i = tbsF[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
  i += 1; // serialNumber
  i += 1; // signature AlgorithmIdentifier
  i += 1; // issuer
  const validity = tbsF[i++];
  const subjectT = tbsF[i++];
  const spki = tbsF[i++];
  if (!validity || !spki || validity.tag !== 0x30 || spki.tag !== 0x30) throw new DerError("not an X.509 TBSCertificate");
  const [nb, na] = children(validity);
  const [spkiAlg, spkiKey] = children(spki);
  const keyAlgF = children(spkiAlg);
  if (spkiKey.tag !== 0x03 || spkiKey.body[0] !== 0) throw new DerError("bad subject public key");
  const sigAlgF = children(algT);
  if (sigT.body[0] !== 0) throw new DerError("bad signature bit string");
  return {
    tbs: cert.body.subarray(tbsT.start, tbsT.end),
    sigAlg: oid(sigAlgF[0].body),
    signature: sigT.body.subarray(1),
    notBefore: time(nb),
    notAfter: time(na),
    keyAlg: oid(keyAlgF[0].body),
    keyCurve: keyAlgF[1]?.tag === 0x06 ? oid(keyAlgF[1].body) : undefined,
    publicKey: spkiKey.body.subarray(1),
    subject: subjectT ? new TextDecoder().decode(subjectT.body.filter((c) => c >= 0x20 && c < 0x7f)) : "",
  };
}
