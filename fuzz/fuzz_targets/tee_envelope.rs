//! `tee` evidence envelopes as bundles and `GET /v1/attestation` carry them (`vouch-attest`
//! `tee/evidence.rs`, `tee/mod.rs`, `tee/simulated.rs`): the JSON envelope of every platform, a
//! reference to one, and the simulated statement, verified for the fixed node key at a fixed
//! time with simulated evidence allowed. An envelope survives its JSON with its digest; a
//! verdict is for the node key and platform the envelope names; a simulated statement that
//! verifies is in canonical form.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use libfuzzer_sys::fuzz_target;
use vouch_attest::tee::{
    BindingInfo, Platform, SnpCerts, TeeEvidence, TeeOptions, TeePolicy, resolve, simulated,
    verify_envelope,
};
use vouch_fuzz::{at, node_signer, write_seeds_if_asked};

fn options() -> TeeOptions {
    TeeOptions {
        at_time: at(),
        allow_simulated: true,
        expected_nonce: None,
    }
}

fn fixture(p: &str) -> Vec<u8> {
    vouch_fuzz::repo_file(&format!("crates/vouch-attest/fixtures/{p}"))
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let key = node_signer().public_key();
    let binding = || BindingInfo::new(key, None);
    let produced = "2026-11-24T23:00:00Z".to_string();
    let sim = simulated::SimulatedProducer::with_measurement([0x5a; 48])
        .attest_at(&key, Some(b"fuzz nonce"), at())
        .expect("simulated evidence");
    let nitro = TeeEvidence::new(
        Platform::AwsNitro,
        &fixture("nitro/attestation.cose"),
        binding(),
        produced.clone(),
    );
    let mut tdx = TeeEvidence::new(
        Platform::IntelTdx,
        &fixture("dcap/tdx_quote"),
        binding(),
        produced.clone(),
    );
    tdx.collateral =
        Some(serde_json::from_slice(&fixture("dcap/tdx_quote_collateral.json")).expect("json"));
    tdx.collateral_time = Some("2025-07-01T00:00:00Z".into());
    let hex = String::from_utf8(fixture("sev-snp/report_milan.hex")).expect("text");
    let report: Vec<u8> = (0..hex.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).expect("hex"))
        .collect();
    let mut snp = TeeEvidence::new(Platform::AmdSevSnp, &report, binding(), produced);
    snp.certs = Some(SnpCerts {
        vcek: B64.encode(fixture("sev-snp/vcek_milan.der")),
        ask: None,
    });
    let json = |e: &TeeEvidence| serde_json::to_vec(&e.to_json()).expect("json");
    vec![
        ("simulated.json".into(), json(&sim)),
        (
            "simulated-statement".into(),
            sim.evidence_bytes().expect("b64"),
        ),
        (
            "reference.json".into(),
            serde_json::to_vec(&sim.reference().to_json()).expect("json"),
        ),
        ("nitro.json".into(), json(&nitro)),
        ("tdx.json".into(), json(&tdx)),
        ("snp.json".into(), json(&snp)),
    ]
}

fuzz_target!(
    init: {
        write_seeds_if_asked(seeds);
    },
    |data: &[u8]| {
        let key = node_signer().public_key();
        if let Ok(r) = simulated::verify_statement(data) {
            assert_eq!(r.platform, Platform::Simulated);
            assert_eq!(r.report_data.as_ref().map(Vec::len), Some(64));
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        let env = match TeeEvidence::from_json(&value) {
            Ok(env) => env,
            Err(_) => {
                let _ = resolve(&value, &[]);
                return;
            }
        };
        let again = TeeEvidence::from_json(&env.to_json()).expect("own JSON parses");
        assert_eq!(again, env);
        assert_eq!(again.digest(), env.digest(), "the digest a reference names is stable");
        assert_eq!(resolve(&env.reference().to_json(), std::slice::from_ref(&env)), Ok(env.clone()));
        if let Ok(v) = verify_envelope(&env, &key, &TeePolicy::default(), &options()) {
            assert_eq!(v.node_key, key);
            assert_eq!(v.platform, env.platform);
            assert_eq!(v.is_simulated(), env.platform == Platform::Simulated);
            assert_eq!(v.nonce, env.binding.nonce);
        }
    }
);
