//! `vouch models add|list|show`.

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
    }
    Ok(ExitCode::SUCCESS)
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
