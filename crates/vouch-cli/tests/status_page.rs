//! The status page rendered by a real browser: headless Chromium loads `/status` from a live
//! node after traffic at several tiers, dumps the DOM it built and takes a screenshot.
//!
//! Needs Debian's `chromium` (tests/setup/tee.sh installs it). Without it the test is skipped
//! with a loud note, unless `CI` or `VOUCH_REQUIRE_CHROMIUM` is set, where it fails instead.
//! The screenshot is kept when `VOUCH_STATUS_SCREENSHOT=<path.png>` is set.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod common;

use std::process::Command;

use common::{Node, input_json};
use serde_json::json;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

fn browser(
    bin: &str,
    profile: &std::path::Path,
    extra: &[&str],
    url: &str,
) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[test]
fn status_page_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        let required = std::env::var_os("CI").is_some()
            || std::env::var("VOUCH_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "chromium is required here (CI or VOUCH_REQUIRE_CHROMIUM=1) but not installed: run tests/setup/tee.sh"
        );
        eprintln!(
            "\n*** SKIPPED status_page_renders_in_headless_chromium: no chromium found; run tests/setup/tee.sh ***\n"
        );
        return;
    };
    let node = Node::start(&["--tee", "simulated"]);
    node.register("mlp");
    for (tiers, n) in [
        (json!(["signed"]), 6),
        (json!(["signed", "tee"]), 3),
        (json!([]), 1),
    ] {
        for _ in 0..n {
            let (s, v) = node.post_json(
                "/v1/infer",
                &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": tiers}),
            );
            assert_eq!(s, 200, "{v}");
        }
    }
    let url = format!("{}/status", node.url);

    let profile = tempfile::tempdir().unwrap();
    let dom = browser(&bin, profile.path(), &["--dump-dom"], &url);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(html.contains("Vouch node status"), "{html}");
    // 10 requests: 60 % signed, 30 % tee, 10 % none — the bars the browser built say so.
    assert!(html.contains("60.0 % (6 req)"), "{html}");
    assert!(html.contains("30.0 % (3 req)"), "{html}");
    assert!(html.contains(r#"class="bar bar-tee""#), "{html}");
    assert!(html.contains("simulated TEE: development only"), "{html}");

    let shot = match std::env::var_os("VOUCH_STATUS_SCREENSHOT") {
        Some(p) => std::path::PathBuf::from(p),
        None => profile.path().join("status.png"),
    };
    let profile2 = tempfile::tempdir().unwrap();
    let out = browser(
        &bin,
        profile2.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,900",
        ],
        &url,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page compresses to a few KB; text, tables and bars make it larger.
    assert!(png.len() > 10_000, "screenshot is only {} bytes", png.len());
}
