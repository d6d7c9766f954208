//! Tensors as callers send them (`vouch-core`): a `TensorMap` (the `inputs` of `POST /v1/infer`,
//! `vouch verify --inputs/--outputs` files) and a single `Tensor`. Whatever parses keeps its
//! digest, dtype and shape through its own wire form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_core::{Tensor, TensorMap};
use vouch_fuzz::{check_tensor, check_tensor_map, repo_file, write_seeds_if_asked};

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let mut seeds: Vec<(String, Vec<u8>)> = ["mlp_small", "mlp", "cnn", "multi_io"]
                .iter()
                .map(|m| (format!("{m}.input.json"), repo_file(&format!("models/{m}.input.json"))))
                .collect();
            seeds.push(("mlp.output.json".into(), repo_file("models/mlp.output.json")));
            for (name, text) in [
                ("b64-nan", r#"{"x":{"dtype":"float32","shape":[2],"b64":"AADAfwAAgH8="}}"#),
                ("dtype-last", r#"{"x":{"shape":[2,1],"data":[1,0],"dtype":"bool"}}"#),
                ("ints", r#"{"a":{"dtype":"int8","shape":[3],"data":[-128,0,127]},"b":{"dtype":"uint64","shape":[1],"data":[18446744073709551615]}}"#),
                ("f64", r#"{"t":{"dtype":"float64","shape":[1,2],"data":[1e308,-4.9e-324]}}"#),
                ("single", r#"{"dtype":"int16","shape":[],"data":[7]}"#),
                ("empty", r#"{"dtype":"uint8","shape":[0,5],"b64":""}"#),
            ] {
                seeds.push((name.into(), text.as_bytes().to_vec()));
            }
            seeds
        });
    },
    |data: &[u8]| {
        if let Ok(m) = serde_json::from_slice::<TensorMap>(data) {
            check_tensor_map(&m);
        }
        if let Ok(t) = serde_json::from_slice::<Tensor>(data) {
            check_tensor(&t);
        }
    }
);
