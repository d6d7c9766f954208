//! Foundation benchmarks, in process, side by side in one run (the machine is shared and
//! noisy, so only ratios measured together mean anything):
//! - latency of Vouch's ONNX Runtime path and of tract, against ONNX Runtime used directly from
//!   Python (scripts/bench_ort.py, same thread count), for the MLP, the CNN and MiniLM;
//! - throughput of 16 concurrent clients through the batching executor, against
//!   one-request-at-a-time ONNX Runtime;
//! - cold start (compile) of the CNN on each engine.
//!
//! `cargo bench -p vouch-exec --bench inference` (needs ORT_DYLIB_PATH or scripts/setup-ort.sh;
//! Python baseline from the venv scripts/setup-ort.sh makes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_core::{ModelDigest, TensorMap};
use vouch_exec::ort_engine::OrtEngine;
use vouch_exec::tract_engine::TractEngine;
use vouch_exec::{Engine, Executor, ExecutorConfig, LoadedModel};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cache() -> PathBuf {
    std::env::var_os("VOUCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/vouch"))
}

fn median_us(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median latency of `f` over `iters` calls after a warm-up.
fn time_it(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut s = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        s.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median_us(s)
}

fn python_ort(model: &Path, input: &Path, iters: usize, batch: usize) -> Option<f64> {
    python_ort_stat(model, input, iters, batch, "median_us")
}

/// One statistic (`median_us`, `mean_us`, ...) from scripts/bench_ort.py.
fn python_ort_stat(
    model: &Path,
    input: &Path,
    iters: usize,
    batch: usize,
    stat: &str,
) -> Option<f64> {
    let py = cache().join("venv/bin/python");
    let out = std::process::Command::new(py)
        .arg(repo().join("scripts/bench_ort.py"))
        .arg(model)
        .arg(input)
        .args([
            "--threads",
            "1",
            "--iters",
            &iters.to_string(),
            "--warmup",
            &(iters / 10).to_string(),
        ])
        .args(["--batch", &batch.to_string()])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[stat].as_f64()
}

fn read_inputs(p: &Path) -> TensorMap {
    serde_json::from_str(&std::fs::read_to_string(p).expect("inputs")).expect("inputs json")
}

fn main() {
    let ort_path = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("ort/libonnxruntime.so"));
    // Two sessions per model, as the server configures it for two workers.
    let ort = OrtEngine::load(&ort_path, 1, vouch_exec::run_control::DEFAULT_RUN_MEMORY)
        .expect("ONNX Runtime (run scripts/setup-ort.sh)")
        .with_sessions(2);
    let models = repo().join("models");
    let mut cases: Vec<(&str, PathBuf, PathBuf, usize)> = vec![
        (
            "mlp",
            models.join("mlp.onnx"),
            models.join("mlp.input.json"),
            4000,
        ),
        (
            "cnn",
            models.join("cnn.onnx"),
            models.join("cnn.input.json"),
            2000,
        ),
    ];
    let minilm = cache().join("models/minilm.onnx");
    if minilm.exists() {
        cases.push((
            "minilm",
            minilm,
            cache().join("models/minilm.input.json"),
            200,
        ));
    }

    println!("## In-process latency (median µs, 1 thread)\n");
    println!("| model | ORT via Python | Vouch (ORT) | Vouch ÷ Python | tract | tract ÷ Python |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, model, input, iters) in &cases {
        let bytes = std::fs::read(model).expect("model");
        let inputs = read_inputs(input);
        let vo = ort.load(&bytes).expect("ort load");
        let vt = TractEngine.load(&bytes).expect("tract load");
        // Interleave the three measurements twice so drift on this shared machine hits each alike.
        let mut py = Vec::new();
        let mut o = Vec::new();
        let mut t = Vec::new();
        for _ in 0..2 {
            py.push(python_ort(model, input, *iters, 1).unwrap_or(f64::NAN));
            o.push(time_it(*iters, || {
                vo.run(&inputs).expect("run");
            }));
            t.push(time_it(*iters / 2, || {
                vt.run(&inputs).expect("run");
            }));
        }
        let (py, o, t) = (min(&py), min(&o), min(&t));
        println!(
            "| {name} | {py:.1} | {o:.1} | {:.2} | {t:.1} | {:.2} |",
            o / py,
            t / py
        );
    }

    println!(
        "\n## Throughput: 16 concurrent clients, dynamic batching, vs one-request-at-a-time ORT\n"
    );
    // One-at-a-time baselines are throughputs too (calls ÷ wall time), not 1e6 ÷ median: on a
    // shared machine a median leaves out the time the process is descheduled, which a
    // throughput window cannot. Python's mean is its calls ÷ wall time; the in-process row runs
    // Vouch's ORT session directly, one call after another, over the same window length.
    println!(
        "| model | ORT from Python one at a time (req/s, 1e6 ÷ mean) | ORT in process one at a time (req/s, 3 s window) | Vouch executor, 16 client threads (req/s, 3 s window) | ÷ Python | ÷ in process | mean batch | 16 async clients, as the server's (req/s) | ÷ Python | mean batch |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, model, input, iters) in cases.iter().filter(|c| c.0 != "minilm") {
        let bytes = std::fs::read(model).expect("model");
        let inputs = read_inputs(input);
        let single = python_ort_stat(model, input, iters * 50, 1, "mean_us").unwrap_or(f64::NAN);
        let single_rps = 1e6 / single;
        let m: Arc<dyn LoadedModel> = ort.load(&bytes).expect("load");
        let window = Duration::from_secs(3);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < window {
            m.run(&inputs).expect("run");
            n += 1;
        }
        let direct_rps = n as f64 / start.elapsed().as_secs_f64();
        let exec = Arc::new(Executor::new(ExecutorConfig {
            workers: 2,
            queue_capacity: 1024,
            max_batch: 32,
            max_wait: Duration::ZERO,
            ..Default::default()
        }));
        let key = ModelDigest::of_model_bytes(&bytes);
        let start = Instant::now();
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (exec, m, inputs) = (exec.clone(), m.clone(), inputs.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < window {
                        exec.run_blocking(key, m.clone(), inputs.clone())
                            .expect("run");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().expect("client")).sum();
        let rps = total as f64 / start.elapsed().as_secs_f64();
        let mean_batch = |exec: &Executor| {
            let stats = exec.stats();
            let runs = stats.runs.load(std::sync::atomic::Ordering::Relaxed).max(1);
            let reqs = stats.requests.load(std::sync::atomic::Ordering::Relaxed);
            reqs as f64 / runs as f64
        };
        let thread_batch = mean_batch(&exec);
        drop(exec);
        // The server's way in: 16 requests in flight as tasks on a 2-thread Tokio runtime, each
        // awaiting its reply, instead of 16 OS threads each blocked on one.
        let exec = Arc::new(Executor::new(ExecutorConfig {
            workers: 2,
            queue_capacity: 1024,
            max_batch: 32,
            max_wait: Duration::ZERO,
            ..Default::default()
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let start = Instant::now();
        let total: u64 = rt.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (exec, m, inputs) = (exec.clone(), m.clone(), inputs.clone());
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while start.elapsed() < window {
                            let reply = exec.submit(key, m.clone(), inputs.clone()).expect("queue");
                            reply.await.expect("reply").expect("run");
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("client");
            }
            total
        });
        let async_rps = total as f64 / start.elapsed().as_secs_f64();
        println!(
            "| {name} | {single_rps:.0} | {direct_rps:.0} | {rps:.0} | {:.2} | {:.2} | {:.1} | {async_rps:.0} | {:.2} | {:.1} |",
            rps / single_rps,
            rps / direct_rps,
            thread_batch,
            async_rps / single_rps,
            mean_batch(&exec)
        );
    }

    println!("\n## Cold start: compile the CNN from bytes (median of 20, ms)\n");
    let cnn = std::fs::read(models.join("cnn.onnx")).expect("cnn");
    let mut so = Vec::new();
    let mut st = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        drop(ort.load(&cnn).expect("load"));
        so.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        drop(TractEngine.load(&cnn).expect("load"));
        st.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "| engine | compile ms |\n| --- | --- |\n| onnxruntime | {:.2} |\n| tract | {:.2} |",
        median_us(so),
        median_us(st)
    );
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}
