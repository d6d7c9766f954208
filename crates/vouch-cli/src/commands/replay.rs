//! `vouch replay`: independent verification by re-execution. Runs the model here and compares
//! with what the receipt vouches for: bit-exact when the receipt claims a deterministic run on
//! the same engine and version, within a stated tolerance otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use vouch_core::{Bundle, ModelDigest, TensorMap};
use vouch_exec::ort_engine::OrtEngine;
use vouch_exec::tract_engine::TractEngine;
use vouch_exec::{Engine, EngineKind};

use crate::files::read_json;

#[derive(clap::Args)]
pub struct Args {
    /// A receipt bundle, or a chat bundle / chat completion (its bundle in `vouch`).
    bundle: PathBuf,
    /// The model file: ONNX, or the GGUF of a chat.
    #[arg(long)]
    model: PathBuf,
    /// The inputs you sent (ONNX bundles).
    #[arg(long, required = false)]
    inputs: Option<PathBuf>,
    /// Allowed |local - vouched| per element, plus `rtol` × |vouched|, when bit-exactness is not promised.
    #[arg(long, default_value_t = 1e-4)]
    atol: f64,
    #[arg(long, default_value_t = 1e-4)]
    rtol: f64,
    /// Engine to replay with: `same` (the receipt's, if available here), `tract` or `onnxruntime`.
    #[arg(long, default_value = "same")]
    engine: String,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let raw: serde_json::Value = read_json(&a.bundle, "receipt bundle")?;
    let chat = match raw.get("vouch") {
        Some(inner) if raw.get("choices").is_some() => Some(inner.clone()),
        _ => (raw.get("format").and_then(|f| f.as_str())
            == Some(vouch_core::chat::CHAT_BUNDLE_FORMAT))
        .then(|| raw.clone()),
    };
    if let Some(chat) = chat {
        let bundle: vouch_core::chat::ChatBundle =
            serde_json::from_value(chat).context("chat bundle")?;
        return super::replay_chat::run(&bundle, &a.model);
    }
    let Some(inputs_path) = &a.inputs else {
        bail!("--inputs is needed to replay an ONNX receipt: the inputs you sent");
    };
    let bundle: Bundle = serde_json::from_value(raw).context("receipt bundle")?;
    let r = &bundle.receipt;
    let model =
        std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let inputs: TensorMap = read_json(inputs_path, "inputs file")?;
    let fail = |msg: String| -> anyhow::Result<ExitCode> {
        eprintln!("FAILED: {msg}");
        Ok(ExitCode::from(2))
    };
    if ModelDigest::of_model_bytes(&model) != r.model {
        return fail(format!(
            "{} is not the model the receipt names ({})",
            a.model.display(),
            r.model
        ));
    }
    if inputs.digest() != r.input_digest {
        return fail(format!(
            "{} are not the inputs the receipt names ({})",
            inputs_path.display(),
            r.input_digest
        ));
    }
    let vouched = match &bundle.outputs {
        Some(o) if o.digest() == r.output_digest => o,
        Some(_) => {
            return fail("the bundle's outputs do not match its receipt's output digest".into());
        }
        None => bail!("the bundle carries no outputs to compare with"),
    };

    let wanted = match a.engine.as_str() {
        "same" => EngineKind::parse(&r.engine.name).unwrap_or(EngineKind::Tract),
        other => EngineKind::parse(other).with_context(|| format!("unknown engine {other:?}"))?,
    };
    let engine: Box<dyn Engine> = match wanted {
        EngineKind::Tract => Box::new(TractEngine),
        EngineKind::OnnxRuntime => match vouch_node::node::ort_dylib_path(None).map(|p| {
            OrtEngine::load(
                &p,
                r.engine.profile.threads.max(1) as usize,
                vouch_exec::run_control::DEFAULT_RUN_MEMORY,
            )
        }) {
            Some(Ok(e)) => Box::new(e),
            _ => {
                eprintln!(
                    "note: ONNX Runtime is not available here; replaying with tract (tolerance applies)"
                );
                Box::new(TractEngine)
            }
        },
    };
    let loaded = engine.load(&model)?;
    vouch_exec::engine::check_inputs(loaded.signature(), &inputs)?;
    let local = loaded.run(&inputs)?;

    let same_engine =
        engine.kind().as_str() == r.engine.name && engine.version() == r.engine.version;
    println!(
        "replayed with {} {} (receipt: {} {}, deterministic: {}, batch {})",
        engine.kind(),
        engine.version(),
        r.engine.name,
        r.engine.version,
        r.engine.profile.deterministic,
        r.engine.profile.batch
    );
    if same_engine && r.engine.profile.deterministic {
        if local.digest() == r.output_digest {
            println!(
                "OK: bit-exact — the model on these inputs gives exactly the vouched outputs ({})",
                r.output_digest
            );
            return Ok(ExitCode::SUCCESS);
        }
        return fail(format!(
            "the receipt promises a deterministic {} {} run, but re-execution gives {} instead of {}",
            r.engine.name,
            r.engine.version,
            local.digest(),
            r.output_digest
        ));
    }
    let mut worst = (0f64, String::new());
    for (name, v) in vouched.iter() {
        let Some(l) = local.get(name) else {
            return fail(format!("local run has no output {name:?}"));
        };
        if l.shape() != v.shape() || l.dtype() != v.dtype() {
            return fail(format!(
                "output {name:?}: local {} {:?} vs vouched {} {:?}",
                l.dtype(),
                l.shape(),
                v.dtype(),
                v.shape()
            ));
        }
        for (i, (x, y)) in l
            .data()
            .to_f64_vec()
            .into_iter()
            .zip(v.data().to_f64_vec())
            .enumerate()
        {
            let excess = (x - y).abs() - (a.atol + a.rtol * y.abs());
            if excess > 0.0 || x.is_nan() != y.is_nan() {
                return fail(format!(
                    "output {name:?} element {i}: local {x} vs vouched {y} (beyond atol {} + rtol {})",
                    a.atol, a.rtol
                ));
            }
            let d = (x - y).abs();
            if d > worst.0 {
                worst = (d, name.clone());
            }
        }
    }
    println!(
        "OK: within tolerance (atol {}, rtol {}); largest difference {:.3e}{}",
        a.atol,
        a.rtol,
        worst.0,
        if worst.1.is_empty() {
            String::new()
        } else {
            format!(" in {:?}", worst.1)
        }
    );
    Ok(ExitCode::SUCCESS)
}
