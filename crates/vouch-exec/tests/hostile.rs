//! Hostile models and inputs (issue 13): each test is a finding that once killed or fooled the
//! node — a run that allocates what its input says, an engine panic, a loop that never ends,
//! abandoned requests that kept the queue full, and batching that mixed callers' rows. The
//! models are built here, byte for byte, with ONNX's own protobuf schema.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

#[path = "support/ort.rs"]
mod support_ort;

#[path = "support/hostile_models.rs"]
mod hostile_models;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hostile_models::*;
use vouch_core::{ModelDigest, Tensor, TensorData, TensorMap};
use vouch_exec::engine::check_inputs;
use vouch_exec::ort_engine::OrtEngine;
use vouch_exec::tract_engine::TractEngine;
use vouch_exec::{
    Engine, EngineKind, ExecError, Executor, ExecutorConfig, LoadedModel, ModelFile, ModelLimits,
    RunControl,
};

/// ONNX Runtime's arena cap in this test process (the environment is per process).
const ORT_ARENA: usize = 256 << 20;
/// tract's per-run budget in these tests.
const RUN_MEMORY: usize = 256 << 20;

fn ort() -> Option<OrtEngine> {
    support_ort::ort_with_arena(ORT_ARENA)
}

fn engines() -> Vec<Arc<dyn Engine>> {
    let mut v: Vec<Arc<dyn Engine>> = vec![Arc::new(TractEngine)];
    if let Some(o) = ort() {
        v.push(Arc::new(o));
    }
    v
}

fn i64s(name: &str, shape: Vec<u64>, v: Vec<i64>) -> (String, Tensor) {
    (
        name.into(),
        Tensor::new(shape, TensorData::Int64(v)).unwrap(),
    )
}

fn map(items: Vec<(String, Tensor)>) -> TensorMap {
    let mut m = TensorMap::new();
    for (k, v) in items {
        m.insert(k, v);
    }
    m
}

fn budget() -> RunControl {
    RunControl::new(None, RUN_MEMORY)
}

// ---- the findings ---------------------------------------------------------------------------

#[test]
fn outputs_sized_by_the_input_fail_the_run_not_the_node() {
    for engine in engines() {
        let kind = engine.kind();
        match engine.load(&constant_of_shape()) {
            // tract compiles only constant shapes for ConstantOfShape: refused, never run.
            Err(ExecError::Load { reason, .. }) if kind == EngineKind::Tract => {
                assert!(reason.contains("variable"), "{reason}");
            }
            loaded => {
                let cos = loaded.unwrap();
                // 50000 × 50000 floats: 10 GB.
                let huge = map(vec![i64s("s", vec![3], vec![50_000, 50_000, 1])]);
                let err = cos.run_controlled(&huge, &budget()).unwrap_err();
                assert!(
                    matches!(err, ExecError::MemoryLimit { .. }),
                    "{kind}: {err:?}"
                );
                // The model still serves a sane request afterwards.
                let small = map(vec![i64s("s", vec![3], vec![2, 3, 1])]);
                let out = cos.run_controlled(&small, &budget()).unwrap();
                assert_eq!(out.get("y").unwrap().shape(), &[2, 3, 1], "{kind}");
            }
        }

        let r = engine.load(&range()).unwrap();
        let scalar = |n: &str, v: i64| i64s(n, vec![], vec![v]);
        let huge = map(vec![
            scalar("a", 0),
            scalar("n", 2_500_000_000),
            scalar("d", 1),
        ]);
        let err = r.run_controlled(&huge, &budget()).unwrap_err();
        assert!(
            matches!(err, ExecError::MemoryLimit { .. }),
            "{kind}: {err:?}"
        );
        let ok = map(vec![scalar("a", 0), scalar("n", 5), scalar("d", 1)]);
        assert_eq!(
            r.run_controlled(&ok, &budget())
                .unwrap()
                .get("y")
                .unwrap()
                .shape(),
            &[5]
        );
    }
}

#[test]
fn absurd_shapes_are_refused_before_an_engine_and_engine_panics_spare_the_worker() {
    let bytes = relu3();
    let model = TractEngine.load(&bytes).unwrap();
    let absurd = map(vec![(
        "x".into(),
        Tensor::new(vec![1, 0, 1 << 63], TensorData::Float32(vec![])).unwrap(),
    )]);
    let err = check_inputs(model.signature(), &absurd).unwrap_err();
    assert!(matches!(err, ExecError::BadInput(_)), "{err:?}");

    // Past the check (as if it were missing), tract's shape arithmetic may panic: the run
    // fails, the single worker survives and serves the next request.
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        ..Default::default()
    });
    let key = ModelDigest::of_model_bytes(&bytes);
    for _ in 0..3 {
        let res = exec.run_blocking(key, model.clone(), absurd.clone());
        assert!(res.is_err(), "{res:?}");
    }
    let fine = map(vec![(
        "x".into(),
        Tensor::new(vec![1, 1, 2], TensorData::Float32(vec![-1.0, 2.0])).unwrap(),
    )]);
    let out = exec.run_blocking(key, model, fine).unwrap();
    assert_eq!(
        out.outputs.get("y").unwrap().data(),
        &TensorData::Float32(vec![0.0, 2.0])
    );
}

fn loop_inputs(m: i64) -> TensorMap {
    map(vec![
        i64s("m", vec![], vec![m]),
        (
            "v".into(),
            Tensor::new(vec![1], TensorData::Float32(vec![0.5])).unwrap(),
        ),
    ])
}

#[test]
fn a_runaway_loop_is_stopped_at_its_deadline_and_frees_the_worker() {
    let Some(ort) = ort() else { return };
    let bytes = counting_loop();
    let model = ort.load(&bytes).unwrap();
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        run_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let key = ModelDigest::of_model_bytes(&bytes);
    let err = exec
        .run_blocking(key, model.clone(), loop_inputs(1_000_000_000_000_000))
        .unwrap_err();
    assert!(matches!(err, ExecError::TimedOut { .. }), "{err:?}");
    let out = exec.run_blocking(key, model, loop_inputs(3)).unwrap();
    assert_eq!(
        out.outputs.get("y").unwrap().data(),
        &TensorData::Float32(vec![3.5])
    );
    assert!(
        exec.stats()
            .stopped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[test]
fn abandoned_requests_leave_the_queue_and_stop_their_run() {
    let Some(ort) = ort() else { return };
    let bytes = counting_loop();
    let model: Arc<dyn LoadedModel> = ort.load(&bytes).unwrap();
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        queue_capacity: 4,
        run_timeout: None,
        ..Default::default()
    });
    let key = ModelDigest::of_model_bytes(&bytes);
    let forever = || loop_inputs(1_000_000_000_000_000);
    let running = exec.submit(key, model.clone(), forever()).unwrap();
    // Wait (bounded) until the worker has taken it.
    for _ in 0..500 {
        if exec.queue_len() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let queued: Vec<_> = (0..4)
        .map(|_| exec.submit(key, model.clone(), forever()).unwrap())
        .collect();
    assert!(matches!(
        exec.submit(key, model.clone(), loop_inputs(1)),
        Err(ExecError::Overloaded { .. })
    ));
    // Their callers time out: the queue frees, a fresh request is accepted.
    drop(queued);
    let fresh = exec.submit(key, model.clone(), loop_inputs(2)).unwrap();
    // The running job's caller goes too: its run stops and the fresh one is served.
    drop(running);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(fresh.blocking_recv()));
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the fresh request was never served: the abandoned run kept the worker")
        .unwrap()
        .unwrap();
    assert_eq!(
        out.outputs.get("y").unwrap().data(),
        &TensorData::Float32(vec![2.5])
    );
}

#[test]
fn tract_stops_between_nodes_once_its_deadline_has_passed() {
    let model = TractEngine.load(&relu3()).unwrap();
    let x = map(vec![(
        "x".into(),
        Tensor::new(vec![1, 1, 1], TensorData::Float32(vec![1.0])).unwrap(),
    )]);
    let expired = RunControl::new(Some(Duration::ZERO), RUN_MEMORY);
    let err = model.run_controlled(&x, &expired).unwrap_err();
    assert!(matches!(err, ExecError::TimedOut { .. }), "{err:?}");
    let abandoned = budget();
    abandoned.stop(vouch_exec::StopReason::Abandoned);
    assert!(matches!(
        model.run_controlled(&x, &abandoned),
        Err(ExecError::Abandoned)
    ));
}

#[test]
fn batching_is_proven_per_model_and_never_mixes_callers_rows() {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for name in ["mlp", "cnn", "mlp_small", "multi_io", "zk/dense"] {
        let bytes = std::fs::read(models.join(format!("{name}.onnx"))).unwrap();
        let file = ModelFile::parse(&bytes, &ModelLimits::default()).unwrap();
        assert_eq!(file.row_independence(), &Ok(()), "{name}");
    }
    let bytes = minus_batch_mean();
    let file = ModelFile::parse(&bytes, &ModelLimits::default()).unwrap();
    let why = file.row_independence().clone().unwrap_err();
    assert!(
        why.contains("ReduceMean") && why.contains("axis 0"),
        "{why}"
    );

    // Sixteen single-row callers at once on the engine that batches (ONNX Runtime): each
    // answer must be its own row minus its own mean, i.e. exactly zero.
    let Some(ort) = ort() else { return };
    let model = ort.with_sessions(1).load(&bytes).unwrap();
    let exec = Arc::new(Executor::new(ExecutorConfig {
        workers: 1,
        max_batch: 16,
        max_wait: Duration::from_millis(5),
        ..Default::default()
    }));
    let key = ModelDigest::of_model_bytes(&bytes);
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let row = vec![i as f32; 4];
            let x = map(vec![(
                "x".into(),
                Tensor::new(vec![1, 4], TensorData::Float32(row)).unwrap(),
            )]);
            exec.submit(key, model.clone(), x).unwrap()
        })
        .collect();
    for h in handles {
        let out = h.blocking_recv().unwrap().unwrap();
        assert_eq!(out.profile.batch, 1);
        assert_eq!(
            out.outputs.get("y").unwrap().data(),
            &TensorData::Float32(vec![0.0; 4])
        );
    }
}

#[test]
fn external_data_is_refused_by_the_gate_for_every_engine() {
    let bytes = external_data("admin.token");
    for engine in engines() {
        let err = engine.load(&bytes).err().unwrap();
        assert!(matches!(err, ExecError::InvalidModel(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("initializer \"w\""), "{msg}");
        assert!(
            msg.contains("admin.token") && msg.contains("self-contained"),
            "{msg}"
        );
    }
}
