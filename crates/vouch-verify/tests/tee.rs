//! The `tee` tier through the offline verifier: a receipt signed by a key that simulated TEE
//! evidence binds verifies only when simulated evidence is allowed, reports its trust
//! assumption, and fails with a precise reason when the evidence, key or policy do not match.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::time::SystemTime;

use vouch_attest::NodeSigner;
use vouch_attest::tee::simulated::SimulatedProducer;
use vouch_attest::tee::{EvidenceProducer, TeeEvidenceRef, TeePolicy};
use vouch_core::*;
use vouch_verify::{Evidence, VerifyError, verify_bundle};

fn outputs() -> TensorMap {
    let mut m = TensorMap::new();
    m.insert(
        "y",
        Tensor::new(vec![1, 2], TensorData::Float32(vec![0.5, -1.0])).unwrap(),
    );
    m
}

fn tee_bundle(signer: &NodeSigner, producer: &SimulatedProducer, tiers: Vec<Tier>) -> Bundle {
    let r = Receipt {
        version: RECEIPT_VERSION,
        request_id: "0193a1b2-0000-7000-8000-0000000000ee".into(),
        model: ModelDigest::of_model_bytes(b"model"),
        model_ref: None,
        input_digest: Digest::of(b"in"),
        output_digest: outputs().digest(),
        engine: EngineInfo {
            name: "tract".into(),
            version: "0.23.9".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        config_digest: None,
        tiers,
        node_key: signer.public_key(),
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    };
    let env = producer.attest(&signer.public_key(), None).unwrap();
    Bundle {
        format: BUNDLE_FORMAT.into(),
        signature: Some(signer.sign_receipt(&r)),
        receipt: r,
        outputs: Some(outputs()),
        evidence: [("tee".to_string(), env.to_json())].into(),
    }
}

fn now_allowing() -> Evidence<'static> {
    Evidence {
        allow_simulated: true,
        at_time: Some(SystemTime::now()),
        ..Default::default()
    }
}

#[test]
fn simulated_tee_verifies_only_when_allowed_and_says_so() {
    let signer = NodeSigner::generate();
    let producer = SimulatedProducer::with_measurement([3u8; 48]);
    let b = tee_bundle(&signer, &producer, vec![Tier::Signed, Tier::Tee]);

    let report = verify_bundle(&b, &now_allowing()).unwrap();
    assert!(
        report.summary.starts_with("tee: simulated"),
        "{}",
        report.summary
    );
    assert_eq!(
        report.tiers.iter().map(|t| t.tier).collect::<Vec<_>>(),
        vec![Tier::Signed, Tier::Tee]
    );
    let tee = &report.tiers[1];
    assert!(tee.simulated);
    assert!(tee.trust_assumption.contains("development only"), "{tee:?}");
    assert!(tee.proven.contains(&"03".repeat(48)), "{tee:?}");

    let err = verify_bundle(
        &b,
        &Evidence {
            at_time: Some(SystemTime::now()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--allow-simulated"), "{err}");

    let err = verify_bundle(
        &b,
        &Evidence {
            allow_simulated: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, VerifyError::NoTime);
}

#[test]
fn tee_only_receipts_still_need_the_attested_keys_signature() {
    let signer = NodeSigner::generate();
    let producer = SimulatedProducer::with_measurement([4u8; 48]);
    let b = tee_bundle(&signer, &producer, vec![Tier::Tee]);
    let report = verify_bundle(&b, &now_allowing()).unwrap();
    assert_eq!(report.tiers.len(), 1);
    assert_eq!(report.tiers[0].tier, Tier::Tee);

    let mut unsigned = b.clone();
    unsigned.signature = None;
    let err = verify_bundle(&unsigned, &now_allowing()).unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
}

#[test]
fn evidence_for_another_key_or_measurement_fails_precisely() {
    let signer = NodeSigner::generate();
    let producer = SimulatedProducer::with_measurement([5u8; 48]);
    let mut b = tee_bundle(&signer, &producer, vec![Tier::Signed, Tier::Tee]);

    // Evidence for another key, on a receipt this signer signed.
    let other = NodeSigner::generate();
    b.evidence.insert(
        "tee".into(),
        producer
            .attest(&other.public_key(), None)
            .unwrap()
            .to_json(),
    );
    let err = verify_bundle(&b, &now_allowing()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Tee(e) if e.code() == "tee_key_mismatch"),
        "{err}"
    );

    // Expected measurement differs.
    let b = tee_bundle(&signer, &producer, vec![Tier::Signed, Tier::Tee]);
    let mut policy = TeePolicy::default();
    policy.expect.insert("MEASUREMENT".into(), "06".repeat(48));
    let err = verify_bundle(
        &b,
        &Evidence {
            tee_policy: policy,
            ..now_allowing()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, VerifyError::Tee(e) if e.code() == "tee_measurement_mismatch"),
        "{err}"
    );

    // No evidence at all.
    let mut none = b.clone();
    none.evidence.clear();
    let err = verify_bundle(&none, &now_allowing()).unwrap_err();
    assert!(err.to_string().contains("evidence[\"tee\"]"), "{err}");
}

#[test]
fn referenced_evidence_needs_the_envelope_supplied() {
    let signer = NodeSigner::generate();
    let producer = SimulatedProducer::with_measurement([7u8; 48]);
    let mut b = tee_bundle(&signer, &producer, vec![Tier::Signed, Tier::Tee]);
    let env = vouch_attest::tee::TeeEvidence::from_json(&b.evidence["tee"]).unwrap();
    let reference: TeeEvidenceRef = env.reference();
    b.evidence.insert("tee".into(), reference.to_json());

    let err = verify_bundle(&b, &now_allowing()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Tee(e) if e.code() == "tee_evidence_referenced"),
        "{err}"
    );
    let supplied = [env];
    let ok = verify_bundle(
        &b,
        &Evidence {
            tee_supplied: &supplied,
            ..now_allowing()
        },
    )
    .unwrap();
    assert!(ok.summary.starts_with("tee: simulated"));
}
