//! Receipts and bundles as files and API answers carry them (`vouch-core`): a `Bundle` (what
//! `vouch verify` reads) and a bare `Receipt` (log entries, `docs/receipt.md`'s vector). The
//! canonical bytes (RFC 8785) are a fixed point that parses back to the same receipt, and a
//! bundle survives its own wire form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_core::{Bundle, Receipt, Tier};
use vouch_fuzz::{check_receipt, check_tensor_map, repo_file, sample_bundle, write_seeds_if_asked};

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let full = sample_bundle(vec![Tier::Signed, Tier::Tee]);
            let mut bare = sample_bundle(vec![]);
            bare.signature = None;
            bare.evidence.clear();
            bare.receipt.payment = None;
            bare.receipt.model_ref = None;
            vec![
                ("bundle.json".into(), serde_json::to_vec_pretty(&full).expect("json")),
                ("bundle-bare.json".into(), serde_json::to_vec(&bare).expect("json")),
                ("receipt.canonical.json".into(), full.receipt.canonical_bytes()),
                (
                    "receipt1.canonical.json".into(),
                    repo_file("crates/vouch-verify/tests/vectors/receipt1.canonical.json"),
                ),
            ]
        });
    },
    |data: &[u8]| {
        if let Ok(r) = serde_json::from_slice::<Receipt>(data) {
            check_receipt(&r);
        }
        let Ok(b) = serde_json::from_slice::<Bundle>(data) else {
            return;
        };
        check_receipt(&b.receipt);
        if let Some(o) = &b.outputs {
            check_tensor_map(o);
        }
        let wire = serde_json::to_vec(&b).expect("a bundle serialises");
        let again: Bundle = serde_json::from_slice(&wire).expect("a serialised bundle parses");
        assert_eq!(again.format, b.format);
        assert_eq!(again.receipt, b.receipt);
        assert_eq!(again.signature, b.signature);
        assert_eq!(
            again.outputs.as_ref().map(|o| o.digest()),
            b.outputs.as_ref().map(|o| o.digest())
        );
        assert_eq!(again.evidence, b.evidence);
    }
);
