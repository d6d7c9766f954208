//! The `tee` tier end to end with the simulated producer: binding success (which real fixtures
//! cannot show, since they were not made for a Vouch key), nonces, key substitution, tampering,
//! the allow-simulated gate, and whole bundles with inline or referenced evidence.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vouch_attest::NodeSigner;
use vouch_attest::tee::simulated::{SIMULATED_LABEL, SimulatedProducer};
use vouch_attest::tee::*;
use vouch_core::{
    BUNDLE_FORMAT, Bundle, Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, Receipt, Tier,
};

const MEASUREMENT: [u8; 48] = [0xab; 48];

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2026-11-25T12:00:00Z
const NOW: u64 = 1_795_608_000;

fn dev() -> TeeOptions {
    TeeOptions {
        allow_simulated: true,
        ..TeeOptions::at(at(NOW + 1))
    }
}

fn producer() -> SimulatedProducer {
    SimulatedProducer::with_measurement(MEASUREMENT)
}

fn receipt(node_key: NodeKey) -> Receipt {
    Receipt {
        version: vouch_core::RECEIPT_VERSION,
        request_id: "018f6b6e-0000-7000-8000-0000000000aa".into(),
        model: ModelDigest(Digest::of(b"model")),
        model_ref: None,
        input_digest: Digest::of(b"input"),
        output_digest: Digest::of(b"output"),
        engine: EngineInfo {
            name: "tract".into(),
            version: "0".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        config_digest: None,
        tiers: vec![Tier::Signed, Tier::Tee],
        node_key,
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    }
}

fn bundle(signer: &NodeSigner, tee: serde_json::Value) -> Bundle {
    let r = receipt(signer.public_key());
    let mut evidence = BTreeMap::new();
    evidence.insert("tee".to_string(), tee);
    Bundle {
        format: BUNDLE_FORMAT.into(),
        signature: Some(signer.sign_receipt(&r)),
        receipt: r,
        outputs: None,
        evidence,
    }
}

#[test]
fn simulated_evidence_binds_the_node_key_and_says_it_is_simulated() {
    let signer = NodeSigner::generate();
    let ev = producer()
        .attest_at(&signer.public_key(), None, at(NOW))
        .unwrap();
    let v = verify_tee_evidence(
        &ev.to_json(),
        &signer.public_key(),
        &TeePolicy::default(),
        &dev(),
    )
    .unwrap();
    assert!(v.is_simulated());
    assert_eq!(v.measurements["MEASUREMENT"], hex::encode(MEASUREMENT));
    assert_eq!(v.node_key, signer.public_key());
    assert!(v.summary().starts_with("tee: simulated"), "{}", v.summary());
    assert!(
        v.trust_assumption
            .starts_with("simulated TEE: development only"),
        "{}",
        v.trust_assumption
    );
    assert_eq!(v.evidence_time.as_deref(), Some("2026-11-25T12:00:00Z"));
}

#[test]
fn simulated_evidence_is_refused_unless_allowed() {
    let key = NodeSigner::generate().public_key();
    let ev = producer().attest_at(&key, None, at(NOW)).unwrap();
    let err = verify_tee_evidence(
        &ev.to_json(),
        &key,
        &TeePolicy::default(),
        &TeeOptions::at(at(NOW)),
    )
    .unwrap_err();
    assert_eq!(err, TeeError::SimulatedNotAllowed);
    assert!(err.to_string().contains("--allow-simulated"));
}

#[test]
fn nonces_are_bound_and_checked() {
    let key = NodeSigner::generate().public_key();
    let ev = producer()
        .attest_at(&key, Some(b"challenge-1"), at(NOW))
        .unwrap();
    let ok = TeeOptions {
        expected_nonce: Some(b"challenge-1".to_vec()),
        ..dev()
    };
    let v = verify_tee_evidence(&ev.to_json(), &key, &TeePolicy::default(), &ok).unwrap();
    assert_eq!(
        v.nonce.as_deref(),
        Some(hex::encode(b"challenge-1").as_str())
    );

    let wrong = TeeOptions {
        expected_nonce: Some(b"challenge-2".to_vec()),
        ..dev()
    };
    assert!(matches!(
        verify_tee_evidence(&ev.to_json(), &key, &TeePolicy::default(), &wrong),
        Err(TeeError::NonceMismatch { .. })
    ));
    let stale = producer().attest_at(&key, None, at(NOW)).unwrap();
    let m = verify_tee_evidence(&stale.to_json(), &key, &TeePolicy::default(), &ok)
        .unwrap_err()
        .to_string();
    assert!(m.contains("made for no nonce"), "{m}");

    // Editing the envelope's nonce does not help: the signed report data disagrees.
    let mut edited = stale.clone();
    edited.binding.nonce = Some(hex::encode(b"challenge-1"));
    let m = verify_tee_evidence(&edited.to_json(), &key, &TeePolicy::default(), &ok)
        .unwrap_err()
        .to_string();
    assert!(
        m.starts_with("binding: report_data is") && m.contains("nonce 6368"),
        "{m}"
    );
}

#[test]
fn evidence_for_one_key_does_not_vouch_for_another() {
    let a = NodeSigner::generate().public_key();
    let b = NodeSigner::generate().public_key();
    let ev = producer().attest_at(&a, None, at(NOW)).unwrap();
    assert_eq!(
        verify_tee_evidence(&ev.to_json(), &b, &TeePolicy::default(), &dev()),
        Err(TeeError::KeyMismatch {
            evidence: a,
            receipt: b
        })
    );
    // Relabelling the envelope with the other key is caught by the signed report data.
    let mut relabelled = ev.clone();
    relabelled.binding.node_key = b;
    let m = verify_tee_evidence(&relabelled.to_json(), &b, &TeePolicy::default(), &dev())
        .unwrap_err()
        .to_string();
    assert!(m.contains("another key or nonce"), "{m}");
}

#[test]
fn every_flipped_byte_of_simulated_evidence_is_rejected() {
    let key = NodeSigner::generate().public_key();
    let ev = producer().attest_at(&key, Some(&[9; 8]), at(NOW)).unwrap();
    let bytes = ev.evidence_bytes().unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains(SIMULATED_LABEL));
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        match simulated::verify_statement(&b) {
            Err(TeeError::Authenticity {
                platform: Platform::Simulated,
                ..
            }) => {}
            other => panic!("byte {i}: {other:?}"),
        }
    }
    assert!(simulated::verify_statement(&bytes).is_ok());
}

#[test]
fn a_real_looking_label_cannot_turn_simulated_evidence_into_hardware() {
    let key = NodeSigner::generate().public_key();
    let mut ev = producer().attest_at(&key, None, at(NOW)).unwrap();
    ev.platform = Platform::AwsNitro;
    let err = verify_tee_evidence(&ev.to_json(), &key, &TeePolicy::default(), &dev()).unwrap_err();
    assert!(
        matches!(
            err,
            TeeError::Authenticity {
                platform: Platform::AwsNitro,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn measurement_policy_applies_to_simulated_evidence() {
    let key = NodeSigner::generate().public_key();
    let ev = producer().attest_at(&key, None, at(NOW)).unwrap();
    let mut p = TeePolicy::default();
    p.expect
        .insert("MEASUREMENT".into(), hex::encode([0xcd; 48]));
    assert!(matches!(
        verify_tee_evidence(&ev.to_json(), &key, &p, &dev()),
        Err(TeeError::MeasurementMismatch { .. })
    ));
    let p = TeePolicy {
        max_evidence_age_secs: Some(60),
        ..Default::default()
    };
    let late = TeeOptions {
        allow_simulated: true,
        ..TeeOptions::at(at(NOW + 3600))
    };
    assert!(matches!(
        verify_tee_evidence(&ev.to_json(), &key, &p, &late),
        Err(TeeError::TooOld { age_secs: 3600, .. })
    ));
}

#[test]
fn bundles_verify_with_inline_or_referenced_evidence() {
    let signer = NodeSigner::generate();
    let ev = producer()
        .attest_at(&signer.public_key(), None, at(NOW))
        .unwrap();

    let inline = bundle(&signer, ev.to_json());
    let v = verify_bundle_tee(&inline, &[], &TeePolicy::default(), &dev()).unwrap();
    assert_eq!(v.node_key, signer.public_key());

    // The bundle survives a JSON round trip (what `vouch verify bundle.json` reads).
    let reread: Bundle = serde_json::from_str(&serde_json::to_string(&inline).unwrap()).unwrap();
    assert!(verify_bundle_tee(&reread, &[], &TeePolicy::default(), &dev()).is_ok());

    let by_ref = bundle(&signer, ev.reference().to_json());
    assert_eq!(
        verify_bundle_tee(&by_ref, &[], &TeePolicy::default(), &dev()),
        Err(TeeError::Referenced(ev.digest()))
    );
    assert!(
        verify_bundle_tee(
            &by_ref,
            std::slice::from_ref(&ev),
            &TeePolicy::default(),
            &dev()
        )
        .is_ok()
    );
    let other = producer()
        .attest_at(&signer.public_key(), None, at(NOW))
        .unwrap();
    assert!(matches!(
        verify_bundle_tee(&by_ref, &[other], &TeePolicy::default(), &dev()),
        Err(TeeError::ReferenceMismatch { .. })
    ));
}

#[test]
fn bundle_checks_tier_signature_and_signer() {
    let signer = NodeSigner::generate();
    let ev = producer()
        .attest_at(&signer.public_key(), None, at(NOW))
        .unwrap();

    let mut b = bundle(&signer, ev.to_json());
    b.receipt.output_digest = Digest::of(b"another output");
    let m = verify_bundle_tee(&b, &[], &TeePolicy::default(), &dev())
        .unwrap_err()
        .to_string();
    assert!(m.starts_with("receipt: signature does not match"), "{m}");

    let mut b = bundle(&signer, ev.to_json());
    b.signature = None;
    assert!(matches!(
        verify_bundle_tee(&b, &[], &TeePolicy::default(), &dev()),
        Err(TeeError::Receipt(_))
    ));

    let mut b = bundle(&signer, ev.to_json());
    b.receipt.tiers = vec![Tier::Signed];
    b.signature = Some(signer.sign_receipt(&b.receipt));
    let m = verify_bundle_tee(&b, &[], &TeePolicy::default(), &dev())
        .unwrap_err()
        .to_string();
    assert!(m.contains("does not claim the tee tier"), "{m}");

    // A second node that copies the first node's evidence into its own bundle is caught.
    let thief = NodeSigner::generate();
    let b = bundle(&thief, ev.to_json());
    assert!(matches!(
        verify_bundle_tee(&b, &[], &TeePolicy::default(), &dev()),
        Err(TeeError::KeyMismatch { .. })
    ));
}
