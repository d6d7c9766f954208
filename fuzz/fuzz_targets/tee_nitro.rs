//! AWS Nitro attestation documents (`vouch-attest` `tee/nitro.rs`): COSE_Sign1 over CBOR, chain
//! to the pinned AWS root, checked at the document's own time. The only document AWS signed
//! here is the real fixture, so anything that verifies reports exactly what it reports.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vouch_attest::tee::{PlatformReport, nitro};
use vouch_fuzz::write_seeds_if_asked;

const DOC: &[u8] = include_bytes!("../../crates/vouch-attest/fixtures/nitro/attestation.cose");

static REFERENCE: LazyLock<PlatformReport> =
    LazyLock::new(|| nitro::verify_document(DOC).expect("the real document verifies"));

fuzz_target!(
    init: {
        write_seeds_if_asked(|| vec![("attestation.cose".into(), DOC.to_vec())]);
        LazyLock::force(&REFERENCE);
    },
    |data: &[u8]| {
        if let Ok(r) = nitro::verify_document(data) {
            assert_eq!(r, *REFERENCE, "only AWS's document verifies, and says what it says");
        }
    }
);
