//! The `tee` tier, several tiers on one request, minimum-assurance policies, the assurance
//! advisor and analytics — through the real server and CLI, with the simulated TEE producer
//! (the only one this machine has; hardware evidence is covered by vouch-attest's fixtures).

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod common;

use std::time::SystemTime;

use common::{Node, input_json, models, text};
use serde_json::{Value, json};
use vouch_attest::tee::{TeeOptions, TeePolicy, verify_tee_evidence};
use vouch_core::NodeKey;

fn infer(node: &Node, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = node
        .http()
        .post(format!("{}/v1/infer", node.url))
        .json(&body)
        .send()
        .unwrap();
    let headers = r.headers().clone();
    (
        r.status().as_u16(),
        r.json().unwrap_or(Value::Null),
        headers,
    )
}

#[test]
fn tee_receipts_verify_offline_only_when_simulated_evidence_is_allowed() {
    let node = Node::start(&["--tee", "simulated"]);
    let banner = node.banner.join("\n");
    assert!(banner.contains("ephemeral"), "{banner}");
    assert!(banner.contains("SIMULATED"), "{banner}");
    let (_, info) = node.get("/v1/node");
    assert_eq!(info["tiers"], json!(["signed", "tee", "zk"]), "{info}");
    assert_eq!(info["key_ephemeral"], json!(true));
    assert_eq!(info["tee"]["simulated"], json!(true));
    let key_text = info["node_key"].as_str().unwrap().to_string();
    let key: NodeKey = key_text.parse().unwrap();
    let measurement = info["tee"]["measurements"]["MEASUREMENT"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !std::path::Path::new(&node.dir.path().join("node.key")).exists(),
        "a tee node must not write its key to disk"
    );
    node.register("mlp");

    let inputs = models().join("mlp.input.json");
    let bundle = node.dir.path().join("tee.json");
    let out = node.cli(&[
        "infer",
        "mlp@1",
        "--input",
        inputs.to_str().unwrap(),
        "--tiers",
        "signed,tee",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SIMULATED"), "{}", text(&out));
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(b["receipt"]["tiers"], json!(["signed", "tee"]));
    assert_eq!(b["evidence"]["tee"]["type"], json!("simulated"));
    assert_eq!(b["evidence"]["tee"]["binding"]["node_key"], json!(key_text));

    // Refused without --allow-simulated, with the reason and the way out.
    let out = node.cli(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("simulated tee evidence rejected")
            && text(&out).contains("--allow-simulated"),
        "{}",
        text(&out)
    );
    // Allowed: per-tier report with the trust assumption, flagged as simulated.
    let out = node.cli(&[
        "verify",
        bundle.to_str().unwrap(),
        "--allow-simulated",
        "--trust-key",
        &key_text,
        "--tee-expect",
        &format!("MEASUREMENT={measurement}"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("OK: tee: simulated"), "{t}");
    assert!(t.contains("tier signed: node key"), "{t}");
    assert!(t.contains("tier tee: code measured as MEASUREMENT="), "{t}");
    assert!(
        t.contains("trusting: simulated TEE: development only"),
        "{t}"
    );
    assert!(t.contains("WARNING: simulated"), "{t}");
    // A measurement policy the evidence does not meet.
    let out = node.cli(&[
        "verify",
        bundle.to_str().unwrap(),
        "--allow-simulated",
        "--tee-expect",
        &format!("MEASUREMENT={}", "00".repeat(48)),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("measurement MEASUREMENT is"),
        "{}",
        text(&out)
    );

    // Tampering with the evidence: another key in the binding, or a flipped evidence byte.
    let tampered = node.dir.path().join("tampered.json");
    let other = format!("ed25519:{}", "22".repeat(32));
    let mut t1 = b.clone();
    t1["evidence"]["tee"]["binding"]["node_key"] = json!(other);
    let mut t2 = b.clone();
    let ev = t2["evidence"]["tee"]["evidence"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if ev.as_bytes()[10] == b'A' { 'B' } else { 'A' };
    t2["evidence"]["tee"]["evidence"] = json!(format!("{}{flipped}{}", &ev[..10], &ev[11..]));
    for (case, expect) in [(t1, "binding"), (t2, "tee tier")] {
        std::fs::write(&tampered, serde_json::to_string(&case).unwrap()).unwrap();
        let out = node.cli(&["verify", tampered.to_str().unwrap(), "--allow-simulated"]);
        assert_eq!(out.status.code(), Some(2), "{expect}: {}", text(&out));
        assert!(text(&out).contains(expect), "{expect}: {}", text(&out));
    }

    // `tee` alone still gets the attested key's signature.
    let (s, v, _) = infer(
        &node,
        json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["tee"]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["receipt"]["tiers"], json!(["tee"]));
    assert!(v["signature"]["sig"].is_string(), "{v}");

    // The attestation endpoints.
    let (s, boot) = node.get("/v1/attestation");
    assert_eq!(s, 200);
    assert_eq!(boot, b["evidence"]["tee"]);
    let digest = info["tee"]["evidence_digest"].as_str().unwrap();
    let (s, stored) = node.get(&format!("/v1/attestation/{digest}"));
    assert_eq!((s, &stored), (200, &boot));
    let (s, v) = node.get(&format!("/v1/attestation/sha256:{}", "ab".repeat(32)));
    assert_eq!(s, 404, "{v}");
    let (s, v) = node.get("/v1/attestation?nonce=xyz");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    let (s, fresh) = node.get("/v1/attestation?nonce=00c0ffee");
    assert_eq!(s, 200, "{fresh}");
    let options = TeeOptions {
        allow_simulated: true,
        expected_nonce: Some(vec![0x00, 0xc0, 0xff, 0xee]),
        ..TeeOptions::at(SystemTime::now())
    };
    let verdict = verify_tee_evidence(&fresh, &key, &TeePolicy::default(), &options).unwrap();
    assert!(verdict.is_simulated());
    let wrong_nonce = TeeOptions {
        expected_nonce: Some(vec![1, 2, 3]),
        ..options
    };
    let err = verify_tee_evidence(&fresh, &key, &TeePolicy::default(), &wrong_nonce).unwrap_err();
    assert_eq!(err.code(), "tee_nonce_mismatch");
}

#[test]
fn policies_refuse_or_upgrade_and_every_change_is_recorded() {
    // zk switched off, so a policy demanding zk cannot be met on this node.
    let conf = tempfile::tempdir().unwrap();
    let no_zk = conf.path().join("no-zk.toml");
    std::fs::write(&no_zk, "[zk]\nenabled = false\n").unwrap();
    let node = Node::start(&["--tee", "simulated", "--config", no_zk.to_str().unwrap()]);
    let digest = node.register("mlp");
    let ask = |tiers: Value, upgrade: bool, model: &str| {
        infer(
            &node,
            json!({"model": model, "inputs": input_json("mlp"), "tiers": tiers, "allow_upgrade": upgrade}),
        )
    };

    let out = node.cli(&["models", "policy", "mlp", "--min", "tee"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("mlp: requests need at least the tee tier"),
        "{}",
        text(&out)
    );
    let out = node.cli(&["models", "policy", "mlp"]);
    assert!(
        text(&out).contains("at least the tee tier"),
        "{}",
        text(&out)
    );

    // Asking for less: refused with the price of what would be accepted, by name or digest.
    for model in ["mlp", digest.as_str()] {
        let (s, v, _) = ask(json!(["signed"]), false, model);
        assert_eq!(s, 422, "{v}");
        assert_eq!(v["error"]["code"], json!("tier_unavailable"));
        assert_eq!(v["error"]["reason"], json!("below_minimum_assurance"));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("requires at least the tee tier")
                && msg.contains("[\"signed\", \"tee\"] (price 300")
                && msg.contains("allow_upgrade"),
            "{msg}"
        );
    }
    let (s, v, _) = ask(json!([]), false, "mlp");
    assert_eq!(s, 422, "{v}");
    // Upgraded when allowed, and the response says so with the price.
    let (s, v, h) = ask(json!(["signed"]), true, "mlp");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["receipt"]["tiers"], json!(["signed", "tee"]));
    assert_eq!(v["evidence"]["tee"]["type"], json!("simulated"));
    assert_eq!(h["vouch-upgraded-from"], "[signed]");
    assert_eq!(h["vouch-price"], "300");
    let (s, v, h) = ask(json!(["signed", "tee"]), false, "mlp");
    assert_eq!(s, 200, "{v}");
    assert!(h.get("vouch-upgraded-from").is_none());

    // "zk required": no upgrade can meet it on this node, and the 422 names the tier and why.
    let out = node.cli(&["models", "policy", &digest, "--min", "zk"]);
    assert!(out.status.success(), "{}", text(&out));
    let (s, v, _) = ask(json!(["signed", "tee"]), true, "mlp");
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["reason"], json!("zk_unavailable"));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the zk tier is not available") && msg.contains("zk is disabled on this node"),
        "{v}"
    );
    let out = node.cli(&["models", "policy", &digest, "--min", "none"]);
    assert!(out.status.success(), "{}", text(&out));

    // Only the admin sets policies; unknown models and tiers are refused.
    let r = node
        .http()
        .put(format!("{}/v1/models/mlp/policy", node.url))
        .json(&json!({"min_tier": null}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let out = node.cli(&["models", "policy", "nope", "--min", "tee"]);
    assert!(
        !out.status.success() && text(&out).contains("404"),
        "{}",
        text(&out)
    );
    let out = node.cli(&["models", "policy", "mlp", "--min", "gold"]);
    assert!(
        !out.status.success() && text(&out).contains("unknown tier"),
        "{}",
        text(&out)
    );

    let out = node.cli(&["models", "policy", "mlp", "--min", "none"]);
    assert!(
        text(&out).contains("mlp: no minimum tier"),
        "{}",
        text(&out)
    );
    let (s, v, _) = ask(json!(["signed"]), false, "mlp");
    assert_eq!(s, 200, "{v}");

    // Every change is in the durable history, with times, and already in the transparency log
    // (appended before each answer), at the index the history records.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (changes, unlogged) = rt.block_on(async {
        let store = vouch_store::Store::open(node.dir.path()).await.unwrap();
        (
            store.policy_changes(0, 100).await.unwrap(),
            store.unlogged_policy_changes(100).await.unwrap(),
        )
    });
    assert!(unlogged.is_empty(), "{unlogged:?}");
    let summary: Vec<(String, Option<&str>)> = changes
        .iter()
        .map(|c| (c.subject.clone(), c.min_tier.map(|t| t.as_str())))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("mlp".to_string(), Some("tee")),
            (digest.clone(), Some("zk")),
            (digest.clone(), None),
            ("mlp".to_string(), None),
        ]
    );
    assert!(changes.iter().all(|c| c.changed_at.ends_with('Z')));
    for c in &changes {
        let index = c.log_index.unwrap();
        let (s, e) = node.get(&format!("/v1/log/entries/{index}"));
        assert_eq!(s, 200, "{e}");
        assert_eq!(e["kind"], json!("policy-changed"), "{e}");
        let entry = e["entry"].as_str().unwrap();
        assert!(
            entry.contains(&format!(r#""subject":"{}""#, c.subject)),
            "{entry}"
        );
        assert!(entry.contains(&format!(r#""seq":{}"#, c.seq)), "{entry}");
    }
}

#[test]
fn the_advisor_and_analytics_report_each_tier() {
    let node = Node::start(&["--tee", "simulated"]);
    node.register("mlp");
    node.zk_analysed("mlp");
    for tiers in [
        json!([]),
        json!(["signed"]),
        json!(["signed", "tee"]),
        json!(["signed", "tee"]),
    ] {
        let (s, v, _) = infer(
            &node,
            json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": tiers}),
        );
        assert_eq!(s, 200, "{v}");
    }
    // zk is served for mlp: answered at once, with the proof job in the bundle.
    let (s, v, _) = infer(
        &node,
        json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["zk"]}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(v["evidence"]["zk_job"]["id"].is_string(), "{v}");

    let (s, a) = node.get("/v1/models/mlp@1/assurance");
    assert_eq!(s, 200, "{a}");
    let tiers = a["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 3);
    let (signed, tee, zk) = (&tiers[0], &tiers[1], &tiers[2]);
    assert_eq!(signed["available"], json!(true));
    assert_eq!(tee["available"], json!(true));
    assert!(
        tee["trusts"].as_str().unwrap().contains("simulated TEE"),
        "{tee}"
    );
    assert_eq!(tee["request"], json!(["signed", "tee"]));
    assert_eq!(tee["request_price"], json!("300"));
    assert_eq!(tee["measured"]["samples"], json!(2));
    assert!(tee["measured"]["p50_ms"].as_f64().unwrap() > 0.0, "{tee}");
    assert_eq!(signed["measured"]["samples"], json!(1));
    assert_eq!(zk["available"], json!(true), "{zk}");
    assert_eq!(zk["zk"]["status"], json!("available"), "{zk}");
    assert!(zk["trusts"].as_str().unwrap().contains("spartan2"), "{zk}");
    // zk_base 5000 + one step of 100 per million constraints (the MLP has ~11 thousand).
    assert_eq!(zk["request_price"], json!("5100"));
    assert_eq!(
        (
            zk["measured"]["requests"].as_u64(),
            zk["measured"]["errors"].as_u64()
        ),
        (Some(1), Some(0)),
        "{zk}"
    );

    let out = node.cli(&["models", "assurance", "mlp"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("tee: available"), "{t}");
    assert!(t.contains("zk: available"), "{t}");
    assert!(t.contains("proof: about"), "{t}");
    assert!(t.contains("measured: p50"), "{t}");
    assert!(
        t.contains("300 micro-USDC per request [signed, tee]"),
        "{t}"
    );

    // Without a producer, tee is a 422 naming the tier, and the advisor says why.
    let plain = Node::start(&[]);
    plain.register("mlp");
    let (s, v, _) = infer(
        &plain,
        json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed", "tee"]}),
    );
    assert_eq!(
        (s, v["error"]["reason"].as_str()),
        (422, Some("tee_unavailable")),
        "{v}"
    );
    let (_, a) = plain.get("/v1/models/mlp/assurance");
    assert_eq!(a["tiers"][1]["available"], json!(false));
    assert_eq!(plain.get("/v1/attestation").0, 422);
    assert!(plain.dir.path().join("node.key").exists());

    let (s, m) = node.get_text("/metrics");
    assert_eq!(s, 200);
    assert!(m.contains("vouch_requests_total"), "{m}");
    assert!(
        m.lines().any(|l| l.starts_with("vouch_requests_total")
            && l.contains("level=\"tee\"")
            && l.contains("status=\"ok\"")
            && l.ends_with(" 2")),
        "{m}"
    );
    assert!(m.contains("vouch_request_duration_seconds_bucket"), "{m}");
    assert!(m.contains("vouch_revenue_total"), "{m}");

    let (s, html) = node.get_text("/status");
    assert_eq!(s, 200);
    assert!(html.contains("<svg") && html.contains("bar-tee"), "{html}");
    assert!(html.contains(">mlp</td><td>tee</td><td>2</td>"), "{html}");
    assert!(html.contains("40.0 %"), "{html}");
}
