//! What the process benchmarks share: wrk runs, a process's CPU time, medians, load averages.
#![allow(dead_code)] // each bench uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub struct WrkRun {
    pub requests: u64,
    pub rps: f64,
}

/// `wrk` against `{url}/v1/infer` with the request `script`; failed requests are an error.
pub fn wrk(url: &str, script: &Path, threads: u32, connections: u32, secs: u64) -> Result<WrkRun> {
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{secs}s"),
            "-s",
        ])
        .arg(script)
        .arg(format!("{url}/v1/infer"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "wrk failed: {text}");
    ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw failed requests:\n{text}"
    );
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no request count in wrk's output:\n{text}"))?;
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    Ok(WrkRun { requests, rps })
}

/// utime + stime of process `pid` (every thread, exited ones included), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the name.
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks()?)
}

pub fn clock_ticks() -> Result<f64> {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    if let Some(t) = TICKS.get() {
        return Ok(*t);
    }
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    let t: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    if t <= 0.0 {
        bail!("CLK_TCK {t}");
    }
    Ok(*TICKS.get_or_init(|| t))
}

/// A blocking HTTP client, after installing the TLS provider reqwest needs (vouch-pay's `http`).
pub fn blocking_client() -> reqwest::blocking::Client {
    vouch_pay::http::install_tls_provider();
    reqwest::blocking::Client::new()
}

/// Reads a started server's stdout until its `listening on URL` line (draining the rest so it
/// never blocks on a full pipe); the URL, or an error naming `what` after two minutes.
pub fn listening_url(child: &mut Child, what: &str) -> Result<String> {
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_string());
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .with_context(|| format!("{what} did not start"))
}
