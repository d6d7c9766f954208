//! `vouch facilitator`: the built-in x402 facilitator served on its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vouch_server::facilitator::FacilitatorServer;

#[derive(clap::Args)]
pub struct Args {
    /// Config file: `[pay]` names the network; `data_dir` holds the ledger.
    #[arg(long, default_value = "vouch.toml")]
    config: PathBuf,
    /// Address to serve on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8402")]
    listen: SocketAddr,
    /// Override the data dir (the ledger is its database).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = crate::config::load(&a.config)?;
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = FacilitatorServer::bind(&cfg.pay, &cfg.data_dir, a.listen).await?;
        println!(
            "vouch {} built-in x402 facilitator",
            env!("CARGO_PKG_VERSION")
        );
        println!("  network:  eip155:{}", server.chain_id);
        println!("  ledger:   {}", cfg.data_dir.display());
        println!("  API:      POST /verify, POST /settle, GET /supported");
        println!("listening on http://{}", server.addr);
        server
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
