//! Intel DCAP quotes (`vouch-attest` `tee/dcap.rs` over `dcap-qvl`): TDX 1.0, TDX 1.5 (quote v5)
//! and SGX quotes, each tried with the three real stored collaterals at their issue times. Only
//! the three real quotes are signed by Intel's chain, so anything that verifies reports exactly
//! what one of them reports.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vouch_attest::tee::{Platform, PlatformReport, dcap};
use vouch_fuzz::write_seeds_if_asked;

const FIXTURES: [(&str, &[u8], &[u8], &str, Platform); 3] = [
    (
        "tdx_quote",
        include_bytes!("../../crates/vouch-attest/fixtures/dcap/tdx_quote"),
        include_bytes!("../../crates/vouch-attest/fixtures/dcap/tdx_quote_collateral.json"),
        "2025-07-01T00:00:00Z",
        Platform::IntelTdx,
    ),
    (
        "tdx_quote_td15ex",
        include_bytes!("../../crates/vouch-attest/fixtures/dcap/tdx_quote_td15ex"),
        include_bytes!("../../crates/vouch-attest/fixtures/dcap/tdx_quote_td15ex_collateral.json"),
        "2026-10-20T00:00:00Z",
        Platform::IntelTdx,
    ),
    (
        "sgx_quote",
        include_bytes!("../../crates/vouch-attest/fixtures/dcap/sgx_quote"),
        include_bytes!("../../crates/vouch-attest/fixtures/dcap/sgx_quote_collateral.json"),
        "2025-07-01T00:00:00Z",
        Platform::IntelSgx,
    ),
];

struct Case {
    collateral: serde_json::Value,
    at: OffsetDateTime,
    platform: Platform,
    reference: PlatformReport,
}

static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    FIXTURES
        .iter()
        .map(|(name, quote, collateral, at, platform)| {
            let collateral = serde_json::from_slice(collateral).expect("collateral JSON");
            let at = OffsetDateTime::parse(at, &Rfc3339).expect("a time");
            let reference = dcap::verify_quote(quote, &collateral, at, *platform)
                .unwrap_or_else(|e| panic!("the real {name} verifies: {e}"));
            Case {
                collateral,
                at,
                platform: *platform,
                reference,
            }
        })
        .collect()
});

fuzz_target!(
    init: {
        write_seeds_if_asked(|| FIXTURES.iter().map(|(n, q, ..)| (n.to_string(), q.to_vec())).collect());
        LazyLock::force(&CASES);
    },
    |data: &[u8]| {
        for c in CASES.iter() {
            if let Ok(r) = dcap::verify_quote(data, &c.collateral, c.at, c.platform) {
                assert!(
                    CASES.iter().any(|k| k.reference == r),
                    "only Intel-signed quotes verify, and say what they say"
                );
            }
        }
    }
);
