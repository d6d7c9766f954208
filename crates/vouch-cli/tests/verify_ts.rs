//! The independent TypeScript verifier (`clients/ts`) against this one: its own tests (Node's
//! test runner), the differential test — bundles made by a live node (`vouch` built here, a
//! simulated TEE, a real witness), tampered at random byte by byte and field by field, verified
//! by `vouch verify --json` and by the TypeScript verifier, any disagreement a failure — and the
//! explorer's embedded files against a fresh build of their sources.
//!
//! Needs the npm packages of `tests/setup/explorer.sh`; `VOUCH_REQUIRE_BROWSER=1` (set by
//! scripts/test.sh) makes their absence a failure instead of a skip.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::process::{Command, Output};

use common::{VOUCH, browser_tools_ready, repo};

/// The npm packages the tests below run.
fn packages_ready() -> bool {
    browser_tools_ready(&[
        "clients/ts/node_modules/@noble/curves",
        "web/explorer/node_modules/esbuild",
    ])
}

fn show(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_typescript_verifier_passes_its_own_tests() {
    if !packages_ready() {
        return;
    }
    let out = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(repo().join("clients/ts"))
        // The client test starts this build's node.
        .env("VOUCH_BIN", VOUCH)
        .output()
        .unwrap();
    let text = show(&out);
    println!("{text}");
    assert!(out.status.success(), "npm test failed");
    assert!(text.contains("# fail 0"), "no test summary: {text}");
}

#[test]
fn the_typescript_and_rust_verifiers_agree_on_tampered_bundles_from_a_live_node() {
    if !packages_ready() {
        return;
    }
    let fixtures = tempfile::tempdir().unwrap();
    let made = Command::new("bash")
        .arg(repo().join("clients/ts/test/fixtures/make.sh"))
        .env("VOUCH_BIN", VOUCH)
        .env("VOUCH_FIXTURES_OUT", fixtures.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "make.sh: {}", show(&made));
    let bundles = std::fs::read_dir(fixtures.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".bundle.json")
        })
        .count();
    assert!(bundles >= 4, "the live node made {bundles} bundles");
    let out = Command::new("python3")
        .arg(repo().join("clients/ts/scripts/differential.py"))
        .args(["--bin", VOUCH, "--cases", "2500", "--seed", "1"])
        .arg("--fixtures")
        .arg(fixtures.path())
        .output()
        .unwrap();
    let text = show(&out);
    println!("{text}");
    assert!(
        out.status.success(),
        "the TypeScript and Rust verifiers disagree"
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("2500 cases, 0 disagreements; verdicts by code: "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    // A flipped byte often leaves no JSON at all (`invalid_argument` from both): at least
    // 1,000 cases must reach the verifiers' checks.
    let codes: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(summary.split("by code: ").nth(1).unwrap()).unwrap();
    let checked: u64 = codes
        .iter()
        .filter(|(code, _)| code.as_str() != "invalid_argument")
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert!(
        checked >= 1000,
        "only {checked} cases got past parsing: {summary}"
    );
}

#[test]
fn the_embedded_explorer_is_what_its_sources_build() {
    if !packages_ready() {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let built = Command::new("node")
        .arg("build.mjs")
        .arg("--out")
        .arg(out_dir.path())
        .current_dir(repo().join("web/explorer"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", show(&built));
    for f in ["index.html", "app.js", "app.css"] {
        let fresh = std::fs::read(out_dir.path().join(f)).unwrap();
        let embedded = std::fs::read(repo().join("crates/vouch-server/explorer").join(f)).unwrap();
        assert!(
            fresh == embedded,
            "crates/vouch-server/explorer/{f} is not what web/explorer builds: run `npm run build` in web/explorer and commit"
        );
    }
}
