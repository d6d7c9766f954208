//! The cost of the hardening guards (issue 13), in process: one MLP request through the executor
//! (sequential p50) and 16 clients' throughput. Built in two trees (before and after the guards)
//! and run alternately by scripts; only the ratio of adjacent runs means anything.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_core::{ModelDigest, TensorMap};
use vouch_exec::ort_engine::OrtEngine;
use vouch_exec::{Engine, Executor, ExecutorConfig};

fn load_ort(p: &std::path::Path) -> OrtEngine {
    OrtEngine::load(p, 1, vouch_exec::run_control::DEFAULT_RUN_MEMORY).unwrap()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bytes = std::fs::read(root.join("models/mlp.onnx")).unwrap();
    let inputs: TensorMap =
        serde_json::from_str(&std::fs::read_to_string(root.join("models/mlp.input.json")).unwrap())
            .unwrap();
    let dylib = PathBuf::from(std::env::var("ORT_DYLIB_PATH").unwrap());
    let ort = load_ort(&dylib).with_sessions(2);
    let model = ort.load(&bytes).unwrap();
    let key = ModelDigest::of_model_bytes(&bytes);
    let exec = Arc::new(Executor::new(ExecutorConfig {
        workers: 2,
        queue_capacity: 1024,
        max_batch: 32,
        max_wait: Duration::ZERO,
        ..Default::default()
    }));
    for _ in 0..500 {
        exec.run_blocking(key, model.clone(), inputs.clone())
            .unwrap();
    }
    let mut lat: Vec<f64> = (0..3000)
        .map(|_| {
            let t = Instant::now();
            exec.run_blocking(key, model.clone(), inputs.clone())
                .unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = lat[lat.len() / 2];
    let secs = 3.0;
    let start = Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (exec, model, inputs) = (exec.clone(), model.clone(), inputs.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < secs {
                    exec.run_blocking(key, model.clone(), inputs.clone())
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let rps = total as f64 / start.elapsed().as_secs_f64();
    // tract, direct: the per-node evaluation hook (stop flag, memory pre-check) on the CNN.
    let cnn = std::fs::read(root.join("models/cnn.onnx")).unwrap();
    let cnn_in: TensorMap =
        serde_json::from_str(&std::fs::read_to_string(root.join("models/cnn.input.json")).unwrap())
            .unwrap();
    let t = vouch_exec::tract_engine::TractEngine.load(&cnn).unwrap();
    for _ in 0..50 {
        t.run(&cnn_in).unwrap();
    }
    let tract_p50 = p50_us(400, || {
        t.run(&cnn_in).unwrap();
    });
    // tract on MiniLM (hundreds of nodes): where a per-node hook costs most.
    let home = PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/vouch/models");
    let mini = std::fs::read(home.join("minilm.onnx")).unwrap();
    let mini_in: TensorMap =
        serde_json::from_str(&std::fs::read_to_string(home.join("minilm.input.json")).unwrap())
            .unwrap();
    let m = vouch_exec::tract_engine::TractEngine.load(&mini).unwrap();
    for _ in 0..5 {
        m.run(&mini_in).unwrap();
    }
    let mini_p50 = p50_us(40, || {
        m.run(&mini_in).unwrap();
    });
    println!(
        "guards p50_us={p50:.1} rps16={rps:.0} tract_cnn_p50_us={tract_p50:.1} tract_minilm_p50_us={mini_p50:.1}"
    );
}

/// Median wall time of `n` calls of `f`, in µs.
fn p50_us(n: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}
