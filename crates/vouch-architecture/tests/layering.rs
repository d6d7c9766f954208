//! The layering of ARCHITECTURE.md ("Dependency rules"), checked on the real workspace.
//!
//! Two sources, each for what it answers correctly:
//! - `cargo metadata` (through `cargo_metadata`) for the declared edges between workspace crates
//!   and the features each edge asks for. Its resolved graph is no use for closures: it unifies
//!   features over the whole workspace, so there `vouch-attest` has `producer` on because
//!   `vouch-server` asks for it.
//! - `cargo tree -p vouch-verify -e normal,build` for what building the verifier alone compiles:
//!   it resolves features for the selected package only, as `cargo build -p vouch-verify` does,
//!   and leaves dev-dependencies (and the features only they enable) out. Build dependencies
//!   count: they are compiled and run on the verifier's machine.
//!
//! Dev-dependencies are free to point anywhere (tests start servers, sign receipts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand};

/// Which workspace crates a crate may depend on (normal and build dependencies).
enum May {
    Only(&'static [&'static str]),
    AnyBut(&'static [&'static str]),
}

/// One rule per workspace crate, present or planned; a rule for a crate that does not exist
/// yet is skipped, and a crate without a rule fails the test until it is given one.
const RULES: &[(&str, May)] = &[
    ("vouch-core", May::Only(&[])),
    // Wire types of the HTTP API.
    ("vouch-api", May::Only(&["vouch-core"])),
    ("vouch-exec", May::Only(&["vouch-core"])),
    // The LLM engine layer (candle): like vouch-exec for ONNX.
    ("vouch-llm", May::Only(&["vouch-core"])),
    ("vouch-log", May::Only(&["vouch-core"])),
    ("vouch-pay", May::Only(&["vouch-core"])),
    ("vouch-attest", May::Only(&["vouch-core"])),
    ("vouch-zk", May::Only(&["vouch-core"])),
    // It implements the log's and payments' storage traits.
    (
        "vouch-store",
        May::Only(&["vouch-core", "vouch-log", "vouch-pay"]),
    ),
    // Verifier halves only: see `VERIFIER_HALVES`.
    (
        "vouch-verify",
        May::Only(&["vouch-core", "vouch-attest", "vouch-log", "vouch-zk"]),
    ),
    // The transport-free node: everything below the HTTP layer and the binary.
    ("vouch-node", May::AnyBut(&["vouch-server", "vouch"])),
    ("vouch-server", May::AnyBut(&["vouch"])),
    ("vouch", May::AnyBut(&[])),
    ("vouch-architecture", May::Only(&[])),
];

/// The features `vouch-verify` must not turn on: each is a half that touches the machine.
const VERIFIER_HALVES: &[(&str, &[&str])] = &[
    // Key files and key generation, TEE producers (/dev/nsm, configfs-tsm, the simulated one).
    ("vouch-attest", &["producer", "nitro-nsm"]),
    // Calibration, analysis, admission, proving (and the deadline clock).
    ("vouch-zk", &["prover"]),
    // The group-commit appender.
    ("vouch-log", &["writer"]),
];

/// Crates the offline verifier must never compile: async runtimes and network stacks,
/// databases, inference engines, OS-interface crates of the producers, and the upper layers.
/// Matched on the whole name, or on the prefix before `*`.
const FORBIDDEN_IN_VERIFIER: &[&str] = &[
    "tokio*",
    "async-std",
    "smol",
    "mio",
    "futures-executor",
    "hyper*",
    "h2",
    "axum*",
    "tower*",
    "reqwest",
    "ureq",
    "socket2",
    "rustls",
    "sqlx*",
    "rusqlite",
    "libsqlite3-sys",
    "object_store",
    "ort",
    "ort-sys",
    "tract-*",
    "candle-*",
    "nix",
    "vouch-exec",
    "vouch-store",
    "vouch-pay",
    "vouch-node",
    "vouch-server",
    "vouch",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/<name> sits two levels below the workspace root")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string())
}

fn metadata() -> Metadata {
    MetadataCommand::new()
        .cargo_path(cargo())
        .manifest_path(workspace_root().join("Cargo.toml"))
        .no_deps()
        .exec()
        .expect("cargo metadata")
}

fn rule(name: &str) -> Option<&'static May> {
    RULES.iter().find(|(n, _)| *n == name).map(|(_, m)| m)
}

/// Declared normal and build edges between workspace crates: crate → [(dependency, edge)].
fn workspace_edges(meta: &Metadata) -> BTreeMap<String, Vec<String>> {
    let members: BTreeSet<String> = meta
        .workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    meta.workspace_packages()
        .iter()
        .map(|p| {
            let deps = p
                .dependencies
                .iter()
                .filter(|d| d.kind != DependencyKind::Development && d.path.is_some())
                .filter(|d| members.contains(&d.name))
                .map(|d| d.name.clone())
                .collect();
            (p.name.to_string(), deps)
        })
        .collect()
}

/// The layering violations in `edges`, in words.
fn violations(edges: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, deps) in edges {
        let Some(may) = rule(krate) else {
            out.push(format!(
                "{krate} has no layering rule: add one to RULES in {} and to ARCHITECTURE.md",
                file!()
            ));
            continue;
        };
        for dep in deps {
            let allowed = match may {
                May::Only(list) => list.contains(&dep.as_str()),
                May::AnyBut(list) => !list.contains(&dep.as_str()),
            };
            if !allowed {
                out.push(format!(
                    "{krate} depends on {dep}, which its layer may not use (ARCHITECTURE.md, Dependency rules)"
                ));
            }
        }
    }
    out
}

#[test]
fn workspace_crates_depend_only_on_lower_layers() {
    let meta = metadata();
    let edges = workspace_edges(&meta);
    // The rules must be checking something: the crates that anchor the layering exist.
    for anchor in [
        "vouch-core",
        "vouch-verify",
        "vouch-attest",
        "vouch-zk",
        "vouch",
    ] {
        assert!(
            edges.contains_key(anchor),
            "{anchor} is not in the workspace"
        );
    }
    assert!(
        edges["vouch-core"].is_empty(),
        "vouch-core depends on {:?}",
        edges["vouch-core"]
    );
    let bad = violations(&edges);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn a_rule_breaking_edge_is_reported() {
    // The check itself, on the real metadata with one edge added: vouch-core → vouch-exec.
    let meta = metadata();
    let mut edges = workspace_edges(&meta);
    edges
        .get_mut("vouch-core")
        .unwrap()
        .push("vouch-exec".into());
    edges.insert("vouch-newcomer".into(), vec![]);
    let bad = violations(&edges);
    assert!(
        bad.iter()
            .any(|v| v.starts_with("vouch-core depends on vouch-exec")),
        "{bad:?}"
    );
    assert!(
        bad.iter()
            .any(|v| v.starts_with("vouch-newcomer has no layering rule")),
        "{bad:?}"
    );
}

#[test]
fn the_verifier_asks_for_verifier_halves_only() {
    let meta = metadata();
    let verify = meta
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == "vouch-verify")
        .unwrap();
    for (krate, halves) in VERIFIER_HALVES {
        for d in verify.dependencies.iter().filter(|d| {
            d.name == *krate && matches!(d.kind, DependencyKind::Normal | DependencyKind::Build)
        }) {
            assert!(
                !d.uses_default_features,
                "vouch-verify must depend on {krate} with default-features = false (its default turns on {halves:?})"
            );
            let asked: Vec<&String> = d
                .features
                .iter()
                .filter(|f| halves.contains(&f.as_str()))
                .collect();
            assert!(
                asked.is_empty(),
                "vouch-verify turns on {krate}'s {asked:?}"
            );
        }
    }
}

/// One compiled package of `cargo tree`: its name and the features it is built with.
struct Compiled {
    name: String,
    version: String,
    features: BTreeSet<String>,
}

/// What `cargo build -p vouch-verify` compiles, from `cargo tree` (see the module comment).
fn verifier_closure() -> Vec<Compiled> {
    let out = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "tree",
            "-p",
            "vouch-verify",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--no-dedupe",
            "--format",
            "{p}|{f}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut seen = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (package, features) = line.split_once('|').unwrap();
        let mut words = package.split_whitespace();
        let name = words.next().unwrap().to_string();
        let version = words.next().unwrap_or("").to_string();
        let features: BTreeSet<String> = features
            .trim()
            .trim_end_matches(" (*)")
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        seen.entry((name.clone(), version.clone()))
            .or_insert(Compiled {
                name,
                version,
                features,
            });
    }
    seen.into_values().collect()
}

fn forbidden(name: &str) -> bool {
    FORBIDDEN_IN_VERIFIER
        .iter()
        .any(|f| match f.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *f,
        })
}

#[test]
fn the_verifier_compiles_no_runtime_database_network_engine_or_producer() {
    let closure = verifier_closure();
    let names: BTreeSet<&str> = closure.iter().map(|c| c.name.as_str()).collect();
    // The closure was read: the verifier and what it verifies with are in it.
    for expected in [
        "vouch-verify",
        "vouch-core",
        "vouch-attest",
        "vouch-zk",
        "spartan2",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    let bad: Vec<String> = closure
        .iter()
        .filter(|c| forbidden(&c.name))
        .map(|c| format!("{} {}", c.name, c.version))
        .collect();
    assert!(
        bad.is_empty(),
        "building vouch-verify compiles {bad:?}: the offline verifier must stay free of runtimes, \
         databases, network stacks, engines and producers (ARCHITECTURE.md, vouch-verify)"
    );
    for (krate, halves) in VERIFIER_HALVES {
        for c in closure.iter().filter(|c| c.name == *krate) {
            let on: Vec<&String> = c
                .features
                .iter()
                .filter(|f| halves.contains(&f.as_str()))
                .collect();
            assert!(
                on.is_empty(),
                "building vouch-verify compiles {krate} with {on:?}: a half that uses a clock, files or the network"
            );
        }
    }
    // Visible with --nocapture: the size this invariant keeps an eye on.
    println!(
        "vouch-verify compiles {} packages (normal and build dependencies)",
        closure.len()
    );
}

/// HTTP server crates: only `vouch-server` (and the binary) may declare them.
const HTTP_SERVER_CRATES: &[&str] = &[
    "axum",
    "axum-core",
    "hyper",
    "hyper-util",
    "http",
    "tower",
    "tower-http",
];

#[test]
fn the_node_layer_knows_no_http_server() {
    let meta = metadata();
    let Some(node) = meta
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == "vouch-node")
    else {
        return;
    };
    let http: Vec<String> = node
        .dependencies
        .iter()
        .filter(|d| d.kind != DependencyKind::Development)
        .filter(|d| HTTP_SERVER_CRATES.contains(&d.name.as_str()))
        .map(|d| d.name.clone())
        .collect();
    assert!(
        http.is_empty(),
        "vouch-node declares HTTP server crates {http:?}: transport belongs in vouch-server"
    );
}

/// Database drivers a crate would need to speak SQL.
const SQL_DRIVERS: &[&str] = &[
    "sqlx",
    "rusqlite",
    "r2d2_sqlite",
    "tokio-postgres",
    "postgres",
];

/// ARCHITECTURE.md: `vouch-store` is the only crate that knows SQL — on SQLite and on
/// PostgreSQL alike; every other layer reaches its tables through storage traits or `Store`.
#[test]
fn only_the_store_speaks_sql() {
    let meta = metadata();
    let mut offenders = Vec::new();
    for p in meta.workspace_packages() {
        if p.name.as_str() == "vouch-store" {
            continue;
        }
        for d in &p.dependencies {
            if d.kind != DependencyKind::Development && SQL_DRIVERS.contains(&d.name.as_str()) {
                offenders.push(format!("{} → {}", p.name, d.name));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL drivers outside vouch-store: {offenders:?}"
    );
}

/// Every `.ts` file under `dir`, recursively.
fn typescript_sources(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            typescript_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "ts") {
            out.push(p);
        }
    }
}

/// ARCHITECTURE.md: the TypeScript verifier (`clients/ts/src`) and the explorer
/// (`web/explorer/src`) are browser code that fetches nothing but the node's own API — no Node
/// module, no `Buffer` or `process`, no import but relative files and `@noble/*`, no URL of
/// another origin; and the page has no inline script and loads nothing from elsewhere (the
/// node's CSP would block it; this says why the build never needs it).
#[test]
fn the_verifier_and_the_explorer_are_browser_code_from_one_origin() {
    let root = workspace_root();
    let mut files = Vec::new();
    typescript_sources(&root.join("clients/ts/src"), &mut files);
    typescript_sources(&root.join("web/explorer/src"), &mut files);
    assert!(files.len() > 10, "sources not found: {files:?}");
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let bad = [
                "require(", "Buffer.", "process.", "node:", "http://", "https://",
            ]
            .iter()
            .find(|b| code.contains(*b));
            let bad_import =
                imported_module(code).filter(|m| !(m.starts_with('.') || m.starts_with("@noble/")));
            if let Some(b) = bad {
                offenders.push(format!("{}:{}: {b}", f.display(), n + 1));
            }
            if let Some(m) = bad_import {
                offenders.push(format!("{}:{}: imports {m}", f.display(), n + 1));
            }
        }
    }
    let html = std::fs::read_to_string(root.join("web/explorer/src/index.html")).unwrap();
    for tag in html
        .split('<')
        .filter(|t| t.starts_with("script") || t.starts_with("link"))
    {
        if tag.contains("://") || (tag.starts_with("script") && !tag.contains("src=")) {
            offenders.push(format!("index.html: <{tag}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "not browser code from one origin: {offenders:#?}"
    );
}

/// The module a line imports (`import … from "m"`, `export … from "m"`, `import("m")`), if any.
fn imported_module(code: &str) -> Option<String> {
    let t = code.trim_start();
    let from = if t.starts_with("import") || t.starts_with("export") {
        t.rfind(" from ").map(|i| &t[i + 6..]).or_else(|| {
            t.strip_prefix("import ")
                .filter(|r| r.starts_with('"') || r.starts_with('\''))
        })
    } else {
        None
    }
    .or_else(|| t.find("import(").map(|i| &t[i + 7..]))?;
    let q = from.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &from[1..];
    rest.find(q).map(|end| rest[..end].to_string())
}
