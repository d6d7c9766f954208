//! A real `vouch serve` on a free loopback port with a temp data dir, shared by every
//! end-to-end test of the binary.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const VOUCH: &str = env!("CARGO_BIN_EXE_vouch");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn models() -> PathBuf {
    repo().join("models")
}

/// Whether everything in `needed` (paths under the repository, or absolute) exists: the npm
/// packages `tests/setup/explorer.sh` installs and Chromium. Missing, the test is skipped —
/// or fails when `VOUCH_REQUIRE_BROWSER=1` (set by scripts/test.sh).
pub fn browser_tools_ready(needed: &[&str]) -> bool {
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|p| !repo().join(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("VOUCH_REQUIRE_BROWSER").is_none(),
        "VOUCH_REQUIRE_BROWSER is set but {missing:?} are missing (run tests/setup/explorer.sh)"
    );
    eprintln!("skipped: {missing:?} missing (run tests/setup/explorer.sh)");
    false
}

pub struct Node {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The banner lines printed before "listening on".
    pub banner: Vec<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts `vouch serve` with extra arguments (e.g. `--tee simulated`).
    pub fn start(args: &[&str]) -> Node {
        Node::start_in(tempfile::tempdir().unwrap(), args)
    }

    /// Kills the server (SIGKILL: a crash, not a clean stop) and starts a new one on the same
    /// data dir with `args`.
    pub fn restart(self, args: &[&str]) -> Node {
        let dir = self.crash();
        Node::start_in(dir, args)
    }

    /// Starts `vouch serve` on an existing data dir (a restart).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Node {
        Node::start_command_in("serve", dir, args)
    }

    /// Starts another serving subcommand (e.g. `facilitator`) the same way.
    pub fn start_command(command: &str, args: &[&str]) -> Node {
        Node::start_command_in(command, tempfile::tempdir().unwrap(), args)
    }

    /// Starts `vouch serve` with extra environment (e.g. `VOUCH_EXEC__ENGINE=tract`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Node {
        Node::spawn("serve", tempfile::tempdir().unwrap(), args, env)
    }

    fn start_command_in(command: &str, dir: tempfile::TempDir, args: &[&str]) -> Node {
        Node::spawn(command, dir, args, &[])
    }

    fn spawn(command: &str, dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Node {
        Node::spawn_with_stderr(command, dir, args, env, Stdio::inherit())
    }

    /// Starts `vouch serve` with extra environment and its stderr (the log) sent to `stderr`,
    /// e.g. `/dev/full`.
    pub fn start_logging_to(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Node {
        Node::spawn_with_stderr("serve", tempfile::tempdir().unwrap(), args, env, stderr)
    }

    fn spawn_with_stderr(
        command: &str,
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Node {
        let mut cmd = Command::new(VOUCH);
        cmd.args([command, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path());
        let (child, url, banner) = spawn_listening_with(cmd, stderr);
        Node {
            child,
            url,
            dir,
            banner,
        }
    }

    /// SIGKILL, no shutdown of any kind; returns the data dir for a restart.
    pub fn crash(mut self) -> tempfile::TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// The server's process id (for signals and `/proc/<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the server to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(VOUCH)
            .args(args)
            .env("VOUCH_SERVER", &self.url)
            .env("VOUCH_DATA_DIR", self.dir.path())
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        http_client()
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http()
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http()
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .http()
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    /// `POST /v1/models{query}` with `bytes`, with or without an admin token.
    pub fn upload(&self, bytes: Vec<u8>, query: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http()
            .post(format!("{}/v1/models{query}", self.url))
            .body(bytes);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// Registers a model from models/ under `name` (version 1).
    pub fn register(&self, name: &str) -> String {
        let bytes = std::fs::read(models().join(format!("{name}.onnx"))).unwrap();
        let r = self
            .http()
            .post(format!("{}/v1/models?name={name}&version=1", self.url))
            .bearer_auth(self.token())
            .body(bytes)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap();
        assert!(status == 201 || status == 200, "{v}");
        v["model"]["digest"].as_str().unwrap().to_string()
    }
}

/// Spawns a `vouch` server process and waits for its `listening on URL` line; returns the
/// child, the URL and the banner lines printed before it.
pub fn spawn_listening(cmd: Command) -> (Child, String, Vec<String>) {
    spawn_listening_with(cmd, Stdio::inherit())
}

/// As [`spawn_listening`], with the server's stderr sent to `stderr`.
pub fn spawn_listening_with(mut cmd: Command, stderr: Stdio) -> (Child, String, Vec<String>) {
    cmd.stdout(Stdio::piped()).stderr(stderr);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let url = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.trim().to_string();
        }
        banner.push(line);
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url, banner)
}

/// Any other `vouch` server (a witness), killed when dropped.
pub struct Process {
    pub child: Child,
    pub url: String,
    pub banner: Vec<String>,
}

impl Process {
    pub fn start(args: &[&str]) -> Process {
        let mut cmd = Command::new(VOUCH);
        cmd.args(args);
        let (child, url, banner) = spawn_listening(cmd);
        Process { child, url, banner }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Waits for proof job `id` through this node's long poll and returns the ended job.
    pub fn finished_job(&self, id: &str) -> Value {
        for _ in 0..60 {
            let (s, job) = self.get(&format!("/v1/proofs/{id}?wait=10s"));
            assert_eq!(s, 200, "{job}");
            if ["done", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
                return job;
            }
        }
        panic!("job {id} did not finish");
    }

    /// Waits until the zk analysis of model `reference` has an outcome (registration answers
    /// `analysing` when it takes longer than `[zk] analyze_wait_ms`), and returns its zk view.
    pub fn zk_analysed(&self, reference: &str) -> Value {
        for _ in 0..1200 {
            let (s, m) = self.get(&format!("/v1/models/{reference}"));
            assert_eq!(s, 200, "{m}");
            if m["zk"]["status"] != "analysing" {
                return m["zk"].clone();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("zk analysis of {reference} did not finish");
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn input_json(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(models().join(format!("{name}.input.json"))).unwrap(),
    )
    .unwrap()
}

/// A blocking HTTP client, after installing the TLS provider reqwest needs (vouch-pay's `http`).
pub fn http_client() -> reqwest::blocking::Client {
    vouch_pay::http::install_tls_provider();
    reqwest::blocking::Client::new()
}

/// `$VOUCH_CACHE`, else `~/.cache/vouch`: where the setup scripts put models and the venv.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("VOUCH_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/vouch"),
    }
}

/// The MiniLM text model scripts/setup-minilm.sh exports; missing, the test says why and
/// passes, unless `VOUCH_REQUIRE_MINILM=1` (scripts/test.sh).
pub fn minilm() -> Option<PathBuf> {
    let path = std::env::var("VOUCH_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache_dir().join("models/minilm.onnx"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("VOUCH_REQUIRE_MINILM").as_deref() != Ok("1"),
        "VOUCH_REQUIRE_MINILM=1 but {} is missing: run scripts/setup-minilm.sh",
        path.display()
    );
    eprintln!("SKIPPED: MiniLM not exported (scripts/setup-minilm.sh)");
    None
}

/// The SmolLM2 GGUF `tests/setup/llm.sh` extracts; missing, the test says why and passes,
/// unless `VOUCH_REQUIRE_LLM=1` (scripts/test.sh).
pub fn smollm2() -> Option<PathBuf> {
    let path = cache_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} is missing: run tests/setup/llm.sh", path.display());
    if std::env::var("VOUCH_REQUIRE_LLM").as_deref() == Ok("1") {
        panic!("VOUCH_REQUIRE_LLM=1: {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The Python with the interop packages: `$VOUCH_PYTHON`, else the cache's venv.
pub fn python() -> String {
    std::env::var("VOUCH_PYTHON").unwrap_or_else(|_| {
        let venv = cache_dir().join("venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    })
}

/// Reads a streamed answer until `chunks` data events arrived, then leaves (drops the
/// connection), as a client that stops reading mid-stream.
pub fn leave_stream_after(r: reqwest::blocking::Response, chunks: usize) {
    let mut lines = BufReader::new(r).lines();
    let mut seen = 0;
    while seen < chunks {
        if lines.next().unwrap().unwrap().starts_with("data: ") {
            seen += 1;
        }
    }
}

impl Node {
    /// The transparency log's size.
    pub fn log_size(&self) -> u64 {
        self.get("/v1/log").1["size"].as_u64().unwrap()
    }

    /// Waits up to `within` for the log to grow past `before`.
    pub fn wait_log_past(&self, before: u64, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.log_size() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no receipt was logged"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
