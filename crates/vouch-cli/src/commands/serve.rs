//! `vouch serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vouch_server::Server;

#[derive(clap::Args)]
pub struct Args {
    /// Config file (optional; defaults serve a newcomer).
    #[arg(long, default_value = "vouch.toml")]
    config: PathBuf,
    /// Override the listen address, e.g. 127.0.0.1:9000 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Override the data dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override the engine: auto, onnxruntime or tract.
    #[arg(long)]
    engine: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = crate::config::load(&a.config)?;
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(e) = a.engine {
        cfg.exec.engine = e;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = Server::bind(cfg).await?;
        let st = &server.state;
        let engines: Vec<String> = st
            .engines
            .available()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("vouch {} node", env!("CARGO_PKG_VERSION"));
        println!(
            "  node key:    {}{}",
            st.signer.public_key(),
            if st.boot.key_created { "  (new)" } else { "" }
        );
        println!(
            "  admin token: {}{}",
            st.boot.token_path.display(),
            if st.boot.token_created { "  (new)" } else { "" }
        );
        println!("  data dir:    {}", st.config.data_dir.display());
        println!(
            "  engines:     {} (ONNX Runtime: {})",
            engines.join(", "),
            st.boot.ort_status
        );
        // Tests and scripts wait for this exact line and read the port from it.
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
