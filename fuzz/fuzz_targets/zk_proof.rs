//! zk evidence as a verifier reads it (`vouch-zk`, the check `vouch-verify` runs): a bundle's
//! `evidence.zk` (JSON, the Spartan2 proof in base64 bincode) checked against its receipt and
//! outputs with keys derived once, at start, from `models/mlp_small.onnx` — the proof decoding
//! and SNARK verification see arbitrary bytes without a key derivation per input. Whatever
//! verifies is bound to the bundle's receipt and model, under those keys, within tolerance.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vouch_core::{Bundle, Tier};
use vouch_fuzz::{node_signer, repo_file, sample_bundle, sample_tensors, write_seeds_if_asked};
use vouch_zk::{AnalyzeOptions, VerifyKey, VerifyOptions, ZkEvidence, ZkKeys};

const MODEL: &[u8] = include_bytes!("../../models/mlp_small.onnx");

/// The keys registration would derive (default calibration is deterministic).
static KEYS: LazyLock<ZkKeys> = LazyLock::new(|| {
    vouch_zk::analyze_with(MODEL, &AnalyzeOptions::default())
        .expect("the shipped model analyses")
        .1
});

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            assert_eq!(MODEL, repo_file("models/mlp_small.onnx").as_slice());
            let mut b: Bundle = sample_bundle(vec![Tier::Signed, Tier::Zk]);
            b.evidence.remove("tee");
            b.evidence.remove("log");
            let inputs = sample_tensors().0;
            let proof = vouch_zk::prove(&KEYS, &inputs, &b.receipt.hash(), &mut |_| false)
                .expect("the sample proves");
            b.evidence.insert("zk".into(), proof.evidence.to_json());
            b.signature = Some(node_signer().sign_receipt(&b.receipt));
            let ev = ZkEvidence::from_bundle(&b).expect("parses").expect("present");
            vouch_zk::verify(&ev, VerifyKey::Keys(&KEYS), &b.receipt, b.outputs.as_ref(), Some(&inputs), &VerifyOptions::default())
                .expect("the sample proof verifies");
            vec![
                ("bundle.json".into(), serde_json::to_vec(&b).expect("json")),
                ("evidence.json".into(), serde_json::to_vec(&ev.to_json()).expect("json")),
            ]
        });
        LazyLock::force(&KEYS);
    },
    |data: &[u8]| {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
            && let Ok(ev) = ZkEvidence::from_json(&v)
        {
            assert_eq!(ZkEvidence::from_json(&ev.to_json()).as_ref().ok(), Some(&ev));
        }
        let Ok(b) = serde_json::from_slice::<Bundle>(data) else {
            return;
        };
        let Ok(Some(ev)) = ZkEvidence::from_bundle(&b) else {
            return;
        };
        let opts = VerifyOptions::default();
        let Ok(v) = vouch_zk::verify(&ev, VerifyKey::Keys(&KEYS), &b.receipt, b.outputs.as_ref(), None, &opts) else {
            return;
        };
        assert_eq!(v.receipt, b.receipt.hash(), "bound to this receipt");
        assert_eq!(v.model, b.receipt.model);
        assert_eq!(v.model, KEYS.model());
        assert_eq!(v.vk_digest, KEYS.vk_digest());
        assert_eq!(b.outputs.is_some(), v.max_abs_output_diff.is_some());
        if let Some(d) = v.max_abs_output_diff {
            assert!(d <= v.output_tolerance);
        }
    }
);
