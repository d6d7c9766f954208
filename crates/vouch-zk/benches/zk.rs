//! Criterion benches of the zk tier on the repository's MLPs: key generation, proving and
//! verifying (the EZKL comparison with sizes and memory is `scripts/ezkl_bench.py`).
//!
//! `cargo bench -p vouch-zk --bench zk`

use criterion::{Criterion, criterion_group, criterion_main};
use vouch_core::{Digest, TensorMap};

fn load(name: &str) -> (Vec<u8>, TensorMap) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let model = std::fs::read(dir.join(format!("{name}.onnx"))).expect("model present");
    let inputs = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.input.json"))).expect("input"),
    )
    .expect("input json");
    (model, inputs)
}

fn bench(c: &mut Criterion) {
    for name in ["mlp_small", "mlp"] {
        let (model, inputs) = load(name);
        let opts = vouch_zk::AnalyzeOptions {
            samples: vec![inputs.clone()],
            ..Default::default()
        };
        let (info, keys) = vouch_zk::analyze_with(&model, &opts).expect("supported");
        let receipt = Digest::of(b"bench");
        let mut g = c.benchmark_group(name);
        g.sample_size(10);
        g.bench_function("keygen", |b| {
            b.iter(|| vouch_zk::ZkKeys::generate(&model, &info.config).expect("keys"))
        });
        g.bench_function("prove", |b| {
            b.iter(|| vouch_zk::prove(&keys, &inputs, &receipt, &mut |_| false).expect("proof"))
        });
        let proof = vouch_zk::prove(&keys, &inputs, &receipt, &mut |_| false).expect("proof");
        g.bench_function("verify", |b| {
            b.iter(|| {
                vouch_zk::verify_statement(&proof.evidence, &keys, &receipt).expect("verifies")
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
