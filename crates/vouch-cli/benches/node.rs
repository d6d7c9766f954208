//! Issue 14, measured side by side in one run against real processes over loopback:
//! - per-request CPU of `POST /v1/infer` (MLP, `["signed"]`, durably logged): utime + stime of
//!   the node process (`/proc/<pid>/stat`, so wrk is not counted) over a wrk window of at least
//!   `--min-requests` requests, ÷ the requests wrk counted (wrk cannot stop at a request count:
//!   a thread stopped by its script still waits out `-d`);
//! - the cost of verifiability: requests/s of the node ÷ requests/s of a minimal axum + ONNX
//!   Runtime server without receipts (this binary run as `--baseline-serve`: one session, the
//!   same model and request body, the outputs answered as JSON, nothing else).
//!
//! Each node binary given (e.g. before and after a change) and the baseline are started as
//! separate processes and measured in turn, round after round, with the same wrk command; the
//! load averages are recorded with every measurement. Without a binary, the `vouch` of this
//! build is measured.
//!
//! `cargo bench -p vouch --bench node -- [--rounds 3] [VOUCH_BINARY ...]`, or
//! `scripts/bench-node.sh A B`. Needs wrk (Debian's `wrk`) and ONNX Runtime (`ORT_DYLIB_PATH`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::Parser;

mod support;
use serde_json::{Value, json};
use support::{blocking_client, loadavg, median, wrk};

#[derive(Parser)]
struct Opts {
    /// Serve the baseline (minimal axum + ONNX Runtime) on a free loopback port and print it.
    #[arg(long)]
    baseline_serve: bool,
    /// Fewest requests a window must hold for its figures to count.
    #[arg(long, default_value_t = 20_000)]
    min_requests: u64,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Rounds; each measures every target once, in turn (the order rotates each round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// wrk connections (and threads: `-t`).
    #[arg(long, default_value_t = 16)]
    connections: u32,
    #[arg(long, default_value_t = 2)]
    wrk_threads: u32,
    /// `vouch` binaries to measure (default: this build's).
    binaries: Vec<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    if opts.baseline_serve {
        return baseline::serve();
    }
    let binaries = match opts.binaries.is_empty() {
        true => vec![PathBuf::from(env!("CARGO_BIN_EXE_vouch"))],
        false => opts.binaries.clone(),
    };
    let mut targets: Vec<Target> = binaries.into_iter().map(Target::Vouch).collect();
    targets.push(Target::Baseline);
    ensure!(
        Command::new("wrk").arg("-v").output().is_ok(),
        "wrk not found: apt-get install -y wrk"
    );
    let tmp = tempfile::tempdir()?;
    let model = repo().join("models/mlp.onnx");
    let inputs: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("models/mlp.input.json"),
    )?)?;
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("models/mlp.output.json"),
    )?)?;
    let body = json!({"model": "mlp", "inputs": inputs, "tiers": ["signed"]}).to_string();
    let script = tmp.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
        ),
    )?;

    println!(
        "# Node layer: per-request CPU and the cost of verifiability\n\n\
         MLP, body {} B, `[\"signed\"]`; wrk -t {} -c {} -d {}s after a 2 s warm-up; node CPU over \
         the window ÷ its requests (at least {}).\n",
        body.len(),
        opts.wrk_threads,
        opts.connections,
        opts.secs,
        opts.min_requests
    );
    for (i, t) in targets.iter().enumerate() {
        println!("target {i}: {}", t.describe());
    }
    println!(
        "\n| round | target | load avg (1/5/15 min) before → after | CPU µs/request | req/s | requests | idle CPU ms/s |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    let mut results: BTreeMap<usize, Vec<Measured>> = BTreeMap::new();
    for round in 0..opts.rounds {
        for k in 0..targets.len() {
            let i = (k + round) % targets.len();
            let dir = tmp.path().join(format!("r{round}-t{i}"));
            std::fs::create_dir_all(&dir)?;
            let load_before = loadavg();
            let node = Running::start(&targets[i], &dir, &model)?;
            node.check(&body, &expected)?;
            // Warm-up: connections, session pool, caches, the log's first commits.
            wrk(&node.url, &script, opts.wrk_threads, opts.connections, 2)?;
            // Idle: what the node's background tasks cost while nothing is asked.
            let idle0 = node.cpu_seconds()?;
            std::thread::sleep(Duration::from_secs(1));
            let cpu0 = node.cpu_seconds()?;
            let run = wrk(
                &node.url,
                &script,
                opts.wrk_threads,
                opts.connections,
                opts.secs,
            )?;
            let cpu1 = node.cpu_seconds()?;
            drop(node);
            ensure!(
                run.requests >= opts.min_requests,
                "{}: {} requests in {} s, fewer than --min-requests {}; raise --secs",
                targets[i].describe(),
                run.requests,
                opts.secs,
                opts.min_requests
            );
            let m = Measured {
                cpu_us: 1e6 * (cpu1 - cpu0) / run.requests as f64,
                rps: run.rps,
                requests: run.requests,
            };
            println!(
                "| {} | {i} | {} → {} | {:.1} | {:.0} | {} | {:.0} |",
                round + 1,
                load_before,
                loadavg(),
                m.cpu_us,
                m.rps,
                m.requests,
                1e3 * (cpu0 - idle0)
            );
            results.entry(i).or_default().push(m);
        }
    }

    println!(
        "\n## Medians over {} rounds\n\n| target | CPU µs/request | req/s |\n| --- | --- | --- |",
        opts.rounds
    );
    let med = |i: usize, f: fn(&Measured) -> f64| median(results[&i].iter().map(f).collect());
    for (i, t) in targets.iter().enumerate() {
        println!(
            "| {i}: {} | {:.1} | {:.0} |",
            t.short(),
            med(i, |m| m.cpu_us),
            med(i, |m| m.rps)
        );
    }
    let base = targets.len() - 1;
    println!();
    for i in 0..base {
        // Per round, so drift between rounds cancels; then the median of those ratios.
        let ratios: Vec<f64> = results[&i]
            .iter()
            .zip(&results[&base])
            .map(|(n, b)| n.rps / b.rps)
            .collect();
        println!(
            "cost of verifiability, target {i}: node ÷ baseline req/s = **{:.2}** (per round: {})",
            median(ratios.clone()),
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for i in 1..base {
        let ratios: Vec<f64> = results[&i]
            .iter()
            .zip(&results[&0])
            .map(|(b, a)| b.cpu_us / a.cpu_us)
            .collect();
        println!(
            "per-request CPU, target {i} ÷ target 0 = **{:.3}** (per round: {})",
            median(ratios.clone()),
            ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

enum Target {
    Vouch(PathBuf),
    Baseline,
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Vouch(p) => format!("vouch node `{}`", p.display()),
            Target::Baseline => "baseline: minimal axum + ONNX Runtime, no receipts".into(),
        }
    }

    fn short(&self) -> String {
        match self {
            Target::Vouch(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Target::Baseline => "baseline".into(),
        }
    }
}

struct Measured {
    cpu_us: f64,
    rps: f64,
    requests: u64,
}

/// A server process of one target, killed when dropped.
struct Running {
    child: Child,
    url: String,
    vouch: bool,
}

impl Running {
    fn start(target: &Target, dir: &Path, model: &Path) -> Result<Running> {
        let mut cmd = match target {
            Target::Vouch(bin) => {
                let mut c = Command::new(bin);
                c.arg("serve")
                    .arg("--listen")
                    .arg("127.0.0.1:0")
                    .arg("--data-dir")
                    .arg(dir.join("data"));
                c
            }
            Target::Baseline => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("--baseline-serve").env("BASELINE_MODEL", model);
                c
            }
        };
        // No vouch.toml from the caller's directory; the node logs as it does by default, to a
        // file beside its data.
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?);
        let mut child = cmd.spawn().with_context(|| target.describe())?;
        let url = support::listening_url(&mut child, &target.describe())?;
        let running = Running {
            child,
            url,
            vouch: matches!(target, Target::Vouch(_)),
        };
        if running.vouch {
            let token = std::fs::read_to_string(dir.join("data/admin.token"))?;
            let r = blocking_client()
                .post(format!("{}/v1/models?name=mlp", running.url))
                .bearer_auth(token.trim())
                .body(std::fs::read(model)?)
                .send()?;
            ensure!(
                r.status().is_success(),
                "registering the MLP: {}",
                r.text()?
            );
        }
        Ok(running)
    }

    /// One request answered correctly: the reference outputs, and from the node a signed
    /// receipt with its log entry.
    fn check(&self, body: &str, expected: &Value) -> Result<()> {
        let r = blocking_client()
            .post(format!("{}/v1/infer", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()?;
        ensure!(r.status().is_success(), "infer: {}", r.text()?);
        let v: Value = r.json()?;
        let got = v["outputs"]["y"]["data"].as_array().context("outputs.y")?;
        let want = expected["y"]["data"].as_array().context("expected y")?;
        ensure!(got.len() == want.len(), "output length {}", got.len());
        for (g, w) in got.iter().zip(want) {
            let (g, w) = (g.as_f64().unwrap_or(f64::NAN), w.as_f64().unwrap_or(0.0));
            ensure!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "output {g} ≠ {w}");
        }
        if self.vouch {
            ensure!(
                v["receipt"]["tiers"] == json!(["signed"]) && v["signature"]["sig"].is_string(),
                "not a signed receipt: {v}"
            );
            ensure!(v["evidence"]["log"].is_object(), "no log evidence: {v}");
        }
        Ok(())
    }

    /// utime + stime of the whole process (every thread, exited ones included).
    fn cpu_seconds(&self) -> Result<f64> {
        support::cpu_seconds(self.child.id())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The baseline: what serving this model over HTTP costs without receipts, log or batching.
/// Same axum, hyper and tokio as the node (tokio's default multi-thread runtime, as `vouch
/// serve` builds), `ort` loaded at run time as `vouch-exec` does, one session with the node's
/// options (optimisation level 3, one intra-op thread), run on the request's task.
mod baseline {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use anyhow::{Context, Result};
    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use ort::session::Session;
    use ort::session::builder::GraphOptimizationLevel;
    use ort::value::TensorRef;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize)]
    struct Request {
        model: String,
        inputs: BTreeMap<String, Input>,
    }

    #[derive(Deserialize)]
    struct Input {
        dtype: String,
        shape: Vec<i64>,
        data: Vec<f32>,
    }

    #[derive(Serialize)]
    struct Output {
        dtype: &'static str,
        shape: Vec<i64>,
        data: Vec<f32>,
    }

    #[derive(Serialize)]
    struct Response {
        outputs: BTreeMap<String, Output>,
    }

    struct App {
        session: Mutex<Session>,
    }

    type Failure = (StatusCode, String);

    async fn infer(
        State(app): State<Arc<App>>,
        Json(req): Json<Request>,
    ) -> Result<Json<Response>, Failure> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        if req.model != "mlp" {
            return Err((StatusCode::NOT_FOUND, format!("no model {:?}", req.model)));
        }
        let mut feeds = Vec::with_capacity(req.inputs.len());
        for (name, t) in &req.inputs {
            if t.dtype != "float32" {
                return Err(bad(format!("{name}: only float32 is served")));
            }
            let v = TensorRef::from_array_view((t.shape.clone(), t.data.as_slice()))
                .map_err(|e| bad(e.to_string()))?;
            feeds.push((name.as_str(), v));
        }
        let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
        let mut session = app
            .session
            .lock()
            .map_err(|_| internal("session poisoned".into()))?;
        let outputs = session.run(feeds).map_err(|e| internal(e.to_string()))?;
        let mut answer = BTreeMap::new();
        for (name, v) in outputs.iter() {
            let (shape, data) = v
                .try_extract_tensor::<f32>()
                .map_err(|e| internal(e.to_string()))?;
            answer.insert(
                name.to_string(),
                Output {
                    dtype: "float32",
                    shape: shape.to_vec(),
                    data: data.to_vec(),
                },
            );
        }
        Ok(Json(Response { outputs: answer }))
    }

    pub fn serve() -> Result<()> {
        let dylib = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/vouch/ort/libonnxruntime.so"))
            })
            .context("ORT_DYLIB_PATH")?;
        let model = std::env::var_os("BASELINE_MODEL").context("BASELINE_MODEL")?;
        let env = ort::init_from(&dylib)?.with_name("baseline").build()?;
        let options = |e: ort::Error<_>| anyhow::anyhow!("session options: {e}");
        let session = Session::builder(&env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(options)?
            .with_intra_threads(1)
            .map_err(options)?
            .with_inter_threads(1)
            .map_err(options)?
            .commit_from_file(model)?;
        let app = Arc::new(App {
            session: Mutex::new(session),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let router = axum::Router::new()
                .route("/v1/infer", axum::routing::post(infer))
                .with_state(app);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("listening on http://{}", listener.local_addr()?);
            axum::serve(listener, router).await?;
            Ok(())
        })
    }
}
