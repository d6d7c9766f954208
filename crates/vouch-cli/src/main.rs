//! `vouch`: the one binary. It only wires the library crates together: each subcommand is a
//! thin layer over `vouch-server`, `vouch-verify`, `vouch-exec` or the HTTP API.

mod client;
mod commands;
mod config;
mod files;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "vouch",
    version,
    about = "Verifiable AI inference: run models, get receipts anyone can check offline."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the CLI finds a running node.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// Base URL of the Vouch node.
    #[arg(
        long,
        env = "VOUCH_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin token (default: read from <data-dir>/admin.token).
    #[arg(long, env = "VOUCH_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Data dir whose admin.token to read when --token is not given.
    #[arg(
        long,
        env = "VOUCH_DATA_DIR",
        default_value = "./vouch-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Start the node: HTTP API on 127.0.0.1:8080, SQLite + blobs under ./vouch-data.
    Serve(commands::serve::Args),
    /// Register, list and inspect models.
    Models {
        #[command(subcommand)]
        command: commands::models::Command,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a model on a node and save the receipt bundle.
    Infer(commands::infer::Args),
    /// Chat with an LLM on a node: tokens printed as they stream, each chunk checked against
    /// the receipt's hash chain, the receipt verified at the end.
    Chat(commands::chat::Args),
    /// Follow zk proof jobs: wait with a progress bar and complete the bundle, show, cancel.
    Proofs {
        #[command(subcommand)]
        command: commands::proofs::Command,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check a receipt bundle offline: signature, zk proof, and the model/input/output files you hold.
    Verify(commands::verify::Args),
    /// Re-run the model locally and compare with the receipt's outputs: trust by re-execution.
    Replay(commands::replay::Args),
    /// Run an independent witness that cosigns a log's checkpoints (C2SP tlog-witness).
    Witness(commands::witness::Args),
    /// The transparency log: prove a receipt's inclusion, audit the log, a model's history.
    Log {
        #[command(subcommand)]
        command: commands::log::Command,
        #[command(flatten)]
        remote: Remote,
    },
    /// Prove zk jobs for a cluster of nodes sharing a PostgreSQL database (`vouch worker
    /// --database postgres://…`).
    Worker(commands::worker::Args),
    /// Serve the built-in x402 facilitator on its own (/verify, /settle, /supported).
    Facilitator(commands::facilitator::Args),
    /// Payments: make a payer key, credit or show balances in the built-in ledger.
    Pay {
        #[command(subcommand)]
        command: commands::pay::Command,
        #[command(flatten)]
        remote: Remote,
    },
}

/// mimalloc: per-thread free lists suit a server that allocates and frees small buffers on
/// every request across many threads (BENCHMARKS.md, "Node layer").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,vouch=info,vouch_server=info")
    });
    // Log output that fails (a full disk behind stderr) is dropped and counted, never a panic
    // in whichever task was logging (`vouch_server::logging`).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| vouch_server::logging::LogWriter)
        .log_internal_errors(false)
        .init();
    let result = match cli.command {
        Command::Serve(a) => commands::serve::run(a),
        Command::Worker(a) => commands::worker::run(a),
        Command::Models { command, remote } => commands::models::run(command, &remote),
        Command::Infer(a) => commands::infer::run(a),
        Command::Chat(a) => commands::chat::run(a),
        Command::Proofs { command, remote } => commands::proofs::run(command, &remote),
        Command::Verify(a) => commands::verify::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Log { command, remote } => commands::log::run(command, &remote),
        Command::Witness(a) => commands::witness::run(a),
        Command::Facilitator(a) => commands::facilitator::run(a),
        Command::Pay { command, remote } => commands::pay::run(command, &remote),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
