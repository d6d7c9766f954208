//! AMD SEV-SNP attestation reports, verified offline with the `sev` crate: VCEK → ASK → ARK, the
//! ARK pinned here (Milan, Genoa and Turin, by fingerprint), then the report's ECDSA P-384
//! signature under the VCEK.
//!
//! Around `sev` this module adds: the report must re-encode to exactly the bytes given (the
//! parser skips reserved fields and the signature covers a re-encoding, so without this a flipped
//! reserved byte would pass), certificate validity at the verification time, the VCEK's chip id
//! and TCB extensions must match the report, and guests whose policy allows debugging are
//! rejected. SNP reports carry no time of their own.

use sev::certs::snp::{Certificate, Chain, Verifiable, builtin, ca};
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::TcbVersion;
use sev::parser::ByteParser;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use super::{Platform, PlatformReport, TeeError, format_time};

/// Size of an SNP attestation report (all versions so far).
pub const REPORT_LEN: usize = 1184;

/// The AMD product lines whose ARK this crate pins: name, SHA-256 of the ARK's DER, and the
/// `sev` crate's copies of the ARK and ASK (checked against the fingerprint before use).
type CertFn = fn() -> std::io::Result<Certificate>;
const PRODUCTS: [(&str, &str, CertFn, CertFn); 3] = [
    (
        "Milan",
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        builtin::milan::ark,
        builtin::milan::ask,
    ),
    (
        "Genoa",
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        builtin::genoa::ark,
        builtin::genoa::ask,
    ),
    (
        "Turin",
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        builtin::turin::ark,
        builtin::turin::ask,
    ),
];

/// The pinned ARK fingerprints by product line (SHA-256 of the DER).
pub fn pinned_ark_fingerprints() -> [(&'static str, &'static str); 3] {
    PRODUCTS.map(|(name, fp, _, _)| (name, fp))
}

const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";
const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";

fn auth(reason: impl Into<String>) -> TeeError {
    TeeError::Authenticity {
        platform: Platform::AmdSevSnp,
        reason: reason.into(),
    }
}

/// Verifies a raw SNP report with its VCEK (DER) and optionally an ASK (DER; the pinned ones
/// are tried otherwise), with certificate validity judged at `at`.
pub fn verify_report(
    report_bytes: &[u8],
    vcek_der: &[u8],
    ask_der: Option<&[u8]>,
    at: OffsetDateTime,
) -> Result<PlatformReport, TeeError> {
    if report_bytes.len() != REPORT_LEN {
        return Err(auth(format!(
            "an SNP report is {REPORT_LEN} bytes, this one is {}",
            report_bytes.len()
        )));
    }
    let report = AttestationReport::from_bytes(report_bytes)
        .map_err(|e| auth(format!("the report does not parse: {}", sev_text(&e))))?;
    let reencoded = report
        .to_bytes()
        .map_err(|e| auth(format!("the report does not re-encode: {}", sev_text(&e))))?;
    if let Some(i) = reencoded.iter().zip(report_bytes).position(|(a, b)| a != b) {
        return Err(auth(format!(
            "byte {i:#x} of the report is {:#04x} where a well-formed report has {:#04x} (reserved \
             or non-canonical field)",
            report_bytes[i], reencoded[i]
        )));
    }
    // r and s are 72-byte little-endian fields holding 48-byte P-384 values; the verifier reads
    // only the low 48 bytes, so the rest must be zero for the bytes to be the signed ones.
    let sig = &report_bytes[0x2a0..0x2a0 + 144];
    for (name, field) in [("r", &sig[..72]), ("s", &sig[72..])] {
        if let Some(i) = field[48..].iter().position(|b| *b != 0) {
            return Err(auth(format!(
                "byte {:#x} of the report is in the unused top of signature {name} and must be zero",
                0x2a0 + if name == "s" { 72 } else { 0 } + 48 + i
            )));
        }
    }
    if report.sig_algo != 1 {
        return Err(auth(format!(
            "signature algorithm {} is not 1 (ECDSA P-384 with SHA-384)",
            report.sig_algo
        )));
    }

    let vcek =
        Certificate::from_der(vcek_der).map_err(|e| auth(format!("VCEK: {}", sev_text(&e))))?;
    let supplied_ask = ask_der
        .map(Certificate::from_der)
        .transpose()
        .map_err(|e| auth(format!("ASK: {}", sev_text(&e))))?;

    // The report signature first (one ECDSA check), then the RSA chain above the VCEK.
    (&vcek, &report).verify().map_err(|e| {
        auth(format!(
            "the report signature does not verify under the VCEK: {}",
            sev_text(&e)
        ))
    })?;
    let (product, chain) = find_chain(&vcek, supplied_ask.as_ref())?;
    for (name, cert) in [
        ("VCEK", &chain.vek),
        ("ASK", &chain.ca.ask),
        ("ARK", &chain.ca.ark),
    ] {
        check_certificate(name, cert, at)?;
    }
    check_vcek_matches(&chain.vek, &report)?;

    if let Some(reason) = debug_reason(&report) {
        return Err(TeeError::Debug {
            platform: Platform::AmdSevSnp,
            reason,
        });
    }

    let mut measurements = BTreeMap::new();
    measurements.insert("MEASUREMENT".to_string(), hex::encode(report.measurement));
    measurements.insert("HOST_DATA".to_string(), hex::encode(report.host_data));
    measurements.insert(
        "ID_KEY_DIGEST".to_string(),
        hex::encode(report.id_key_digest),
    );
    measurements.insert(
        "AUTHOR_KEY_DIGEST".to_string(),
        hex::encode(report.author_key_digest),
    );
    measurements.insert("FAMILY_ID".to_string(), hex::encode(report.family_id));
    measurements.insert("IMAGE_ID".to_string(), hex::encode(report.image_id));
    measurements.insert(
        "POLICY".to_string(),
        hex::encode(report.policy.0.to_le_bytes()),
    );
    measurements.insert("GUEST_SVN".to_string(), report.guest_svn.to_string());
    measurements.insert("VMPL".to_string(), report.vmpl.to_string());

    let mut details = BTreeMap::new();
    details.insert("product".to_string(), product.to_string());
    details.insert("report_version".to_string(), report.version.to_string());
    details.insert("reported_tcb".to_string(), tcb_text(&report.reported_tcb));
    details.insert("chip_id".to_string(), hex::encode(report.chip_id));

    let trust_assumption = format!(
        "AMD SEV-SNP hardware + MEASUREMENT={} (VMPL {}); chain VCEK → ASK → ARK-{product} (pinned), \
         reported TCB {}",
        hex::encode(report.measurement),
        report.vmpl,
        tcb_text(&report.reported_tcb)
    );

    Ok(PlatformReport {
        platform: Platform::AmdSevSnp,
        measurements,
        report_data: Some(report.report_data.to_vec()),
        report_data_field: "REPORT_DATA",
        evidence_time: None,
        trust_assumption,
        details,
        bound_public_key: None,
        bound_nonce: None,
    })
}

/// Tries each pinned ARK (with the supplied ASK, or the pinned ASK of the same product) until
/// one chain verifies down to the VCEK.
fn find_chain(
    vcek: &Certificate,
    ask: Option<&Certificate>,
) -> Result<(&'static str, Chain), TeeError> {
    let mut failures = Vec::new();
    for (product, ark_fp, ark, builtin_ask) in PRODUCTS {
        let ark = ark().map_err(|e| {
            auth(format!(
                "pinned ARK-{product} does not load: {}",
                sev_text(&e)
            ))
        })?;
        let fp = ark
            .to_der()
            .map(|d| hex::encode(Sha256::digest(d)))
            .unwrap_or_default();
        if fp != ark_fp {
            return Err(auth(format!(
                "the sev crate's ARK-{product} has SHA-256 {fp}, not the pinned {ark_fp}"
            )));
        }
        let ask = match ask {
            Some(a) => a.clone(),
            None => builtin_ask().map_err(|e| {
                auth(format!(
                    "pinned ASK-{product} does not load: {}",
                    sev_text(&e)
                ))
            })?,
        };
        let chain = Chain {
            ca: ca::Chain { ark, ask },
            vek: vcek.clone(),
        };
        match (&chain).verify() {
            Ok(_) => return Ok((product, chain)),
            Err(e) => failures.push(format!("{product}: {}", sev_text(&e))),
        }
    }
    Err(auth(format!(
        "the VCEK does not chain to a pinned AMD ARK ({})",
        failures.join("; ")
    )))
}

fn check_certificate(name: &str, cert: &Certificate, at: OffsetDateTime) -> Result<(), TeeError> {
    let x509: x509_cert::Certificate = cert.clone().into();
    // The outer algorithm is outside the signed part; RFC 5280 requires it to repeat the signed
    // one, and `sev` reads neither's parameters.
    if x509.signature_algorithm != x509.tbs_certificate.signature {
        return Err(auth(format!(
            "the {name} certificate's signatureAlgorithm differs from the one inside its signed part"
        )));
    }
    if x509.signature.unused_bits() != 0 {
        return Err(auth(format!(
            "the {name} certificate's signature BIT STRING is not whole bytes"
        )));
    }
    let v = &x509.tbs_certificate.validity;
    let to_time = |t: &x509_cert::time::Time| {
        OffsetDateTime::from_unix_timestamp(
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX),
        )
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    let (from, until) = (to_time(&v.not_before), to_time(&v.not_after));
    if at < from || at > until {
        // Checked after the chain and signatures: the certificate is genuine, only out of date.
        return Err(TeeError::Expired {
            platform: Platform::AmdSevSnp,
            reason: format!(
                "the {name} certificate is valid from {} to {}, not at the verification time {}",
                format_time(from),
                format_time(until),
                format_time(at)
            ),
        });
    }
    Ok(())
}

/// The VCEK is issued for one chip at one TCB: its hwID and SPL extensions must be the report's.
fn check_vcek_matches(vcek: &Certificate, report: &AttestationReport) -> Result<(), TeeError> {
    let x509: x509_cert::Certificate = vcek.clone().into();
    let exts = x509.tbs_certificate.extensions.unwrap_or_default();
    let ext = |oid: &str| {
        exts.iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes())
    };

    if report.chip_id.iter().any(|b| *b != 0)
        && let Some(v) = ext(OID_HWID)
    {
        // hwID is an OCTET STRING (04 40 ‖ 64 bytes) or the 64 raw bytes.
        let id = if v.len() == 66 && v[0] == 0x04 && v[1] == 0x40 {
            &v[2..]
        } else {
            v
        };
        if id != report.chip_id.as_slice() {
            return Err(auth(format!(
                "the VCEK was issued for chip {}, the report comes from chip {}",
                hex::encode(id),
                hex::encode(report.chip_id)
            )));
        }
    }
    let tcb = &report.reported_tcb;
    let mut expected = vec![
        ("blSPL", OID_BL_SPL, tcb.bootloader),
        ("teeSPL", OID_TEE_SPL, tcb.tee),
        ("snpSPL", OID_SNP_SPL, tcb.snp),
        ("ucodeSPL", OID_UCODE_SPL, tcb.microcode),
    ];
    if let Some(fmc) = tcb.fmc {
        expected.push(("fmcSPL", OID_FMC_SPL, fmc));
    }
    for (name, oid, want) in expected {
        if let Some(v) = ext(oid) {
            let got = der_small_uint(v).ok_or_else(|| {
                auth(format!(
                    "the VCEK's {name} extension is not a small DER INTEGER"
                ))
            })?;
            if got != u64::from(want) {
                return Err(auth(format!(
                    "the VCEK certifies {name} {got}, but the report's reported TCB has {want}"
                )));
            }
        }
    }
    Ok(())
}

/// The `sev` crate's error as a sentence (it appends inner errors' Rust debug text).
fn sev_text(e: &std::io::Error) -> String {
    super::sentence(&e.to_string())
}

/// Guests whose policy allows debugging let the hypervisor read and write their memory.
fn debug_reason(report: &AttestationReport) -> Option<String> {
    report.policy.debug_allowed().then(|| {
        "the guest policy allows debugging (POLICY bit 19): the hypervisor can read guest memory".to_string()
    })
}

/// A DER INTEGER of at most 8 content bytes, non-negative.
fn der_small_uint(v: &[u8]) -> Option<u64> {
    let (&tag, rest) = v.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x02
        || usize::from(len) != body.len()
        || body.is_empty()
        || body.len() > 9
        || body[0] & 0x80 != 0
    {
        return None;
    }
    let body = if body.len() == 9 {
        if body[0] != 0 {
            return None;
        }
        &body[1..]
    } else {
        body
    };
    Some(body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn tcb_text(t: &TcbVersion) -> String {
    let fmc = t.fmc.map(|f| format!("fmc {f}, ")).unwrap_or_default();
    format!(
        "{fmc}bootloader {}, tee {}, snp {}, microcode {}",
        t.bootloader, t.tee, t.snp, t.microcode
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const REPORT_HEX: &str = include_str!("../../fixtures/sev-snp/report_milan.hex");
    const VCEK: &[u8] = include_bytes!("../../fixtures/sev-snp/vcek_milan.der");

    fn report() -> AttestationReport {
        let bytes = hex::decode(REPORT_HEX.trim()).unwrap();
        AttestationReport::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn vcek_must_be_for_the_reporting_chip_and_tcb() {
        let vcek = Certificate::from_der(VCEK).unwrap();
        assert!(check_vcek_matches(&vcek, &report()).is_ok());
        let mut r = report();
        r.chip_id[0] ^= 1;
        let e = check_vcek_matches(&vcek, &r).unwrap_err().to_string();
        assert!(e.contains("issued for chip"), "{e}");
        let mut r = report();
        r.reported_tcb.microcode += 1;
        let e = check_vcek_matches(&vcek, &r).unwrap_err().to_string();
        assert!(e.contains("ucodeSPL 115"), "{e}");
        let mut r = report();
        r.reported_tcb.snp = 0;
        let e = check_vcek_matches(&vcek, &r).unwrap_err().to_string();
        assert!(e.contains("snpSPL 8"), "{e}");
    }

    #[test]
    fn sev_errors_lose_their_debug_text() {
        let e = std::io::Error::other(
            "VEK does not sign the attestation report: signature::Error { source: None }",
        );
        assert_eq!(sev_text(&e), "VEK does not sign the attestation report");
        let e = std::io::Error::other("invalid PEM: unexpected end of input");
        assert_eq!(sev_text(&e), "invalid PEM: unexpected end of input");
    }

    #[test]
    fn debug_policy_is_detected() {
        let mut r = report();
        assert_eq!(debug_reason(&r), None);
        r.policy.set_debug_allowed(true);
        assert!(debug_reason(&r).unwrap().contains("bit 19"));
    }

    #[test]
    fn der_small_uint_reads_integers() {
        assert_eq!(der_small_uint(&[2, 1, 3]), Some(3));
        assert_eq!(der_small_uint(&[2, 1, 0x73]), Some(115));
        assert_eq!(der_small_uint(&[2, 2, 0, 0x80]), Some(128));
        assert_eq!(der_small_uint(&[2, 1, 0x80]), None);
        assert_eq!(der_small_uint(&[4, 1, 3]), None);
        assert_eq!(der_small_uint(&[2, 2, 3]), None);
        assert_eq!(der_small_uint(&[]), None);
    }
}
