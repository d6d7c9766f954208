//! The body of `POST /v1/infer` as the handler reads it (`vouch-server` `routes/infer.rs`): the
//! request type, then its tiers, model reference and inputs in that order. Tiers canonicalise
//! to a fixed point, a model reference prints back to itself, and inputs keep their digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_core::{ModelRef, TensorMap, Tier};
use vouch_fuzz::{check_tensor_map, repo_file, write_seeds_if_asked};
use vouch_server::routes::infer::InferRequest;

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let inputs = String::from_utf8(repo_file("models/mlp_small.input.json")).expect("UTF-8");
            let multi = String::from_utf8(repo_file("models/multi_io.input.json")).expect("UTF-8");
            let digest = format!("sha256:{}", vouch_core::Digest::of(&repo_file("models/mlp_small.onnx")).hex());
            [
                ("plain", format!(r#"{{"model":"mlp-small@1","inputs":{inputs}}}"#)),
                ("tiers", format!(r#"{{"model":"mlp-small","inputs":{inputs},"tiers":["zk","signed","tee","zk"],"allow_upgrade":true,"log_proof":true}}"#)),
                ("digest-unsigned", format!(r#"{{"model":"{digest}","inputs":{multi},"tiers":[]}}"#)),
                ("b64", r#"{"model":"m@v1.2","inputs":{"x":{"dtype":"f32","shape":[1,2],"b64":"AACAPwAAAEA="}}}"#.to_string()),
            ]
            .into_iter()
            .map(|(n, s)| (n.to_string(), s.into_bytes()))
            .collect()
        });
    },
    |data: &[u8]| {
        let Ok(req) = serde_json::from_slice::<InferRequest>(data) else {
            return;
        };
        if let Ok(tiers) = req.tiers.iter().map(|t| t.parse()).collect::<Result<Vec<Tier>, _>>() {
            let set = Tier::canonical_set(&tiers);
            assert!(set.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
            assert!(tiers.iter().all(|t| set.contains(t)));
            assert_eq!(Tier::canonical_set(&set), set);
            for t in &set {
                assert_eq!(t.as_str().parse::<Tier>().as_ref(), Ok(t));
            }
        }
        if let Ok(m) = req.model.parse::<ModelRef>() {
            assert_eq!(m.to_string().parse::<ModelRef>().as_ref(), Ok(&m));
            if let ModelRef::Name { name, .. } = &m {
                assert!(!name.is_empty() && name.len() <= 128);
            }
        }
        if let Ok(inputs) = serde_json::from_str::<TensorMap>(req.inputs.get()) {
            check_tensor_map(&inputs);
        }
    }
);
