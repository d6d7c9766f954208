//! `vouch infer`.

use std::path::PathBuf;
use std::process::ExitCode;

use vouch_api::{InferRequest, Platform, TeeEvidence};
use vouch_core::{TensorMap, Tier};

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
    /// If the model's policy needs a stronger tier than asked for, accept the upgrade (and its
    /// price) instead of being refused.
    #[arg(long)]
    allow_upgrade: bool,
    /// Wait for the log checkpoint covering the receipt and include its inclusion proof (adds
    /// up to the log's checkpoint period, 250 ms by default).
    #[arg(long)]
    log_proof: bool,
    /// With the zk tier: wait for the proof (progress bar) and save the completed bundle.
    #[arg(long)]
    wait_proof: bool,
    /// Where to save the receipt bundle.
    #[arg(long, default_value = "bundle.json")]
    out: PathBuf,
    /// Pay (x402) from this key file (`vouch pay keygen`) when the node asks for payment.
    #[arg(long, value_name = "KEYFILE")]
    pay_with: Option<PathBuf>,
    /// Refuse to pay more than this, in the asset's smallest unit.
    #[arg(long, requires = "pay_with")]
    max_price: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let inputs: TensorMap = read_json(&a.input, "inputs file")?;
    // Unknown names are refused here with the message the node would give.
    let tiers: Vec<Tier> = a
        .tiers
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<Tier>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let api = Api::new(&a.remote)?;
    let body = InferRequest {
        model: a.model,
        inputs,
        tiers: tiers.clone(),
        allow_upgrade: a.allow_upgrade,
        log_proof: a.log_proof,
    };
    let (bundle, headers) = crate::commands::pay::infer_paying(
        &api,
        &body,
        a.pay_with.as_deref(),
        a.max_price.as_deref(),
    )?;
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
    let got: Vec<&str> = r.tiers.iter().map(|t| t.as_str()).collect();
    let mut asked: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
    asked.sort();
    asked.dedup();
    if got != asked {
        println!(
            "tiers:   upgraded by the model's policy from [{}] to [{}]",
            asked.join(", "),
            got.join(", ")
        );
    }
    if let Some(tee) = bundle.evidence.get("tee") {
        // A full envelope names its platform; a reference to one does not.
        let platform = serde_json::from_value::<TeeEvidence>(tee.clone())
            .ok()
            .map(|e| e.platform);
        println!(
            "tee:     {} evidence for the signing key attached{}",
            platform.map_or("referenced", platform_name),
            if platform == Some(Platform::Simulated) {
                " (SIMULATED: development only)"
            } else {
                ""
            }
        );
    }
    if let Some(p) = &r.payment {
        println!(
            "paid:    {} (smallest units of {}) on {} by {}, settlement {}",
            p.amount, p.asset, p.network, p.payer, p.settlement
        );
    }
    let tiers = got;
    println!(
        "receipt: {} tiers [{}], signed by {}",
        r.hash(),
        tiers.join(", "),
        r.node_key
    );
    if let Some(job) = crate::commands::proofs::job_ref(&bundle)? {
        let id = job.id;
        println!(
            "zk:      proof job {id} queued (estimated {} ms to prove, {} ms of queue ahead)",
            job.estimate_ms, job.wait_ms
        );
        if let Some(t) = headers
            .get("vouch-zk-cancel-token")
            .and_then(|v| v.to_str().ok())
        {
            println!("         cancel with: vouch proofs cancel {id} --cancel-token {t}");
        }
        if a.wait_proof {
            return crate::commands::proofs::wait(&api, &id, Some(&a.out), None, 900);
        }
        println!(
            "         complete the bundle with: vouch proofs wait {id} --bundle {}",
            a.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.wait_proof {
        anyhow::bail!("--wait-proof: the receipt has no zk proof job (ask for --tiers signed,zk)");
    }
    println!(
        "bundle saved to {} — check it with: vouch verify {}",
        a.out.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The platform's name as the evidence envelope writes it (`type`).
fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::AwsNitro => "aws-nitro",
        Platform::IntelTdx => "intel-tdx",
        Platform::IntelSgx => "intel-sgx",
        Platform::AmdSevSnp => "amd-sev-snp",
        Platform::Simulated => "simulated",
    }
}
