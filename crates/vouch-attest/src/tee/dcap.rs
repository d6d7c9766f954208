//! Intel TDX and SGX DCAP quotes, verified offline by `dcap-qvl` against stored collateral.
//!
//! The quote's PCK chain, the QE report, the quote signature, the TCB info and QE identity
//! (with their chains and the CRLs) are all checked by `dcap-qvl` at the collateral time. The
//! root of all of it is Intel's SGX Root CA, pinned here by fingerprint: the copy that travels
//! in the collateral's issuer chain is accepted only if it is that certificate. Debug enclaves
//! and TDs are rejected here (with a precise reason) rather than inside `dcap-qvl`.

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::{EnclaveReport, Report, TDReport10};
use dcap_qvl::verify::QuoteVerifier;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use super::{Platform, PlatformReport, TeeError, format_time};

/// SHA-256 of the DER of "Intel SGX Root CA" (the DCAP/PCS root, valid 2018–2049).
pub const INTEL_SGX_ROOT_CA_SHA256: &str =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

fn auth(platform: Platform, reason: impl Into<String>) -> TeeError {
    TeeError::Authenticity {
        platform,
        reason: reason.into(),
    }
}

/// Verifies a DCAP quote with `collateral` (dcap-qvl's `QuoteCollateralV3` JSON) as of `at`.
/// `declared` is what the envelope claims; the returned report says what the quote is.
pub fn verify_quote(
    quote: &[u8],
    collateral: &serde_json::Value,
    at: OffsetDateTime,
    declared: Platform,
) -> Result<PlatformReport, TeeError> {
    let collateral: QuoteCollateralV3 = serde_json::from_value(collateral.clone())
        .map_err(|e| TeeError::Malformed(format!("Intel collateral: {e}")))?;
    let root = pinned_root(&collateral, declared)?;
    let secs = u64::try_from(at.unix_timestamp()).map_err(|_| {
        TeeError::Malformed(format!(
            "collateral time {} is before 1970",
            format_time(at)
        ))
    })?;

    // Debug is judged below so the error names it; everything else is dcap-qvl's.
    let verify_at = |secs: u64| {
        QuoteVerifier::new(root.clone())
            .allow_debug(true)
            .verify(quote, &collateral, secs)
    };
    let verified = match verify_at(secs) {
        Ok(v) => v,
        Err(e) => {
            let failure = super::sentence(&format!("{e:#}"));
            return Err(classify_failure(failure, at, &collateral, declared, |s| {
                verify_at(s).is_ok()
            }));
        }
    };

    let quote_chain =
        check_framing(quote).map_err(|m| auth(declared, format!("quote framing: {m}")))?;
    // dcap-qvl prefers a PCK chain stored in the collateral over the quote's own; then the
    // quote's copy must be the same certificates, or its bytes would go unchecked.
    if let Some(stored) = &collateral.pck_certificate_chain {
        let stored: Vec<Vec<u8>> = pem::parse_many(stored.as_bytes())
            .map_err(|e| {
                TeeError::Malformed(format!("collateral pck_certificate_chain is not PEM: {e}"))
            })?
            .iter()
            .map(|p| p.contents().to_vec())
            .collect();
        if stored != quote_chain {
            return Err(auth(
                declared,
                "the quote's PCK certificate chain differs from the collateral's",
            ));
        }
    }

    let (platform, measurements, debug) = match &verified.report {
        Report::SgxEnclave(r) => (Platform::IntelSgx, sgx_measurements(r), sgx_debug(r)),
        Report::TD10(r) => (Platform::IntelTdx, td_measurements(r, None), td_debug(r)),
        Report::TD15(r) => (
            Platform::IntelTdx,
            td_measurements(&r.base, Some(&r.mr_service_td)),
            td_debug(&r.base),
        ),
        Report::TD15Ex(r) => (
            Platform::IntelTdx,
            td_measurements(&r.base.base, Some(&r.base.mr_service_td)),
            td_debug(&r.base.base),
        ),
    };
    if let Some(reason) = debug {
        return Err(TeeError::Debug { platform, reason });
    }
    let report_data = match &verified.report {
        Report::SgxEnclave(r) => r.report_data.to_vec(),
        Report::TD10(r) => r.report_data.to_vec(),
        Report::TD15(r) => r.base.report_data.to_vec(),
        Report::TD15Ex(r) => r.base.base.report_data.to_vec(),
    };

    let advisories = if verified.advisory_ids.is_empty() {
        "none".to_string()
    } else {
        verified.advisory_ids.join(",")
    };
    let get = |k: &str| measurements.get(k).cloned().unwrap_or_default();
    let what = match platform {
        Platform::IntelSgx => format!(
            "Intel SGX hardware + MRENCLAVE={} MRSIGNER={}",
            get("MRENCLAVE"),
            get("MRSIGNER")
        ),
        _ => format!(
            "Intel TDX hardware + MRTD={} (RTMR0..3 in the measurements)",
            get("MRTD")
        ),
    };
    let trust_assumption = format!(
        "{what}; chain to the Intel SGX Root CA sha256:{INTEL_SGX_ROOT_CA_SHA256}, TCB {} (advisories: {advisories}) \
         per collateral judged at {}",
        verified.status,
        format_time(at)
    );
    let mut details = BTreeMap::new();
    details.insert("tcb_status".to_string(), verified.status.clone());
    details.insert("advisory_ids".to_string(), advisories);

    Ok(PlatformReport {
        platform,
        measurements,
        report_data: Some(report_data),
        report_data_field: "REPORTDATA",
        evidence_time: Some(at),
        trust_assumption,
        details,
        bound_public_key: None,
        bound_nonce: None,
    })
}

/// Says whether a quote that failed at `at` is forged or only out of date: when `at` lies outside
/// the collateral's own validity (its TCB info and QE identity, from issue date to next update),
/// the quote is verified again at the latest issue date; if it passes there, every signature
/// and chain holds and only the time is wrong. dcap-qvl's errors are text, so this asks the
/// verifier rather than reading its messages.
fn classify_failure(
    failure: String,
    at: OffsetDateTime,
    collateral: &QuoteCollateralV3,
    platform: Platform,
    passes_at: impl Fn(u64) -> bool,
) -> TeeError {
    let window = [
        signed_dates(&collateral.tcb_info),
        signed_dates(&collateral.qe_identity),
    ];
    let (Some(tcb), Some(qe)) = (&window[0], &window[1]) else {
        return auth(
            platform,
            format!("{failure} (collateral judged at {})", format_time(at)),
        );
    };
    let issued = tcb.0.max(qe.0);
    let valid_until = tcb.1.min(qe.1);
    let inside = at >= issued && at <= valid_until;
    let genuine = !inside
        && u64::try_from(issued.unix_timestamp())
            .ok()
            .is_some_and(passes_at);
    if genuine {
        TeeError::Expired {
            platform,
            reason: format!(
                "the Intel collateral was issued {} and is valid until {}, but the verification time \
                 is {}; the quote and collateral verify at their issue time: attach fresh collateral \
                 from Intel's PCS or a PCCS",
                format_time(issued),
                format_time(valid_until),
                format_time(at)
            ),
        }
    } else {
        auth(
            platform,
            format!("{failure} (collateral judged at {})", format_time(at)),
        )
    }
}

/// The issue date and next update of a collateral document (TCB info, QE identity: JSON with
/// `issueDate` and `nextUpdate`); `None` when they do not parse.
fn signed_dates(json: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let body: serde_json::Value = serde_json::from_str(json).ok()?;
    let date = |k: &str| super::parse_time(body.get(k)?.as_str()?, k).ok();
    Some((date("issueDate")?, date("nextUpdate")?))
}

/// Finds Intel's root in the collateral's issuer chains and accepts it only if it is the pinned
/// certificate.
fn pinned_root(collateral: &QuoteCollateralV3, platform: Platform) -> Result<Vec<u8>, TeeError> {
    let chains = [
        &collateral.tcb_info_issuer_chain,
        &collateral.qe_identity_issuer_chain,
        &collateral.pck_crl_issuer_chain,
    ];
    let mut seen = Vec::new();
    for chain in chains {
        let pems = pem::parse_many(chain.as_bytes()).map_err(|e| {
            TeeError::Malformed(format!("Intel collateral issuer chain is not PEM: {e}"))
        })?;
        for p in pems {
            let fp = hex::encode(Sha256::digest(p.contents()));
            if fp == INTEL_SGX_ROOT_CA_SHA256 {
                return Ok(p.contents().to_vec());
            }
            seen.push(fp);
        }
    }
    Err(auth(
        platform,
        format!(
            "the collateral's issuer chains do not contain the Intel SGX Root CA sha256:{INTEL_SGX_ROOT_CA_SHA256} \
             (found {})",
            if seen.is_empty() {
                "no certificates".to_string()
            } else {
                seen.join(", ")
            }
        ),
    ))
}

/// The parts of a quote no signature covers (lengths, certification-data types, the PEM text of
/// the PCK chain, the root's copy, padding) must be exactly what a quoting enclave writes, so
/// that any altered byte is rejected, not only the ones that matter to `dcap-qvl`. Returns the
/// DER certificates of the quote's PCK chain. Only quotes that embed the chain (certification
/// data type 5, what Linux guests get from the quote generation service) are accepted.
fn check_framing(quote: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut r = Reader { b: quote, pos: 0 };
    let version = r.u16()?;
    r.take(46)?; // rest of the header
    match version {
        3 => {
            r.take(384)?; // SGX enclave report
        }
        4 => {
            r.take(584)?; // TD report 1.0
        }
        5 => {
            r.u16()?; // body type
            let size = r.u32()? as usize;
            r.take(size)?;
        }
        v => return Err(format!("unknown quote version {v}")),
    }
    let sig_len = r.u32()? as usize;
    let sig_data = r.take(sig_len)?;
    if let Some(i) = r.rest().iter().position(|b| *b != 0) {
        return Err(format!(
            "byte {} after the signature data is not zero padding",
            r.pos + i
        ));
    }
    let base = r.pos - sig_len;
    let mut s = Reader {
        b: sig_data,
        pos: 0,
    };
    s.take(128)?; // ECDSA signature and attestation key
    if version == 3 {
        qe_part(&mut s, base)
    } else {
        let kind = s.u16()?;
        if kind != 6 {
            return Err(format!(
                "certification data type is {kind}, a quoting enclave writes 6 (QE report)"
            ));
        }
        let size = s.u32()? as usize;
        if size != s.rest().len() {
            return Err(format!(
                "certification data declares {size} bytes, {} follow",
                s.rest().len()
            ));
        }
        qe_part(&mut s, base)
    }
}

/// QE report, its signature, QE authentication data, then the PCK chain to the end.
fn qe_part(s: &mut Reader<'_>, base: usize) -> Result<Vec<Vec<u8>>, String> {
    s.take(384 + 64)?;
    let auth = s.u16()? as usize;
    s.take(auth)?;
    let kind = s.u16()?;
    if kind != 5 {
        return Err(format!(
            "PCK certification data type is {kind}, expected 5 (PEM chain)"
        ));
    }
    let size = s.u32()? as usize;
    if size != s.rest().len() {
        return Err(format!(
            "the PCK chain declares {size} bytes, {} follow",
            s.rest().len()
        ));
    }
    canonical_pem_chain(s.rest())
        .map_err(|(i, m)| format!("PCK chain byte {}: {m}", base + s.pos + i))
}

/// The chain as Intel's quoting enclave writes it: canonical PEM blocks (64-column base64, LF),
/// optionally NUL-terminated, ending in the pinned root.
fn canonical_pem_chain(data: &[u8]) -> Result<Vec<Vec<u8>>, (usize, String)> {
    let text = data.strip_suffix(b"\0").unwrap_or(data);
    let pems = pem::parse_many(text).map_err(|e| (0, format!("not PEM: {e}")))?;
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let canonical: Vec<u8> = pems
        .iter()
        .flat_map(|p| pem::encode_config(p, config).into_bytes())
        .collect();
    if let Some(i) = canonical.iter().zip(text).position(|(a, b)| a != b) {
        return Err((i, "not canonical PEM".into()));
    }
    if canonical.len() != text.len() {
        return Err((
            canonical.len().min(text.len()),
            "text outside the PEM blocks".into(),
        ));
    }
    match pems.last() {
        Some(root) if hex::encode(Sha256::digest(root.contents())) == INTEL_SGX_ROOT_CA_SHA256 => {
            Ok(pems.iter().map(|p| p.contents().to_vec()).collect())
        }
        _ => Err((
            text.len(),
            "the chain does not end in the Intel SGX Root CA".into(),
        )),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| {
                format!(
                    "{n} bytes needed at offset {}, {} left",
                    self.pos,
                    self.b.len().saturating_sub(self.pos)
                )
            })?;
        let out = &self.b[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.pos.min(self.b.len())..]
    }
}

fn td_measurements(r: &TDReport10, mr_service_td: Option<&[u8; 48]>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("MRTD", &r.mr_td[..]),
        ("RTMR0", &r.rt_mr0[..]),
        ("RTMR1", &r.rt_mr1[..]),
        ("RTMR2", &r.rt_mr2[..]),
        ("RTMR3", &r.rt_mr3[..]),
        ("MRCONFIGID", &r.mr_config_id[..]),
        ("MROWNER", &r.mr_owner[..]),
        ("MROWNERCONFIG", &r.mr_owner_config[..]),
        ("MRSEAM", &r.mr_seam[..]),
        ("MRSIGNERSEAM", &r.mr_signer_seam[..]),
        ("TDATTRIBUTES", &r.td_attributes[..]),
        ("XFAM", &r.xfam[..]),
        ("TEETCBSVN", &r.tee_tcb_svn[..]),
    ] {
        m.insert(k.to_string(), hex::encode(v));
    }
    if let Some(s) = mr_service_td {
        m.insert("MRSERVICETD".to_string(), hex::encode(s));
    }
    m
}

fn sgx_measurements(r: &EnclaveReport) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("MRENCLAVE".to_string(), hex::encode(r.mr_enclave));
    m.insert("MRSIGNER".to_string(), hex::encode(r.mr_signer));
    m.insert(
        "ISVPRODID".to_string(),
        hex::encode(r.isv_prod_id.to_be_bytes()),
    );
    m.insert("ISVSVN".to_string(), hex::encode(r.isv_svn.to_be_bytes()));
    m.insert("ATTRIBUTES".to_string(), hex::encode(r.attributes));
    m.insert("CPUSVN".to_string(), hex::encode(r.cpu_svn));
    m
}

/// TD attributes byte 0 is TUD ("TD under debug"): any bit set makes the TD untrusted.
fn td_debug(r: &TDReport10) -> Option<String> {
    let tud = r.td_attributes[0];
    (tud != 0).then(|| {
        format!(
            "TD attributes TUD byte is {tud:#04x}{}: the host can inspect the TD",
            if tud & 1 != 0 { " (DEBUG bit set)" } else { "" }
        )
    })
}

/// SGX ATTRIBUTES bit 1 is DEBUG.
fn sgx_debug(r: &EnclaveReport) -> Option<String> {
    (r.attributes[0] & 0x02 != 0).then(|| {
        "enclave ATTRIBUTES has the DEBUG bit set: the host can read enclave memory".to_string()
    })
}
