//! `vouch verify`: offline, no network, no trust in the node beyond what is printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use vouch_core::{Bundle, NodeKey, TensorMap};
use vouch_verify::{Evidence, verify_bundle};

use crate::files::read_json;

#[derive(clap::Args)]
pub struct Args {
    bundle: PathBuf,
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
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bundle: Bundle = read_json(&a.bundle, "receipt bundle")?;
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
    let ev = Evidence {
        trusted_key,
        model_bytes: model.as_deref(),
        inputs: inputs.as_ref(),
        outputs: outputs.as_ref(),
    };
    match verify_bundle(&bundle, &ev) {
        Ok(report) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("OK: {}", report.summary);
                for f in &report.proven {
                    println!("  proven:     {}", f.detail);
                }
                for n in &report.not_proven {
                    println!("  not proven: {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
