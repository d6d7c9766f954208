//! `vouch proofs wait|show|cancel`: follow a zk proof job and complete its receipt bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use vouch_core::Bundle;

use crate::Remote;
use crate::client::Api;
use crate::files::{read_json, write_json};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Wait for a proof job, with a progress bar. With --bundle, add the proof to that bundle
    /// (written to --out, or back to --bundle).
    Wait {
        /// Job id (default: the bundle's evidence.zk_job.id).
        id: Option<String>,
        /// The bundle `vouch infer` saved for this request.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Where to write the completed bundle (without --bundle: the `zk` evidence alone).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
    },
    /// Show a job once: status, stage, progress.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running job, with its cancel token or the admin token.
    Cancel {
        id: String,
        /// The `vouch-zk-cancel-token` the node gave with the bundle (default: the admin token).
        #[arg(long, env = "VOUCH_ZK_CANCEL_TOKEN", hide_env_values = true)]
        cancel_token: Option<String>,
    },
}

pub fn run(cmd: Command, remote: &Remote) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote)?;
    match cmd {
        Command::Wait {
            id,
            bundle,
            out,
            timeout_secs,
        } => {
            let id = match (id, &bundle) {
                (Some(id), _) => id,
                (None, Some(path)) => {
                    let b: Bundle = read_json(path, "receipt bundle")?;
                    job_id(&b).with_context(|| {
                        format!("{} has no evidence.zk_job: pass the job id", path.display())
                    })?
                }
                (None, None) => bail!("give a job id, or --bundle with the bundle holding it"),
            };
            wait(&api, &id, bundle.as_deref(), out.as_deref(), timeout_secs)
        }
        Command::Show { id, json } => {
            let job = api.get(&format!("/v1/proofs/{id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, cancel_token } => {
            let resp = api.delete_with_token(&format!("/v1/proofs/{id}"), cancel_token)?;
            let status = resp["job"]["status"].as_str().unwrap_or("?");
            if resp["cancelled"].as_bool() == Some(true) {
                println!("cancelled proof job {id}");
            } else {
                println!("proof job {id} had already ended: {status}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The proof job a pending bundle refers to.
pub fn job_id(b: &Bundle) -> Option<String> {
    b.evidence.get("zk_job")?["id"].as_str().map(str::to_string)
}

fn print_job(job: &Value) {
    println!(
        "proof job {}: {} (stage {}, {:.0}%)",
        job["id"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        job["stage"].as_str().unwrap_or("?"),
        job["progress"].as_f64().unwrap_or(0.0) * 100.0
    );
    println!("  receipt: {}", job["receipt"].as_str().unwrap_or("?"));
    if let Some(p) = job["queue_position"].as_u64() {
        println!("  queue position: {p}");
    }
    if let Some(e) = job["error"]["message"].as_str() {
        println!("  error: {e}");
    }
}

/// Polls the job (long-polling `?wait=`) with a progress bar until it ends; on success adds
/// `evidence.zk` to the bundle and drops `evidence.zk_job`. Exit code 3 when the job failed or
/// was cancelled.
pub fn wait(
    api: &Api,
    id: &str,
    bundle: Option<&Path>,
    out: Option<&Path>,
    timeout_secs: u64,
) -> anyhow::Result<ExitCode> {
    let pending: Option<Bundle> = bundle.map(|p| read_json(p, "receipt bundle")).transpose()?;
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("zk proof {spinner} [{bar:30}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let job = loop {
        let job = api.get(&format!("/v1/proofs/{id}?wait=20s"))?;
        let status = job["status"].as_str().unwrap_or("?").to_string();
        bar.set_position((job["progress"].as_f64().unwrap_or(0.0) * 100.0) as u64);
        bar.set_message(match job["queue_position"].as_u64() {
            Some(p) => format!("{status} (position {p} in the queue)"),
            None => format!("{status}: {}", job["stage"].as_str().unwrap_or("")),
        });
        if matches!(status.as_str(), "done" | "failed" | "cancelled") {
            break job;
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bar.abandon();
            bail!("proof job {id} is still {status} after {timeout_secs} s; wait again later");
        }
    };
    bar.finish_and_clear();
    let status = job["status"].as_str().unwrap_or("?");
    if status != "done" {
        eprintln!(
            "zk proof job {id} {status}: {}",
            job["error"]["message"]
                .as_str()
                .unwrap_or("(no reason given)")
        );
        return Ok(ExitCode::from(3));
    }
    let zk = job["evidence"]["zk"].clone();
    if zk.is_null() {
        bail!("proof job {id} is done but the node sent no evidence");
    }
    println!(
        "zk proof done in {} ms (job {id}), bound to receipt {}",
        job["prove_ms"],
        job["receipt"].as_str().unwrap_or("?")
    );
    match (pending, bundle) {
        (Some(mut b), Some(path)) => {
            let hash = b.receipt.hash().to_string();
            if job["receipt"].as_str() != Some(hash.as_str()) {
                bail!(
                    "job {id} proves receipt {}, but {} holds receipt {hash}",
                    job["receipt"].as_str().unwrap_or("?"),
                    path.display()
                );
            }
            b.evidence.insert("zk".into(), zk);
            b.evidence.remove("zk_job");
            let out = out.unwrap_or(path);
            write_json(out, &b)?;
            println!(
                "completed bundle saved to {} — check it with: vouch verify {} --model MODEL.onnx --require zk",
                out.display(),
                out.display()
            );
        }
        _ => {
            if let Some(out) = out {
                write_json(out, &zk)?;
                println!("zk evidence saved to {}", out.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
