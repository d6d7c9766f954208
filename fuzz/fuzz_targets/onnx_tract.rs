//! The ONNX upload path as registration reads it (`vouch-exec`, both engines): the protobuf
//! decoded by tract-onnx, then the model's declared interface (`signature_from_proto`). A
//! signature that is read survives the JSON the registry stores it as.
#![no_main]

use std::io::Cursor;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tract_onnx::prelude::Framework;
use vouch_core::{Dim, ModelSignature};
use vouch_exec::tract_engine::signature_from_proto;
use vouch_fuzz::{shipped_models, write_seeds_if_asked};

static ONNX: LazyLock<tract_onnx::Onnx> = LazyLock::new(tract_onnx::onnx);

fuzz_target!(
    init: {
        write_seeds_if_asked(shipped_models);
        LazyLock::force(&ONNX);
    },
    |data: &[u8]| {
        let Ok(proto) = ONNX.proto_model_for_read(&mut Cursor::new(data)) else {
            return;
        };
        let Ok(sig) = signature_from_proto(&proto) else {
            return;
        };
        assert!(!sig.outputs.is_empty());
        for spec in sig.inputs.iter().chain(&sig.outputs) {
            for d in &spec.shape {
                if let Dim::Fixed(n) = d {
                    assert!(*n <= i64::MAX as u64, "a dimension from a non-negative int64");
                }
            }
        }
        let stored = serde_json::to_vec(&sig).expect("a signature serialises");
        let again: ModelSignature = serde_json::from_slice(&stored).expect("a stored signature parses");
        assert_eq!(again, sig, "the registry's copy of the signature is the signature");
    }
);
