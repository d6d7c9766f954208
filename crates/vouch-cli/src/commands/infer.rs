//! `vouch infer`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use vouch_core::{Bundle, TensorMap};

use crate::Remote;
use crate::client::Api;
use crate::files::{read_json, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// name, name@version or sha256:<hex>.
    model: String,
    /// Inputs JSON: {"name": {"dtype": "float32", "shape": [..], "data": [..]}}.
    #[arg(long)]
    input: PathBuf,
    /// Comma-separated tiers (signed, tee, zk); empty for an unsigned receipt.
    #[arg(long, default_value = "signed")]
    tiers: String,
    /// Where to save the receipt bundle.
    #[arg(long, default_value = "bundle.json")]
    out: PathBuf,
    #[command(flatten)]
    remote: Remote,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let inputs: TensorMap = read_json(&a.input, "inputs file")?;
    let tiers: Vec<&str> = a
        .tiers
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let api = Api::new(&a.remote)?;
    let resp = api.post_json(
        "/v1/infer",
        &json!({"model": a.model, "inputs": inputs, "tiers": tiers}),
    )?;
    let bundle: Bundle = serde_json::from_value(resp)?;
    write_json(&a.out, &bundle)?;
    let r = &bundle.receipt;
    println!(
        "model:   {} ({})",
        r.model,
        r.model_ref.as_deref().unwrap_or("by digest")
    );
    println!(
        "engine:  {} {} (threads {}, batch {})",
        r.engine.name, r.engine.version, r.engine.profile.threads, r.engine.profile.batch
    );
    if let Some(outs) = &bundle.outputs {
        for (name, t) in outs.iter() {
            let vals = t.data().to_f64_vec();
            let shown: Vec<String> = vals.iter().take(10).map(|v| format!("{v:.6}")).collect();
            let more = if vals.len() > 10 {
                format!(" … ({} values)", vals.len())
            } else {
                String::new()
            };
            println!(
                "output {name} {} {:?}: [{}]{more}",
                t.dtype(),
                t.shape(),
                shown.join(", ")
            );
        }
    }
    let tiers: Vec<&str> = r.tiers.iter().map(|t| t.as_str()).collect();
    println!(
        "receipt: {} tiers [{}], signed by {}",
        r.hash(),
        tiers.join(", "),
        r.node_key
    );
    println!(
        "bundle saved to {} — check it with: vouch verify {}",
        a.out.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
