//! Verification time of each kind of `tee` evidence (real vendor fixtures, see
//! `tests/tee_real_evidence.rs` for their sources), and what attaching `tee` evidence adds to
//! making a signed bundle. Run: `cargo bench -p vouch-attest --bench tee_verify`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use vouch_attest::NodeSigner;
use vouch_attest::tee::simulated::SimulatedProducer;
use vouch_attest::tee::*;
use vouch_core::{
    BUNDLE_FORMAT, Bundle, Digest, EngineInfo, ExecProfile, ModelDigest, Receipt, Tier,
};

const NITRO_DOC: &[u8] = include_bytes!("../fixtures/nitro/attestation.cose");
const TDX_QUOTE: &[u8] = include_bytes!("../fixtures/dcap/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("../fixtures/dcap/tdx_quote_collateral.json");
const SGX_QUOTE: &[u8] = include_bytes!("../fixtures/dcap/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("../fixtures/dcap/sgx_quote_collateral.json");
const SNP_REPORT_HEX: &str = include_str!("../fixtures/sev-snp/report_milan.hex");
const SNP_VCEK: &[u8] = include_bytes!("../fixtures/sev-snp/vcek_milan.der");

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).expect("valid time")
}

fn verify_each(c: &mut Criterion) {
    let tdx_c: serde_json::Value = serde_json::from_slice(TDX_COLLATERAL).expect("json");
    let sgx_c: serde_json::Value = serde_json::from_slice(SGX_COLLATERAL).expect("json");
    let snp = hex::decode(SNP_REPORT_HEX.trim()).expect("hex");
    let collateral_time = at(1_751_328_000); // 2025-07-01
    let today = at(1_795_564_800); // 2026-11-25

    let signer = NodeSigner::from_seed([1; 32]);
    let now = UNIX_EPOCH + Duration::from_secs(1_795_608_000);
    let sim = SimulatedProducer::with_measurement([7; 48])
        .attest_at(&signer.public_key(), None, now)
        .expect("sim");
    let sim_bytes = sim.evidence_bytes().expect("b64");
    let sim_json = sim.to_json();
    let opts = TeeOptions {
        allow_simulated: true,
        ..TeeOptions::at(now)
    };

    let mut g = c.benchmark_group("tee_verify");
    g.bench_function("aws-nitro", |b| {
        b.iter(|| nitro::verify_document(black_box(NITRO_DOC)).expect("ok"))
    });
    g.bench_function("intel-tdx", |b| {
        b.iter(|| {
            dcap::verify_quote(
                black_box(TDX_QUOTE),
                &tdx_c,
                collateral_time,
                Platform::IntelTdx,
            )
            .expect("ok")
        })
    });
    g.bench_function("intel-sgx", |b| {
        b.iter(|| {
            dcap::verify_quote(
                black_box(SGX_QUOTE),
                &sgx_c,
                collateral_time,
                Platform::IntelSgx,
            )
            .expect("ok")
        })
    });
    g.bench_function("amd-sev-snp", |b| {
        b.iter(|| snp::verify_report(black_box(&snp), SNP_VCEK, None, today).expect("ok"))
    });
    g.bench_function("simulated", |b| {
        b.iter(|| simulated::verify_statement(black_box(&sim_bytes)).expect("ok"))
    });
    g.bench_function("simulated-full-entry-point", |b| {
        b.iter(|| {
            verify_tee_evidence(
                black_box(&sim_json),
                &signer.public_key(),
                &TeePolicy::default(),
                &opts,
            )
            .expect("ok")
        })
    });
    g.finish();
}

fn receipt(tiers: Vec<Tier>, signer: &NodeSigner) -> Receipt {
    Receipt {
        version: vouch_core::RECEIPT_VERSION,
        request_id: "018f6b6e-0000-7000-8000-000000000001".into(),
        model: ModelDigest(Digest::of(b"model")),
        model_ref: Some("mnist@1".into()),
        input_digest: Digest::of(b"in"),
        output_digest: Digest::of(b"out"),
        engine: EngineInfo {
            name: "tract".into(),
            version: "0.23".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        config_digest: None,
        tiers,
        node_key: signer.public_key(),
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    }
}

/// The per-request work a node adds for `tee` once its boot evidence exists: the receipt is
/// signed either way; `tee` attaches the stored evidence (inline, or its digest).
fn bundle_overhead(c: &mut Criterion) {
    let signer = NodeSigner::from_seed([2; 32]);
    let ev = SimulatedProducer::with_measurement([7; 48])
        .attest_at(&signer.public_key(), None, SystemTime::now())
        .expect("sim");
    let inline = ev.to_json();
    let reference = ev.reference().to_json();

    let make = |tiers: Vec<Tier>, tee: Option<&serde_json::Value>| {
        let r = receipt(tiers, &signer);
        let mut evidence = BTreeMap::new();
        if let Some(v) = tee {
            evidence.insert("tee".to_string(), v.clone());
        }
        let b = Bundle {
            format: BUNDLE_FORMAT.into(),
            signature: Some(signer.sign_receipt(&r)),
            receipt: r,
            outputs: None,
            evidence,
        };
        serde_json::to_vec(&b).expect("json")
    };
    let mut g = c.benchmark_group("bundle");
    g.bench_function("signed", |b| b.iter(|| make(vec![Tier::Signed], None)));
    g.bench_function("signed+tee-inline-simulated", |b| {
        b.iter(|| make(vec![Tier::Signed, Tier::Tee], Some(&inline)))
    });
    g.bench_function("signed+tee-reference", |b| {
        b.iter(|| make(vec![Tier::Signed, Tier::Tee], Some(&reference)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = verify_each, bundle_overhead
}
criterion_main!(benches);
