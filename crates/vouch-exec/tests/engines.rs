//! Both real engines on the shipped models (models/, made by models/gen_models.py), checked
//! against the reference outputs ONNX Runtime's Python package produced at generation time.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

#[path = "support/ort.rs"]
mod support_ort;

use std::path::PathBuf;
use std::sync::Arc;

use vouch_core::{ModelDigest, TensorMap};
use vouch_exec::engine::check_inputs;
use vouch_exec::ort_engine::OrtEngine;
use vouch_exec::tract_engine::TractEngine;
use vouch_exec::{Engine, EngineKind, Engines, ExecError, Executor, ExecutorConfig};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn load_json(name: &str) -> TensorMap {
    let text = std::fs::read_to_string(models_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn model_bytes(name: &str) -> Vec<u8> {
    std::fs::read(models_dir().join(format!("{name}.onnx"))).unwrap()
}

fn ort() -> Option<OrtEngine> {
    support_ort::ort_with_arena(vouch_exec::run_control::DEFAULT_RUN_MEMORY)
}

fn max_abs_diff(a: &TensorMap, b: &TensorMap) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (name, ta) in a.iter() {
        let tb = b
            .get(name)
            .unwrap_or_else(|| panic!("output {name} missing"));
        assert_eq!(ta.shape(), tb.shape(), "shape of {name}");
        assert_eq!(ta.dtype(), tb.dtype(), "dtype of {name}");
        for (x, y) in ta.data().to_f64_vec().iter().zip(tb.data().to_f64_vec()) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

const MODELS: [&str; 4] = ["mlp", "mlp_small", "cnn", "multi_io"];

fn check_engine(engine: &dyn Engine) {
    for name in MODELS {
        let m = engine
            .load(&model_bytes(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = load_json(&format!("{name}.input.json"));
        check_inputs(m.signature(), &inputs).unwrap();
        let out = m.run(&inputs).unwrap();
        let diff = max_abs_diff(&out, &load_json(&format!("{name}.output.json")));
        assert!(
            diff < 1e-4,
            "{} on {name}: max abs diff {diff}",
            engine.kind()
        );
    }
}

#[test]
fn tract_matches_reference_outputs_and_is_bit_reproducible() {
    check_engine(&TractEngine);
    let m = TractEngine.load(&model_bytes("cnn")).unwrap();
    let inputs = load_json("cnn.input.json");
    let a = m.run(&inputs).unwrap();
    let b = m.run(&inputs).unwrap();
    assert_eq!(a.digest(), b.digest());
    assert!(m.profile().deterministic);
}

#[test]
fn onnxruntime_matches_reference_outputs() {
    if let Some(e) = ort() {
        assert_eq!(e.kind(), EngineKind::OnnxRuntime);
        assert!(e.version().starts_with("1."), "{}", e.version());
        check_engine(&e);
    }
}

#[test]
fn signatures_name_inputs_dtypes_and_free_batch_dims() {
    let m = TractEngine.load(&model_bytes("multi_io")).unwrap();
    let sig = m.signature();
    let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "scale"]);
    assert!(sig.batchable());
    let cnn = TractEngine.load(&model_bytes("cnn")).unwrap();
    assert_eq!(cnn.signature().inputs[0].shape_string(), "[N, 1, 28, 28]");
}

#[test]
fn garbage_is_refused_before_any_engine_sees_it() {
    let engines = Engines::new(ort());
    let err = engines.admit(b"definitely not a model").err().unwrap();
    assert!(matches!(err, ExecError::InvalidModel(_)), "{err:?}");
    assert!(err.to_string().contains("not an ONNX protobuf"), "{err}");
    let admitted = engines.admit(&model_bytes("mlp")).unwrap();
    assert_eq!(admitted.engine, engines.preferred());
}

#[test]
fn wrong_shapes_are_named_in_the_error() {
    let m = TractEngine.load(&model_bytes("mlp")).unwrap();
    let bad: TensorMap = serde_json::from_str(&format!(
        r#"{{"x":{{"dtype":"float32","shape":[1,63],"data":[{}]}}}}"#,
        vec!["0"; 63].join(",")
    ))
    .unwrap();
    let err = check_inputs(m.signature(), &bad).unwrap_err().to_string();
    assert!(err.contains("\"x\"") && err.contains("[N, 64]"), "{err}");
}

#[test]
fn executor_batches_concurrent_requests_and_splits_results_correctly() {
    let engine = ort().map(|o| Arc::new(o) as Arc<dyn Engine>);
    // Batching only applies to non-deterministic engines; without ORT this checks the unbatched path.
    let engine = engine.unwrap_or_else(|| Arc::new(TractEngine));
    let model = engine.load(&model_bytes("mlp")).unwrap();
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        queue_capacity: 64,
        max_batch: 16,
        max_wait: std::time::Duration::from_millis(20),
        ..Default::default()
    });
    let key = ModelDigest::of_model_bytes(&model_bytes("mlp"));
    let base = load_json("mlp.input.json");
    let expected = model.run(&base).unwrap();
    let receivers: Vec<_> = (0..8)
        .map(|_| exec.submit(key, model.clone(), base.clone()).unwrap())
        .collect();
    for rx in receivers {
        let out = rx.blocking_recv().unwrap().unwrap();
        assert!(max_abs_diff(&out.outputs, &expected) < 1e-5);
    }
    if engine.kind() == EngineKind::OnnxRuntime {
        assert!(
            exec.stats()
                .max_batch_seen
                .load(std::sync::atomic::Ordering::Relaxed)
                > 1
        );
    }
}

#[test]
fn onnxruntime_session_pool_runs_one_model_from_many_threads_correctly() {
    let Some(ort) = ort() else { return };
    let bytes = model_bytes("mlp");
    let single = ort.load(&bytes).unwrap();
    let ort = ort.with_sessions(2);
    let model = ort.load(&bytes).unwrap();
    assert_eq!(single.max_concurrency(), 1);
    assert_eq!(model.max_concurrency(), 2);
    // The cache weighs every session the pool may build.
    assert!(model.memory_bytes() > single.memory_bytes());
    let base = load_json("mlp.input.json");
    let expected = single.run(&base).unwrap();
    // Through the executor with two workers, so two batches of this model run at once.
    let exec = Arc::new(Executor::new(ExecutorConfig {
        workers: 2,
        queue_capacity: 256,
        max_batch: 8,
        max_wait: std::time::Duration::ZERO,
        ..Default::default()
    }));
    let key = ModelDigest::of_model_bytes(&bytes);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (exec, model, base, expected) =
                (exec.clone(), model.clone(), base.clone(), expected.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let out = exec.run_blocking(key, model.clone(), base.clone()).unwrap();
                    assert!(max_abs_diff(&out.outputs, &expected) < 1e-5);
                    assert!(max_abs_diff(&model.run(&base).unwrap(), &expected) < 1e-5);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_full_queue_is_refused_not_grown() {
    let model = TractEngine.load(&model_bytes("cnn")).unwrap();
    let key = ModelDigest::of_model_bytes(b"cnn");
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        queue_capacity: 2,
        max_batch: 1,
        max_wait: Default::default(),
        ..Default::default()
    });
    let inputs = load_json("cnn.input.json");
    let mut refused = 0;
    let mut accepted = Vec::new();
    for _ in 0..50 {
        match exec.submit(key, model.clone(), inputs.clone()) {
            Ok(rx) => accepted.push(rx),
            Err(vouch_exec::ExecError::Overloaded { capacity: 2 }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        refused > 0,
        "50 instant submissions into a queue of 2 must overflow"
    );
    for rx in accepted {
        assert!(rx.blocking_recv().unwrap().is_ok());
    }
}

/// The text model exported by scripts/setup-minilm.sh (90 MB, not committed). CI sets
/// VOUCH_REQUIRE_MINILM=1 so that its absence fails the run.
#[test]
fn minilm_text_model_runs_on_both_engines() {
    let required = std::env::var("VOUCH_REQUIRE_MINILM").is_ok_and(|v| v == "1");
    let path = std::env::var("VOUCH_MINILM")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            let p =
                PathBuf::from(std::env::var("HOME").ok()?).join(".cache/vouch/models/minilm.onnx");
            p.exists().then_some(p)
        });
    let Some(path) = path.filter(|p| p.exists()) else {
        assert!(
            !required,
            "VOUCH_REQUIRE_MINILM=1 but the model is missing: run scripts/setup-minilm.sh"
        );
        eprintln!("note: MiniLM not exported; skipping (scripts/setup-minilm.sh)");
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let dir = path.parent().unwrap();
    let read = |n: &str| -> TensorMap {
        serde_json::from_str(&std::fs::read_to_string(dir.join(n)).unwrap()).unwrap()
    };
    let inputs = read("minilm.input.json");
    let expected = read("minilm.output.json");
    let mut engines: Vec<Box<dyn Engine>> = vec![Box::new(TractEngine)];
    if let Some(o) = ort() {
        engines.push(Box::new(o));
    }
    for e in engines {
        let m = e.load(&bytes).unwrap();
        assert_eq!(m.signature().outputs[0].shape_string(), "[N, 384]");
        let out = m.run(&inputs).unwrap();
        let diff = max_abs_diff(&out, &expected);
        assert!(diff < 1e-4, "{} on MiniLM: max abs diff {diff}", e.kind());
    }
}
