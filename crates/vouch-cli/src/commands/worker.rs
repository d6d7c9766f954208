//! `vouch worker`: a zk prover process for a cluster of nodes. It claims proof jobs from the
//! PostgreSQL database the nodes share (leases, renewed with each progress report), reads the
//! models from the shared blob store, and writes the proofs back; clients follow the jobs on
//! any node (`GET /v1/proofs/{id}`). It serves nothing and takes no payments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Config file: `[store]` names the shared database and blobs, `[zk]` the provers.
    #[arg(long, default_value = "vouch.toml")]
    config: PathBuf,
    /// The cluster's database (`postgres://…`), as the nodes were given it.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// The cluster's blob store (`s3://bucket/prefix`), as the nodes were given it.
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
    /// Prover threads (default `[zk] workers`); each proof also uses every core it can.
    #[arg(long)]
    workers: Option<usize>,
    /// Override the data dir (a worker keeps nothing there but the local blob folder, if used).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = crate::config::load(&a.config)?;
    if let Some(d) = a.database {
        cfg.store.database =
            vouch_store::Database::parse(&d).map_err(|e| anyhow::anyhow!("--database: {e}"))?;
    }
    if let Some(b) = a.blobs {
        cfg.store.blobs = Some(b);
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(w) = a.workers {
        cfg.zk.workers = w;
    }
    if cfg.store.database == vouch_store::Database::Sqlite {
        anyhow::bail!(
            "vouch worker proves jobs from a database shared with the nodes: give it the \
             cluster's --database postgres://… (a single node on SQLite proves its own jobs)"
        );
    }
    if cfg.zk.workers == 0 || !cfg.zk.enabled {
        anyhow::bail!("[zk] is disabled or has no workers: nothing to run");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = vouch_store::Store::open_with(&cfg.store.store_config(&cfg.data_dir)).await?;
        let zk = vouch_node::proofs::ZkState::boot_worker(&store, cfg.zk.clone()).await?;
        println!("vouch {} zk worker", env!("CARGO_PKG_VERSION"));
        println!("  worker:    {}", zk.worker_id);
        println!("  database:  {:?}", cfg.store.database);
        println!("  provers:   {}", cfg.zk.workers);
        println!("proving");
        let mut status = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = status.tick() => {
                    tracing::info!(running = zk.running(), "zk worker");
                }
            }
        }
        // Jobs still running are left to their leases: another prover takes them over.
        println!("stopping; jobs in progress pass to another prover when their leases run out");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
