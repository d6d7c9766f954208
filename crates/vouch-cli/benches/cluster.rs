//! Issue 16, measured side by side in one run on this machine: requests/s of `POST /v1/infer`
//! (MLP, `["signed"]`, durably logged) through 1, 2 and 3 nodes sharing one PostgreSQL database
//! and one S3 bucket, beside one node on the embedded default (SQLite and a local folder) as
//! the anchor. Every node of a configuration gets its own wrk at once (the connections split
//! between them); the CPU each node and the PostgreSQL server used over the window is read
//! from `/proc` (utime + stime ÷ wall). All processes share this machine's cores, so more
//! nodes add no cores: the figures say what a node costs and where the time goes.
//!
//! `scripts/bench-cluster.sh` starts the PostgreSQL and S3 servers (tests/services) and runs
//! `cargo bench -p vouch --bench cluster -- [--secs 10] [--rounds 2]`. Needs wrk and ONNX
//! Runtime (`ORT_DYLIB_PATH`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;

mod support;
use support::{blocking_client, cpu_seconds, listening_url, loadavg, median, wrk};

#[derive(Parser)]
struct Opts {
    /// Length of each measured window, seconds.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Rounds; each measures every configuration once, in turn (the order rotates).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// wrk connections in all, split between the nodes of a configuration.
    #[arg(long, default_value_t = 12)]
    connections: u32,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One way of running the node(s).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Config {
    /// One node, SQLite and a local folder: the embedded default.
    Embedded,
    /// `n` nodes over PostgreSQL and S3.
    Cluster(usize),
}

impl Config {
    fn name(self) -> String {
        match self {
            Config::Embedded => "1 node, SQLite (embedded)".into(),
            Config::Cluster(n) => {
                format!("{n} node{}, PostgreSQL + S3", if n > 1 { "s" } else { "" })
            }
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    ensure!(
        Command::new("wrk").arg("-v").output().is_ok(),
        "wrk not found: apt-get install -y wrk"
    );
    let pg = std::env::var("VOUCH_TEST_POSTGRES")
        .context("VOUCH_TEST_POSTGRES: run scripts/bench-cluster.sh")?;
    let s3 = std::env::var("VOUCH_TEST_S3_ENDPOINT")
        .context("VOUCH_TEST_S3_ENDPOINT: run scripts/bench-cluster.sh")?;
    let pg_dir = std::env::var("VOUCH_TEST_POSTGRES_DIR")
        .ok()
        .map(PathBuf::from);
    let model = repo().join("models/mlp.onnx");
    let input: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("models/mlp.input.json"))?)?;
    let body = serde_json::json!({"model": "mlp", "inputs": input}).to_string();
    let work = tempfile::tempdir()?;
    let script = work.path().join("infer.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
        ),
    )?;
    let configs = [
        Config::Embedded,
        Config::Cluster(1),
        Config::Cluster(2),
        Config::Cluster(3),
    ];
    println!(
        "cluster bench: MLP, [\"signed\"], {} wrk connections split across the nodes, {} s windows, {} rounds; {} cores",
        opts.connections,
        opts.secs,
        opts.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results: Vec<(Config, Vec<Window>)> =
        configs.iter().map(|c| (*c, Vec::new())).collect();
    let mut seq = 0;
    for round in 0..opts.rounds {
        for k in 0..configs.len() {
            let config = configs[(k + round) % configs.len()];
            seq += 1;
            let cluster = Running::start(config, work.path(), &pg, &s3, &model, seq)?;
            cluster.check(&body)?;
            // Warm-up: pools, caches, the log's first checkpoints.
            cluster.load(&script, opts.connections, 2)?;
            let w = cluster.measure(&script, opts.connections, opts.secs, pg_dir.as_deref())?;
            println!(
                "  round {round} {:<30} {:>8.0} req/s  nodes CPU {:>5.0}% ({})  PostgreSQL CPU {:>4.0}%  load {}",
                config.name(),
                w.rps,
                w.node_cpu.iter().sum::<f64>() * 100.0,
                w.node_cpu
                    .iter()
                    .map(|c| format!("{:.0}%", c * 100.0))
                    .collect::<Vec<_>>()
                    .join(" "),
                w.pg_cpu * 100.0,
                loadavg()
            );
            if let Some(r) = results.iter_mut().find(|(c, _)| *c == config) {
                r.1.push(w);
            }
        }
    }
    let anchor = median(results[0].1.iter().map(|w| w.rps).collect());
    println!(
        "\n| configuration | req/s (median) | ÷ embedded | node CPU % each | PostgreSQL CPU % | req per node-CPU-second | WAL bytes/req |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|");
    for (config, ws) in &results {
        let rps = median(ws.iter().map(|w| w.rps).collect());
        let n = ws.first().map_or(0, |w| w.node_cpu.len());
        let each: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "{:.0}",
                    median(ws.iter().map(|w| w.node_cpu[i] * 100.0).collect())
                )
            })
            .collect();
        let node_cpu = median(ws.iter().map(|w| w.node_cpu.iter().sum::<f64>()).collect());
        println!(
            "| {} | {rps:.0} | {:.2} | {} | {:.0} | {:.0} | {:.0} |",
            config.name(),
            rps / anchor,
            each.join(" / "),
            median(ws.iter().map(|w| w.pg_cpu * 100.0).collect()),
            rps / node_cpu.max(1e-9),
            median(ws.iter().map(|w| w.wal_per_request).collect())
        );
    }
    Ok(())
}

/// One measured window.
struct Window {
    rps: f64,
    /// Each node's CPU over the window, in cores.
    node_cpu: Vec<f64>,
    /// The PostgreSQL server's (every backend alive at both ends), in cores.
    pg_cpu: f64,
    /// Write-ahead log PostgreSQL wrote per request, in bytes (0 on the embedded node).
    wal_per_request: f64,
}

/// The server's current WAL position, or `None` without a server.
fn wal_lsn(pg: &str) -> Option<String> {
    let out = Command::new("psql")
        .args([pg, "-Atc", "SELECT pg_current_wal_lsn()"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Bytes of WAL written since `from`.
fn wal_since(pg: &str, from: &str) -> f64 {
    Command::new("psql")
        .args([
            pg,
            "-Atc",
            &format!("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{from}')"),
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0.0)
}

/// The nodes of one configuration, killed when dropped.
struct Running {
    nodes: Vec<(Child, String)>,
    /// The configuration's database, when it has one.
    pg: Option<String>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(
        config: Config,
        work: &Path,
        pg: &str,
        s3: &str,
        model: &Path,
        seq: usize,
    ) -> Result<Running> {
        let dir = tempfile::tempdir_in(work)?;
        let (count, shared) = match config {
            Config::Embedded => (1, None),
            Config::Cluster(n) => {
                let db = format!("bench_{}_{seq}", std::process::id());
                let out = Command::new("psql")
                    .args([pg, "-q", "-c", &format!("CREATE DATABASE {db}")])
                    .output()?;
                ensure!(out.status.success(), "create database: {out:?}");
                let bucket = format!("bench-{}-{seq}", std::process::id());
                let r = blocking_client().put(format!("{s3}/{bucket}")).send()?;
                ensure!(r.status().is_success(), "create bucket: {r:?}");
                let (base, _) = pg.rsplit_once('/').context("database URL")?;
                (
                    n,
                    Some((format!("{base}/{db}"), format!("s3://{bucket}/vouch"))),
                )
            }
        };
        let key = dir.path().join("log.key");
        let mut nodes = Vec::new();
        for i in 0..count {
            let data = dir.path().join(format!("node{i}"));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_vouch"));
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(&data)
                .env("VOUCH_LOG__KEY_FILE", &key)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(
                    dir.path().join(format!("node{i}.log")),
                )?);
            if let Some((db, blobs)) = &shared {
                cmd.args(["--database", db, "--blobs", blobs])
                    .env("AWS_ENDPOINT_URL", s3)
                    .env("AWS_ALLOW_HTTP", "true")
                    .env("AWS_ACCESS_KEY_ID", "bench")
                    .env("AWS_SECRET_ACCESS_KEY", "bench")
                    .env("AWS_REGION", "us-east-1");
            }
            let mut child = cmd.spawn()?;
            let url = listening_url(&mut child, &format!("{} node {i}", config.name()))?;
            if i == 0 {
                let token = std::fs::read_to_string(data.join("admin.token"))?;
                let r = blocking_client()
                    .post(format!("{url}/v1/models?name=mlp"))
                    .bearer_auth(token.trim())
                    .body(std::fs::read(model)?)
                    .send()?;
                ensure!(r.status().is_success(), "registering: {}", r.text()?);
            }
            nodes.push((child, url));
        }
        Ok(Running {
            nodes,
            pg: shared.map(|(db, _)| db),
            _dir: dir,
        })
    }

    /// One request through each node answers with a signed, logged receipt.
    fn check(&self, body: &str) -> Result<()> {
        for (_, url) in &self.nodes {
            let r = blocking_client()
                .post(format!("{url}/v1/infer"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()?;
            ensure!(r.status().is_success(), "infer on {url}: {}", r.text()?);
            let v: serde_json::Value = r.json()?;
            ensure!(v["evidence"]["log"].is_object(), "no log evidence: {v}");
        }
        Ok(())
    }

    /// wrk on every node at once; the total requests/s.
    fn load(&self, script: &Path, connections: u32, secs: u64) -> Result<f64> {
        let per = (connections / self.nodes.len() as u32).max(1);
        let runs: Vec<_> = self
            .nodes
            .iter()
            .map(|(_, url)| {
                let (url, script) = (url.clone(), script.to_owned());
                std::thread::spawn(move || wrk(&url, &script, 1, per, secs))
            })
            .collect();
        let mut total = 0.0;
        for r in runs {
            total += r.join().map_err(|_| anyhow::anyhow!("wrk thread"))??.rps;
        }
        Ok(total)
    }

    fn measure(
        &self,
        script: &Path,
        connections: u32,
        secs: u64,
        pg_dir: Option<&Path>,
    ) -> Result<Window> {
        let cpu = |nodes: &[(Child, String)]| -> Result<Vec<f64>> {
            nodes.iter().map(|(c, _)| cpu_seconds(c.id())).collect()
        };
        let lsn0 = self.pg.as_deref().and_then(wal_lsn);
        let (n0, p0, t0) = (cpu(&self.nodes)?, postgres_cpu(pg_dir), Instant::now());
        let rps = self.load(script, connections, secs)?;
        let (n1, p1, wall) = (cpu(&self.nodes)?, postgres_cpu(pg_dir), t0.elapsed());
        let wall = wall.as_secs_f64();
        let wal = match (&self.pg, &lsn0) {
            (Some(pg), Some(l)) => wal_since(pg, l),
            _ => 0.0,
        };
        Ok(Window {
            rps,
            node_cpu: n0.iter().zip(&n1).map(|(a, b)| (b - a) / wall).collect(),
            wal_per_request: wal / (rps * wall).max(1.0),
            pg_cpu: p1
                .iter()
                .filter_map(|(pid, t1)| p0.iter().find(|(p, _)| p == pid).map(|(_, t0)| t1 - t0))
                .sum::<f64>()
                / wall,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for (c, _) in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU seconds of the PostgreSQL server's processes (the postmaster and its children), by pid.
fn postgres_cpu(pg_dir: Option<&Path>) -> Vec<(u32, f64)> {
    let Some(master) = pg_dir
        .and_then(|d| std::fs::read_to_string(d.join("data/postmaster.pid")).ok())
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if (pid == master || ppid == Some(master))
            && let Ok(t) = cpu_seconds(pid)
        {
            out.push((pid, t));
        }
    }
    out
}
