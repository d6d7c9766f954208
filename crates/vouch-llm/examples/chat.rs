//! One chat turn on a GGUF, streamed, with the facts and timings.
//!
//!     cargo run --release -p vouch-llm --example chat -- MODEL.gguf "Your question" [max_tokens] [temperature] [seed] [fast]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use vouch_llm::{
    EngineId, GenerateRequest, LoadedLlm, Message, Profile, Role, SamplingParams, generate,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: chat MODEL.gguf QUESTION [max_tokens] [temperature] [seed] [fast]";
    let path = PathBuf::from(args.next().ok_or(usage)?);
    let question = args.next().ok_or(usage)?;
    let max_tokens: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let temperature: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0.0);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let profile = match args.next().as_deref() {
        Some("fast") => Profile::Fast,
        _ => Profile::Deterministic,
    };

    let start = Instant::now();
    let model = Arc::new(LoadedLlm::load(&path)?);
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let facts = model.facts();
    eprintln!(
        "{} — {:?} {} | {} parameters | context {} (served {}) | vocab {} | loaded in {load_ms:.0} ms | {}",
        model.digest(),
        facts.architecture,
        facts.quantization,
        facts.parameter_count,
        facts.context_length,
        model.context_length(),
        facts.vocab_size,
        EngineId::current().describe()
    );
    let (_, prompt_tokens) = model.chat_prompt(&[Message::new(Role::User, question)], true)?;
    let mut session = model.session(profile)?;
    let request = GenerateRequest {
        prompt_tokens,
        max_tokens,
        sampling: SamplingParams {
            temperature,
            top_p: if temperature > 0.0 { 0.95 } else { 1.0 },
            top_k: 0,
            seed,
        },
        stop: vec![],
    };
    let mut stdout = std::io::stdout();
    let out = generate(&mut session, &request, &|| false, &mut |event| {
        let _ = stdout.write_all(event.text.as_bytes());
        let _ = stdout.flush();
    })?;
    println!("{}", &out.text[out.streamed_bytes..]);
    eprintln!(
        "{:?} | {} prompt + {} completion tokens | prefill {:.0} ms ({:.1} tokens/s) | decode {:.1} tokens/s | {:?}, {} thread(s) | KV cache {} KB",
        out.finish_reason,
        out.usage.prompt_tokens,
        out.usage.completion_tokens,
        out.timings.prefill_ms,
        out.usage.prompt_tokens as f64 / (out.timings.prefill_ms / 1e3),
        out.timings.decode_tokens_per_second,
        out.profile,
        out.threads,
        session.kv_cache_bytes() / 1024
    );
    Ok(())
}
