//! Honest bundles verify; any altered byte fails with the reason named.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use vouch_attest::NodeSigner;
use vouch_core::*;
use vouch_verify::{Evidence, VerifyError, verify_bundle};

fn outputs() -> TensorMap {
    let mut m = TensorMap::new();
    m.insert(
        "y",
        Tensor::new(vec![1, 3], TensorData::Float32(vec![0.25, -1.5, 3.0])).unwrap(),
    );
    m
}

fn inputs() -> TensorMap {
    let mut m = TensorMap::new();
    m.insert(
        "x",
        Tensor::new(vec![1, 2], TensorData::Float32(vec![1.0, 2.0])).unwrap(),
    );
    m
}

const MODEL: &[u8] = b"pretend these are ONNX bytes";

/// The receipt of `docs/receipt.md`'s test vector.
fn receipt(signer: &NodeSigner) -> Receipt {
    Receipt {
        version: RECEIPT_VERSION,
        request_id: "0193a1b2-0000-7000-8000-000000000001".into(),
        model: ModelDigest::of_model_bytes(MODEL),
        model_ref: Some("demo@1".into()),
        input_digest: inputs().digest(),
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
        tiers: vec![Tier::Signed],
        node_key: signer.public_key(),
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    }
}

fn signer() -> NodeSigner {
    NodeSigner::from_seed([42u8; 32])
}

fn bundle() -> Bundle {
    let s = signer();
    let r = receipt(&s);
    Bundle {
        format: BUNDLE_FORMAT.into(),
        signature: Some(s.sign_receipt(&r)),
        receipt: r,
        outputs: Some(outputs()),
        evidence: Default::default(),
    }
}

#[test]
fn receipt_test_vector_is_stable() {
    // These values are published in docs/receipt.md; a change here is a format break.
    let s = signer();
    let r = receipt(&s);
    let bytes = String::from_utf8(r.canonical_bytes()).unwrap();
    assert_eq!(
        bytes,
        include_str!("vectors/receipt1.canonical.json").trim_end()
    );
    assert_eq!(
        r.hash().to_string(),
        include_str!("vectors/receipt1.hash").trim()
    );
    assert_eq!(
        s.sign_receipt(&r).sig,
        include_str!("vectors/receipt1.sig").trim()
    );
    assert_eq!(inputs().digest().to_string(), r.input_digest.to_string());
}

#[test]
fn honest_bundle_verifies_with_everything_given() {
    let b = bundle();
    let ev = Evidence {
        trusted_key: Some(signer().public_key()),
        model_bytes: Some(MODEL),
        inputs: Some(&inputs()),
        outputs: Some(&outputs()),
        ..Default::default()
    };
    let report = verify_bundle(&b, &ev).unwrap();
    let checks: Vec<&str> = report.proven.iter().map(|f| f.check).collect();
    assert_eq!(
        checks,
        [
            "signature",
            "bundled outputs",
            "model file",
            "input file",
            "output file"
        ]
    );
    assert_eq!(report.summary, "signature only: trusts the node");
}

#[test]
fn any_changed_receipt_field_breaks_the_signature() {
    let mutations: Vec<Box<dyn Fn(&mut Receipt)>> = vec![
        Box::new(|r| r.output_digest = Digest::of(b"x")),
        Box::new(|r| r.input_digest = Digest::of(b"x")),
        Box::new(|r| r.model = ModelDigest::of_model_bytes(b"x")),
        Box::new(|r| r.request_id.push('0')),
        Box::new(|r| r.issued_at = "2026-11-25T12:00:00.001Z".into()),
        Box::new(|r| r.engine.version = "0.23.8".into()),
        Box::new(|r| r.model_ref = None),
        Box::new(|r| r.tiers = vec![]),
    ];
    for (i, m) in mutations.iter().enumerate() {
        let mut b = bundle();
        m(&mut b.receipt);
        let err = verify_bundle(&b, &Evidence::default()).unwrap_err();
        assert!(
            matches!(err, VerifyError::Signature(_)),
            "mutation {i}: {err}"
        );
    }
}

#[test]
fn every_signature_byte_matters() {
    use base64::Engine as _;
    let b = bundle();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&b.signature.as_ref().unwrap().sig)
        .unwrap();
    for i in 0..raw.len() {
        let mut flipped = raw.clone();
        flipped[i] ^= 1;
        let mut t = b.clone();
        t.signature.as_mut().unwrap().sig =
            base64::engine::general_purpose::STANDARD.encode(&flipped);
        assert!(verify_bundle(&t, &Evidence::default()).is_err(), "byte {i}");
    }
}

#[test]
fn mismatches_are_named() {
    let b = bundle();
    let other_key = NodeSigner::from_seed([1u8; 32]).public_key();
    let err = verify_bundle(
        &b,
        &Evidence {
            trusted_key: Some(other_key),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not the trusted key"), "{err}");

    let err = verify_bundle(
        &b,
        &Evidence {
            model_bytes: Some(b"another model"),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::DigestMismatch {
                what: "model file",
                ..
            }
        ),
        "{err}"
    );

    let mut changed = outputs();
    changed.insert(
        "y",
        Tensor::new(vec![1, 3], TensorData::Float32(vec![0.25, -1.5, 3.0001])).unwrap(),
    );
    let err = verify_bundle(
        &b,
        &Evidence {
            outputs: Some(&changed),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::DigestMismatch {
                what: "output file",
                ..
            }
        ),
        "{err}"
    );

    let mut t = b.clone();
    t.outputs = Some(changed);
    let err = verify_bundle(&t, &Evidence::default()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::DigestMismatch {
                what: "bundled outputs",
                ..
            }
        ),
        "{err}"
    );

    let mut t = b.clone();
    t.signature = None;
    assert_eq!(
        verify_bundle(&t, &Evidence::default()).unwrap_err(),
        VerifyError::MissingSignature
    );

    let mut t = b;
    t.receipt.tiers.push(Tier::Zk);
    assert_eq!(
        verify_bundle(&t, &Evidence::default()).unwrap_err(),
        VerifyError::MissingZkEvidence
    );
}
