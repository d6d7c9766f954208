//! `vouch verify`: offline, no network, no trust in the node beyond what is printed.
//!
//! The file is an ONNX receipt bundle, a chat bundle, a chat completion answer holding one in
//! `vouch`, or a streamed answer's raw SSE body (its chunks are checked against the hash chain
//! the receipt commits to).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use vouch_attest::tee::{TeeEvidence, TeePolicy};
use vouch_core::chat::CHAT_RECEIPT_EVENT_OBJECT;
use vouch_core::{Bundle, CHAT_BUNDLE_FORMAT, ChatBundle, Digest, NodeKey, TensorMap, Tier};
use vouch_verify::{
    Evidence, FailureCode, Report, StreamVerifier, VerifyError, bundle_in_response, verify_bundle,
    verify_chat_bundle,
};

use crate::files::read_json;

#[derive(clap::Args)]
pub struct Args {
    /// A receipt bundle, a chat bundle, a chat completion answer (its bundle is in `vouch`), or
    /// a streamed answer's raw SSE body.
    bundle: PathBuf,
    /// Chat: the request body you sent, to check it is the one the receipt commits to.
    #[arg(long, value_name = "FILE")]
    request: Option<PathBuf>,
    /// The model file, to check it is the one the receipt names.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The inputs you sent.
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Outputs you hold, to check they are the ones vouched for.
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// The node key you trust (ed25519:<hex>, as `vouch serve` prints it).
    #[arg(long)]
    trust_key: Option<String>,
    /// Accept simulated TEE evidence (development only: it proves nothing about hardware).
    #[arg(long)]
    allow_simulated: bool,
    /// A TEE evidence envelope (JSON) for a receipt that references its evidence by digest;
    /// fetch it from the node at GET /v1/attestation/{digest}. Repeatable.
    #[arg(long, value_name = "FILE")]
    tee_evidence: Vec<PathBuf>,
    /// A measurement the TEE evidence must have, e.g. PCR0=<hex> or MEASUREMENT=<hex>.
    /// Repeatable.
    #[arg(long, value_name = "NAME=HEX")]
    tee_expect: Vec<String>,
    /// The model configuration (system prompt, settings; JSON) you expect was in force: checked
    /// against the receipt's config_digest.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The transparency log's verifier key (`GET /v1/log`, or from whoever runs the log): the
    /// bundle must then carry an inclusion proof (`vouch log prove`) under a checkpoint it signed.
    #[arg(long, value_name = "VKEY")]
    log_key: Option<String>,
    /// A witness verifier key whose cosignature on the log checkpoint counts. Repeatable.
    #[arg(long, value_name = "VKEY", requires = "log_key")]
    witness: Vec<String>,
    /// How many of the --witness keys must have cosigned (default: all of them).
    #[arg(long, requires = "log_key")]
    witness_threshold: Option<usize>,
    /// Tiers that must be proven for the bundle to pass (comma-separated, repeatable), e.g.
    /// `--require zk`: a pending zk proof, or one not checked for lack of --model, fails.
    #[arg(long, value_delimiter = ',', value_name = "TIER")]
    require: Vec<String>,
    /// The zk verifying-key digest the model's registry entry shows (`vouch models show`):
    /// the proof must use exactly that key.
    #[arg(long, value_name = "sha256:HEX")]
    zk_vk_digest: Option<String>,
    /// Print the result as JSON: the report with `"ok": true`, or `{"ok": false, "code",
    /// "message", "below_policy"}` with a stable code (docs/verify.md).
    #[arg(long)]
    json: bool,
}

/// What the file given is.
enum Subject {
    Bundle(Box<Bundle>),
    Chat {
        bundle: Box<ChatBundle>,
        /// The answer the bundle came in, when the file was one.
        response: Option<serde_json::Value>,
    },
    /// A streamed answer: each chunk's data bytes, then the receipt event's bundle (`None`
    /// when the stream ended without one).
    Stream {
        chunks: Vec<Vec<u8>>,
        bundle: Option<Box<ChatBundle>>,
    },
}

/// Tells the file's kind by its content: SSE text starts with a field name, a chat bundle has
/// its format, an answer its `object`; anything else is read as an ONNX bundle.
fn read_subject(path: &std::path::Path) -> anyhow::Result<Subject> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read bundle {}", path.display()))?;
    let invalid = |what: &str| format!("{} is not a valid {what}", path.display());
    if bytes.trim_ascii_start().starts_with(b"data:") {
        return read_stream(&bytes).with_context(|| invalid("server-sent event stream"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| invalid("receipt bundle"))?;
    if v.get("format").and_then(|f| f.as_str()) == Some(CHAT_BUNDLE_FORMAT) {
        let bundle = serde_json::from_value(v).with_context(|| invalid("chat bundle"))?;
        return Ok(Subject::Chat {
            bundle: Box::new(bundle),
            response: None,
        });
    }
    if matches!(
        v.get("object").and_then(|o| o.as_str()),
        Some("chat.completion" | "text_completion")
    ) {
        let bundle = bundle_in_response(&v).with_context(|| invalid("chat completion"))?;
        return Ok(Subject::Chat {
            bundle: Box::new(bundle),
            response: Some(v),
        });
    }
    let bundle = serde_json::from_value(v).with_context(|| invalid("receipt bundle"))?;
    Ok(Subject::Bundle(Box::new(bundle)))
}

/// The data of each event (`data:` lines joined by newlines, one leading space dropped, as the
/// SSE standard reads them) up to `[DONE]`; the `vouch.receipt` event gives the bundle.
fn read_stream(bytes: &[u8]) -> anyhow::Result<Subject> {
    let text = std::str::from_utf8(bytes).context("not UTF-8")?;
    let text = text.replace("\r\n", "\n");
    let mut chunks = Vec::new();
    let mut bundle = None;
    for event in text.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            continue;
        }
        let data = data.join("\n");
        if data == "[DONE]" {
            break;
        }
        if bundle.is_some() {
            bail!("an event follows the vouch.receipt event");
        }
        let is_receipt = serde_json::from_str::<serde_json::Value>(&data)
            .ok()
            .filter(|v| {
                v.get("object").and_then(|o| o.as_str()) == Some(CHAT_RECEIPT_EVENT_OBJECT)
            });
        match is_receipt {
            Some(v) => bundle = Some(Box::new(bundle_in_response(&v)?)),
            None => chunks.push(data.into_bytes()),
        }
    }
    Ok(Subject::Stream { chunks, bundle })
}

/// Everything the verifier was given, read and parsed.
struct Given {
    subject: Subject,
    request: Option<Vec<u8>>,
    model: Option<Vec<u8>>,
    inputs: Option<TensorMap>,
    outputs: Option<TensorMap>,
    trusted_key: Option<NodeKey>,
    supplied: Vec<TeeEvidence>,
    tee_policy: TeePolicy,
    log_trust: Option<vouch_log::TrustPolicy>,
    config: Option<serde_json::Value>,
    require: Vec<Tier>,
    zk_vk_digest: Option<Digest>,
}

fn read_given(a: &Args) -> anyhow::Result<Given> {
    let subject = read_subject(&a.bundle)?;
    let request = a
        .request
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    if request.is_some() && matches!(subject, Subject::Bundle(_)) {
        bail!("--request applies to chat bundles; this is an ONNX receipt bundle");
    }
    let model = a
        .model
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let inputs: Option<TensorMap> = a
        .inputs
        .as_ref()
        .map(|p| read_json(p, "inputs file"))
        .transpose()?;
    let outputs: Option<TensorMap> = a
        .outputs
        .as_ref()
        .map(|p| read_json(p, "outputs file"))
        .transpose()?;
    let trusted_key: Option<NodeKey> = a
        .trust_key
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let supplied = a
        .tee_evidence
        .iter()
        .map(|p| {
            let v: serde_json::Value = read_json(p, "tee evidence file")?;
            TeeEvidence::from_json(&v).with_context(|| format!("{}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut tee_policy = TeePolicy::default();
    for e in &a.tee_expect {
        let Some((name, hex)) = e.split_once('=') else {
            bail!("--tee-expect {e:?}: expected NAME=HEX, e.g. PCR0=<96 hex digits>");
        };
        if name.is_empty() || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--tee-expect {e:?}: expected NAME=HEX with a non-empty name and hex value");
        }
        tee_policy.expect.insert(name.to_string(), hex.to_string());
    }
    let log_trust = a
        .log_key
        .as_deref()
        .map(|k| {
            vouch_log::TrustPolicy::from_vkeys(
                k,
                &a.witness,
                a.witness_threshold.unwrap_or(a.witness.len()),
            )
        })
        .transpose()
        .map_err(|e| anyhow::anyhow!("--log-key/--witness: {e}"))?;
    let config: Option<serde_json::Value> = a
        .config
        .as_ref()
        .map(|p| read_json(p, "configuration file"))
        .transpose()?;
    let require = a
        .require
        .iter()
        .map(|t| t.trim().parse::<Tier>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let zk_vk_digest = a
        .zk_vk_digest
        .as_deref()
        .map(|d| d.parse::<Digest>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--zk-vk-digest: {e}"))?;
    Ok(Given {
        subject,
        request,
        model,
        inputs,
        outputs,
        trusted_key,
        supplied,
        tee_policy,
        log_trust,
        config,
        require,
        zk_vk_digest,
    })
}

/// Pushes every chunk through the chain check, then finishes with the receipt event's bundle.
fn verify_stream(
    chunks: &[Vec<u8>],
    bundle: Option<&ChatBundle>,
    request: Option<&[u8]>,
    ev: &Evidence<'_>,
) -> Result<Report, VerifyError> {
    let mut v = StreamVerifier::new();
    for c in chunks {
        v.push(c)?;
    }
    let bundle = bundle.ok_or_else(|| {
        VerifyError::ResponseInvalid(
            "the stream ends without its vouch.receipt event: nothing vouches for it".into(),
        )
    })?;
    v.finish(bundle, request, ev)
}

/// A passing report for people: what was proven, under which trust, and what was not.
pub fn print_report(report: &Report, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "OK: {}", report.summary)?;
    for t in &report.tiers {
        writeln!(out, "  tier {}: {}", t.tier, t.proven)?;
        writeln!(out, "    trusting: {}", t.trust_assumption)?;
        if t.simulated {
            writeln!(out, "    WARNING: simulated TEE evidence, development only")?;
        }
    }
    for f in &report.proven {
        writeln!(out, "  proven:     {}", f.detail)?;
    }
    for n in &report.not_proven {
        writeln!(out, "  not proven: {n}")?;
    }
    Ok(())
}

/// `--json` on failure: `{"ok": false, "code", "message", "below_policy"}` (docs/verify.md).
fn print_failure(code: FailureCode, message: &str) -> anyhow::Result<()> {
    let out = serde_json::json!({
        "ok": false,
        "code": code,
        "message": message,
        "below_policy": code.is_below_policy(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let g = match read_given(&a) {
        Ok(g) => g,
        Err(e) if a.json => {
            print_failure(FailureCode::InvalidArgument, &format!("{e:#}"))?;
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e),
    };
    let ev = Evidence {
        zk_vk_digest: g.zk_vk_digest,
        require: g.require,
        trusted_key: g.trusted_key,
        model_bytes: g.model.as_deref(),
        inputs: g.inputs.as_ref(),
        outputs: g.outputs.as_ref(),
        tee_supplied: &g.supplied,
        tee_policy: g.tee_policy,
        allow_simulated: a.allow_simulated,
        at_time: Some(std::time::SystemTime::now()),
        log_trust: g.log_trust,
        config: g.config.as_ref(),
    };
    let verdict = match &g.subject {
        Subject::Bundle(b) => verify_bundle(b, &ev),
        Subject::Chat { bundle, response } => {
            verify_chat_bundle(bundle, g.request.as_deref(), response.as_ref(), &ev)
        }
        Subject::Stream { chunks, bundle } => {
            verify_stream(chunks, bundle.as_deref(), g.request.as_deref(), &ev)
        }
    };
    match verdict {
        Ok(report) => {
            if a.json {
                let mut out = serde_json::to_value(&report)?;
                if let Some(map) = out.as_object_mut() {
                    map.insert("ok".into(), true.into());
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_report(&report, &mut std::io::stdout())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                print_failure(e.code(), &e.to_string())?;
            } else {
                eprintln!("FAILED: {e}");
            }
            Ok(ExitCode::from(2))
        }
    }
}
