//! `vouch witness`: run an independent C2SP witness for one or more logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vouch_server::witness::{WitnessConfig, WitnessServer};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Where the witness key and its per-log state live.
    #[arg(long, default_value = "./vouch-witness")]
    dir: PathBuf,
    /// The witness's name (its key name in cosignatures).
    #[arg(long, default_value = "localhost/vouch-witness")]
    name: String,
    /// Verifier key of a log to witness (`GET /v1/log` on a node). Repeatable.
    #[arg(long = "log", value_name = "VKEY", required = true)]
    logs: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = WitnessServer::bind(WitnessConfig {
            listen: a.listen,
            dir: a.dir,
            name: a.name,
            logs: a.logs,
        })
        .await?;
        println!("vouch witness");
        println!("  witness key: {}", server.key.to_vkey());
        // Tests and scripts wait for this exact line and read the port from it.
        println!("listening on http://{}", server.addr);
        tokio::select! {
            r = server.run() => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
