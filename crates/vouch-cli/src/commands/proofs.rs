//! `vouch proofs wait|show|cancel`: follow a zk proof job and complete its receipt bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use vouch_api::{CancelResponse, JobStatus, ProofJob, WaitParams, ZkJobRef};
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
                    job_ref(&b)?
                        .with_context(|| {
                            format!("{} has no evidence.zk_job: pass the job id", path.display())
                        })?
                        .id
                }
                (None, None) => bail!("give a job id, or --bundle with the bundle holding it"),
            };
            wait(&api, &id, bundle.as_deref(), out.as_deref(), timeout_secs)
        }
        Command::Show { id, json } => {
            let path = ["v1", "proofs", &id];
            if json {
                let raw = api.get_raw::<ProofJob, _>(&path, &())?;
                println!("{}", serde_json::to_string_pretty(&raw)?);
            } else {
                print_job(&api.get(&path)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, cancel_token } => {
            let resp: CancelResponse =
                api.delete_with_token(&["v1", "proofs", &id], cancel_token)?;
            let status = resp.job.status;
            if resp.cancelled {
                println!("cancelled proof job {id}");
            } else {
                println!("proof job {id} had already ended: {status}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The proof job a pending bundle refers to, if any.
pub fn job_ref(b: &Bundle) -> anyhow::Result<Option<ZkJobRef>> {
    b.evidence
        .get(ZkJobRef::EVIDENCE_KEY)
        .map(|v| {
            serde_json::from_value(v.clone())
                .context("the bundle's evidence.zk_job is not a proof job reference")
        })
        .transpose()
}

fn print_job(job: &ProofJob) {
    println!(
        "proof job {}: {} (stage {}, {:.0}%)",
        job.id,
        job.status,
        job.stage,
        job.progress * 100.0
    );
    println!("  receipt: {}", job.receipt);
    if let Some(p) = job.queue_position {
        println!("  queue position: {p}");
    }
    if let Some(e) = &job.error {
        println!("  error: {}", e.message);
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
    let path = ["v1", "proofs", id];
    let query = WaitParams {
        wait: Some("20s".into()),
    };
    let job = loop {
        let job: ProofJob = api.get_query(&path, &query)?;
        let status = job.status;
        bar.set_position((job.progress * 100.0) as u64);
        bar.set_message(match job.queue_position {
            Some(p) => format!("{status} (position {p} in the queue)"),
            None => format!("{status}: {}", job.stage),
        });
        if status.is_terminal() {
            break job;
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bar.abandon();
            bail!("proof job {id} is still {status} after {timeout_secs} s; wait again later");
        }
    };
    bar.finish_and_clear();
    let status = job.status;
    if status != JobStatus::Done {
        eprintln!(
            "zk proof job {id} {status}: {}",
            job.error
                .as_ref()
                .map_or("(no reason given)", |e| e.message.as_str())
        );
        return Ok(ExitCode::from(3));
    }
    let Some(zk) = job.evidence.map(|e| e.zk).filter(|zk| !zk.is_null()) else {
        bail!("proof job {id} is done but the node sent no evidence");
    };
    let prove_ms = job
        .prove_ms
        .map_or_else(|| "null".to_string(), |m| m.to_string());
    println!(
        "zk proof done in {prove_ms} ms (job {id}), bound to receipt {}",
        job.receipt
    );
    match (pending, bundle) {
        (Some(mut b), Some(path)) => {
            let hash = b.receipt.hash();
            if job.receipt != hash {
                bail!(
                    "job {id} proves receipt {}, but {} holds receipt {hash}",
                    job.receipt,
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
