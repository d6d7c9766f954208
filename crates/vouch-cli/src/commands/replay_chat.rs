//! `vouch replay` for a chat bundle: regenerates the answer from the committed prompt tokens
//! with the receipt's sampling and seed on the weights file given, and compares token for
//! token. Bit-exact is promised when the receipt says the deterministic profile ran on the same
//! engine (candle version, vouch-llm version, kernels, CPU features: `docs/llm.md`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use vouch_core::chat::{ChatBundle, FinishReason, tokens_digest};
use vouch_llm::{EngineId, GenerateRequest, LoadedLlm, Profile, SamplingParams};

pub fn run(bundle: &ChatBundle, model: &Path) -> anyhow::Result<ExitCode> {
    let r = &bundle.receipt;
    let fail = |msg: String| -> anyhow::Result<ExitCode> {
        eprintln!("FAILED: {msg}");
        Ok(ExitCode::from(2))
    };
    if r.is_gateway() {
        return fail(format!(
            "this answer was generated {} — there are no weights to replay it with",
            r.executed_by.as_deref().unwrap_or("upstream")
        ));
    }
    let (Some(prompt), Some(vouched)) = (&bundle.prompt_tokens, &bundle.completion_tokens) else {
        return fail("the bundle carries no token ids to replay".into());
    };
    if Some(tokens_digest(prompt).map_err(anyhow::Error::msg)?) != r.prompt_tokens_digest
        || Some(tokens_digest(vouched).map_err(anyhow::Error::msg)?) != r.completion_tokens_digest
    {
        return fail("the bundle's token ids do not match its receipt's token digests".into());
    }
    let llm = LoadedLlm::load(model).with_context(|| format!("loading {}", model.display()))?;
    if llm.digest() != r.model {
        return fail(format!(
            "{} is not the model the receipt names ({})",
            model.display(),
            r.model
        ));
    }
    let seed = r
        .sampling
        .seed
        .map(|s| s.0)
        .context("the receipt records no seed")?;
    let request = GenerateRequest {
        prompt_tokens: prompt.clone(),
        max_tokens: r.sampling.max_tokens,
        sampling: SamplingParams {
            temperature: r.sampling.temperature.get(),
            top_p: r.sampling.top_p.get(),
            top_k: 0,
            seed,
        },
        stop: r.sampling.stop.clone(),
    };
    let llm = Arc::new(llm);
    let mut session = llm.session(Profile::Deterministic)?;
    // A cancelled answer stopped where the caller left: replay exactly that many tokens.
    let cancelled = r.finish_reason == FinishReason::Cancelled;
    let limit = vouched.len();
    let produced = std::cell::Cell::new(0usize);
    let local = vouch_llm::generate(
        &mut session,
        &request,
        &|| cancelled && produced.get() >= limit,
        &mut |_| produced.set(produced.get() + 1),
    )?;
    let here = EngineId::current().describe();
    println!(
        "replayed with {here} (receipt: {} {}, deterministic: {})",
        r.engine.name, r.engine.version, r.engine.profile.deterministic
    );
    let same_engine = r.engine.version == here;
    match local
        .completion_tokens
        .iter()
        .zip(vouched)
        .position(|(a, b)| a != b)
    {
        None if local.completion_tokens.len() == vouched.len() => {
            println!(
                "OK: bit-exact — the model, prompt and seed regenerate the {} vouched tokens",
                vouched.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        diverged => {
            let at = diverged.unwrap_or(local.completion_tokens.len().min(vouched.len()));
            let why = if same_engine && r.engine.profile.deterministic {
                "the receipt promises a deterministic run on this engine"
            } else {
                "the receipt's run was not on this engine or not deterministic, so last-bit differences can fork the tokens"
            };
            fail(format!(
                "the tokens differ from position {at} ({} here, {} vouched): {why}",
                local.completion_tokens.len(),
                vouched.len()
            ))
        }
    }
}
