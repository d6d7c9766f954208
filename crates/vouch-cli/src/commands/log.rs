//! `vouch log`: the transparency log from a client's side — prove a receipt's inclusion, audit
//! the log as a monitor, and read a model name's history.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use vouch_core::Bundle;
use vouch_log::audit::{Monitor, MonitorState};
use vouch_log::checkpoint::{LogKey, SignedNote};
use vouch_log::evidence::{BUNDLE_EVIDENCE_KEY, LogEvidence};
use vouch_log::tiles::Tile;
use vouch_log::{Checkpoint, Hash};

use vouch_api::{
    ConsistencyParams, ConsistencyProof, InclusionProof, LogInfo, NameHistory, ProofParams,
};

use crate::Remote;
use crate::client::Api;
use crate::files::{read_json, write_json};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The log's origin, verifier key and size.
    Info,
    /// Fetch the inclusion proof of a bundle's receipt and store it in the bundle, so it
    /// verifies against the log offline (`vouch verify --log-key`).
    Prove {
        bundle: PathBuf,
        /// Where to write the completed bundle (default: in place).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the proof as a standalone C2SP tlog-proof@v1 file, for other tlog tools.
        #[arg(long, value_name = "FILE")]
        tlog_proof: Option<PathBuf>,
    },
    /// Monitor the log: check the new checkpoint is consistent with the last one seen,
    /// re-derive the tree from its entry bundles and tiles, and fail loudly on any split view,
    /// rollback or rewrite.
    Audit {
        /// The log's verifier key to trust. Default: the one in the state file; on a first run
        /// without it, the node's own word (printed, trust on first use).
        #[arg(long)]
        log_key: Option<String>,
        /// Where the monitor keeps the last verified checkpoint and tree between runs.
        #[arg(long, default_value = "vouch-audit.json")]
        state: PathBuf,
    },
    /// Every logged change of what NAME (and each NAME@version) pointed at, oldest first.
    History {
        name: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The monitor's state file: the key it trusts and what it last verified.
#[derive(Serialize, Deserialize)]
struct AuditFile {
    log_key: String,
    state: MonitorState,
}

pub fn run(cmd: Command, remote: &Remote) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote)?;
    match cmd {
        Command::Info => {
            let v: LogInfo = api.get(&["v1", "log"])?;
            println!("origin:  {}", v.origin);
            println!("log key: {}", v.log_key);
            println!("size:    {}", v.size);
            Ok(ExitCode::SUCCESS)
        }
        Command::Prove {
            bundle,
            out,
            tlog_proof,
        } => prove(&api, &bundle, out.as_deref(), tlog_proof.as_deref()),
        Command::Audit { log_key, state } => audit(&api, log_key, &state),
        Command::History { name, json } => history(&api, &name, json),
    }
}

fn prove(
    api: &Api,
    path: &Path,
    out: Option<&Path>,
    tlog_proof: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut bundle: Bundle = read_json(path, "receipt bundle")?;
    let ev = bundle.evidence.get(BUNDLE_EVIDENCE_KEY).ok_or_else(|| {
        anyhow!("the bundle has no log evidence: it was not made by a node with a transparency log")
    })?;
    let ev = LogEvidence::from_json(ev)?;
    let index = ev.index.to_string();
    let query = ProofParams {
        size: None,
        wait: true,
    };
    let resp: InclusionProof = api.get_query(&["v1", "log", "proof", &index], &query)?;
    let InclusionProof::Evidence { evidence, .. } = resp else {
        bail!("the node answered RFC 6962 hashes when asked for bundle evidence");
    };
    let fresh = LogEvidence::from_json(&serde_json::to_value(evidence)?)?;
    if fresh.index != ev.index {
        bail!(
            "the node answered a proof for entry {} when asked for {}",
            fresh.index,
            ev.index
        );
    }
    bundle
        .evidence
        .insert(BUNDLE_EVIDENCE_KEY.to_string(), fresh.to_json());
    if let (Some(file), Some(text)) = (tlog_proof, &fresh.proof) {
        std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let target = out.unwrap_or(path);
    write_json(target, &bundle)?;
    println!(
        "log entry {}: inclusion proof added to {} (check it with `vouch verify --log-key`)",
        ev.index,
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn audit(api: &Api, log_key: Option<String>, state_path: &Path) -> anyhow::Result<ExitCode> {
    let saved: Option<AuditFile> = if state_path.exists() {
        Some(read_json(state_path, "monitor state")?)
    } else {
        None
    };
    let vkey = match (&log_key, &saved) {
        (Some(k), Some(s)) if *k != s.log_key => bail!(
            "--log-key differs from the key in {} ({}): use another --state for another log",
            state_path.display(),
            s.log_key
        ),
        (Some(k), _) => k.clone(),
        (None, Some(s)) => s.log_key.clone(),
        (None, None) => {
            let k = api.get::<LogInfo>(&["v1", "log"])?.log_key;
            eprintln!(
                "first run: trusting the node's log key {k} (pass --log-key to pin one you got elsewhere)"
            );
            k
        }
    };
    let key = LogKey::parse(&vkey).map_err(|e| anyhow!("log key {vkey:?}: {e}"))?;
    let mut monitor = Monitor::new(key, saved.map(|s| s.state))?;

    let note = api.get_bytes("/log/checkpoint")?;
    let new_size = SignedNote::parse(&note)
        .ok()
        .and_then(|n| Checkpoint::parse_text(&n.text).ok())
        .map(|c| c.size)
        .ok_or_else(|| anyhow!("the node's checkpoint is not a checkpoint note"))?;
    let old = monitor.known_size();
    let proof: Vec<Hash> = if old > 0 && new_size > old {
        let v: ConsistencyProof = api.get_query(
            &["v1", "log", "consistency"],
            &ConsistencyParams { old, new: new_size },
        )?;
        v.hashes
            .iter()
            .map(|h| {
                Hash::from_base64(h)
                    .map_err(|_| anyhow!("consistency proof hash {h:?} is not base64"))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let finding = |e: vouch_log::audit::AuditError| -> anyhow::Result<ExitCode> {
        eprintln!("AUDIT FAILED: {e}");
        Ok(ExitCode::from(3))
    };
    let cp = match monitor.check_checkpoint(&note, &proof) {
        Ok(cp) => cp,
        Err(e) => return finding(e),
    };
    let tiles = monitor.bundles_needed(new_size);
    let bar = indicatif::ProgressBar::new(tiles.len() as u64);
    for t in tiles {
        let bundle = api.get_bytes(&format!("/log/{}", t.path()))?;
        let level0 = api.get_bytes(&format!("/log/{}", Tile::hashes(0, t.n, t.width).path()))?;
        if let Err(e) = monitor.feed_bundle(t, &bundle, Some(&level0)) {
            bar.abandon();
            return finding(e);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (report, state) = match monitor.finish(&cp) {
        Ok(r) => r,
        Err(e) => return finding(e),
    };
    write_json(
        state_path,
        &AuditFile {
            log_key: vkey,
            state,
        },
    )
    .with_context(|| "saving the monitor state")?;
    println!(
        "OK: log {} grew from {} to {} entries, consistently; {} new entries re-derived and well formed (root {})",
        report.origin, report.previous_size, report.size, report.entries_checked, report.root
    );
    Ok(ExitCode::SUCCESS)
}

fn history(api: &Api, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = ["v1", "log", "history", name];
    if json {
        let raw = api.get_raw::<NameHistory, _>(&path, &())?;
        println!("{}", serde_json::to_string_pretty(&raw)?);
        return Ok(ExitCode::SUCCESS);
    }
    let v: NameHistory = api.get(&path)?;
    if v.changes.is_empty() {
        println!("no logged changes for {name}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut alarms = 0;
    println!(
        "{:>7}  {:<24}  {:<12}  {:<20}  {:<20}",
        "entry", "time", "pointer", "from", "to"
    );
    for c in &v.changes {
        let short = |d: &Option<vouch_core::ModelDigest>| {
            d.map(|d| d.to_string().chars().take(19).collect::<String>())
                .unwrap_or_else(|| "-".into())
        };
        let pointer = match &c.version {
            Some(v) => format!("@{v}"),
            None => "(latest)".into(),
        };
        println!(
            "{:>7}  {:<24}  {:<12}  {:<20}  {:<20}",
            c.index,
            c.at,
            pointer,
            short(&c.from),
            short(&c.to)
        );
        if c.unlogged_move_before {
            alarms += 1;
            println!("         ALARM: the pointer moved without a log entry before this change");
        }
    }
    Ok(if alarms > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
