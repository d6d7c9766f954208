//! Issue 15's receipt-cost figures, measured side by side in one run against a real node
//! serving SmolLM2 (the GGUF `tests/setup/llm.sh` extracts), greedy, one request at a time:
//! - receipt cost: wall time of a `--tokens`-token completion asked with `["signed"]` ÷ the
//!   same asked with `[]` (alternating, so drift hits both alike);
//! - the client's streaming verification: wall time of a streamed answer read while checking
//!   every chunk with `vouch_verify::StreamVerifier` and the receipt at the end ÷ the same
//!   stream read without checking; and, less noisy, the verifier's own time (push + finish,
//!   timed around the calls) ÷ the stream's wall time;
//! - the receipt's tail, precise where wall-time ratios drown in the machine's noise: time from
//!   the stream's last chunk to its receipt event (the node builds, signs and durably logs the
//!   receipt in between) ÷ the stream's wall time.
//!
//! `cargo bench -p vouch --bench chat -- [--rounds 5] [--tokens 64] [VOUCH_BINARY]`. A debug
//! `vouch` serves as an upper bound of the receipt's cost: the engine's crates are optimised in
//! every profile (Cargo.toml), the node's own code (signing, hashing, logging) is not.

mod support;
use support::{loadavg, median};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use serde_json::{Value, json};
use vouch_core::NodeKey;
use vouch_verify::{Evidence, StreamVerifier, bundle_in_response};

#[derive(Parser)]
struct Opts {
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Completion tokens per request (`max_tokens`; the prompt asks for a long answer).
    #[arg(long, default_value_t = 64)]
    tokens: u32,
    /// The GGUF to serve (default: SmolLM2 in the cache).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// The `vouch` to measure (default: this build's).
    binary: Option<PathBuf>,
    #[arg(long, hide = true)]
    bench: bool,
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("VOUCH_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/vouch"),
    }
}

struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &PathBuf, dir: &std::path::Path) -> Result<Node> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let url = support::listening_url(&mut child, "the node")?;
    Ok(Node { child, url })
}

fn request(tokens: u32, tiers: &[&str], stream: bool) -> Vec<u8> {
    let mut body = json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and the sea."}],
        "max_tokens": tokens, "temperature": 0, "seed": 1, "tiers": tiers,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One whole answer: wall seconds and completion tokens.
fn whole(http: &reqwest::blocking::Client, url: &str, body: &[u8]) -> Result<(f64, u64)> {
    let t = Instant::now();
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()?;
    ensure!(r.status().is_success(), "chat: {}", r.text()?);
    let v: Value = r.json()?;
    let secs = t.elapsed().as_secs_f64();
    Ok((secs, v["usage"]["completion_tokens"].as_u64().unwrap_or(0)))
}

/// A streamed answer's times, in seconds.
struct StreamTimes {
    wall: f64,
    /// Inside `StreamVerifier::push` / `finish` and the receipt event's parse.
    verifying: f64,
    /// From the last chunk to the receipt event.
    receipt_tail: f64,
}

/// One streamed answer read line by line, checked or not.
fn streamed(
    http: &reqwest::blocking::Client,
    url: &str,
    body: &[u8],
    check: Option<NodeKey>,
) -> Result<StreamTimes> {
    let t = Instant::now();
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()?;
    ensure!(r.status().is_success(), "chat: {}", r.text()?);
    let mut verifier = StreamVerifier::new();
    let mut verifying = Duration::ZERO;
    let mut bundle = None;
    let (mut last_chunk, mut receipt_at) = (t, t);
    for line in BufReader::new(r).lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        if data.contains("\"object\":\"vouch.receipt\"") {
            receipt_at = Instant::now();
        } else {
            last_chunk = Instant::now();
        }
        if check.is_none() {
            continue;
        }
        let v0 = Instant::now();
        if data.contains("\"object\":\"vouch.receipt\"") {
            let v: Value = serde_json::from_str(data)?;
            bundle = Some(bundle_in_response(&v)?);
        } else {
            verifier.push(data.as_bytes())?;
        }
        verifying += v0.elapsed();
    }
    if let Some(key) = check {
        let v0 = Instant::now();
        let b = bundle.context("no receipt event")?;
        let ev = Evidence {
            trusted_key: Some(key),
            ..Default::default()
        };
        verifier.finish(&b, Some(body), &ev)?;
        verifying += v0.elapsed();
    }
    Ok(StreamTimes {
        wall: t.elapsed().as_secs_f64(),
        verifying: verifying.as_secs_f64(),
        receipt_tail: receipt_at
            .saturating_duration_since(last_chunk)
            .as_secs_f64(),
    })
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    let bin = opts
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vouch")));
    let gguf = opts
        .gguf
        .clone()
        .unwrap_or_else(|| cache_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let tmp = tempfile::tempdir()?;
    let node = start(&bin, tmp.path())?;
    vouch_pay::http::install_tls_provider();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let token = std::fs::read_to_string(tmp.path().join("data/admin.token"))?;
    let r = http
        .post(format!("{}/v1/models?name=smollm2", node.url))
        .bearer_auth(token.trim())
        .body(std::fs::read(&gguf).with_context(|| gguf.display().to_string())?)
        .send()?;
    ensure!(r.status().is_success(), "registering: {}", r.text()?);
    let info: Value = http.get(format!("{}/v1/node", node.url)).send()?.json()?;
    let key: NodeKey = info["node_key"]
        .as_str()
        .context("node_key")?
        .parse()
        .map_err(|e| anyhow::anyhow!("node key: {e}"))?;
    println!(
        "binary {}; {} tokens; load {}",
        bin.display(),
        opts.tokens,
        loadavg()
    );
    // Warm: the model loads on first use.
    whole(&http, &node.url, &request(4, &[], false))?;
    let (mut unsigned, mut signed, mut plain, mut checked, mut verifier_share, mut tail) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut tokens_seen = 0;
    for round in 0..opts.rounds {
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for sign in order {
            let tiers: &[&str] = if sign { &["signed"] } else { &[] };
            let (secs, toks) = whole(&http, &node.url, &request(opts.tokens, tiers, false))?;
            tokens_seen = toks;
            if sign { &mut signed } else { &mut unsigned }.push(secs);
        }
        let body = request(opts.tokens, &["signed"], true);
        for verify in order {
            let st = streamed(&http, &node.url, &body, verify.then_some(key))?;
            tail.push(st.receipt_tail / st.wall);
            if verify {
                checked.push(st.wall);
                verifier_share.push(st.verifying / st.wall);
            } else {
                plain.push(st.wall);
            }
        }
        println!(
            "round {round}: whole [] {:.3} s, [signed] {:.3} s; stream unchecked {:.3} s, checked {:.3} s (verifier {:.3} %); load {}",
            unsigned[round],
            signed[round],
            plain[round],
            checked[round],
            100.0 * verifier_share[round],
            loadavg()
        );
    }
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    println!(
        "completion tokens per answer: {tokens_seen}\nreceipt cost, [signed] ÷ [] wall time (median of per-round ratios): {:.4}\nstreaming verification, checked ÷ unchecked wall time: {:.4}\nthe verifier's own time ÷ the stream's wall time: {:.4} %\nthe receipt's tail (last chunk → receipt event: build, sign, log) ÷ the stream's wall time: {:.4} %",
        ratio(&signed, &unsigned),
        ratio(&checked, &plain),
        100.0 * median(verifier_share),
        100.0 * median(tail)
    );
    Ok(())
}
