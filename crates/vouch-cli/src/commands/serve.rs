//! `vouch serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vouch_server::Server;

/// `println!` that cannot panic: a banner line lost to a full disk must not stop the node.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

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
    /// Where state lives: `sqlite` (the default, in the data dir) or a `postgres://` URL that
    /// every node of a cluster shares (`[store] database`).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Where model bytes live: an `s3://bucket/prefix` URL (`[store] blobs`); the data dir's
    /// `blobs/` folder by default.
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
    /// Override the engine: auto, onnxruntime or tract.
    #[arg(long)]
    engine: Option<String>,
    /// Offer the tee tier with this evidence producer: auto, aws-nitro, configfs-tsm,
    /// simulated (development only) or none.
    #[arg(long, value_name = "PRODUCER")]
    tee: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = crate::config::load(&a.config)?;
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(d) = a.database {
        cfg.store.database =
            vouch_store::Database::parse(&d).map_err(|e| anyhow::anyhow!("--database: {e}"))?;
    }
    if let Some(b) = a.blobs {
        cfg.store.blobs = Some(b);
    }
    if let Some(e) = a.engine {
        cfg.exec.engine = e;
    }
    if let Some(t) = a.tee {
        cfg.tee.producer =
            serde_json::from_value(serde_json::Value::String(t.clone())).map_err(|_| {
                anyhow::anyhow!(
                    "--tee {t:?}: expected auto, aws-nitro, configfs-tsm, simulated or none"
                )
            })?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = Server::bind(cfg).await?;
        let st = &server.state.node;
        let engines: Vec<String> = st
            .catalog
            .engines
            .available()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out!("vouch {} node", env!("CARGO_PKG_VERSION"));
        out!(
            "  node key:    {}{}",
            st.signer.public_key(),
            if st.boot.key_ephemeral {
                "  (ephemeral: made at boot inside the TEE, never stored)"
            } else if st.boot.key_created {
                "  (new)"
            } else {
                ""
            }
        );
        if let Some(t) = &st.tee {
            out!(
                "  tee:         {} evidence {}{}",
                t.verdict.platform,
                t.boot_digest,
                if t.simulated {
                    "  (SIMULATED: development only, no hardware guarantee)"
                } else {
                    ""
                }
            );
            out!("               {}", t.verdict.trust_assumption);
        }
        out!(
            "  admin token: {}{}",
            st.boot.token_path.display(),
            if st.boot.token_created { "  (new)" } else { "" }
        );
        out!("  data dir:    {}", st.config.data_dir.display());
        out!(
            "  database:    {:?}{}",
            st.config.store.database,
            match st.config.store.database {
                vouch_store::Database::Sqlite => "  (in the data dir)",
                vouch_store::Database::Postgres(_) => "  (shared by every node given this URL)",
            }
        );
        out!(
            "  blobs:       {}",
            st.config.store.blobs.clone().unwrap_or_else(|| st
                .config
                .data_dir
                .join("blobs")
                .display()
                .to_string())
        );
        out!("  log key:     {}", st.log.vkey);
        out!(
            "  engines:     {} (ONNX Runtime: {})",
            engines.join(", "),
            st.boot.ort_status
        );
        match &st.pay {
            Some(p) => out!(
                "  payments:    x402 on {} in {} ({}), paid to {}, facilitator {}",
                p.terms.network,
                p.terms.asset_symbol,
                p.terms.asset,
                p.terms.pay_to,
                p.facilitator
            ),
            None => {
                out!("  payments:    off (prices are quotes; [pay] enabled = true to charge)")
            }
        }
        // Tests and scripts wait for this exact line and read the port from it.
        out!("listening on http://{}", server.addr);
        server
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
