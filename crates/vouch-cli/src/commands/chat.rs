//! `vouch chat`: talk to a model on a node, the answer printed token by token as it streams,
//! and every chunk checked against the receipt's hash chain as it arrives (O(1) memory). At
//! the end the receipt is verified offline like `vouch verify` does, and the verdict printed:
//! a dropped, reordered, altered or truncated chunk fails with its index.
//!
//! With a message on the command line it asks once; without, it reads one user turn per line
//! from standard input and keeps the conversation (the whole history is sent each turn, as
//! the OpenAI API expects).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use vouch_core::chat::CHAT_RECEIPT_EVENT_OBJECT;
use vouch_core::{ChatBundle, NodeKey};
use vouch_verify::{Evidence, StreamVerifier, VerifyError, bundle_in_response};

use crate::Remote;
use crate::client::error_of;

#[derive(clap::Args)]
pub struct Args {
    /// name, name@version or sha256:<hex> of a GGUF (or gateway) model.
    model: String,
    /// The message; omit it to chat turn by turn on standard input (one line per turn).
    message: Option<String>,
    /// A system message sent before the conversation (the model's configured system prompt,
    /// if any, still comes first: the node applies it).
    #[arg(long)]
    system: Option<String>,
    #[arg(long)]
    max_tokens: Option<u32>,
    #[arg(long)]
    temperature: Option<f64>,
    #[arg(long)]
    top_p: Option<f64>,
    /// The sampling seed; the node picks one (and the receipt records it) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Comma-separated tiers (signed, tee); empty for an unsigned receipt.
    #[arg(long, default_value = "signed")]
    tiers: String,
    /// The node key you trust (ed25519:<hex>); without it the signature is checked against the
    /// key the receipt names, and the report says it was not pinned.
    #[arg(long)]
    trust_key: Option<String>,
    /// The GGUF file you hold, to check it is the one the receipt names.
    #[arg(long, value_name = "FILE")]
    model_file: Option<PathBuf>,
    /// Accept simulated TEE evidence (development only).
    #[arg(long)]
    allow_simulated: bool,
    /// Save each turn's request body and raw stream here (`request-N.json`, `stream-N.txt`),
    /// for `vouch verify stream-N.txt --request request-N.json` and `vouch replay`.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// Print the full verification report after each answer, not only the verdict line.
    #[arg(long)]
    report: bool,
    #[command(flatten)]
    remote: Remote,
}

/// How one streamed turn ended.
struct Turn {
    text: String,
    /// Chunks checked against the chain.
    chunks: u32,
    verdict: Result<vouch_verify::Report, VerifyError>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    vouch_pay::http::install_tls_provider();
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(3600))
        .build()?;
    let trusted_key = a
        .trust_key
        .as_deref()
        .map(str::parse::<NodeKey>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--trust-key: {e}"))?;
    let weights = match &a.model_file {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
        None => None,
    };
    if let Some(dir) = &a.save {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let url = format!(
        "{}/v1/chat/completions",
        a.remote.server.trim_end_matches('/')
    );
    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    let mut failed = false;
    let mut turn_no = 0;
    let mut ask = |messages: &mut Vec<Value>, text: String| -> anyhow::Result<()> {
        turn_no += 1;
        messages.push(json!({"role": "user", "content": text}));
        let body = request_body(&a, messages);
        let sent = serde_json::to_vec(&body)?;
        let ev = Evidence {
            trusted_key,
            model_bytes: weights.as_deref(),
            allow_simulated: a.allow_simulated,
            at_time: Some(std::time::SystemTime::now()),
            ..Default::default()
        };
        let turn = stream_turn(&http, &url, &sent, &ev, a.save.as_deref(), turn_no)?;
        let mut err = std::io::stderr();
        match &turn.verdict {
            Ok(report) if a.report => crate::commands::verify::print_report(report, &mut err)?,
            Ok(report) => writeln!(
                err,
                "[verified: {} chunks chained to the receipt; {}]",
                turn.chunks, report.summary
            )?,
            Err(e) => {
                failed = true;
                writeln!(err, "[FAILED: {e}]")?;
            }
        }
        messages.push(json!({"role": "assistant", "content": turn.text}));
        Ok(())
    };
    match &a.message {
        Some(m) => ask(&mut messages, m.clone())?,
        None => {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if line == "/exit" {
                    break;
                }
                ask(&mut messages, line.to_owned())?;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn request_body(a: &Args, messages: &[Value]) -> Value {
    let mut body = json!({
        "model": a.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "tiers": a.tiers.split(',').map(str::trim).filter(|t| !t.is_empty()).collect::<Vec<_>>(),
    });
    let fields = [
        ("max_tokens", a.max_tokens.map(Value::from)),
        ("temperature", a.temperature.map(Value::from)),
        ("top_p", a.top_p.map(Value::from)),
        ("seed", a.seed.map(Value::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    body
}

/// Sends one request, prints the text as it arrives and checks each chunk on arrival.
fn stream_turn(
    http: &reqwest::blocking::Client,
    url: &str,
    sent: &[u8],
    ev: &Evidence<'_>,
    save: Option<&std::path::Path>,
    turn: u32,
) -> anyhow::Result<Turn> {
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(sent.to_vec())
        .send()
        .with_context(|| format!("cannot reach the node at {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes()?;
        return Err(error_of(status, &body));
    }
    let mut transcript = save.map(|_| String::new());
    let mut verifier = StreamVerifier::new();
    let mut chain_error = None;
    let mut bundle: Option<ChatBundle> = None;
    let mut text = String::new();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(resp).lines() {
        let line = line.context("reading the stream")?;
        if let Some(t) = transcript.as_mut() {
            t.push_str(&line);
            t.push('\n');
        }
        let Some(data) = line
            .strip_prefix("data:")
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
        else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).context("a stream event is not JSON")?;
        if v.get("object").and_then(Value::as_str) == Some(CHAT_RECEIPT_EVENT_OBJECT) {
            bundle = Some(bundle_in_response(&v).map_err(|e| anyhow::anyhow!("{e}"))?);
            continue;
        }
        if chain_error.is_none()
            && let Err(e) = verifier.push(data.as_bytes())
        {
            chain_error = Some(e);
        }
        if let Some(t) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text.push_str(t);
            out.write_all(t.as_bytes())?;
            out.flush()?;
        }
    }
    writeln!(out)?;
    if let (Some(dir), Some(t)) = (save, &transcript) {
        std::fs::write(dir.join(format!("request-{turn}.json")), sent)?;
        std::fs::write(dir.join(format!("stream-{turn}.txt")), t)?;
    }
    let chunks = verifier.chunks();
    let verdict = match (chain_error, bundle) {
        (Some(e), _) => Err(e.into()),
        (None, None) => Err(VerifyError::ResponseInvalid(
            "the stream ended without its vouch.receipt event: nothing vouches for it".into(),
        )),
        (None, Some(b)) => verifier.finish(&b, Some(sent), ev),
    };
    Ok(Turn {
        text,
        chunks,
        verdict,
    })
}
