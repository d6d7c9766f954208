//! x402 payments through the real server and CLI, settled by the built-in ledger: the 402 in
//! both versions, paid inferences whose receipts name the payment, attacks over HTTP (each
//! refused with its reference code and nothing charged), one payment raced by 16 requests,
//! `vouch infer --pay-with`, `vouch facilitator`, and the official x402 clients — the Python SDK
//! (`wrapRequestsWithPayment`) and the JS v2 client (`@x402/fetch`) — paying over HTTP.
//!
//! The SDK tests need `tests/setup/pay.sh`; without it they print SKIPPED and pass, unless
//! `VOUCH_REQUIRE_INTEROP=1` (CI), where a missing SDK fails them.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Node, input_json, models, text};
use serde_json::{Value, json};
use vouch_pay::PaymentRequired;
use vouch_pay::wire::{PaymentRequiredV2, SettleResponse, decode_header};

const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

/// A node with payments on (built-in ledger, Base Sepolia USDC defaults), the simulated `tee`
/// tier (so requests can differ by tier set) and `mlp` registered.
fn paid_node(extra_models: &[&str]) -> (Node, tempfile::TempDir) {
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("vouch.toml");
    std::fs::write(
        &path,
        format!("[pay]\nenabled = true\npay_to = \"{PAY_TO}\"\n"),
    )
    .unwrap();
    let node = Node::start(&["--config", path.to_str().unwrap(), "--tee", "simulated"]);
    let banner = node.banner.join("\n");
    assert!(
        banner.contains("payments:    x402 on eip155:84532 in USDC") && banner.contains(PAY_TO),
        "{banner}"
    );
    node.register("mlp");
    for m in extra_models {
        node.register(m);
    }
    (node, cfg)
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

fn request(model: &str) -> Value {
    json!({"model": model, "inputs": input_json(model), "tiers": ["signed"]})
}

fn post(node: &Node, body: &Value, payment: Option<(&str, &str)>) -> Answer {
    let mut req = node
        .http()
        .post(format!("{}/v1/infer", node.url))
        .json(body);
    if let Some((n, v)) = payment {
        req = req.header(n, v);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Answer {
        status,
        body: r.json().unwrap_or(Value::Null),
        headers,
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", a.headers))
        .to_str()
        .unwrap()
}

/// Signs a payment for the 402 the node gives `body`, with the key in `keyfile`.
fn sign_for(node: &Node, body: &Value, keyfile: &Path, v1: bool) -> (&'static str, String) {
    let a = post(node, body, None);
    assert_eq!(a.status, 402, "{}", a.body);
    let required = if v1 {
        PaymentRequired::from_response(None, a.body.to_string().as_bytes()).unwrap()
    } else {
        PaymentRequired::from_response(Some(header(&a, "PAYMENT-REQUIRED")), b"").unwrap()
    };
    let signer = vouch_pay::payer::load_key(keyfile).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    vouch_pay::payer::pay(&signer, &required, None, now).unwrap()
}

/// A fresh payer key from `vouch pay keygen`, credited with `amount` through the admin route.
fn funded_payer(node: &Node, name: &str, amount: u64) -> (PathBuf, String) {
    let key = node.dir.path().join(format!("{name}.key"));
    let out = node.cli(&["pay", "keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let address = text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("address: "))
        .unwrap()
        .trim()
        .to_string();
    let out = node.cli(&["pay", "credit", &address, &amount.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(balance(node, &address), amount);
    (key, address)
}

fn balance(node: &Node, address: &str) -> u64 {
    let (s, v) = node.get(&format!("/v1/pay/balance/{address}"));
    assert_eq!(s, 200, "{v}");
    v["balance"].as_str().unwrap().parse().unwrap()
}

fn refused(a: &Answer, reason: &str) {
    assert_eq!(a.status, 402, "{}", a.body);
    assert_eq!(a.body["error"], json!(reason), "{}", a.body);
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(a.body.get("receipt").is_none() && a.body.get("outputs").is_none());
    let v2: PaymentRequiredV2 = decode_header(header(a, "PAYMENT-REQUIRED")).unwrap();
    assert_eq!(v2.error.as_deref(), Some(reason));
}

#[test]
fn unpaid_requests_get_both_versions_of_the_402_and_prices_are_shown() {
    let (node, _cfg) = paid_node(&[]);
    let (s, p) = node.get("/v1/pricing?model=mlp&tiers=signed");
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["enabled"], json!(true));
    assert_eq!(p["network"], json!("eip155:84532"));
    assert_eq!(p["quote"]["total"], json!("100"));
    // zk is priced from the model's circuit size once the zk analysis has found it provable:
    // zk_base + ceil(constraints / zk_step_units) * zk_per_step.
    assert_eq!(node.zk_analysed("mlp")["status"], json!("available"));
    let (_, p) = node.get("/v1/pricing?model=mlp&tiers=zk");
    let cost = p["quote"]["proving_cost"]
        .as_u64()
        .unwrap_or_else(|| panic!("{p}"));
    assert!(cost > 0, "{p}");
    let expected = 5000 + cost.div_ceil(1_000_000) * 100;
    assert_eq!(p["quote"]["total"], json!(expected.to_string()), "{p}");
    // A model the zk tier cannot prove has no zk price.
    node.register("multi_io");
    assert_eq!(node.zk_analysed("multi_io")["status"], json!("unavailable"));
    let (_, p) = node.get("/v1/pricing?model=multi_io&tiers=zk");
    assert_eq!(p["quote"]["total"], Value::Null, "{p}");
    assert!(
        p["quote"]["lines"][0]["unavailable"]
            .as_str()
            .unwrap()
            .contains("proving cost"),
        "{p}"
    );
    let out = node.cli(&["models", "price", "mlp", "--tiers", "signed"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("total: 100 micro-USDC (0.0001 USDC) per request, charged over x402"),
        "{}",
        text(&out)
    );
    let (s, doc) = node.get("/openapi.json");
    assert_eq!(s, 200);
    assert!(doc["paths"].get("/v1/pricing").is_some());

    let a = post(&node, &request("mlp"), None);
    refused(&a, "payment_required");
    assert!(
        header(&a, "Access-Control-Expose-Headers").contains("PAYMENT-RESPONSE"),
        "{:?}",
        a.headers
    );
    let v2: PaymentRequiredV2 = decode_header(header(&a, "PAYMENT-REQUIRED")).unwrap();
    assert_eq!(v2.x402_version, 2);
    let r = &v2.accepts[0];
    assert_eq!(
        (r.scheme.as_str(), r.network.as_str(), r.amount.as_str()),
        ("exact", "eip155:84532", "100")
    );
    assert_eq!(r.pay_to, PAY_TO);
    assert_eq!(r.extra["name"], json!("USDC"));
    let url = &v2.resource.as_ref().unwrap().url;
    assert!(
        url.contains("model=sha256:") && url.ends_with("tiers=signed"),
        "{url}"
    );
    // v1, in the body, offering the same payment.
    let v1 = &a.body;
    assert_eq!(v1["x402Version"], json!(1));
    assert_eq!(v1["accepts"][0]["maxAmountRequired"], json!("100"));
    assert_eq!(v1["accepts"][0]["network"], json!("base-sepolia"));
    assert_eq!(v1["accepts"][0]["resource"], json!(url));
    assert!(!v1.to_string().contains("null"), "{v1}");
    // A signed+tee request is priced as the sum; an unsigned receipt is free.
    let (_, p) = node.get("/v1/pricing?model=mlp&tiers=signed,tee");
    assert_eq!(p["quote"]["total"], json!("300"), "{p}");
    let tee = json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed", "tee"]});
    let a = post(&node, &tee, None);
    refused(&a, "payment_required");
    assert_eq!(a.body["accepts"][0]["maxAmountRequired"], json!("300"));
    assert!(
        a.body["accepts"][0]["resource"]
            .as_str()
            .unwrap()
            .ends_with("tiers=signed,tee")
    );
    let a = post(
        &node,
        &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": []}),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["receipt"].get("payment").is_none());
}

#[test]
fn paid_inference_names_the_payment_and_attacks_are_refused_without_charge() {
    let (node, _cfg) = paid_node(&["cnn"]);
    let (key, address) = funded_payer(&node, "payer", 1000);
    let body = request("mlp");

    // Garbage in the payment header.
    for garbage in ["%%%not-base64", "bm90IGpzb24=", ""] {
        let a = post(&node, &body, Some(("PAYMENT-SIGNATURE", garbage)));
        refused(&a, "invalid_payload");
    }
    assert_eq!(balance(&node, &address), 1000);

    // A v2 payment: 200, the settlement header, and a receipt naming the payment.
    let (name, value) = sign_for(&node, &body, &key, false);
    assert_eq!(name, "PAYMENT-SIGNATURE");
    let a = post(&node, &body, Some((name, &value)));
    assert_eq!(a.status, 200, "{}", a.body);
    let settled: SettleResponse = decode_header(header(&a, "PAYMENT-RESPONSE")).unwrap();
    assert!(settled.success);
    assert!(
        settled.transaction.starts_with("vouch-ledger:0x"),
        "{settled:?}"
    );
    let p = &a.body["receipt"]["payment"];
    assert_eq!(p["payer"], json!(address), "{p}");
    assert_eq!(p["amount"], json!("100"));
    assert_eq!(p["network"], json!("eip155:84532"));
    assert_eq!(p["settlement"], json!(settled.transaction));
    assert_eq!(a.headers["vouch-price"], "100");
    assert_eq!(balance(&node, &address), 900);
    assert_eq!(balance(&node, PAY_TO), 100);

    // Replayed header.
    refused(
        &post(&node, &body, Some((name, &value))),
        "invalid_exact_evm_nonce_already_used",
    );
    assert_eq!(balance(&node, &address), 900);

    // A payment made for mlp, presented on cnn at the same price: refused, and still good on mlp.
    let (name, value) = sign_for(&node, &body, &key, false);
    refused(
        &post(&node, &request("cnn"), Some((name, &value))),
        "invalid_payment_requirements",
    );
    assert_eq!(balance(&node, &address), 900);
    // … or for another tier set of the same model.
    let tee = json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed", "tee"]});
    refused(
        &post(&node, &tee, Some((name, &value))),
        "invalid_payment_requirements",
    );
    assert_eq!(post(&node, &body, Some((name, &value))).status, 200);
    assert_eq!(balance(&node, &address), 800);

    // A v1 payment (X-PAYMENT), settled in X-PAYMENT-RESPONSE.
    let (name, value) = sign_for(&node, &body, &key, true);
    assert_eq!(name, "X-PAYMENT");
    let a = post(&node, &body, Some((name, &value)));
    assert_eq!(a.status, 200, "{}", a.body);
    let settled: SettleResponse = decode_header(header(&a, "X-PAYMENT-RESPONSE")).unwrap();
    assert!(settled.success);
    assert_eq!(balance(&node, &address), 700);

    // Insufficient balance.
    let (poor_key, poor) = funded_payer(&node, "poor", 50);
    let (name, value) = sign_for(&node, &body, &poor_key, false);
    refused(
        &post(&node, &body, Some((name, &value))),
        "invalid_exact_evm_insufficient_balance",
    );
    assert_eq!(balance(&node, &poor), 50);

    // One payment raced by 16 concurrent requests: exactly one is served and charged.
    let (name, value) = sign_for(&node, &body, &key, false);
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| post(&node, &body, Some((name, &value)))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in answers.iter().filter(|a| a.status != 200) {
        refused(a, "invalid_exact_evm_nonce_already_used");
    }
    assert_eq!(balance(&node, &address), 600);

    // Eight payments racing for a balance that covers three: exactly three are served, the
    // balance never goes negative, the rest are refused (at verification, or at settlement with
    // a failed PAYMENT-RESPONSE) with no output.
    let (tight_key, tight) = funded_payer(&node, "tight", 300);
    let signed: Vec<(&str, String)> = (0..8)
        .map(|_| sign_for(&node, &body, &tight_key, false))
        .collect();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = signed
            .iter()
            .map(|(n, v)| s.spawn(|| post(&node, &body, Some((n, v)))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 3);
    for a in answers.iter().filter(|a| a.status != 200) {
        refused(a, "invalid_exact_evm_insufficient_balance");
        if let Some(h) = a.headers.get("PAYMENT-RESPONSE") {
            let r: SettleResponse = decode_header(h.to_str().unwrap()).unwrap();
            assert!(!r.success, "{r:?}");
        }
    }
    assert_eq!(balance(&node, &tight), 0);

    // The CLI pays from the key file; the receipt's payment is covered by the signature.
    let inputs = models().join("mlp.input.json");
    let bundle = node.dir.path().join("paid.json");
    let args = [
        "infer",
        "mlp",
        "--input",
        inputs.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ];
    let out = node.cli(&args);
    assert!(!out.status.success());
    assert!(text(&out).contains("--pay-with"), "{}", text(&out));
    let mut limited = args.to_vec();
    limited.extend(["--pay-with", key.to_str().unwrap(), "--max-price", "99"]);
    let out = node.cli(&limited);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("exceeds the limit 99"),
        "{}",
        text(&out)
    );
    assert_eq!(balance(&node, &address), 600);
    let mut paying = args.to_vec();
    paying.extend(["--pay-with", key.to_str().unwrap()]);
    let out = node.cli(&paying);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("by {address}")),
        "{}",
        text(&out)
    );
    assert_eq!(balance(&node, &address), 500);
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(b["receipt"]["payment"]["payer"], json!(address));
    let out = node.cli(&["verify", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let mut forged = b.clone();
    forged["receipt"]["payment"]["amount"] = json!("1");
    let forged_path = node.dir.path().join("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let out = node.cli(&["verify", forged_path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn the_facilitator_subcommand_serves_the_standard_api() {
    let f = Node::start_command("facilitator", &[]);
    let (s, v) = f.get("/supported");
    assert_eq!(s, 200, "{v}");
    let kinds = v["kinds"].as_array().unwrap();
    assert!(
        kinds
            .iter()
            .any(|k| k["network"] == "eip155:84532" && k["x402Version"] == 2)
    );
    assert!(
        kinds
            .iter()
            .any(|k| k["network"] == "base-sepolia" && k["x402Version"] == 1)
    );
    let (s, v) = f.post_json(
        "/verify",
        &json!({"x402Version": 2, "paymentPayload": {"x402Version": 2}, "paymentRequirements": {}}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["isValid"], json!(false));
    assert_eq!(v["invalidReason"], json!("invalid_payload"));
    let (s, v) = f.post_json("/settle", &json!({"nope": 1}));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], json!("bad_request"));

    // A real payment: refused for want of balance, then (after an admin top-up through the same
    // CLI) verified and settled once; settling again returns the same settlement.
    let terms = vouch_pay::PayConfig {
        enabled: true,
        pay_to: Some(PAY_TO.into()),
        ..Default::default()
    }
    .terms()
    .unwrap();
    let offer = terms.offer(
        vouch_pay::U256::from(250u64),
        vouch_pay::wire::ResourceInfo {
            url: "http://shop.example/thing".into(),
            description: None,
            mime_type: None,
        },
    );
    let (signer, _) = vouch_pay::payer::generate_key();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let required = PaymentRequired::V2(offer.payment_required_v2(None));
    let (_, header) = vouch_pay::payer::pay(&signer, &required, None, now).unwrap();
    let payment = vouch_pay::PaymentPayload::decode_header(&header).unwrap();
    let req = vouch_pay::wire::FacilitatorRequest::new(&payment, &offer.select(&payment).unwrap());
    let req = serde_json::to_value(&req).unwrap();
    let (_, v) = f.post_json("/verify", &req);
    assert_eq!(
        v["invalidReason"],
        json!("invalid_exact_evm_insufficient_balance"),
        "{v}"
    );
    let address = signer.address().to_string();
    let out = f.cli(&["pay", "credit", &address, "300"]);
    assert!(out.status.success(), "{}", text(&out));
    let (_, v) = f.post_json("/verify", &req);
    assert_eq!(v["isValid"], json!(true), "{v}");
    let (_, first) = f.post_json("/settle", &req);
    assert_eq!(first["success"], json!(true), "{first}");
    assert!(
        first["transaction"]
            .as_str()
            .unwrap()
            .starts_with("vouch-ledger:0x")
    );
    let (_, again) = f.post_json("/settle", &req);
    assert_eq!(again["transaction"], first["transaction"], "{again}");
    let (_, v) = f.post_json("/verify", &req);
    assert_eq!(
        v["invalidReason"],
        json!("invalid_exact_evm_nonce_already_used"),
        "{v}"
    );
    // 300 credited, 250 paid once.
    let out = f.cli(&["pay", "credit", &address, "0"]);
    assert!(text(&out).contains("balance 50"), "{}", text(&out));
}

#[test]
fn a_node_settles_through_a_remote_facilitator() {
    let f = Node::start_command("facilitator", &[]);
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("vouch.toml");
    std::fs::write(
        &path,
        format!(
            "[pay]\nenabled = true\npay_to = \"{PAY_TO}\"\nfacilitator = \"{}\"\n",
            f.url
        ),
    )
    .unwrap();
    let node = Node::start(&["--config", path.to_str().unwrap()]);
    node.register("mlp");
    let (s, v) = node.get(&format!("/v1/pay/balance/{PAY_TO}"));
    assert_eq!(
        (s, &v["error"]["reason"]),
        (400, &json!("no_builtin_ledger")),
        "{v}"
    );

    let key = node.dir.path().join("remote.key");
    let out = node.cli(&["pay", "keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let address = vouch_pay::payer::load_key(&key)
        .unwrap()
        .address()
        .to_string();
    let body = request("mlp");
    let (name, value) = sign_for(&node, &body, &key, false);
    // Not funded at the facilitator: its refusal reason comes through.
    refused(
        &post(&node, &body, Some((name, &value))),
        "invalid_exact_evm_insufficient_balance",
    );
    let out = f.cli(&["pay", "credit", &address, "150"]);
    assert!(out.status.success(), "{}", text(&out));
    let a = post(&node, &body, Some((name, &value)));
    assert_eq!(a.status, 200, "{}", a.body);
    let settled: SettleResponse = decode_header(header(&a, "PAYMENT-RESPONSE")).unwrap();
    assert_eq!(
        a.body["receipt"]["payment"]["settlement"],
        json!(settled.transaction)
    );
    assert!(settled.transaction.starts_with("vouch-ledger:0x"));
    let out = f.cli(&["pay", "credit", &address, "0"]);
    assert!(text(&out).contains("balance 50"), "{}", text(&out));
    refused(
        &post(&node, &body, Some((name, &value))),
        "invalid_exact_evm_nonce_already_used",
    );
}

// ---- the official clients, over HTTP ----

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/x402")
}

fn python() -> String {
    if let Ok(p) = std::env::var("VOUCH_PYTHON") {
        return p;
    }
    let venv = "/root/.cache/vouch/venv/bin/python";
    if Path::new(venv).exists() {
        venv.into()
    } else {
        "python3".into()
    }
}

fn skip(why: &str) -> Option<Value> {
    if std::env::var("VOUCH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("x402 SDK required (VOUCH_REQUIRE_INTEROP=1) but unavailable: {why}");
    }
    eprintln!("SKIPPED sdk peer: {why}");
    None
}

/// Runs `program script URL VERSION` with the request on stdin and the key in the environment.
fn sdk_pays(
    program: &str,
    script: &str,
    url: &str,
    version: u32,
    key: &Path,
    body: &Value,
) -> Option<Value> {
    let key_text = std::fs::read_to_string(key).unwrap();
    let mut child = match Command::new(program)
        .arg(interop_dir().join(script))
        .arg(url)
        .arg(version.to_string())
        .env("VOUCH_PAYER_KEY", key_text.trim())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return skip(&format!("cannot run {program}: {e}")),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        return skip(stderr.trim());
    }
    assert!(out.status.success(), "{script} failed: {stderr}");
    Some(serde_json::from_slice(&out.stdout).expect("SDK output is JSON"))
}

fn official_client_pays(program: &str, script: &str) {
    let (node, _cfg) = paid_node(&[]);
    let url = format!("{}/v1/infer", node.url);
    for version in [2u32, 1] {
        let (key, address) = funded_payer(&node, &format!("sdk-v{version}"), 1000);
        let Some(r) = sdk_pays(program, script, &url, version, &key, &request("mlp")) else {
            return;
        };
        assert_eq!(r["status"], json!(200), "{script} v{version}: {r}");
        assert_eq!(r["address"], json!(address));
        assert_eq!(
            r["settlement_header"],
            json!(if version == 2 {
                "PAYMENT-RESPONSE"
            } else {
                "X-PAYMENT-RESPONSE"
            }),
            "{r}"
        );
        assert_eq!(r["settlement"]["success"], json!(true), "{r}");
        let payment = &r["body"]["receipt"]["payment"];
        assert_eq!(payment["payer"], json!(address), "{r}");
        assert_eq!(payment["settlement"], r["settlement"]["transaction"], "{r}");
        assert!(r["body"]["outputs"].is_object(), "{r}");
        assert_eq!(balance(&node, &address), 900, "{script} v{version}");
    }
}

#[test]
fn the_official_python_sdk_pays_for_an_inference_v2_and_v1() {
    official_client_pays(&python(), "pay_http.py");
}

#[test]
fn the_official_js_client_pays_for_an_inference_v2_and_v1() {
    official_client_pays("node", "pay_http.mjs");
}

#[test]
fn a_paid_zk_proof_that_ends_without_a_proof_is_refunded() {
    // Provers paused (`workers = 0`) so the job is still queued when it is cancelled.
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("vouch.toml");
    std::fs::write(
        &path,
        format!("[pay]\nenabled = true\npay_to = \"{PAY_TO}\"\n[zk]\nworkers = 0\n"),
    )
    .unwrap();
    let node = Node::start(&["--config", path.to_str().unwrap()]);
    node.register("mlp_small");
    assert_eq!(node.zk_analysed("mlp_small")["status"], json!("available"));
    let (key, address) = funded_payer(&node, "zk-payer", 10_000_000);
    let body =
        json!({"model": "mlp_small", "inputs": input_json("mlp_small"), "tiers": ["signed", "zk"]});
    let payment = sign_for(&node, &body, &key, false);
    let a = post(&node, &body, Some((payment.0, &payment.1)));
    assert_eq!(a.status, 200, "{}", a.body);
    let paid: u64 = a.body["receipt"]["payment"]["amount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(paid > 0);
    assert_eq!(balance(&node, &address), 10_000_000 - paid);
    let id = a.body["evidence"]["zk_job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = header(&a, "vouch-zk-cancel-token").to_string();
    let r = node
        .http()
        .delete(format!("{}/v1/proofs/{id}", node.url))
        .bearer_auth(&cancel)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    // The refund runs after the job has ended: wait for it, bounded.
    let mut refunded = false;
    for _ in 0..100 {
        if balance(&node, &address) == 10_000_000 {
            refunded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(refunded, "the payer was not refunded");
    let mut noted = Value::Null;
    for _ in 0..50 {
        let (_, job) = node.get(&format!("/v1/proofs/{id}"));
        if job.to_string().contains("refunded to") {
            noted = job;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(noted.to_string().contains(&address), "{noted}");
    // Once: a second cancel changes nothing and the balance stays.
    let _ = node
        .http()
        .delete(format!("{}/v1/proofs/{id}", node.url))
        .bearer_auth(&cancel)
        .send()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(balance(&node, &address), 10_000_000);
}

#[test]
fn a_payment_settled_for_a_receipt_that_cannot_be_logged_is_refunded() {
    let (node, _cfg) = paid_node(&[]);
    let (key, address) = funded_payer(&node, "log-fail", 1_000_000);
    let body = request("mlp");
    let payment = sign_for(&node, &body, &key, false);
    let a = post(&node, &body, Some((payment.0, &payment.1)));
    assert_eq!(a.status, 200, "{}", a.body);
    let after_first = balance(&node, &address);
    assert!(after_first < 1_000_000);
    // Break the log under the running node (a failing disk, in effect): the next receipt cannot
    // be committed, so no output may be served, and the payment already settled goes back.
    let db = node.dir.path().join("vouch.db");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); c.execute('DROP TABLE log_entry'); c.commit()",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let payment = sign_for(&node, &body, &key, false);
    let a = post(&node, &body, Some((payment.0, &payment.1)));
    assert_eq!(a.status, 500, "{}", a.body);
    assert!(a.body.get("outputs").is_none() && a.body.get("receipt").is_none());
    assert_eq!(
        balance(&node, &address),
        after_first,
        "the payer was not refunded"
    );
    // Settled, then refunded (not merely never charged): the journal has both, with the reason
    // (each settlement and refund moves money between two accounts: two journal entries).
    let ledger = node.dir.path().join("vouch.db-ledger");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); \
             print([r[0] for r in c.execute('SELECT kind FROM pay_entries ORDER BY seq')]); \
             print(c.execute('SELECT refund_reason FROM pay_settlements WHERE refunded_at IS NOT NULL').fetchall())",
            ledger.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let journal = text(&out);
    assert!(
        journal.contains("['credit', 'settle', 'settle', 'settle', 'settle', 'refund', 'refund']"),
        "{journal}"
    );
    assert!(
        journal.contains("not answered after settlement"),
        "{journal}"
    );
}
