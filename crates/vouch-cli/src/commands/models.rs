//! `vouch models add|list|show|policy|config|assurance`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::Remote;
use crate::client::Api;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Register an ONNX file (needs the admin token).
    Add {
        file: PathBuf,
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
            name,
            version,
            replace,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut query = Vec::new();
            if let Some(n) = &name {
                query.push(format!("name={n}"));
            }
            if let Some(v) = &version {
                query.push(format!("version={v}"));
            }
            if replace {
                query.push("replace=true".into());
            }
            let path = if query.is_empty() {
                "/v1/models".to_string()
            } else {
                format!("/v1/models?{}", query.join("&"))
            };
            let resp = api.post_bytes_admin(&path, bytes)?;
            let m = &resp["model"];
            let verb = if resp["created"].as_bool() == Some(true) {
                "registered"
            } else {
                "already registered"
            };
            println!("{verb} {}", m["digest"].as_str().unwrap_or("?"));
            println!("  engine: {}", m["engine"].as_str().unwrap_or("?"));
            if let Some(n) = resp["name"].as_object() {
                println!(
                    "  name:   {}@{} ({})",
                    n["name"].as_str().unwrap_or("?"),
                    n["version"].as_str().unwrap_or("?"),
                    n["change"].as_str().unwrap_or("?")
                );
            }
            print_signature(m);
            print_zk(&resp["zk"]);
            for p in resp["passed_over"].as_array().into_iter().flatten() {
                println!(
                    "  note: {} could not serve it: {}",
                    p["engine"].as_str().unwrap_or("?"),
                    p["reason"].as_str().unwrap_or("?")
                );
            }
        }
        Command::List { json } => {
            let resp = api.get("/v1/models")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
                return Ok(ExitCode::SUCCESS);
            }
            let models = resp["models"].as_array().cloned().unwrap_or_default();
            if models.is_empty() {
                println!(
                    "no models registered yet: vouch models add model.onnx --name NAME --version 1"
                );
            }
            for m in &models {
                let names: Vec<String> = m["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| {
                        format!(
                            "{}@{}",
                            n["name"].as_str().unwrap_or("?"),
                            n["version"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                println!(
                    "{}  {:<11} {:>10} B  {}",
                    m["digest"].as_str().unwrap_or("?"),
                    m["engine"].as_str().unwrap_or("?"),
                    m["size_bytes"],
                    if names.is_empty() {
                        "(no name)".to_string()
                    } else {
                        names.join(", ")
                    }
                );
                print_signature(m);
                print_zk(&m["zk"]);
            }
        }
        Command::Show { reference } => {
            let path = if reference.starts_with("sha256:") {
                format!("/v1/models/by-digest/{reference}")
            } else {
                format!("/v1/models/{reference}")
            };
            let resp = api.get(&path)?;
            println!("{}", serde_json::to_string_pretty(&resp)?);
        }
        Command::Config { reference, set } => {
            let path = format!("/v1/models/{reference}/config");
            let resp = match set {
                None => api.get(&path)?,
                Some(file) => {
                    let cfg: Value = crate::files::read_json(&file, "configuration file")?;
                    put_json_admin(remote, &api.url(&path), &cfg)?
                }
            };
            println!("{}", serde_json::to_string_pretty(&resp)?);
        }
        Command::Policy { reference, min } => {
            let path = format!("/v1/models/{reference}/policy");
            let resp = match min {
                None => api.get(&path)?,
                Some(m) => {
                    let min_tier = match m.as_str() {
                        "none" => Value::Null,
                        t => {
                            let tier: vouch_core::Tier = t.parse().map_err(anyhow::Error::msg)?;
                            serde_json::json!(tier)
                        }
                    };
                    put_json_admin(
                        remote,
                        &api.url(&path),
                        &serde_json::json!({ "min_tier": min_tier }),
                    )?
                }
            };
            let subject = resp["subject"].as_str().unwrap_or(&reference);
            match resp["policy"]["min_tier"].as_str() {
                Some(t) => println!(
                    "{subject}: requests need at least the {t} tier (since {})",
                    resp["policy"]["updated_at"].as_str().unwrap_or("?")
                ),
                None => println!("{subject}: no minimum tier"),
            }
            if let Some(c) = resp["change"].as_object() {
                println!(
                    "  change #{} recorded at {} (was {})",
                    c["seq"],
                    c["changed_at"].as_str().unwrap_or("?"),
                    c["previous"].as_str().unwrap_or("none")
                );
            } else if resp.get("change").is_some() {
                println!("  unchanged");
            }
        }
        Command::Price {
            reference,
            tiers,
            json,
        } => {
            let resp = api.get(&format!("/v1/pricing?model={reference}&tiers={tiers}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
                return Ok(ExitCode::SUCCESS);
            }
            let q = &resp["quote"];
            let unit = resp["unit"].as_str().unwrap_or("");
            println!("{} ({})", reference, q["digest"].as_str().unwrap_or("?"));
            for l in q["lines"].as_array().into_iter().flatten() {
                let tier = l["tier"].as_str().unwrap_or("?");
                match l["amount"].as_str() {
                    Some(a) => println!(
                        "  {tier}: {a} {unit} ({})",
                        l["display"].as_str().unwrap_or("")
                    ),
                    None => println!(
                        "  {tier}: no price: {}",
                        l["unavailable"].as_str().unwrap_or("?")
                    ),
                }
            }
            match q["total"].as_str() {
                Some(t) => println!(
                    "  total: {t} {unit} ({}) per request{}",
                    q["display"].as_str().unwrap_or(""),
                    if resp["enabled"] == Value::Bool(true) {
                        ", charged over x402"
                    } else {
                        " (quote only: payments are off on this node)"
                    }
                ),
                None => println!("  total: unknown until every tier has a price"),
            }
        }
        Command::Assurance { reference, json } => {
            let resp = api.get(&format!("/v1/models/{reference}/assurance"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} ({})", reference, resp["digest"].as_str().unwrap_or("?"));
            match resp["policy"]["min_tier"].as_str() {
                Some(t) => println!(
                    "  policy: at least {t} (set on {})",
                    resp["policy"]["subject"].as_str().unwrap_or("?")
                ),
                None => println!("  policy: none"),
            }
            let asset = resp["asset"].as_str().unwrap_or("");
            for t in resp["tiers"].as_array().into_iter().flatten() {
                let name = t["tier"].as_str().unwrap_or("?");
                let avail = if t["available"].as_bool() == Some(true) {
                    "available".to_string()
                } else {
                    format!(
                        "unavailable: {}",
                        t["unavailable_reason"].as_str().unwrap_or("?")
                    )
                };
                let policy = if t["meets_policy"].as_bool() == Some(false) {
                    " (below this model's policy)"
                } else {
                    ""
                };
                println!("  {name}: {avail}{policy}");
                if name == "zk" && t["zk"]["status"] == "available" {
                    let e = &t["zk"]["estimate"];
                    println!(
                        "    proof: about {} ms to prove, {} MiB, {} ms to verify (vk {})",
                        e["prove_ms"],
                        e["peak_bytes"].as_u64().unwrap_or(0) >> 20,
                        e["verify_ms"],
                        t["zk"]["vk_digest"].as_str().unwrap_or("?")
                    );
                }
                println!("    proves: {}", t["proves"].as_str().unwrap_or("?"));
                println!("    trusts: {}", t["trusts"].as_str().unwrap_or("?"));
                let req: Vec<&str> = t["request"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "    price:  {} {asset} per request [{}]",
                    t["request_price"].as_str().unwrap_or("unknown"),
                    req.join(", ")
                );
                let m = &t["measured"];
                match m["p50_ms"].as_f64() {
                    Some(p50) => println!(
                        "    measured: p50 {p50:.2} ms, p95 {:.2} ms over {} recent requests",
                        m["p95_ms"].as_f64().unwrap_or(p50),
                        m["samples"]
                    ),
                    None => println!("    measured: no requests at this tier yet"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// PUT with the admin token (the shared client only posts), errors turned into messages.
fn put_json_admin(remote: &Remote, url: &str, body: &Value) -> anyhow::Result<Value> {
    let token = match &remote.token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(remote.data_dir.join("admin.token"))
            .map(|t| t.trim().to_string())
            .map_err(|_| {
                anyhow::anyhow!("this needs the admin token: pass --token, set VOUCH_ADMIN_TOKEN, or run where --data-dir holds admin.token")
            })?,
    };
    let resp = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?
        .put(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .with_context(|| format!("cannot reach the node at {url}"))?;
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(v);
    }
    Err(anyhow::anyhow!(
        "the node answered {status} {}: {}",
        v["error"]["code"].as_str().unwrap_or("unknown"),
        v["error"]["message"].as_str().unwrap_or("(no message)")
    ))
}

/// One line on the model's zk tier: available with its key and cost, or why not.
fn print_zk(zk: &Value) {
    match zk["status"].as_str() {
        Some("available") => println!(
            "  zk:      available: vk {}, {} constraints, about {} ms to prove, scale 2^{}",
            zk["vk_digest"].as_str().unwrap_or("?"),
            zk["circuit"]["constraints"],
            zk["estimate"]["prove_ms"],
            zk["scale_bits"]
        ),
        Some("unavailable") => println!("  {}", zk["reason"].as_str().unwrap_or("zk: unavailable")),
        Some(other) => println!("  zk:      {other}"),
        None => {}
    }
}

fn print_signature(m: &Value) {
    let line = |specs: &Value| -> String {
        specs
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let dims: Vec<String> = s["shape"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        d.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| d.to_string())
                    })
                    .collect();
                format!(
                    "{} {}[{}]",
                    s["name"].as_str().unwrap_or("?"),
                    s["dtype"].as_str().unwrap_or("?"),
                    dims.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  inputs:  {}", line(&m["signature"]["inputs"]));
    println!("  outputs: {}", line(&m["signature"]["outputs"]));
}
