//! End-to-end: honest proofs verify; any change to output, input, model, statement or proof
//! bytes fails; a proof for request A does not verify for request B.
//!
//! Uses `models/mlp_small.onnx` (16→32→32→4) and its onnxruntime reference output
//! (`models/mlp_small.output.json`, written by `models/gen_models.py`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::OnceLock;

use common::*;
use vouch_zk::{
    AnalyzeOptions, VerifyKey, VerifyOptions, ZkError, ZkEvidence, ZkKeys, ZkModelInfo,
};

struct Fixture {
    model: Vec<u8>,
    inputs: vouch_core::TensorMap,
    outputs: vouch_core::TensorMap,
    info: ZkModelInfo,
    keys: ZkKeys,
    receipt: vouch_core::Receipt,
    evidence: ZkEvidence,
    proven: vouch_core::TensorMap,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let model = read_model("mlp_small");
        let inputs = read_tensors("mlp_small", "input");
        let outputs = read_tensors("mlp_small", "output");
        let opts = AnalyzeOptions {
            samples: vec![inputs.clone()],
            ..Default::default()
        };
        let (info, keys) = vouch_zk::analyze_with(&model, &opts).expect("mlp_small is supported");
        let receipt = receipt(&model, &inputs, &outputs, "request-A");
        let proof =
            vouch_zk::prove(&keys, &inputs, &receipt.hash(), &mut |_| false).expect("proves");
        Fixture {
            model,
            inputs,
            outputs,
            info,
            keys,
            receipt,
            evidence: proof.evidence,
            proven: proof.outputs,
        }
    })
}

fn check(
    ev: &ZkEvidence,
    receipt: &vouch_core::Receipt,
    outputs: Option<&vouch_core::TensorMap>,
    inputs: Option<&vouch_core::TensorMap>,
) -> Result<vouch_zk::Verified, ZkError> {
    let f = fixture();
    vouch_zk::verify(
        ev,
        VerifyKey::Keys(&f.keys),
        receipt,
        outputs,
        inputs,
        &VerifyOptions::default(),
    )
}

#[test]
fn honest_proof_verifies_from_the_model_file_alone() {
    let f = fixture();
    let v = vouch_zk::verify(
        &f.evidence,
        VerifyKey::Model(&f.model),
        &f.receipt,
        Some(&f.outputs),
        Some(&f.inputs),
        &VerifyOptions {
            expected_vk_digest: Some(f.info.vk_digest),
            output_tolerance: None,
        },
    )
    .expect("honest proof verifies");
    assert!(v.input_checked);
    assert_eq!(v.vk_digest, f.info.vk_digest);
    assert!(
        v.statement.contains(&f.receipt.model.to_string()),
        "{}",
        v.statement
    );
    assert!(
        v.statement.contains(&f.receipt.hash().to_string()),
        "{}",
        v.statement
    );
    // Without the inputs the proof still verifies, and says the input was not checked.
    let v = check(&f.evidence, &f.receipt, Some(&f.outputs), None).expect("verifies");
    assert!(!v.input_checked);
    assert!(v.statement.contains("supply the input"));
}

#[test]
fn proven_output_is_within_ezkl_accuracy_of_onnxruntime() {
    let f = fixture();
    let d = vouch_zk::max_abs_diff(&f.proven, &f.outputs).unwrap();
    // EZKL 23 reaches ~2e-4 on this model (docs/zk.md); we must do at least as well.
    assert!(d <= 2e-4, "max abs error vs onnxruntime {d}");
    assert!(f.info.calibration_max_abs_err <= 2e-4);
}

#[test]
fn keys_are_a_pure_function_of_model_and_config() {
    let f = fixture();
    let again = ZkKeys::generate(&f.model, &f.info.config).unwrap();
    assert_eq!(again.vk_digest(), f.info.vk_digest);
    // Another quantisation config is another verifying key.
    let mut cfg = f.info.config.clone();
    cfg.quant.act_bits += 1;
    cfg.quant.weight_bits += 1;
    let other = ZkKeys::generate(&f.model, &cfg).unwrap();
    assert_ne!(other.vk_digest(), f.info.vk_digest);
}

#[test]
fn prover_only_and_verifier_only_keys_are_the_same_keys() {
    let f = fixture();
    let prover = ZkKeys::generate_prover(&f.model, &f.info.config).unwrap();
    let verifier = ZkKeys::generate_verifier(&f.model, &f.info.config).unwrap();
    assert_eq!(prover.vk_digest(), f.info.vk_digest);
    assert_eq!(verifier.vk_digest(), f.info.vk_digest);
    // A proof from the prover-only keys verifies with the verifier-only keys and the full keys.
    let receipt = receipt(&f.model, &f.inputs, &f.outputs, "request-C");
    let proof = vouch_zk::prove(&prover, &f.inputs, &receipt.hash(), &mut |_| false).unwrap();
    for keys in [&verifier, &f.keys] {
        vouch_zk::verify(
            &proof.evidence,
            VerifyKey::Keys(keys),
            &receipt,
            Some(&f.outputs),
            Some(&f.inputs),
            &VerifyOptions::default(),
        )
        .unwrap();
    }
    // Each refuses the other role instead of misbehaving.
    assert!(matches!(
        vouch_zk::prove(&verifier, &f.inputs, &receipt.hash(), &mut |_| false),
        Err(ZkError::Internal(_))
    ));
    assert!(matches!(
        vouch_zk::verify_statement(&proof.evidence, &prover, &receipt.hash()),
        Err(ZkError::Internal(_))
    ));
    assert!(prover.vk_bytes().is_err());
    assert_eq!(
        verifier.vk_bytes().unwrap(),
        f.keys.vk_bytes().unwrap(),
        "the verifying key itself is the same"
    );
}

#[test]
fn changed_output_fails() {
    let f = fixture();
    // 1. The bundle's outputs edited (receipt unchanged): digest mismatch.
    let mut out = f.outputs.clone();
    let y = out.get("y").unwrap().data().to_f64_vec();
    let mut y2: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    y2[0] += 0.5;
    out.insert("y", tensor(&[1, 4], y2.clone()));
    assert!(check(&f.evidence, &f.receipt, Some(&out), None).is_err());
    // 2. Outputs and receipt edited consistently: the proof is bound to the old receipt.
    let r2 = receipt(&f.model, &f.inputs, &out, "request-A");
    let e = check(&f.evidence, &r2, Some(&out), None).unwrap_err();
    assert!(e.to_string().contains("different receipt"), "{e}");
    // 3. ... and the evidence re-pointed at the new receipt: the proof's public receipt limbs differ.
    let mut ev = f.evidence.clone();
    ev.receipt = r2.hash();
    assert!(check(&ev, &r2, Some(&out), None).is_err());
    // 4. The evidence's claimed quantised output edited: it no longer matches the proof.
    let mut ev = f.evidence.clone();
    ev.outputs_q.get_mut("y").unwrap()[1] += 1;
    let e = check(&ev, &f.receipt, Some(&f.outputs), None).unwrap_err();
    assert!(
        e.to_string().contains("differs from the proven output"),
        "{e}"
    );
}

#[test]
fn changed_input_fails() {
    let f = fixture();
    let x: Vec<f32> = f
        .inputs
        .get("x")
        .unwrap()
        .data()
        .to_f64_vec()
        .iter()
        .map(|&v| v as f32 + 0.25)
        .collect();
    let other = one("x", tensor(&[1, 16], x));
    // The caller's input is not the proven one (and not the receipt's).
    assert!(check(&f.evidence, &f.receipt, Some(&f.outputs), Some(&other)).is_err());
    // A receipt for the other input: proof bound to a different receipt.
    let r2 = receipt(&f.model, &other, &f.outputs, "request-A");
    assert!(check(&f.evidence, &r2, Some(&f.outputs), Some(&other)).is_err());
    // Evidence claiming another input digest.
    let mut ev = f.evidence.clone();
    ev.input_q_digest = digest("another input");
    assert!(check(&ev, &f.receipt, None, None).is_err());
}

#[test]
fn changed_model_weight_fails() {
    let f = fixture();
    // Add 0.25 to one weight of the first layer and re-encode the model.
    use prost::Message;
    let mut pm = vouch_zk::pb::ModelProto::decode(f.model.as_slice()).unwrap();
    let w = &mut pm.graph.as_mut().unwrap().initializer[0];
    if w.raw_data.is_empty() {
        w.float_data[0] += 0.25;
    } else {
        let v = f32::from_le_bytes(w.raw_data[..4].try_into().unwrap()) + 0.25;
        w.raw_data[..4].copy_from_slice(&v.to_le_bytes());
    }
    let m2 = pm.encode_to_vec();
    let r2 = receipt(&m2, &f.inputs, &f.outputs, "request-A");
    let mut ev = f.evidence.clone();
    ev.receipt = r2.hash();
    ev.model = r2.model;
    // Re-deriving the key from the changed file gives another verifying key.
    let e = vouch_zk::verify(
        &ev,
        VerifyKey::Model(&m2),
        &r2,
        None,
        None,
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("verifying key"), "{e}");
    // The original receipt does not name the changed file.
    let e = vouch_zk::verify(
        &f.evidence,
        VerifyKey::Model(&m2),
        &f.receipt,
        None,
        None,
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not the model named"), "{e}");
    // The registry's vk digest pins the key.
    let opts = VerifyOptions {
        expected_vk_digest: Some(digest("other key")),
        output_tolerance: None,
    };
    assert!(
        vouch_zk::verify(
            &f.evidence,
            VerifyKey::Keys(&f.keys),
            &f.receipt,
            None,
            None,
            &opts
        )
        .is_err()
    );
}

#[test]
fn proof_for_request_a_does_not_verify_for_request_b() {
    let f = fixture();
    let rb = receipt(&f.model, &f.inputs, &f.outputs, "request-B");
    assert!(check(&f.evidence, &rb, Some(&f.outputs), Some(&f.inputs)).is_err());
    let mut ev = f.evidence.clone();
    ev.receipt = rb.hash();
    let e = check(&ev, &rb, Some(&f.outputs), Some(&f.inputs)).unwrap_err();
    assert!(matches!(e, ZkError::Verify(_)), "{e}");
}

fn flip(ev: &ZkEvidence, pos: usize) -> ZkEvidence {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut bytes = b64.decode(&ev.proof).unwrap();
    bytes[pos] ^= 0x01;
    let mut e = ev.clone();
    e.proof = b64.encode(bytes);
    e
}

fn proof_len(ev: &ZkEvidence) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(&ev.proof)
        .unwrap()
        .len()
}

#[test]
fn changed_proof_bytes_fail() {
    let f = fixture();
    let n = proof_len(&f.evidence);
    // A spread of positions over the whole proof (every byte: see the ignored test below).
    let step = (n / 40).max(1);
    for pos in (0..n).step_by(step).chain(n.saturating_sub(8)..n) {
        let e = check(&flip(&f.evidence, pos), &f.receipt, None, None);
        assert!(
            e.is_err(),
            "flipping proof byte {pos} of {n} went unnoticed"
        );
    }
    // Truncated and extended proofs.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = b64.decode(&f.evidence.proof).unwrap();
    for cut in [bytes[..n - 1].to_vec(), [bytes.clone(), vec![0]].concat()] {
        let mut e = f.evidence.clone();
        e.proof = b64.encode(cut);
        assert!(check(&e, &f.receipt, None, None).is_err());
    }
}

/// Every single proof byte, flipped: `cargo test --release -p vouch-zk -- --ignored every_proof_byte`
/// (~69 k verifications, about an hour on 2 cores; `ZK_BYTE_STRIDE=16` checks every 16th byte).
#[test]
#[ignore]
fn every_proof_byte_matters() {
    let f = fixture();
    let stride = std::env::var("ZK_BYTE_STRIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    for pos in (0..proof_len(&f.evidence)).step_by(stride) {
        assert!(
            check(&flip(&f.evidence, pos), &f.receipt, None, None).is_err(),
            "byte {pos}"
        );
    }
}

#[test]
fn evidence_round_trips_through_bundle_json() {
    let f = fixture();
    let mut bundle = vouch_core::Bundle {
        format: vouch_core::BUNDLE_FORMAT.into(),
        receipt: f.receipt.clone(),
        signature: None,
        outputs: Some(f.outputs.clone()),
        evidence: Default::default(),
    };
    bundle.evidence.insert("zk".into(), f.evidence.to_json());
    let text = serde_json::to_string(&bundle).unwrap();
    let back: vouch_core::Bundle = serde_json::from_str(&text).unwrap();
    let ev = ZkEvidence::from_bundle(&back)
        .unwrap()
        .expect("zk evidence present");
    assert_eq!(ev, f.evidence);
    check(&ev, &back.receipt, back.outputs.as_ref(), None).expect("verifies after the round trip");
    let mut bad = f.evidence.to_json();
    bad["extra"] = serde_json::json!(1);
    assert!(matches!(
        ZkEvidence::from_json(&bad),
        Err(ZkError::Malformed(_))
    ));
}

#[test]
fn cancellation_stops_the_prover() {
    let f = fixture();
    let e = vouch_zk::prove(&f.keys, &f.inputs, &f.receipt.hash(), &mut |p| {
        p.stage == "prove"
    })
    .unwrap_err();
    assert_eq!(e, ZkError::Prover("cancelled".into()));
}

#[test]
fn wrong_inputs_are_refused_with_reasons() {
    let f = fixture();
    let bad_shape = one("x", tensor(&[1, 15], vec![0.0; 15]));
    let e = vouch_zk::prove(&f.keys, &bad_shape, &f.receipt.hash(), &mut |_| false).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
    let wrong_name = one("z", tensor(&[1, 16], vec![0.0; 16]));
    assert!(vouch_zk::prove(&f.keys, &wrong_name, &f.receipt.hash(), &mut |_| false).is_err());
    // Far outside the calibrated range: refused, never a wrong proof.
    let huge = one("x", tensor(&[1, 16], vec![1e6; 16]));
    let e = vouch_zk::prove(&f.keys, &huge, &f.receipt.hash(), &mut |_| false).unwrap_err();
    assert!(matches!(e, ZkError::OutOfRange(_)), "{e}");
}
