//! Whole-server figures, measured side by side in one run on a node booted in this process:
//! - cost of the `signed` tier: p50 latency with ["signed"] ÷ with [] (requests interleaved);
//! - server overhead: HTTP requests/s (wrk, 16 connections, loopback) ÷ in-process inferences/s,
//!   and the same ratio for a minimal axum handler (same axum, hyper and tokio, same runtime,
//!   same wrk command and request body, a fixed ~600-byte JSON answer): the ceiling any HTTP
//!   server reaches on this machine, since wrk shares its cores;
//! - cold start of the CNN from the registry (cache miss after a restart) vs a warm request;
//! - memory with 1,000 registered models of which 50 are hot.
//!
//! `cargo bench -p vouch --bench server` (wrk from Debian's `wrk` package for the HTTP figure).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};
use vouch_server::{Server, ServerConfig};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

async fn boot(
    dir: &std::path::Path,
    cache_mib: u64,
) -> (
    String,
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    cfg.exec.cache_mib = cache_mib;
    let server = Server::bind(cfg).await.expect("boot");
    let url = format!("http://{}", server.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    (url, h, tx)
}

async fn register(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    bytes: Vec<u8>,
    name: &str,
) -> Value {
    http.post(format!("{url}/v1/models?name={name}"))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json")
}

fn inputs(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join(format!("models/{name}.input.json"))).expect("inputs"),
    )
    .expect("json")
}

/// A fixed answer shaped like a small bundle (about 600 bytes).
const CEILING_ANSWER: &str = concat!(
    r#"{"format":"vouch.bundle.v1","receipt":{"version":1,"request_id":"0193a5c0-0000-7000-8000-000000000000","#,
    r#""model":"sha256:0000000000000000000000000000000000000000000000000000000000000000","#,
    r#""input_digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","#,
    r#""output_digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","#,
    r#""engine":{"name":"onnxruntime","version":"1.32.0","profile":{"threads":1,"deterministic":false,"batch":1}},"#,
    r#""tiers":[],"issued_at":"2026-12-01T00:00:00Z"},"#,
    r#""outputs":{"y":{"dtype":"float32","shape":[1,10],"data":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]}}}"#
);

/// The ceiling server: a minimal axum app on this runtime, one POST route that reads the whole
/// body and answers `CEILING_ANSWER` as JSON.
async fn ceiling_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = axum::Router::new().route(
        "/v1/infer",
        axum::routing::post(|body: axum::body::Bytes| async move {
            std::hint::black_box(body.len());
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                CEILING_ANSWER,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .expect("ceiling server");
    });
    (url, tx)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("node");
    let (url, handle, stop) = boot(&dir, 2048).await;
    let token = std::fs::read_to_string(dir.join("admin.token"))
        .expect("token")
        .trim()
        .to_string();
    let http = vouch_pay::http::client_builder()
        .build()
        .expect("http client");
    for m in ["mlp", "cnn"] {
        register(
            &http,
            &url,
            &token,
            std::fs::read(repo().join(format!("models/{m}.onnx"))).expect("model"),
            m,
        )
        .await;
    }

    // 1. signed vs unsigned, interleaved so drift hits both alike.
    let body = |tiers: Value| json!({"model": "mlp", "inputs": inputs("mlp"), "tiers": tiers});
    let (signed_body, plain_body) = (body(json!(["signed"])), body(json!([])));
    let (mut signed, mut plain) = (Vec::new(), Vec::new());
    for i in 0..4000 {
        let (b, v) = if i % 2 == 0 {
            (&signed_body, &mut signed)
        } else {
            (&plain_body, &mut plain)
        };
        let t = Instant::now();
        let r = http
            .post(format!("{url}/v1/infer"))
            .json(b)
            .send()
            .await
            .expect("infer");
        assert!(r.status().is_success());
        r.bytes().await.expect("body");
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (s50, p50) = (
        pct(signed[200..].to_vec(), 0.5),
        pct(plain[200..].to_vec(), 0.5),
    );
    println!("## Cost of the signed tier (MLP, sequential requests over loopback)\n");
    println!("| tiers | p50 µs | p99 µs |\n| --- | --- | --- |");
    println!(
        "| [] | {p50:.0} | {:.0} |",
        pct(plain[200..].to_vec(), 0.99)
    );
    println!(
        "| [\"signed\"] | {s50:.0} | {:.0} |",
        pct(signed[200..].to_vec(), 0.99)
    );
    println!("\nratio signed ÷ unsigned p50: **{:.3}**\n", s50 / p50);

    // 2. HTTP throughput with wrk vs in-process inference rate.
    // Run for both tier sets, so the server's own overhead and the signature's are told apart.
    let wrk_rps = |body: &Value, tag: &str| -> Option<f64> {
        let lua = tmp.path().join(format!("post-{tag}.lua"));
        std::fs::write(
            &lua,
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{}]]\n",
                serde_json::to_string(body).expect("json")
            ),
        )
        .expect("lua");
        let wrk = std::process::Command::new("wrk")
            .args(["-t", "2", "-c", "16", "-d", "10s", "-s"])
            .arg(&lua)
            .arg(format!("{url}/v1/infer"))
            .output();
        wrk.ok().and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            println!("tiers {tag}:\n```\n{}```", out);
            out.lines()
                .find(|l| l.starts_with("Requests/sec:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|x| x.parse::<f64>().ok())
        })
    };
    let http_rps = wrk_rps(&signed_body, "[\"signed\"]");
    let http_plain_rps = wrk_rps(&plain_body, "[]");
    // The ceiling: same runtime, same wrk command and body, a handler that only reads the body
    // and answers a fixed JSON document of about a bundle's size.
    let (ceiling_url, ceiling_stop) = ceiling_server().await;
    let ceiling_rps = {
        let lua = tmp.path().join("post-ceiling.lua");
        std::fs::write(
            &lua,
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{}]]\n",
                serde_json::to_string(&signed_body).expect("json")
            ),
        )
        .expect("lua");
        let wrk = std::process::Command::new("wrk")
            .args(["-t", "2", "-c", "16", "-d", "10s", "-s"])
            .arg(&lua)
            .arg(format!("{ceiling_url}/v1/infer"))
            .output();
        wrk.ok().and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            println!("ceiling (minimal axum handler):\n```\n{}```", out);
            out.lines()
                .find(|l| l.starts_with("Requests/sec:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|x| x.parse::<f64>().ok())
        })
    };
    let _ = ceiling_stop.send(());
    let ort = vouch_exec::ort_engine::OrtEngine::load(
        &vouch_node::node::ort_dylib_path(None).expect("ORT library (scripts/setup-ort.sh)"),
        1,
        vouch_exec::run_control::DEFAULT_RUN_MEMORY,
    )
    .expect("ort");
    let mlp_bytes = std::fs::read(repo().join("models/mlp.onnx")).expect("mlp");
    let m = vouch_exec::Engine::load(&ort, &mlp_bytes).expect("load");
    let x: vouch_core::TensorMap = serde_json::from_value(inputs("mlp")).expect("inputs");
    let t = Instant::now();
    let n = 20000;
    for _ in 0..n {
        m.run(&x).expect("run");
    }
    let inproc = n as f64 / t.elapsed().as_secs_f64();
    println!("\n## Server overhead (MLP, 16 connections)\n");
    println!("| path | req/s |\n| --- | --- |");
    println!("| in-process `LoadedModel::run`, one thread, sequential | {inproc:.0} |");
    match (http_rps, http_plain_rps) {
        (Some(r), Some(p)) => println!(
            "| HTTP through the server (wrk), [\"signed\"] | {r:.0} |\n| HTTP through the server (wrk), [] | {p:.0} |\n\nratio HTTP ÷ in-process: **{:.2}** ([\"signed\"]), {:.2} ([])\n",
            r / inproc,
            p / inproc
        ),
        _ => {
            println!("| HTTP through the server | (wrk not installed: apt-get install wrk) |\n")
        }
    }
    if let Some(c) = ceiling_rps {
        println!(
            "| ceiling: minimal axum handler (reads a {} B body, answers {} B of JSON), wrk | {c:.0} |\n\nceiling ratio HTTP ÷ in-process: **{:.2}**; the server reaches {:.0} % ([\"signed\"]) and {:.0} % ([]) of the ceiling\n",
            serde_json::to_string(&signed_body)
                .map(|b| b.len())
                .unwrap_or(0),
            CEILING_ANSWER.len(),
            c / inproc,
            http_rps.map(|r| 100.0 * r / c).unwrap_or(f64::NAN),
            http_plain_rps.map(|p| 100.0 * p / c).unwrap_or(f64::NAN),
        );
    }

    // 3. Cold start after a restart: the first CNN request loads and compiles from the registry.
    let _ = stop.send(());
    let _ = handle.await;
    let (url, handle, stop) = boot(&dir, 2048).await;
    let cnn = json!({"model": "cnn", "inputs": inputs("cnn")});
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = http
            .post(format!("{url}/v1/infer"))
            .json(&cnn)
            .send()
            .await
            .expect("infer");
        assert!(r.status().is_success());
        r.bytes().await.expect("body");
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("## Cold start of the CNN (restart, then first request)\n");
    println!(
        "| request | ms |\n| --- | --- |\n| first (cache miss: blob read + compile) | {:.2} |\n| second (warm) | {:.2} |\n| third (warm) | {:.2} |\n",
        times[0], times[1], times[2]
    );
    let _ = stop.send(());
    let _ = handle.await;

    // 4. 1,000 registered models, 50 hot: a cache budget for about 50 small MLPs.
    let dir2 = tmp.path().join("many");
    let before = rss_mib();
    let (url, handle, stop) = boot(&dir2, 202).await;
    let token = std::fs::read_to_string(dir2.join("admin.token"))
        .expect("token")
        .trim()
        .to_string();
    let small = std::fs::read(repo().join("models/mlp_small.onnx")).expect("mlp_small");
    let t = Instant::now();
    for i in 0..1000 {
        // A distinct model per i: the same graph with a doc_string field (ModelProto field 6)
        // appended, so each has its own digest and is a valid ONNX file.
        let mut b = small.clone();
        let doc = format!("variant {i:04}");
        b.push(0x32);
        b.push(doc.len() as u8);
        b.extend_from_slice(doc.as_bytes());
        let v = register(&http, &url, &token, b, &format!("m{i}")).await;
        assert!(v["model"]["digest"].is_string(), "{v}");
    }
    let reg_secs = t.elapsed().as_secs_f64();
    let after_register = rss_mib();
    let small_in = json!({"x": inputs("mlp_small")["x"]});
    for i in 950..1000 {
        let r = http
            .post(format!("{url}/v1/infer"))
            .json(&json!({"model": format!("m{i}"), "inputs": small_in}))
            .send()
            .await
            .expect("infer");
        assert!(r.status().is_success());
    }
    let node: Value = http
        .get(format!("{url}/v1/node"))
        .send()
        .await
        .expect("node")
        .json()
        .await
        .expect("json");
    println!("## Memory: 1,000 registered models, 50 hot (cache budget 202 MiB)\n");
    println!("| point | process RSS MiB |\n| --- | --- |");
    println!(
        "| before boot | {before:.0} |\n| after registering 1,000 ({reg_secs:.1} s) | {after_register:.0} |\n| after serving 50 hot | {:.0} |",
        rss_mib()
    );
    println!(
        "\nmodels loaded in cache: {}, estimated {} MiB",
        node["cache"]["models_loaded"],
        node["cache"]["estimated_bytes"].as_u64().unwrap_or(0) >> 20
    );
    let _ = stop.send(());
    let _ = handle.await;
}
