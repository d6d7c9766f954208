//! `vouch verify --json` on chat answers through the real binary, on the published chat
//! vectors (docs/receipt.md): a completion object with its bundle in `vouch`, a bare chat
//! bundle, and a streamed answer's raw SSE body, each with the request file; and the codes of
//! a wrong request, an altered or cut stream.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const VOUCH: &str = env!("CARGO_BIN_EXE_vouch");
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vouch-verify/tests/vectors");
/// `ed25519:` key of the vectors' signer (seed 2a×32).
const KEY: &str = "ed25519:197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61";

fn vector(name: &str) -> String {
    format!("{VECTORS}/{name}")
}

fn verify(file: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(VOUCH)
        .arg("verify")
        .arg("--json")
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn chat_answers_verify_and_fail_with_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let req1 = vector("chat1.request.json");
    let req2 = vector("chat2.request.json");

    // The completion object, its bundle in `vouch`.
    let (status, v) = verify(
        Path::new(&vector("chat1.response.json")),
        &["--request", &req1, "--trust-key", KEY],
    );
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["ok"], json!(true));
    let checks: Vec<&str> = v["proven"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for c in [
        "signature",
        "request file",
        "choices[0].message.content",
        "usage",
    ] {
        assert!(checks.contains(&c), "{c}: {checks:?}");
    }

    // The bare bundle: the answer is named as not proven.
    let response: Value =
        serde_json::from_str(&std::fs::read_to_string(vector("chat1.response.json")).unwrap())
            .unwrap();
    let bare = write(
        dir.path(),
        "bundle.json",
        response["vouch"].to_string().as_bytes(),
    );
    let (status, v) = verify(&bare, &["--request", &req1]);
    assert_eq!(status, 0, "{v}");
    assert!(
        v["not_proven"].to_string().contains("the answer you hold"),
        "{v}"
    );

    // Another request.
    let (status, v) = verify(&bare, &["--request", &req2]);
    assert_eq!(
        (status, v["code"].as_str()),
        (2, Some("request_mismatch")),
        "{v}"
    );

    // The streamed answer, as sent.
    let sse = std::fs::read_to_string(vector("chat2.sse")).unwrap();
    let (status, v) = verify(Path::new(&vector("chat2.sse")), &["--request", &req2]);
    assert_eq!(status, 0, "{v}");
    assert!(
        v["proven"]
            .to_string()
            .contains("exactly the ones the node committed to"),
        "{v}"
    );

    // One chunk altered, one dropped, the receipt event cut off.
    let altered = write(
        dir.path(),
        "altered.sse",
        sse.replacen("Hello", "Howdy", 1).as_bytes(),
    );
    let (status, v) = verify(&altered, &[]);
    assert_eq!(
        (status, v["code"].as_str()),
        (2, Some("stream_chain_broken")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("chunk 1"), "{v}");
    let events: Vec<&str> = sse.split_inclusive("\n\n").collect();
    let dropped: String = events
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, e)| *e)
        .collect();
    let dropped = write(dir.path(), "dropped.sse", dropped.as_bytes());
    let (status, v) = verify(&dropped, &[]);
    assert_eq!(
        (status, v["code"].as_str()),
        (2, Some("stream_chunk_missing")),
        "{v}"
    );
    let cut: String = events[..3].concat();
    let cut = write(dir.path(), "cut.sse", cut.as_bytes());
    let (status, v) = verify(&cut, &[]);
    assert_eq!(
        (status, v["code"].as_str()),
        (2, Some("response_invalid")),
        "{v}"
    );

    // --request has no meaning for an ONNX bundle.
    let onnx = write(dir.path(), "onnx.json", br#"{"format":"vouch.bundle.v1"}"#);
    let (status, v) = verify(&onnx, &["--request", &req1]);
    assert_eq!(
        (status, v["code"].as_str()),
        (1, Some("invalid_argument")),
        "{v}"
    );
}
