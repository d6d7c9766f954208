//! A cluster of real `vouch` processes on loopback: three nodes and two zk workers over one
//! PostgreSQL database (`tests/services/postgres.sh`) and one S3 bucket (moto,
//! `tests/services/s3.sh`). Skipped when those servers are not running, unless
//! `VOUCH_REQUIRE_POSTGRES=1` (as `scripts/test.sh` sets), which fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Node, VOUCH, input_json, text};
use serde_json::{Value, json};
use vouch_core::Bundle;

/// The shared services, or `None` (the test is skipped) when they are not running.
fn services() -> Option<(String, String)> {
    match (
        std::env::var("VOUCH_TEST_POSTGRES"),
        std::env::var("VOUCH_TEST_S3_ENDPOINT"),
    ) {
        (Ok(pg), Ok(s3)) => Some((pg, s3)),
        _ => {
            assert!(
                std::env::var("VOUCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "VOUCH_REQUIRE_POSTGRES=1 but the test PostgreSQL or S3 server is not running"
            );
            eprintln!("skipping the cluster test: no test PostgreSQL and S3 servers");
            None
        }
    }
}

/// A new database on the test server, named for this test.
fn fresh_database(admin: &str, tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "cluster_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new("psql")
        .args([admin, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A new bucket on the test S3 server (moto accepts an unsigned `PUT /<bucket>`).
fn fresh_bucket(endpoint: &str, tag: &str) -> String {
    let bucket = format!("cluster-{tag}-{}", std::process::id());
    let r = common::http_client()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");
    bucket
}

/// What every process of one cluster is given: the database, the bucket, the shared log key.
struct Cluster {
    database: String,
    blobs: String,
    env: Vec<(String, String)>,
    shared: tempfile::TempDir,
}

impl Cluster {
    fn new(tag: &str) -> Option<Cluster> {
        let (pg, s3) = services()?;
        let database = fresh_database(&pg, tag);
        let bucket = fresh_bucket(&s3, tag);
        let shared = tempfile::tempdir().unwrap();
        let key = shared.path().join("log.key");
        let env = vec![
            ("AWS_ENDPOINT_URL".into(), s3.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            // One log, so one log key: every node is given the same file.
            ("VOUCH_LOG__KEY_FILE".into(), key.display().to_string()),
            ("VOUCH_LOG__CHECKPOINT_EVERY_MS".into(), "200".into()),
            // Short leases, so a dead prover's job passes on within the test.
            ("VOUCH_ZK__LEASE_MS".into(), "3000".into()),
            ("VOUCH_STORE__CATALOG_POLL_MS".into(), "500".into()),
        ];
        Some(Cluster {
            database,
            blobs: format!("s3://{bucket}/vouch"),
            env,
            shared,
        })
    }

    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// A node of this cluster, with extra environment (e.g. `VOUCH_ZK__WORKERS=0`).
    fn node(&self, extra: &[(&str, &str)]) -> Node {
        let env = self.env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Node::start_with_env(
            &["--database", &self.database, "--blobs", &self.blobs],
            &env,
        )
    }

    /// A `vouch worker` of this cluster, once it says it is proving.
    fn worker(&self) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(VOUCH)
            .args([
                "worker",
                "--database",
                &self.database,
                "--blobs",
                &self.blobs,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .envs(self.env(&[]))
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("worker exited").unwrap();
            if line == "proving" {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Worker { child, _dir: dir }
    }

    fn log_key_file(&self) -> PathBuf {
        self.shared.path().join("log.key")
    }
}

struct Worker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log's verifier key, as a node shows it.
fn log_vkey(node: &Node) -> String {
    let (s, v) = node.get("/v1/log");
    assert_eq!(s, 200, "{v}");
    v["log_key"].as_str().unwrap().to_string()
}

fn infer(node: &Node, body: &Value) -> (u16, Value) {
    node.post_json("/v1/infer", body)
}

/// Waits until `f` holds, up to `within`.
fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {within:?}");
}

/// Every acknowledged receipt is in the log at its acknowledged index, byte for byte, as
/// `node` serves it.
fn all_logged(node: &Node, acked: &[Bundle]) {
    for b in acked {
        let index = b.evidence["log"]["index"].as_u64().unwrap();
        let (s, e) = node.get(&format!("/v1/log/entries/{index}"));
        assert_eq!(s, 200, "entry {index} missing on {}: {e}", node.url);
        let expected = format!(
            "vouch-log/v1 receipt\n{}",
            String::from_utf8(b.receipt.canonical_bytes()).unwrap()
        );
        assert_eq!(e["entry"].as_str().unwrap(), expected, "entry {index}");
    }
}

/// `vouch log audit` against `node`, keeping the monitor's state in `state`: the second and
/// later audits (against any node) check the new checkpoint is consistent with the last.
fn audit(node: &Node, key: &str, state: &std::path::Path) {
    let out = node.cli(&[
        "log",
        "audit",
        "--log-key",
        key,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "audit of {}: {}",
        node.url,
        text(&out)
    );
}

/// Load through every node at once: `per_node` requests each, from two threads per node.
fn load(nodes: &[&Node], body: &Value, per_node: usize) -> Vec<Bundle> {
    let acked: Arc<Mutex<Vec<Bundle>>> = Arc::default();
    let threads: Vec<_> = nodes
        .iter()
        .flat_map(|n| [n.url.clone(), n.url.clone()])
        .map(|url| {
            let (acked, body) = (acked.clone(), body.clone());
            std::thread::spawn(move || {
                let http = common::http_client();
                for _ in 0..per_node / 2 {
                    let r = http
                        .post(format!("{url}/v1/infer"))
                        .json(&body)
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
                    acked.lock().unwrap().push(r.json().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// Three nodes share one catalog, one log and one proof queue: a model registered on one is
/// served by all, a policy set on one is honoured by the others within the stated bound, every
/// node serves the same checkpoints, and a zk job submitted on one is proven by a worker and
/// followed from another.
#[test]
fn three_nodes_share_one_catalog_one_log_and_one_proof_queue() {
    let Some(cluster) = Cluster::new("shared") else {
        return;
    };
    let a = cluster.node(&[]);
    assert!(
        cluster.log_key_file().exists(),
        "the first node made the log key"
    );
    let b = cluster.node(&[("VOUCH_ZK__WORKERS", "0")]);
    let c = cluster.node(&[("VOUCH_ZK__WORKERS", "0")]);
    assert!(
        a.banner
            .iter()
            .any(|l| l.contains("database:") && l.contains("shared")),
        "{:?}",
        a.banner
    );
    let key = log_vkey(&a);
    assert_eq!(log_vkey(&b), key);
    assert_eq!(log_vkey(&c), key);

    // Registered on A, served by name on B and C: one registry, blobs from S3.
    let digest = a.register("mlp_small");
    let body = json!({"model": "mlp_small", "inputs": input_json("mlp_small")});
    for n in [&b, &c] {
        let (s, v) = infer(n, &body);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["receipt"]["model"], json!(digest));
    }

    // Load through all three; every receipt is in the one log, as every node serves it.
    let acked = load(&[&a, &b, &c], &body, 40);
    assert_eq!(acked.len(), 120);
    let mut indexes: Vec<u64> = acked
        .iter()
        .map(|b| b.evidence["log"]["index"].as_u64().unwrap())
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 120, "two receipts were given one index");
    let state = cluster.shared.path().join("audit.json");
    for n in [&a, &b, &c] {
        all_logged(n, &acked);
        audit(n, &key, &state);
    }
    // The same checkpoint from every node once the log is quiet.
    eventually(Duration::from_secs(10), "one checkpoint everywhere", || {
        let cps: Vec<String> = [&a, &b, &c]
            .iter()
            .map(|n| n.get_text("/log/checkpoint").1)
            .collect();
        cps.windows(2).all(|w| w[0] == w[1])
    });

    // A name moved on A is followed by B and C at once: names are resolved in the database on
    // every request, so no receipt names a pointer already moved.
    let file = |m: &str| std::fs::read(common::models().join(format!("{m}.onnx"))).unwrap();
    let token = a.token();
    let (s, v) = a.upload(file("mlp"), "?name=moving&version=1", Some(&token));
    assert!(s == 200 || s == 201, "{v}");
    let first = v["model"]["digest"].clone();
    let moving = json!({"model": "moving", "inputs": input_json("mlp")});
    assert_eq!(infer(&b, &moving).1["receipt"]["model"], first);
    let (s, v) = a.upload(
        file("mlp_small"),
        "?name=moving&version=1&replace=true",
        Some(&token),
    );
    assert!(s == 200 || s == 201, "{v}");
    let moved = json!({"model": "moving", "inputs": input_json("mlp_small")});
    for n in [&b, &c] {
        let (s, v) = infer(n, &moved);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["receipt"]["model"], json!(digest), "{}", n.url);
        assert_eq!(v["receipt"]["model_ref"], json!("moving"));
    }

    // A policy set on A is honoured on C within the catalog poll bound.
    let out = a.cli(&["models", "policy", "mlp_small", "--min", "zk"]);
    assert!(out.status.success(), "{}", text(&out));
    eventually(Duration::from_secs(3), "C honours A's policy", || {
        let (s, v) = infer(&c, &body);
        s == 409 || v["error"]["reason"] == "below_minimum_assurance"
    });
    let (s, v) = infer(&c, &body);
    assert_eq!(v["error"]["reason"], "below_minimum_assurance", "{s} {v}");

    // A zk request on C (which proves nothing itself) is proven by a worker and followed on B;
    // one cancelled on A before any worker ran never starts.
    assert_eq!(a.zk_analysed("mlp_small")["status"], "available");
    let zk_body =
        json!({"model": "mlp_small", "inputs": input_json("mlp_small"), "tiers": ["signed", "zk"]});
    let mut queued = None;
    eventually(Duration::from_secs(5), "C admits zk", || {
        let r = c
            .http()
            .post(format!("{}/v1/infer", c.url))
            .json(&zk_body)
            .send()
            .unwrap();
        let token = r
            .headers()
            .get("vouch-zk-cancel-token")
            .map(|t| t.to_str().unwrap().to_string());
        let ok = r.status().as_u16() == 202 || r.status().as_u16() == 200;
        let v: Value = r.json().unwrap();
        if ok {
            queued = Some((
                v["evidence"]["zk_job"]["id"].as_str().unwrap().to_string(),
                token,
            ));
        }
        ok
    });
    let (cancelled, cancel_token) = queued.unwrap();
    let r = a
        .http()
        .delete(format!("{}/v1/proofs/{cancelled}", a.url))
        .bearer_auth(cancel_token.expect("a cancel token"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    assert_eq!(b.finished_job(&cancelled)["status"], "cancelled");
    let worker = cluster.worker();
    let mut job = Value::Null;
    eventually(Duration::from_secs(5), "C admits zk", || {
        let (s, v) = infer(&c, &zk_body);
        job = v;
        s == 202 || s == 200
    });
    let id = job["evidence"]["zk_job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = b.finished_job(&id);
    assert_eq!(done["status"], "done", "{done}");
    drop(worker);
}

/// Nodes killed with SIGKILL mid-load, and a prover killed mid-proof, lose nothing: every
/// receipt a node acknowledged is in the log as the surviving nodes serve it, the monitor finds
/// the checkpoints after the kill consistent with those before, and the proof job passes to
/// another worker when its lease runs out and ends done.
#[test]
fn a_node_and_a_worker_killed_mid_load_lose_nothing() {
    let Some(cluster) = Cluster::new("kill") else {
        return;
    };
    let pay = [
        ("VOUCH_ZK__WORKERS", "0"),
        ("VOUCH_PAY__ENABLED", "true"),
        (
            "VOUCH_PAY__PAY_TO",
            "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        ),
    ];
    let a = cluster.node(&pay);
    let b = cluster.node(&pay);
    let c = cluster.node(&pay);
    let key = log_vkey(&a);
    a.register("mlp_small");
    assert_eq!(a.zk_analysed("mlp_small")["status"], "available");
    let state = cluster.shared.path().join("audit.json");
    // Free requests (no tier costs nothing), paid ones (`signed`) and paid zk ones, through
    // every node behind one public name.
    let body = json!({"model": "mlp_small", "inputs": input_json("mlp_small"), "tiers": []});
    let signed_body =
        json!({"model": "mlp_small", "inputs": input_json("mlp_small"), "tiers": ["signed"]});
    let zk_body =
        json!({"model": "mlp_small", "inputs": input_json("mlp_small"), "tiers": ["signed", "zk"]});
    const FUNDS: u64 = 100_000_000;
    let (keyfile, _) = funded_payer(&b, FUNDS);
    let signed_pay = Arc::new(Payer::new(&b, &signed_body, &keyfile));
    let zk_pay = Payer::new(&b, &zk_body, &keyfile);

    // A proof job, claimed by the first worker; the load runs meanwhile.
    let first = cluster.worker();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Bundle>>> = Arc::default();
    let paid_acked: Arc<Mutex<Vec<Bundle>>> = Arc::default();
    let paid_sent = Arc::new(AtomicU32::new(0));
    let mut clients: Vec<_> = [&a, &b, &c]
        .iter()
        .flat_map(|n| [n.url.clone(), n.url.clone()])
        .map(|url| {
            let (stop, acked, body) = (stop.clone(), acked.clone(), body.clone());
            std::thread::spawn(move || {
                let http = common::http_client();
                while !stop.load(Ordering::Relaxed) {
                    // A killed node refuses connections: its clients stop.
                    let Ok(r) = http.post(format!("{url}/v1/infer")).json(&body).send() else {
                        return;
                    };
                    if r.status().as_u16() == 200
                        && let Ok(b) = r.json::<Bundle>()
                    {
                        acked.lock().unwrap().push(b);
                    }
                }
            })
        })
        .collect();
    clients.extend([&a, &b, &c].iter().map(|n| {
        let (url, stop, acked, paid, sent, pay) = (
            n.url.clone(),
            stop.clone(),
            acked.clone(),
            paid_acked.clone(),
            paid_sent.clone(),
            signed_pay.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                let Some((status, v)) = pay.send(&url) else {
                    return;
                };
                if status == 200
                    && let Ok(b) = serde_json::from_value::<Bundle>(v)
                {
                    acked.lock().unwrap().push(b.clone());
                    paid.lock().unwrap().push(b);
                }
            }
        })
    }));
    eventually(Duration::from_secs(30), "load under way", || {
        acked.lock().unwrap().len() >= 60 && paid_acked.lock().unwrap().len() >= 6
    });
    audit(&b, &key, &state);

    // A job seen running on the first worker (a small proof can end before it is seen: then
    // another job is asked for).
    let mut running = None;
    for _ in 0..5 {
        let (s, job) = zk_pay.send(&b.url).unwrap();
        assert!(s == 202 || s == 200, "{s} {job}");
        let id = job["evidence"]["zk_job"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let until = Instant::now() + Duration::from_secs(30);
        let mut seen = Value::Null;
        while Instant::now() < until {
            seen = b.get(&format!("/v1/proofs/{id}")).1;
            if seen["status"] != "queued" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match seen["status"].as_str() {
            Some("running") => {
                running = Some(id);
                break;
            }
            Some("done") => continue,
            _ => panic!("{seen}"),
        }
    }
    let id = running.expect("no job was seen running in five tries");
    drop(first);
    let second = cluster.worker();

    // A node dies mid-load (kill -9): it may have been committing a batch of the one log.
    let _a_dir = a.crash();
    let at_kill = acked.lock().unwrap().len();
    eventually(Duration::from_secs(30), "load goes on", || {
        acked.lock().unwrap().len() >= at_kill + 60
    });
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().unwrap();
    }
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    for n in [&b, &c] {
        all_logged(n, &acked);
        audit(n, &key, &state);
    }
    let done = c.finished_job(&id);
    assert_eq!(done["status"], "done", "{done}");
    drop(second);

    // The ledger after the kill: every paid answer names a settlement of its own, no
    // authorization settled twice, money conserved, the journal numbered without a gap.
    let paid = paid_acked.lock().unwrap().clone();
    let mut references: Vec<String> = paid
        .iter()
        .map(|b| {
            b.receipt
                .payment
                .as_ref()
                .expect("a paid receipt")
                .settlement
                .clone()
        })
        .collect();
    references.sort();
    references.dedup();
    assert_eq!(references.len(), paid.len(), "a settlement served twice");
    let sql = |q: &str| -> String {
        let out = Command::new("psql")
            .args([cluster.database.as_str(), "-Atc", q])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let settled: u64 = sql("SELECT COUNT(*) FROM pay_settlements").parse().unwrap();
    let sent = u64::from(paid_sent.load(Ordering::Relaxed)) + 5;
    assert!(
        (paid.len() as u64..=sent).contains(&settled),
        "{settled} settlements for {} paid answers and {sent} payments sent",
        paid.len()
    );
    assert_eq!(
        sql("SELECT SUM(balance)::text FROM pay_balances"),
        FUNDS.to_string()
    );
    assert_eq!(
        sql("SELECT COUNT(*) || ' ' || COALESCE(MAX(seq), 0) FROM pay_entries"),
        {
            let n = sql("SELECT COUNT(*) FROM pay_entries");
            format!("{n} {n}")
        },
        "the journal has a gap"
    );
}

/// Pays for one kind of request (its 402 read once through `node`) with fresh
/// authorizations, sent under the cluster's public name.
struct Payer {
    required: vouch_pay::PaymentRequired,
    keyfile: PathBuf,
    body: Value,
}

/// The cluster's public name: a payment names the resource at it, good on every node.
const HOST: &str = "vouch.cluster.test";

impl Payer {
    fn new(node: &Node, body: &Value, keyfile: &std::path::Path) -> Payer {
        let r = node
            .http()
            .post(format!("{}/v1/infer", node.url))
            .header("host", HOST)
            .json(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 402);
        let required = vouch_pay::PaymentRequired::from_response(
            Some(r.headers()["PAYMENT-REQUIRED"].to_str().unwrap()),
            b"",
        )
        .unwrap();
        Payer {
            required,
            keyfile: keyfile.to_owned(),
            body: body.clone(),
        }
    }

    /// A fresh authorization: the payment header's name and value.
    fn sign(&self) -> (&'static str, String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signer = vouch_pay::payer::load_key(&self.keyfile).unwrap();
        vouch_pay::payer::pay(&signer, &self.required, None, now).unwrap()
    }

    /// The request paid with `payment`, to `url`: its status and body, or `None` if the node
    /// is gone.
    fn send_signed(
        &self,
        url: &str,
        (name, value): &(&'static str, String),
    ) -> Option<(u16, Value)> {
        let r = common::http_client()
            .post(format!("{url}/v1/infer"))
            .header("host", HOST)
            .header(*name, value)
            .json(&self.body)
            .send()
            .ok()?;
        Some((r.status().as_u16(), r.json().unwrap_or(Value::Null)))
    }

    /// One request paid with a fresh authorization.
    fn send(&self, url: &str) -> Option<(u16, Value)> {
        self.send_signed(url, &self.sign())
    }
}

/// A payer key made with `vouch pay keygen` in `node`'s directory and credited `amount` through
/// its admin route: the key file and the address.
fn funded_payer(node: &Node, amount: u64) -> (PathBuf, String) {
    let keyfile = node.dir.path().join("payer.key");
    let out = node.cli(&["pay", "keygen", "--out", keyfile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let address = text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("address: "))
        .unwrap()
        .trim()
        .to_string();
    let out = node.cli(&["pay", "credit", &address, &amount.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    (keyfile, address)
}

/// Paid requests through every node: one authorization presented to all three at once is
/// served once and settled once, and many payments spread over the nodes move exactly their
/// price each, through one ledger.
#[test]
fn one_ledger_across_nodes_settles_each_authorization_once() {
    let Some(cluster) = Cluster::new("pay") else {
        return;
    };
    let pay = [
        ("VOUCH_PAY__ENABLED", "true"),
        (
            "VOUCH_PAY__PAY_TO",
            "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        ),
    ];
    let a = cluster.node(&pay);
    let b = cluster.node(&pay);
    let c = cluster.node(&pay);
    a.register("mlp");
    let body = json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed"]});
    // A payer, funded through A's admin route; payments name the cluster's public name.
    let (keyfile, payer) = funded_payer(&a, 100_000);
    let balance = |n: &Node| -> u64 {
        let (s, v) = n.get(&format!("/v1/pay/balance/{payer}"));
        assert_eq!(s, 200, "{v}");
        v["balance"].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(balance(&c), 100_000, "one ledger");
    let pay = Payer::new(&c, &body, &keyfile);
    let send = |url: &str, p: &(&'static str, String)| pay.send_signed(url, p).unwrap();

    // One authorization to all three nodes at once: served once, paid once.
    let payment = pay.sign();
    let price = {
        let before = balance(&a);
        let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
            let ts: Vec<_> = [&a.url, &b.url, &c.url]
                .into_iter()
                .map(|u| s.spawn(|| send(u, &payment)))
                .collect();
            ts.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let served: Vec<&(u16, Value)> = answers.iter().filter(|a| a.0 == 200).collect();
        assert_eq!(served.len(), 1, "{answers:?}");
        assert!(
            answers.iter().all(|a| a.0 == 200 || a.0 == 402),
            "{answers:?}"
        );
        let paid = served[0].1["receipt"]["payment"]["amount"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert_eq!(balance(&b), before - paid);
        paid
    };

    // Twelve payments spread over the nodes: each moves exactly its price.
    let before = balance(&a);
    let payments: Vec<_> = (0..12).map(|_| pay.sign()).collect();
    std::thread::scope(|s| {
        for (i, p) in payments.iter().enumerate() {
            let url = [&a.url, &b.url, &c.url][i % 3];
            let send = &send;
            s.spawn(move || {
                let (st, v) = send(url, p);
                assert_eq!(st, 200, "{v}");
            });
        }
    });
    assert_eq!(balance(&c), before - 12 * price);
}
