//! Where the test models are, and llama.cpp as the reference.
//!
//! `tests/setup/llm.sh` puts the files under `$VOUCH_CACHE/models` (default
//! `~/.cache/vouch/models`). A missing file or reference fails the test when
//! `VOUCH_REQUIRE_LLM=1` (scripts/test.sh sets it); otherwise the test says why and passes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("VOUCH_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/vouch"),
    }
}

pub fn required() -> bool {
    std::env::var("VOUCH_REQUIRE_LLM").as_deref() == Ok("1")
}

/// `Some(path)` if the model file exists; else fails (required) or explains and returns None.
pub fn model(relative: &str) -> Option<PathBuf> {
    let path = cache_dir().join("models").join(relative);
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} is missing: run tests/setup/llm.sh", path.display());
    if required() {
        panic!("VOUCH_REQUIRE_LLM=1: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

pub fn smollm2() -> Option<PathBuf> {
    model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The pinned SHA-256 of the SmolLM2 GGUF (tests/setup/llm.sh checks it too).
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn python() -> String {
    if let Ok(p) = std::env::var("VOUCH_PYTHON") {
        return p;
    }
    let venv = cache_dir().join("venv/bin/python");
    if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".into()
    }
}

/// Runs `tests/interop/llm/<script>` with `request` on stdin; its JSON answer, or None
/// (failing when required) if the reference cannot run here.
pub fn python_reference(script: &str, request: &serde_json::Value) -> Option<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/llm")
        .join(script);
    let mut child = match Command::new(python())
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot start Python for {script}: {e}");
            assert!(!required(), "VOUCH_REQUIRE_LLM=1: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        let why = format!("{script} failed ({}):\n{tail}", out.status);
        assert!(!required(), "VOUCH_REQUIRE_LLM=1: {why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("reference answer is JSON"))
}

/// Current resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
