//! The explorer: the JSON routes it reads (log pages, receipts by request id, configuration and
//! policy history, per-tier analytics) answer what the node and its log hold, its embedded
//! page is served under a strict CSP, and — in a real Chromium driven by Playwright — every view
//! renders live data and the in-browser verifier accepts a valid bundle and names the field of
//! a tampered one (`web/explorer/test/`).

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::{Node, browser_tools_ready, input_json, repo};
use serde_json::{Value, json};

/// `POST /v1/infer` on `mlp@1` with these tiers; the bundle.
fn infer(node: &Node, tiers: &[&str], log_proof: bool) -> Value {
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": "mlp@1", "inputs": input_json("mlp"), "tiers": tiers, "log_proof": log_proof}),
    );
    assert_eq!(s, 200, "{v}");
    v
}

fn leaf_hash_b64(entry: &str) -> String {
    // RFC 6962: SHA-256(0x00 ‖ entry).
    let h = vouch_core::Digest::of_parts([&[0u8][..], entry.as_bytes()]);
    base64::engine::general_purpose::STANDARD.encode(h.as_bytes())
}

fn put_json(node: &Node, path: &str, body: &Value) -> Value {
    let r = node
        .http()
        .put(format!("{}{path}", node.url))
        .bearer_auth(node.token())
        .json(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().unwrap()
}

/// A node (simulated TEE) serving `mlp@1`, whose configuration was set to each system prompt
/// in turn, with a `signed` policy on `mlp`: a history for the explorer to show.
fn node_with_history(system_prompts: &[&str]) -> Node {
    let node = Node::start(&["--tee", "simulated"]);
    node.register("mlp");
    for p in system_prompts {
        put_json(&node, "/v1/models/mlp@1/config", &json!({"system": p}));
    }
    put_json(
        &node,
        "/v1/models/mlp/policy",
        &json!({"min_tier": "signed"}),
    );
    node
}

#[test]
fn the_explorer_routes_answer_what_the_log_and_the_node_hold() {
    let node = node_with_history(&["first", "second"]);
    let signed: Vec<Value> = (0..3).map(|_| infer(&node, &["signed"], false)).collect();
    let tee: Vec<Value> = (0..2)
        .map(|_| infer(&node, &["signed", "tee"], false))
        .collect();

    // Pages of the log: ascending, leaf hashes that anyone recomputes, bounded.
    let (_, info) = node.get("/v1/log");
    let size = info["size"].as_u64().unwrap();
    let (s, page) = node.get("/v1/log/entries");
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["size"].as_u64(), Some(size));
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, size.min(20));
    assert_eq!(
        entries.last().unwrap()["index"].as_u64(),
        Some(size - 1),
        "the default page ends at the log's end"
    );
    for e in entries {
        assert_eq!(
            e["leaf_hash"].as_str().unwrap(),
            leaf_hash_b64(e["entry"].as_str().unwrap())
        );
    }
    let (_, page) = node.get("/v1/log/entries?start=1&limit=2");
    let idx: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [1, 2]);
    let (_, page) = node.get(&format!("/v1/log/entries?start={}", size + 5));
    assert_eq!(page["entries"], json!([]), "a page past the end is empty");
    for bad in ["limit=0", "limit=101"] {
        let (s, v) = node.get(&format!("/v1/log/entries?{bad}"));
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }

    // Receipts by request id: the entry is exactly the receipt the bundle carries.
    for bundle in signed.iter().chain(&tee) {
        let receipt: vouch_core::Receipt =
            serde_json::from_value(bundle["receipt"].clone()).unwrap();
        let (s, e) = node.get(&format!("/v1/log/receipts/{}", receipt.request_id));
        assert_eq!(s, 200, "{e}");
        assert_eq!(e["index"], bundle["evidence"]["log"]["index"]);
        assert_eq!(e["kind"], "receipt");
        let mut expected = b"vouch-log/v1 receipt\n".to_vec();
        expected.extend_from_slice(&receipt.canonical_bytes());
        assert_eq!(e["entry"].as_str().unwrap().as_bytes(), expected);
    }
    let (s, v) = node.get("/v1/log/receipts/018f6b6e-0000-7000-8000-000000000001");
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = node.get(&format!("/v1/log/receipts/{}", "a".repeat(200)));
    assert_eq!(s, 404);

    // Configuration history: newest first, each change in the log as a config-changed entry
    // naming its digest.
    let (s, h) = node.get("/v1/models/mlp@1/config/history");
    assert_eq!(s, 200, "{h}");
    let changes = h["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{h}");
    assert_eq!(changes[0]["config"], json!({"system": "second"}));
    assert_eq!(changes[1]["config"], json!({"system": "first"}));
    for c in changes {
        let i = c["log_index"].as_u64().expect("logged before the answer");
        let (_, e) = node.get(&format!("/v1/log/entries/{i}"));
        assert_eq!(e["kind"], "config-changed");
        assert!(
            e["entry"]
                .as_str()
                .unwrap()
                .contains(c["config_digest"].as_str().unwrap()),
            "{e}"
        );
    }
    let (s, _) = node.get("/v1/models/nosuch@1/config/history");
    assert_eq!(s, 404);

    // Policies in force and their changes, each logged.
    let (_, p) = node.get("/v1/policies");
    assert_eq!(p["policies"][0]["subject"], "mlp", "{p}");
    assert_eq!(p["policies"][0]["min_tier"], "signed");
    let i = p["changes"][0]["log_index"].as_u64().unwrap();
    let (_, e) = node.get(&format!("/v1/log/entries/{i}"));
    assert_eq!(e["kind"], "policy-changed");

    // Analytics: every request in this minute's bucket, shares and revenue per tier set.
    let (s, a) = node.get("/v1/analytics?minutes=5");
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["bucket_seconds"], 60);
    let total = |set: &str| {
        a["totals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tiers"] == set)
            .cloned()
            .unwrap_or_else(|| panic!("no {set} in {a}"))
    };
    let (st, tt) = (total("signed"), total("signed+tee"));
    assert_eq!(
        (st["requests"].as_u64(), tt["requests"].as_u64()),
        (Some(3), Some(2))
    );
    assert!((st["share"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{st}");
    assert!(st["p50_ms"].as_f64().unwrap() > 0.0);
    // Revenue is the quoted request price times the requests (payments off: quotes).
    let (_, assurance) = node.get("/v1/models/mlp@1/assurance");
    let price = |tier: &str| -> u64 {
        assurance["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == tier)
            .unwrap()["request_price"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(st["revenue"], json!((3 * price("signed")).to_string()));
    assert_eq!(tt["revenue"], json!((2 * price("tee")).to_string()));
    let series = a["series"].as_array().unwrap();
    assert!(
        series
            .iter()
            .all(|s| s["buckets"].as_array().unwrap().len() == 5)
    );
    for bad in ["minutes=0", "minutes=1441"] {
        let (s, _) = node.get(&format!("/v1/analytics?{bad}"));
        assert_eq!(s, 400, "{bad}");
    }

    // The page and its assets: embedded, under the CSP, revalidated by ETag.
    let http = node.http();
    for (path, media) in [
        ("/explorer", "text/html"),
        ("/explorer/app.js", "text/javascript"),
        ("/explorer/app.css", "text/css"),
    ] {
        let r = http.get(format!("{}{path}", node.url)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with(media));
        assert_eq!(
            h["content-security-policy"],
            vouch_server::routes::explorer::CONTENT_SECURITY_POLICY
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].clone();
        let again = http
            .get(format!("{}{path}", node.url))
            .header("if-none-match", etag)
            .send()
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
}

/// The fixture files `web/explorer/test/` reads: a signed bundle with its inclusion proof, a
/// copy with one hex digit of `receipt.output_digest` changed, and what the test expects.
fn write_fixtures(node: &Node, dir: &Path) -> Value {
    let valid = infer(node, &["signed"], true);
    assert!(
        valid["evidence"]["log"]["proof"].is_string(),
        "no inclusion proof: {valid}"
    );
    let mut tampered = valid.clone();
    let digest = tampered["receipt"]["output_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let last = digest.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &digest[..digest.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    tampered["receipt"]["output_digest"] = json!(flipped);
    let (_, info) = node.get("/v1/log");
    let expected = json!({
        "tampered_field": "receipt.output_digest",
        "tampered_code": "signature_invalid",
        "log_key": info["log_key"],
        "witness_keys": info["witnesses"],
        "trust_key": valid["receipt"]["node_key"],
        "request_id": valid["receipt"]["request_id"],
        "log_index": valid["evidence"]["log"]["index"],
        "model": "mlp@1",
        "model_digest": valid["receipt"]["model"],
    });
    for (name, v) in [
        ("valid.bundle.json", &valid),
        ("tampered.bundle.json", &tampered),
        ("expected.json", &expected),
    ] {
        std::fs::write(dir.join(name), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }
    expected
}

/// Playwright drives Debian's Chromium through every view against this node. Needs the npm
/// packages `tests/setup/explorer.sh` installs; `VOUCH_REQUIRE_BROWSER=1` (set by
/// scripts/test.sh) makes their absence a failure instead of a skip.
#[test]
fn the_explorer_renders_live_data_and_verifies_in_a_real_browser() {
    if !browser_tools_ready(&[
        "web/explorer/node_modules/playwright",
        "clients/ts/node_modules",
        "/usr/bin/chromium",
    ]) {
        return;
    }
    let web = repo().join("web/explorer");
    let node = node_with_history(&["be brief"]);
    for _ in 0..3 {
        infer(&node, &["signed", "tee"], false);
    }
    let fixtures = tempfile::tempdir().unwrap();
    write_fixtures(&node, fixtures.path());
    // Screenshots are the run's artefacts: kept under the target dir (or VOUCH_ARTIFACTS).
    let artifacts = std::env::var_os("VOUCH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explorer-artifacts"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "test/"])
        .current_dir(&web)
        .env("VOUCH_URL", &node.url)
        .env("VOUCH_FIXTURES", fixtures.path())
        .env("VOUCH_ARTIFACTS", &artifacts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Playwright test failed");
    assert!(
        std::fs::read_dir(&artifacts).unwrap().count() > 0,
        "no screenshots in {}",
        artifacts.display()
    );
    println!("screenshots: {}", artifacts.display());
}
