//! The `tee` verifiers against REAL vendor evidence, copied as data into `fixtures/`:
//!
//! - `fixtures/nitro/`: `attestation.cose` and its DER chain `0.der`…`4.der`, from the tests of
//!   the `nitro_attest` crate (github.com/aws-nitro-enclaves/nitro-attest,
//!   `tests/fixtures/`, as published in nitro_attest 0.2.0). A real document from an
//!   eu-central-1 enclave, 2025-01-06, with no user_data.
//! - `fixtures/dcap/`: `tdx_quote`, `sgx_quote` and their `*_collateral.json`, from
//!   github.com/Phala-Network/dcap-qvl `sample/` (commit 9bffe30b4da5). Collateral issued
//!   2025-06-19, next update 2025-07-19. Also `tdx_quote_td15ex` (a TDX 1.5 quote v5) with
//!   its collateral (issued 2026-10-07) from the same `sample/` folder as published in
//!   dcap-qvl 0.7.1.
//! - `fixtures/sev-snp/`: `report_milan.hex`, `vcek_milan.der`, `cert_chain_milan` from
//!   github.com/virtee/sev `tests/certs_data/` (commit 9cf2adbffa20): a Milan report and the
//!   chip's VCEK.
//!
//! None of these commit to a Vouch key, so each test checks authenticity, time and policy on
//! the platform verifier, then checks that the full entry point rejects the evidence at the
//! binding step with a precise reason. Binding success is tested on simulated evidence
//! (`tee_simulated.rs`). Flipping bytes: a spread of positions here; every position in
//! `every_byte_flip_is_rejected` (ignored; run `cargo test -p vouch-attest --release --test
//! tee_real_evidence -- --ignored`).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vouch_attest::tee::*;
use vouch_core::NodeKey;

const NITRO_DOC: &[u8] = include_bytes!("../fixtures/nitro/attestation.cose");
const NITRO_CHAIN: [&[u8]; 5] = [
    include_bytes!("../fixtures/nitro/0.der"),
    include_bytes!("../fixtures/nitro/1.der"),
    include_bytes!("../fixtures/nitro/2.der"),
    include_bytes!("../fixtures/nitro/3.der"),
    include_bytes!("../fixtures/nitro/4.der"),
];
const TDX_QUOTE: &[u8] = include_bytes!("../fixtures/dcap/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("../fixtures/dcap/tdx_quote_collateral.json");
const TD15_QUOTE: &[u8] = include_bytes!("../fixtures/dcap/tdx_quote_td15ex");
const TD15_COLLATERAL: &[u8] = include_bytes!("../fixtures/dcap/tdx_quote_td15ex_collateral.json");
/// Inside the TDX 1.5 collateral's validity (issued 2026-10-07/08, next update 2026-11-06).
const TD15_COLLATERAL_TIME: &str = "2026-10-20T00:00:00Z";
const SGX_QUOTE: &[u8] = include_bytes!("../fixtures/dcap/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("../fixtures/dcap/sgx_quote_collateral.json");
const SNP_REPORT_HEX: &str = include_str!("../fixtures/sev-snp/report_milan.hex");
const SNP_VCEK: &[u8] = include_bytes!("../fixtures/sev-snp/vcek_milan.der");
const SNP_CHAIN_PEM: &str = include_str!("../fixtures/sev-snp/cert_chain_milan");

/// The day these tests were written; every fixture's short-lived certificates are expired by then.
const TODAY: &str = "2026-11-25T00:00:00Z";
/// Inside the Intel collateral's validity (issued 2025-06-19, next update 2025-07-19).
const COLLATERAL_TIME: &str = "2025-07-01T00:00:00Z";

fn t(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

fn sys(s: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t(s).unix_timestamp() as u64)
}

fn key() -> NodeKey {
    vouch_attest::NodeSigner::from_seed([42; 32]).public_key()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn snp_report() -> Vec<u8> {
    hex::decode(SNP_REPORT_HEX.trim()).unwrap()
}

fn envelope(platform: Platform, bytes: &[u8]) -> TeeEvidence {
    let mut e = TeeEvidence::new(platform, bytes, BindingInfo::new(key(), None), TODAY.into());
    match platform {
        Platform::IntelTdx => {
            e.collateral = Some(json(TDX_COLLATERAL));
            e.collateral_time = Some(COLLATERAL_TIME.into());
        }
        Platform::IntelSgx => {
            e.collateral = Some(json(SGX_COLLATERAL));
            e.collateral_time = Some(COLLATERAL_TIME.into());
        }
        Platform::AmdSevSnp => {
            use base64::Engine as _;
            e.certs = Some(SnpCerts {
                vcek: base64::engine::general_purpose::STANDARD.encode(SNP_VCEK),
                ask: None,
            });
        }
        _ => {}
    }
    e
}

fn verify(e: &TeeEvidence, policy: &TeePolicy, at: &str) -> Result<TeeVerdict, TeeError> {
    verify_tee_evidence(&e.to_json(), &key(), policy, &TeeOptions::at(sys(at)))
}

/// Positions to flip: every `stride`-th byte plus the first and last 64.
fn positions(len: usize, stride: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..len)
        .step_by(stride)
        .chain(0..64.min(len))
        .chain(len.saturating_sub(64)..len)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn assert_all_flips_rejected(
    name: &str,
    bytes: &[u8],
    stride: usize,
    check: impl Fn(&[u8]) -> Result<PlatformReport, TeeError>,
) {
    flips(name, bytes, stride, 0x01, &check);
}

fn flips(
    name: &str,
    bytes: &[u8],
    stride: usize,
    mask: u8,
    check: &dyn Fn(&[u8]) -> Result<PlatformReport, TeeError>,
) {
    assert!(
        check(bytes).is_ok(),
        "{name}: the unmodified evidence must verify"
    );
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for i in positions(bytes.len(), stride) {
        let mut b = bytes.to_vec();
        b[i] ^= mask;
        match check(&b) {
            Ok(_) => panic!("{name}: flipping byte {i} with {mask:#04x} was accepted"),
            Err(TeeError::Authenticity { reason, .. }) => {
                *reasons
                    .entry(reason.chars().take(60).collect())
                    .or_default() += 1;
            }
            Err(other) => {
                panic!("{name}: byte {i} rejected for a reason other than authenticity: {other}")
            }
        }
    }
    assert!(!reasons.is_empty());
}

// ---------------------------------------------------------------- AWS Nitro

#[test]
fn nitro_real_document_verifies_at_its_own_time() {
    let r = nitro::verify_document(NITRO_DOC).unwrap();
    assert_eq!(r.platform, Platform::AwsNitro);
    assert_eq!(
        r.details["module_id"],
        "i-0bee92034f3d60691-enc01943c5eaab3ad6a"
    );
    assert_eq!(r.evidence_time, Some(t("2025-01-06T16:07:05.472Z")));
    assert_eq!(
        r.measurements["PCR0"],
        "8bb159f202bb95d6d4d98e0e103918246cea734f1d57cd263e4fd56075ed53f6fa8c68854817a32749a241e11874c26b"
    );
    assert_eq!(
        r.measurements.len(),
        5,
        "PCR0..PCR4 are set, the rest are zero"
    );
    assert!(
        r.measurements.values().all(|v| v.len() == 96),
        "SHA-384 PCRs"
    );
    assert!(
        r.trust_assumption
            .starts_with("AWS Nitro hardware + PCR0=8bb159f2")
    );
    assert!(
        r.trust_assumption
            .contains(vouch_attest::tee::nitro::AWS_NITRO_ROOT_SHA256)
    );
    assert_eq!(r.report_data, None, "this document carries no user_data");
}

#[test]
fn nitro_chain_files_are_the_documents_chain_and_the_root_is_the_pinned_one() {
    use sha2::Digest as _;
    let sign1 = <coset::CoseSign1 as coset::CborSerializable>::from_slice(NITRO_DOC).unwrap();
    let doc = aws_nitro_enclaves_nsm_api::api::AttestationDoc::from_binary(&sign1.payload.unwrap())
        .unwrap();
    let mut chain: Vec<&[u8]> = doc.cabundle.iter().map(|c| c.as_slice()).collect();
    chain.push(doc.certificate.as_slice());
    assert_eq!(chain, NITRO_CHAIN.to_vec());
    assert_eq!(
        hex::encode(sha2::Sha256::digest(NITRO_CHAIN[0])),
        nitro::AWS_NITRO_ROOT_SHA256
    );
    // The fingerprint the issue names, spelled as AWS publishes it.
    assert_eq!(
        nitro::AWS_NITRO_ROOT_SHA256.to_ascii_uppercase(),
        "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
    );
}

#[test]
fn nitro_real_document_passes_authenticity_and_fails_binding_precisely() {
    let e = envelope(Platform::AwsNitro, NITRO_DOC);
    // Verified today, long after its three-hour leaf expired: judged at its own time.
    let err = verify(&e, &TeePolicy::default(), TODAY).unwrap_err();
    match &err {
        TeeError::Binding(m) => assert!(
            m.contains("has no user_data") && m.contains(&key().to_string()),
            "{m}"
        ),
        other => panic!("expected a binding error, got {other}"),
    }
    assert_eq!(err.code(), "tee_binding");
}

#[test]
fn nitro_policy_and_time_checks() {
    let e = envelope(Platform::AwsNitro, NITRO_DOC);
    let pcr0 = nitro::verify_document(NITRO_DOC).unwrap().measurements["PCR0"].clone();

    // The right PCR0 gets through policy to the binding step.
    let mut p = TeePolicy::default();
    p.expect.insert("PCR0".into(), pcr0.to_ascii_uppercase());
    assert!(matches!(verify(&e, &p, TODAY), Err(TeeError::Binding(_))));

    let mut p = TeePolicy::default();
    p.expect.insert("PCR0".into(), "00".repeat(48));
    match verify(&e, &p, TODAY) {
        Err(TeeError::MeasurementMismatch { name, found, .. }) => {
            assert_eq!(name, "PCR0");
            assert_eq!(found, pcr0);
        }
        other => panic!("{other:?}"),
    }

    let mut p = TeePolicy::default();
    p.expect.insert("MRTD".into(), "00".into());
    let err = verify(&e, &p, TODAY).unwrap_err().to_string();
    assert!(err.contains("MRTD") && err.contains("PCR0, PCR1"), "{err}");

    let p = TeePolicy {
        platforms: vec![Platform::IntelTdx],
        ..Default::default()
    };
    assert!(matches!(
        verify(&e, &p, TODAY),
        Err(TeeError::PlatformNotAllowed { .. })
    ));

    let p = TeePolicy {
        max_evidence_age_secs: Some(86_400),
        ..Default::default()
    };
    assert!(matches!(
        verify(&e, &p, TODAY),
        Err(TeeError::TooOld { .. })
    ));
    assert!(matches!(
        verify(&e, &TeePolicy::default(), "2025-01-01T00:00:00Z"),
        Err(TeeError::FromTheFuture { .. })
    ));
}

#[test]
fn nitro_flipped_bytes_are_rejected() {
    assert_all_flips_rejected("nitro", NITRO_DOC, 23, nitro::verify_document);
    // Specific places give specific reasons.
    let mut sig = NITRO_DOC.to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let e = nitro::verify_document(&sig).unwrap_err().to_string();
    assert!(e.contains("COSE ES384 signature does not verify"), "{e}");
    let mut alg = NITRO_DOC.to_vec();
    alg[5] ^= 1; // the protected header's algorithm (-35, ES384)
    let e = nitro::verify_document(&alg).unwrap_err().to_string();
    assert!(e.contains("ES384"), "{e}");
}

// ---------------------------------------------------------------- Intel TDX / SGX

#[test]
fn tdx_real_quote_verifies_with_stored_collateral() {
    let r = dcap::verify_quote(
        TDX_QUOTE,
        &json(TDX_COLLATERAL),
        t(COLLATERAL_TIME),
        Platform::IntelTdx,
    )
    .unwrap();
    assert_eq!(r.platform, Platform::IntelTdx);
    assert_eq!(r.details["tcb_status"], "UpToDate");
    assert_eq!(
        r.measurements["MRTD"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    for k in ["RTMR0", "RTMR1", "RTMR2", "RTMR3", "MRSEAM", "TDATTRIBUTES"] {
        assert!(r.measurements.contains_key(k), "{k}");
    }
    assert_eq!(r.report_data.as_ref().map(Vec::len), Some(64));
    assert!(
        r.trust_assumption
            .starts_with("Intel TDX hardware + MRTD=91eb2b44")
    );
}

#[test]
fn tdx_1_5_quote_v5_verifies() {
    let r = dcap::verify_quote(
        TD15_QUOTE,
        &json(TD15_COLLATERAL),
        t(TD15_COLLATERAL_TIME),
        Platform::IntelTdx,
    )
    .unwrap();
    assert_eq!(r.platform, Platform::IntelTdx);
    assert_eq!(r.details["tcb_status"], "UpToDate");
    assert!(
        r.measurements.contains_key("MRSERVICETD"),
        "TDX 1.5 reports carry MRSERVICETD"
    );
}

#[test]
fn unsigned_quote_framing_is_checked_byte_for_byte() {
    let c = json(TDX_COLLATERAL);
    let check = |q: &[u8]| {
        dcap::verify_quote(q, &c, t(COLLATERAL_TIME), Platform::IntelTdx)
            .unwrap_err()
            .to_string()
    };
    // The signature-data length (at 632 in a v4 quote) is not signed.
    let mut q = TDX_QUOTE.to_vec();
    q[632] ^= 1;
    let m = check(&q);
    assert!(
        m.contains("quote framing: certification data declares 4166 bytes, 4167 follow"),
        "{m}"
    );
    // A newline inside the PCK chain's PEM (whitespace to a lenient parser).
    let mut q = TDX_QUOTE.to_vec();
    q[1285] ^= 1;
    let m = check(&q);
    assert!(m.contains("not canonical PEM"), "{m}");
    // The copy of Intel's root at the end of the chain, which chain building does not read.
    let mut q = TDX_QUOTE.to_vec();
    q[4500] ^= 1;
    let m = check(&q);
    assert!(m.contains("quote framing"), "{m}");
    // The zero padding after the signature data.
    let mut q = TDX_QUOTE.to_vec();
    q[5000] ^= 1;
    let m = check(&q);
    assert!(
        m.contains("byte 5000 after the signature data is not zero padding"),
        "{m}"
    );
    // A TDX 1.5 quote whose collateral stores the PCK chain: dcap-qvl reads that copy, so the
    // quote's own copy is compared with it.
    let c15 = json(TD15_COLLATERAL);
    let mut q = TD15_QUOTE.to_vec();
    q[1612] ^= 1;
    let m = dcap::verify_quote(&q, &c15, t(TD15_COLLATERAL_TIME), Platform::IntelTdx)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("PCK certificate chain differs from the collateral's"),
        "{m}"
    );
}

#[test]
fn sgx_real_quote_verifies_and_reports_its_tcb_status() {
    let r = dcap::verify_quote(
        SGX_QUOTE,
        &json(SGX_COLLATERAL),
        t(COLLATERAL_TIME),
        Platform::IntelSgx,
    )
    .unwrap();
    assert_eq!(r.platform, Platform::IntelSgx);
    // The same status and advisories dcap-qvl's own tests expect for this sample.
    assert_eq!(r.details["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(r.details["advisory_ids"], "INTEL-SA-00289,INTEL-SA-00615");
    assert_eq!(r.measurements["MRENCLAVE"].len(), 64);
    // Its REPORTDATA is "Hello, world!" padded with zeros.
    assert!(r.report_data.unwrap().starts_with(b"Hello, world!\0"));

    // A policy that accepts only UpToDate rejects it, naming the advisories.
    let e = envelope(Platform::IntelSgx, SGX_QUOTE);
    let p = TeePolicy {
        intel_tcb_statuses: vec!["UpToDate".into()],
        ..Default::default()
    };
    let err = verify(&e, &p, TODAY).unwrap_err();
    assert!(matches!(err, TeeError::TcbStatus { .. }), "{err}");
    assert!(err.to_string().contains("INTEL-SA-00615"), "{err}");
}

#[test]
fn dcap_real_quotes_fail_binding_precisely() {
    for (p, q) in [
        (Platform::IntelTdx, TDX_QUOTE),
        (Platform::IntelSgx, SGX_QUOTE),
    ] {
        match verify(&envelope(p, q), &TeePolicy::default(), TODAY) {
            Err(TeeError::Binding(m)) => {
                assert!(
                    m.starts_with("REPORTDATA is ") && m.contains("another key or nonce"),
                    "{m}"
                )
            }
            other => panic!("{p}: {other:?}"),
        }
    }
}

#[test]
fn dcap_checks_time_type_and_root() {
    // Judged today, the collateral has expired.
    let err = dcap::verify_quote(
        TDX_QUOTE,
        &json(TDX_COLLATERAL),
        t(TODAY),
        Platform::IntelTdx,
    )
    .unwrap_err();
    let m = err.to_string();
    // Genuine collateral, only out of date: its own code, and what to do about it.
    assert!(
        matches!(err, TeeError::Expired { .. }) && err.is_below_policy(),
        "{m}"
    );
    assert_eq!(err.code(), "tee_expired");
    assert!(
        m.contains("valid until 2025-07-19T10:16:03Z") && m.contains("fresh collateral"),
        "{m}"
    );

    // An envelope that calls a TDX quote SGX is caught.
    let mut e = envelope(Platform::IntelTdx, TDX_QUOTE);
    e.platform = Platform::IntelSgx;
    assert!(matches!(
        verify(&e, &TeePolicy::default(), TODAY),
        Err(TeeError::TypeMismatch {
            declared: Platform::IntelSgx,
            actual: Platform::IntelTdx
        })
    ));

    // Missing collateral or collateral time is a precise malformed-evidence error.
    let mut e = envelope(Platform::IntelTdx, TDX_QUOTE);
    e.collateral_time = None;
    let m = verify(&e, &TeePolicy::default(), TODAY)
        .unwrap_err()
        .to_string();
    assert!(m.contains("collateral_time"), "{m}");

    // Without the pinned Intel root in the issuer chains, nothing verifies.
    let mut c = json(TDX_COLLATERAL);
    for k in [
        "tcb_info_issuer_chain",
        "qe_identity_issuer_chain",
        "pck_crl_issuer_chain",
    ] {
        let chain = c[k].as_str().unwrap().to_string();
        let first_end =
            chain.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
        c[k] = serde_json::Value::String(chain[..first_end].to_string());
    }
    let m = dcap::verify_quote(TDX_QUOTE, &c, t(COLLATERAL_TIME), Platform::IntelTdx)
        .unwrap_err()
        .to_string();
    assert!(m.contains("do not contain the Intel SGX Root CA"), "{m}");
}

#[test]
fn dcap_flipped_bytes_are_rejected() {
    let tdx_c = json(TDX_COLLATERAL);
    let sgx_c = json(SGX_COLLATERAL);
    assert_all_flips_rejected("tdx quote", TDX_QUOTE, 17, |b| {
        dcap::verify_quote(b, &tdx_c, t(COLLATERAL_TIME), Platform::IntelTdx)
    });
    assert_all_flips_rejected("sgx quote", SGX_QUOTE, 17, |b| {
        dcap::verify_quote(b, &sgx_c, t(COLLATERAL_TIME), Platform::IntelSgx)
    });
    let td15_c = json(TD15_COLLATERAL);
    assert_all_flips_rejected("tdx 1.5 quote", TD15_QUOTE, 31, |b| {
        dcap::verify_quote(b, &td15_c, t(TD15_COLLATERAL_TIME), Platform::IntelTdx)
    });
    // The signed TCB info inside the collateral is covered too.
    let mut c = json(TDX_COLLATERAL);
    let tcb = c["tcb_info"]
        .as_str()
        .unwrap()
        .replacen("UpToDate", "UpToDatf", 1);
    c["tcb_info"] = serde_json::Value::String(tcb);
    let e = dcap::verify_quote(TDX_QUOTE, &c, t(COLLATERAL_TIME), Platform::IntelTdx).unwrap_err();
    assert!(matches!(e, TeeError::Authenticity { .. }), "{e}");
}

// ---------------------------------------------------------------- AMD SEV-SNP

#[test]
fn snp_real_report_verifies_against_the_pinned_milan_ark() {
    let r = snp::verify_report(&snp_report(), SNP_VCEK, None, t(TODAY)).unwrap();
    assert_eq!(r.platform, Platform::AmdSevSnp);
    assert_eq!(r.details["product"], "Milan");
    assert_eq!(
        r.measurements["MEASUREMENT"],
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(r.measurements["VMPL"], "0");
    assert!(r.trust_assumption.contains("ARK-Milan"));
}

#[test]
fn snp_chain_from_amd_matches_the_pins_and_verifies_as_a_supplied_ask() {
    use sha2::Digest as _;
    let pems = pem::parse_many(SNP_CHAIN_PEM).unwrap();
    let (ask, ark) = (pems[0].contents(), pems[1].contents());
    let milan = snp::pinned_ark_fingerprints()
        .into_iter()
        .find(|(n, _)| *n == "Milan")
        .unwrap()
        .1;
    assert_eq!(hex::encode(sha2::Sha256::digest(ark)), milan);
    assert!(snp::verify_report(&snp_report(), SNP_VCEK, Some(ask), t(TODAY)).is_ok());
    // An ASK that the ARK did not sign (the ARK itself, self-signed) breaks the chain.
    let m = snp::verify_report(&snp_report(), SNP_VCEK, Some(ark), t(TODAY))
        .unwrap_err()
        .to_string();
    assert!(m.contains("does not chain to a pinned AMD ARK"), "{m}");
}

#[test]
fn snp_real_report_fails_binding_precisely_and_checks_cert_validity() {
    match verify(
        &envelope(Platform::AmdSevSnp, &snp_report()),
        &TeePolicy::default(),
        TODAY,
    ) {
        Err(TeeError::Binding(m)) => assert!(m.starts_with("REPORT_DATA is d447b55d"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The VCEK is valid 2023-04-03 .. 2030-04-03.
    let m = snp::verify_report(&snp_report(), SNP_VCEK, None, t("2031-01-01T00:00:00Z"))
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("VCEK certificate is valid from 2023-04-03"),
        "{m}"
    );
    let e =
        snp::verify_report(&snp_report(), SNP_VCEK, None, t("2031-01-01T00:00:00Z")).unwrap_err();
    assert!(matches!(e, TeeError::Expired { .. }), "{e}");
}

#[test]
fn snp_flipped_bytes_are_rejected() {
    let report = snp_report();
    assert_all_flips_rejected("snp report", &report, 29, |b| {
        snp::verify_report(b, SNP_VCEK, None, t(TODAY))
    });
    // A reserved byte (0x4c..0x50): the parser insists on zeros.
    let mut r = report.clone();
    r[0x4d] ^= 1;
    let m = snp::verify_report(&r, SNP_VCEK, None, t(TODAY))
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("Skipped bytes were expected to be zeroed"),
        "{m}"
    );
    // The unused top of the 72-byte r field, which the signature check does not read.
    let mut r = report.clone();
    r[0x2a0 + 60] ^= 1;
    let m = snp::verify_report(&r, SNP_VCEK, None, t(TODAY))
        .unwrap_err()
        .to_string();
    assert!(m.contains("unused top of signature r"), "{m}");
    // A byte of the report data: caught by the signature.
    let mut r = report.clone();
    r[0x50] ^= 1;
    let m = snp::verify_report(&r, SNP_VCEK, None, t(TODAY))
        .unwrap_err()
        .to_string();
    assert!(m.contains("report signature does not verify"), "{m}");
    // A byte of the VCEK's signature: the chain breaks.
    let mut v = SNP_VCEK.to_vec();
    let last = v.len() - 1;
    v[last] ^= 1;
    let m = snp::verify_report(&report, &v, None, t(TODAY))
        .unwrap_err()
        .to_string();
    assert!(m.contains("does not chain"), "{m}");
}

// ---------------------------------------------------------------- not authentic vs below policy

/// Messages are sentences for people: no Rust debug text from the vendor crates.
fn assert_readable(m: &str) {
    for debug in ["Some(", "None", "Err(", "Ok(", " { ", "\\\""] {
        assert!(!m.contains(debug), "debug text {debug:?} in: {m}");
    }
}

#[test]
fn forged_and_out_of_date_evidence_get_different_codes() {
    // A flipped byte in each kind of real evidence: not authentic.
    let flipped = |bytes: &[u8], i: usize| {
        let mut b = bytes.to_vec();
        b[i] ^= 1;
        b
    };
    let snp = snp_report();
    let cases = [
        (
            Platform::AwsNitro,
            flipped(NITRO_DOC, NITRO_DOC.len() - 1),
            TODAY,
        ),
        (Platform::IntelTdx, flipped(TDX_QUOTE, 700), COLLATERAL_TIME),
        (Platform::IntelSgx, flipped(SGX_QUOTE, 100), COLLATERAL_TIME),
        (Platform::AmdSevSnp, flipped(&snp, 0x90), TODAY),
    ];
    for (p, bytes, at) in cases {
        let e = verify(&envelope(p, &bytes), &TeePolicy::default(), at).unwrap_err();
        assert_eq!(e.code(), "tee_not_authentic", "{p}: {e}");
        assert!(!e.is_below_policy(), "{p}: {e}");
        assert_readable(&e.to_string());
    }

    // The same evidence unmodified, judged far in the future or against a stricter policy:
    // genuine, below policy.
    let far = "2040-01-01T00:00:00Z";
    let old = TeePolicy {
        max_evidence_age_secs: Some(86_400),
        ..Default::default()
    };
    let up_to_date_only = TeePolicy {
        intel_tcb_statuses: vec!["UpToDate".into()],
        ..Default::default()
    };
    let cases = [
        (
            Platform::AwsNitro,
            NITRO_DOC.to_vec(),
            &old,
            far,
            "tee_too_old",
        ),
        (
            Platform::IntelTdx,
            TDX_QUOTE.to_vec(),
            &TeePolicy::default(),
            far,
            "tee_expired",
        ),
        (
            Platform::IntelSgx,
            SGX_QUOTE.to_vec(),
            &up_to_date_only,
            TODAY,
            "tee_tcb_status",
        ),
        (
            Platform::AmdSevSnp,
            snp.clone(),
            &TeePolicy::default(),
            far,
            "tee_expired",
        ),
    ];
    for (p, bytes, policy, at, code) in cases {
        let mut e = envelope(p, &bytes);
        if p == Platform::IntelTdx {
            // The collateral judged far in the future, as a verifier would with today's date.
            e.collateral_time = Some(far.into());
        }
        let err = verify(&e, policy, at).unwrap_err();
        assert_eq!(err.code(), code, "{p}: {err}");
        assert!(err.is_below_policy(), "{p}: {err}");
        assert_readable(&err.to_string());
    }
}

// ---------------------------------------------------------------- every byte

#[test]
#[ignore = "slow in debug builds: run with --release -- --ignored"]
fn every_byte_flip_is_rejected() {
    let tdx_c = json(TDX_COLLATERAL);
    let td15_c = json(TD15_COLLATERAL);
    let sgx_c = json(SGX_COLLATERAL);
    let report = snp_report();
    for mask in [0x01, 0x80] {
        flips("nitro", NITRO_DOC, 1, mask, &nitro::verify_document);
        flips("tdx quote", TDX_QUOTE, 1, mask, &|b| {
            dcap::verify_quote(b, &tdx_c, t(COLLATERAL_TIME), Platform::IntelTdx)
        });
        flips("tdx 1.5 quote", TD15_QUOTE, 1, mask, &|b| {
            dcap::verify_quote(b, &td15_c, t(TD15_COLLATERAL_TIME), Platform::IntelTdx)
        });
        flips("sgx quote", SGX_QUOTE, 1, mask, &|b| {
            dcap::verify_quote(b, &sgx_c, t(COLLATERAL_TIME), Platform::IntelSgx)
        });
        flips("snp report", &report, 1, mask, &|b| {
            snp::verify_report(b, SNP_VCEK, None, t(TODAY))
        });
        flips("snp vcek", SNP_VCEK, 1, mask, &|v| {
            snp::verify_report(&report, v, None, t(TODAY))
        });
    }
}
