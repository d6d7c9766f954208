//! AMD SEV-SNP reports and VCEK certificates (`vouch-attest` `tee/snp.rs` over `sev`): an input
//! of a report's length is a report checked with the real Milan VCEK; any other input is a VCEK
//! (DER) checked with the real report. Chains end at the pinned ARKs, so only the real pair
//! verifies, and it reports exactly what it reports.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use vouch_attest::tee::{PlatformReport, snp};
use vouch_fuzz::{AT_UNIX, write_seeds_if_asked};

const REPORT_HEX: &str =
    include_str!("../../crates/vouch-attest/fixtures/sev-snp/report_milan.hex");
const VCEK: &[u8] = include_bytes!("../../crates/vouch-attest/fixtures/sev-snp/vcek_milan.der");
/// Length of an SNP attestation report.
const REPORT_LEN: usize = 1184;

fn at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(AT_UNIX as i64).expect("in range")
}

static REPORT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    (0..REPORT_HEX.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&REPORT_HEX.trim()[i..i + 2], 16).expect("hex"))
        .collect()
});

static REFERENCE: LazyLock<PlatformReport> = LazyLock::new(|| {
    snp::verify_report(&REPORT, VCEK, None, at()).expect("the real report verifies")
});

fuzz_target!(
    init: {
        write_seeds_if_asked(|| vec![("report_milan".into(), REPORT.clone()), ("vcek_milan.der".into(), VCEK.to_vec())]);
        assert_eq!(REPORT.len(), REPORT_LEN);
        LazyLock::force(&REFERENCE);
    },
    |data: &[u8]| {
        let r = if data.len() == REPORT_LEN {
            snp::verify_report(data, VCEK, None, at())
        } else {
            snp::verify_report(&REPORT, data, None, at())
        };
        if let Ok(r) = r {
            assert_eq!(r, *REFERENCE, "only AMD's report verifies, and says what it says");
        }
    }
);
