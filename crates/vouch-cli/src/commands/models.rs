//! `vouch models add|list|show|policy|config|assurance`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;
use vouch_api::{
    Amount, Assurance, ConfigUpdate, ConfigView, ListParams, ModelList, ModelView, ModelZk,
    NameChange, PolicyRequest, PolicyUpdate, PolicyView, Pricing, PricingQuery, RegisterParams,
    RegisterResponse,
};
use vouch_core::{Dim, Tier};

use crate::Remote;
use crate::client::Api;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Register an ONNX or GGUF file, or (with --upstream) an OpenAI-compatible endpoint in
    /// gateway mode (needs the admin token).
    Add {
        /// The model file; omit it with --upstream.
        #[arg(required_unless_present = "upstream", conflicts_with = "upstream")]
        file: Option<PathBuf>,
        /// Gateway mode: the upstream's OpenAI-compatible base URL (e.g.
        /// http://127.0.0.1:8081/v1). Receipts then say `executed_by: upstream <url>`, and
        /// verifiers say the model's identity is not proven.
        #[arg(long, requires = "upstream_model")]
        upstream: Option<String>,
        /// Gateway mode: the model name to ask the upstream for.
        #[arg(long, requires = "upstream")]
        upstream_model: Option<String>,
        /// Gateway mode: the name of the node's bearer key in `[llm.upstream_keys]`.
        #[arg(long, requires = "upstream")]
        upstream_key: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// Move name@version if it already points at another model.
        #[arg(long)]
        replace: bool,
    },
    /// List registered models.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one model: name, name@version or sha256:<hex>.
    Show { reference: String },
    /// Show or set a model's minimum tier (setting needs the admin token). Requests asking for
    /// less are refused, or upgraded when the caller allows it.
    Policy {
        /// Model name (all its versions) or sha256:<hex>.
        reference: String,
        /// signed, tee or zk (signed < tee < zk); `none` removes the policy.
        #[arg(long)]
        min: Option<String>,
    },
    /// Show or set a model's configuration (system prompt, generation settings; a JSON object).
    /// Receipts carry its digest; every change is a transparency-log entry.
    Config {
        /// name, name@version or sha256:<hex>.
        reference: String,
        /// A JSON file with the new configuration (needs the admin token).
        #[arg(long, value_name = "FILE")]
        set: Option<std::path::PathBuf>,
    },
    /// Per tier: available here?, what it proves, what it trusts, price and measured latency.
    Assurance {
        /// name, name@version or sha256:<hex>.
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// What a request for this model with these tiers costs here (sum of the tiers' prices).
    Price {
        /// name, name@version or sha256:<hex>.
        reference: String,
        /// Comma-separated tiers (signed, tee, zk).
        #[arg(long, default_value = "signed")]
        tiers: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Command, remote: &Remote) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote)?;
    match cmd {
        Command::Add {
            file,
            upstream,
            upstream_model,
            upstream_key,
            name,
            version,
            replace,
        } => {
            let bytes = match (file, upstream, upstream_model) {
                (Some(file), _, _) => std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
                (None, Some(url), Some(model)) => vouch_node::gateway::UpstreamDescriptor {
                    format: vouch_node::gateway::UPSTREAM_FORMAT.into(),
                    url,
                    model,
                    api_key: upstream_key,
                }
                .to_bytes(),
                _ => anyhow::bail!("give a model file, or --upstream URL --upstream-model NAME"),
            };
            let query = RegisterParams {
                name,
                version,
                replace,
            };
            let resp: RegisterResponse = api.post_bytes_admin(&["v1", "models"], &query, bytes)?;
            let m = &resp.model;
            let verb = if resp.created {
                "registered"
            } else {
                "already registered"
            };
            println!("{verb} {}", m.digest);
            println!("  engine: {}", m.engine);
            if let Some(n) = &resp.name {
                println!(
                    "  name:   {}@{} ({})",
                    n.name,
                    n.version,
                    change_word(n.change)
                );
            }
            match (&m.llm, &m.upstream) {
                (Some(f), _) => print_llm(f),
                (None, Some(u)) => print_upstream(u),
                (None, None) => print_signature(&m.signature),
            }
            print_zk(&resp.zk);
            for p in &resp.passed_over {
                println!("  note: {} could not serve it: {}", p.engine, p.reason);
            }
        }
        Command::List { json } => {
            let path = ["v1", "models"];
            if json {
                let raw = api.get_raw::<ModelList, _>(&path, &ListParams::default())?;
                println!("{}", serde_json::to_string_pretty(&raw)?);
                return Ok(ExitCode::SUCCESS);
            }
            let resp: ModelList = api.get_query(&path, &ListParams::default())?;
            if resp.models.is_empty() {
                println!(
                    "no models registered yet: vouch models add model.onnx --name NAME --version 1"
                );
            }
            for listed in &resp.models {
                let m = &listed.model;
                let names: Vec<String> = m
                    .names
                    .iter()
                    .map(|n| format!("{}@{}", n.name, n.version))
                    .collect();
                println!(
                    "{}  {:<11} {:>10} B  {}",
                    m.digest,
                    m.engine,
                    m.size_bytes,
                    if names.is_empty() {
                        "(no name)".to_string()
                    } else {
                        names.join(", ")
                    }
                );
                match (&m.llm, &m.upstream) {
                    (Some(f), _) => print_llm(f),
                    (None, Some(u)) => print_upstream(u),
                    (None, None) => print_signature(&m.signature),
                }
                print_zk(&listed.zk);
            }
        }
        Command::Show { reference } => {
            let raw = if reference.starts_with("sha256:") {
                api.get_raw::<ModelView, _>(&["v1", "models", "by-digest", &reference], &())?
            } else {
                api.get_raw::<ModelView, _>(&["v1", "models", &reference], &())?
            };
            println!("{}", serde_json::to_string_pretty(&raw)?);
        }
        Command::Config { reference, set } => {
            let path = ["v1", "models", &reference, "config"];
            let raw: Value = match set {
                None => api.get_raw::<ConfigView, _>(&path, &())?,
                Some(file) => {
                    let cfg: Value = crate::files::read_json(&file, "configuration file")?;
                    let update: ConfigUpdate = api.put_json_admin(&path, &cfg)?;
                    serde_json::to_value(update)?
                }
            };
            println!("{}", serde_json::to_string_pretty(&raw)?);
        }
        Command::Policy { reference, min } => {
            let path = ["v1", "models", &reference, "policy"];
            let (subject, policy, change) = match min {
                None => {
                    let v: PolicyView = api.get(&path)?;
                    (v.subject, v.policy, None)
                }
                Some(m) => {
                    let min_tier = match m.as_str() {
                        "none" => None,
                        t => Some(t.parse::<Tier>().map_err(anyhow::Error::msg)?),
                    };
                    let u: PolicyUpdate = api.put_json_admin(&path, &PolicyRequest { min_tier })?;
                    (u.subject, u.policy, Some(u.change))
                }
            };
            match &policy {
                Some(p) => println!(
                    "{subject}: requests need at least the {} tier (since {})",
                    p.min_tier, p.updated_at
                ),
                None => println!("{subject}: no minimum tier"),
            }
            match change {
                Some(Some(c)) => println!(
                    "  change #{} recorded at {} (was {})",
                    c.seq,
                    c.changed_at,
                    c.previous.map_or("none", Tier::as_str)
                ),
                Some(None) => println!("  unchanged"),
                None => {}
            }
        }
        Command::Price {
            reference,
            tiers,
            json,
        } => {
            let query = PricingQuery {
                model: Some(reference.clone()),
                tiers: Some(tiers),
            };
            let path = ["v1", "pricing"];
            if json {
                let raw = api.get_raw::<Pricing, _>(&path, &query)?;
                println!("{}", serde_json::to_string_pretty(&raw)?);
                return Ok(ExitCode::SUCCESS);
            }
            let resp: Pricing = api.get_query(&path, &query)?;
            let q = resp
                .quote
                .as_ref()
                .context("the node answered prices without the quote asked for")?;
            let unit = &resp.unit;
            println!("{} ({})", reference, q.digest);
            for l in &q.lines {
                match &l.amount {
                    Some(a) => println!(
                        "  {}: {a} {unit} ({})",
                        l.tier,
                        l.display.as_deref().unwrap_or("")
                    ),
                    None => println!(
                        "  {}: no price: {}",
                        l.tier,
                        l.unavailable.as_deref().unwrap_or("?")
                    ),
                }
            }
            match &q.total {
                Some(t) => println!(
                    "  total: {t} {unit} ({}) per request{}",
                    q.display.as_deref().unwrap_or(""),
                    if resp.enabled {
                        ", charged over x402"
                    } else {
                        " (quote only: payments are off on this node)"
                    }
                ),
                None => println!("  total: unknown until every tier has a price"),
            }
        }
        Command::Assurance { reference, json } => {
            let path = ["v1", "models", &reference, "assurance"];
            if json {
                let raw = api.get_raw::<Assurance, _>(&path, &())?;
                println!("{}", serde_json::to_string_pretty(&raw)?);
                return Ok(ExitCode::SUCCESS);
            }
            let resp: Assurance = api.get(&path)?;
            println!("{} ({})", reference, resp.digest);
            match &resp.policy {
                Some(p) => println!("  policy: at least {} (set on {})", p.min_tier, p.subject),
                None => println!("  policy: none"),
            }
            let asset = &resp.asset;
            for t in &resp.tiers {
                let avail = if t.available {
                    "available".to_string()
                } else {
                    format!(
                        "unavailable: {}",
                        t.unavailable_reason.as_deref().unwrap_or("?")
                    )
                };
                let policy = if t.meets_policy {
                    ""
                } else {
                    " (below this model's policy)"
                };
                println!("  {}: {avail}{policy}", t.tier);
                if let Some(ModelZk::Available {
                    estimate: e,
                    vk_digest,
                    ..
                }) = &t.zk
                {
                    println!(
                        "    proof: about {} ms to prove, {} MiB, {} ms to verify (vk {vk_digest})",
                        e.prove_ms,
                        e.peak_bytes >> 20,
                        e.verify_ms,
                    );
                }
                println!("    proves: {}", t.proves);
                println!("    trusts: {}", t.trusts);
                let req: Vec<&str> = t.request.iter().map(|t| t.as_str()).collect();
                println!(
                    "    price:  {} {asset} per request [{}]",
                    t.request_price.as_ref().map_or("unknown", Amount::as_str),
                    req.join(", ")
                );
                let m = &t.measured;
                match m.p50_ms {
                    Some(p50) => println!(
                        "    measured: p50 {p50:.2} ms, p95 {:.2} ms over {} recent requests",
                        m.p95_ms.unwrap_or(p50),
                        m.samples
                    ),
                    None => println!("    measured: no requests at this tier yet"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn change_word(c: NameChange) -> &'static str {
    match c {
        NameChange::Created => "created",
        NameChange::Unchanged => "unchanged",
        NameChange::Moved => "moved",
    }
}

/// One line on the model's zk tier: available with its key and cost, or why not.
fn print_zk(zk: &ModelZk) {
    match zk {
        ModelZk::Available {
            vk_digest,
            circuit,
            estimate,
            scale_bits,
            ..
        } => println!(
            "  zk:      available: vk {vk_digest}, {} constraints, about {} ms to prove, scale 2^{scale_bits}",
            circuit.constraints, estimate.prove_ms
        ),
        ModelZk::Unavailable { reason, .. } => println!("  {reason}"),
        ModelZk::Disabled => println!("  zk:      disabled"),
        ModelZk::Unknown => println!("  zk:      unknown"),
        ModelZk::Analysing => println!("  zk:      analysing"),
    }
}

fn print_signature(sig: &vouch_core::ModelSignature) {
    let line = |specs: &[vouch_core::TensorSpec]| -> String {
        specs
            .iter()
            .map(|s| {
                let dims: Vec<String> = s
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => n.to_string(),
                        Dim::Free(Some(sym)) => sym.clone(),
                        Dim::Free(None) => "?".to_string(),
                    })
                    .collect();
                format!("{} {}[{}]", s.name, s.dtype, dims.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  inputs:  {}", line(&sig.inputs));
    println!("  outputs: {}", line(&sig.outputs));
}

/// An LLM's facts, as registration read them from its GGUF.
fn print_upstream(u: &vouch_api::UpstreamFacts) {
    println!(
        "  upstream: {} (model {:?}{}) — gateway mode: receipts say the endpoint answered; nothing proves which model it ran",
        u.url,
        u.model,
        match &u.api_key {
            Some(k) => format!(", key {k}"),
            None => String::new(),
        }
    );
}

fn print_llm(f: &vouch_api::LlmFacts) {
    println!(
        "  llm:    {} {} ({} parameters), context {} tokens, vocabulary {} ({})",
        f.architecture,
        f.quantization,
        f.parameter_count,
        f.context_length,
        f.vocab_size,
        f.tokenizer_model
    );
    match &f.chat_template {
        Some(t) => println!("  chat template: from the file ({} bytes)", t.len()),
        None => println!("  chat template: none in the file (ChatML is used)"),
    }
}
