//! Measures the zk tier on ONNX files: calibration, key generation, proving, verifying, sizes,
//! accuracy against the reference output, and peak memory. Prints one JSON object per model.
//!
//! `cargo run --release -p vouch-zk --example zk_report -- models/mlp.onnx [more.onnx ...]`
//! Each model needs `<name>.input.json` next to it; `<name>.output.json`, if present, is the
//! float reference (onnxruntime) the proven output is compared to.

use std::path::Path;
use std::time::Instant;

use vouch_core::{Digest, TensorMap};

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// With `ZK_RSS_TRACE` set: resident and peak memory after each stage, on stderr.
fn rss(tag: &str) {
    if std::env::var_os("ZK_RSS_TRACE").is_none() {
        return;
    }
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |k: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    eprintln!(
        "rss {tag}: {} MB (peak {} MB, anonymous {} MB)",
        kb("VmRSS:") / 1024,
        kb("VmHWM:") / 1024,
        kb("RssAnon:") / 1024
    );
}

fn load(path: &Path) -> Option<TensorMap> {
    let s = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&s).ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps: usize = std::env::var("ZK_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for a in args {
        let p = Path::new(&a);
        let bytes = std::fs::read(p)?;
        let stem = p.with_extension("");
        let inputs = load(&stem.with_extension("input.json")).ok_or("missing <name>.input.json")?;
        let reference = load(&stem.with_extension("output.json"));
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        let opts = vouch_zk::AnalyzeOptions {
            samples: vec![inputs.clone()],
            fixed_scale: env("ZK_SCALE"),
            table_bits: env("ZK_TABLE_BITS"),
            ..Default::default()
        };
        rss("start");
        let t = Instant::now();
        let (info, keys) = vouch_zk::analyze_with(&bytes, &opts)?;
        let analyze_ms = t.elapsed().as_secs_f64() * 1e3;
        // Key generation alone (what a node, after a restart, redoes from the model file): the
        // analysis's keys are dropped first and the node keeps the proving key only; the proofs
        // below use these regenerated keys. A verifier then derives its own (verifying-only)
        // keys from the model file, as `vouch verify --model` does: prover and verifier are
        // different parties, each holding one key.
        rss("analysed");
        drop(keys);
        rss("dropped");
        let t = Instant::now();
        let keys = vouch_zk::ZkKeys::generate_prover(&bytes, &info.config)?;
        let keygen_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(
            keys.vk_digest(),
            info.vk_digest,
            "key generation is deterministic"
        );
        rss("keygen");
        let receipt = Digest::of(b"bench receipt");
        // Reset the peak-RSS mark (Linux: writing 5 to clear_refs) so the proving phase is measured alone.
        let rss_before_prove = peak_rss_kb();
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let mut prove_ms = vec![];
        let mut proof = None;
        for _ in 0..reps {
            let t = Instant::now();
            let p = vouch_zk::prove(&keys, &inputs, &receipt, &mut |_| false)?;
            prove_ms.push(t.elapsed().as_secs_f64() * 1e3);
            rss("proved");
            proof = Some(p);
        }
        let proof = proof.ok_or("no proof")?;
        let prove_peak_kb = peak_rss_kb();
        drop(keys);
        let diff_ref = reference
            .as_ref()
            .map(|r| vouch_zk::max_abs_diff(&proof.outputs, r))
            .transpose()?;
        let t = Instant::now();
        let keys = vouch_zk::ZkKeys::generate_verifier(&bytes, &info.config)?;
        let verifier_keygen_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(keys.vk_digest(), info.vk_digest);
        // Verification of the raw proof with cached keys (the receipt check needs a Receipt; the
        // bench measures the SNARK verify via the library's test hook).
        let mut verify_ms = vec![];
        for _ in 0..reps {
            let t = Instant::now();
            vouch_zk::verify_statement(&proof.evidence, &keys, &receipt)?;
            verify_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        rss("verified");
        prove_ms.sort_by(f64::total_cmp);
        verify_ms.sort_by(f64::total_cmp);
        let out = serde_json::json!({
            "model": a,
            "params": info.params,
            "macs": info.macs,
            "scale_bits": info.config.quant.act_bits,
            "table_bits": info.config.quant.table_bits,
            "stats": info.stats,
            "estimate": info.estimate,
            "analyze_ms": analyze_ms,
            "keygen_ms": keygen_ms,
            "verifier_keygen_ms": verifier_keygen_ms,
            "prove_ms_median": prove_ms[prove_ms.len() / 2],
            "prove_ms_all": prove_ms,
            "verify_ms_median": verify_ms[verify_ms.len() / 2],
            "proof_bytes": proof.evidence.proof_len(),
            "vk_bytes": info.vk_bytes,
            "calibration_max_abs_err": info.calibration_max_abs_err,
            "max_abs_err_vs_reference": diff_ref,
            "peak_rss_mb": peak_rss_kb().max(rss_before_prove) as f64 / 1024.0,
            "prove_peak_rss_mb": prove_peak_kb as f64 / 1024.0,
            "analyze_peak_rss_mb": rss_before_prove as f64 / 1024.0,
        });
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}
