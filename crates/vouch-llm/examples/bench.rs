//! The engine's figures for BENCHMARKS.md ("LLM chat"), as one JSON object on stdout:
//! decode tokens/s of one stream, time to first token of a 128-token prompt, aggregate
//! tokens/s of 8 concurrent streams through the batcher ÷ one, and RSS with the model loaded.
//! `scripts/bench_llm.py` runs it beside llama.cpp on the same file and prompt ids.
//!
//!     cargo build --release -p vouch-llm --example bench
//!     target/release/examples/bench MODEL.gguf THREADS [decode_tokens]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use vouch_llm::{GenerateRequest, LoadedLlm, Message, Profile, Role, SamplingParams};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn argmax(logits: &[f32]) -> u32 {
    vouch_llm::sampler::argmax(logits)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench MODEL.gguf THREADS [decode_tokens]";
    let path = PathBuf::from(args.next().ok_or(usage)?);
    let threads: usize = args.next().ok_or(usage)?.parse()?;
    let decode_tokens: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    // The profile's thread count is rayon's global pool for `fast`.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;
    let profile = if threads == 1 {
        Profile::Deterministic
    } else {
        Profile::Fast
    };

    let rss_before = rss_bytes();
    let start = Instant::now();
    let model = Arc::new(LoadedLlm::load(&path)?);
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let rss_loaded = rss_bytes();
    let file_bytes = std::fs::metadata(&path)?.len();

    // A 128-token prompt: a chat turn's ids, cut or padded with the text's own tokens.
    let text = "Tell me a long story about a lighthouse keeper who finds a message in a bottle, \
                the storm that follows, the village that doubts her, and what she learns about \
                the sea, the ships that pass at night, and the people who wait for them on shore. \
                Describe the light, the stairs, the salt on the windows and the sound of the bell.";
    let (_, mut prompt) = model.chat_prompt(&[Message::new(Role::User, text)], true)?;
    let filler = model.tokenizer().encode(text)?;
    while prompt.len() < 128 {
        prompt.insert(prompt.len() / 2, filler[prompt.len() % filler.len()]);
    }
    prompt.truncate(128);

    // Time to first token: prompt in, first token out, on a fresh session (best of 3).
    let mut ttft_ms = f64::MAX;
    let mut first = 0;
    for _ in 0..3 {
        let mut session = model.session(profile)?;
        let t = Instant::now();
        first = argmax(&session.feed(&prompt)?);
        ttft_ms = ttft_ms.min(t.elapsed().as_secs_f64() * 1e3);
    }

    // Decode, one stream: greedy, end tokens ignored, as llama.cpp's `ignore_eos`.
    let mut session = model.session(profile)?;
    let mut next = argmax(&session.feed(&prompt)?);
    let t = Instant::now();
    let mut decoded = Vec::with_capacity(decode_tokens);
    for _ in 0..decode_tokens {
        decoded.push(next);
        next = argmax(&session.feed(&[next])?);
    }
    let decode_tps = decode_tokens as f64 / t.elapsed().as_secs_f64();
    let kv_bytes = session.kv_cache_bytes();
    let rss_decoding = rss_bytes();
    drop(session);

    // Streams through the batcher: one alone, then 8 at once (each its own thread, as the
    // node's chats are), 64 tokens each; aggregate = all completion tokens ÷ wall time.
    let stream_tokens = 64u32;
    let questions = [
        "Write a story about a dragon.",
        "Explain how a bicycle works.",
        "Describe a day at the beach.",
        "Write a letter to a friend about autumn.",
        "Explain photosynthesis to a child.",
        "Tell me about the history of bread.",
        "Describe a city at night.",
        "Write a poem about mountains.",
    ];
    let requests: Vec<GenerateRequest> = questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let (_, prompt_tokens) = model
                .chat_prompt(&[Message::new(Role::User, *q)], true)
                .expect("prompt");
            GenerateRequest {
                prompt_tokens,
                max_tokens: stream_tokens,
                // Sampled, so that no stream ends early on an end token by chance of greedy.
                sampling: SamplingParams {
                    temperature: 0.8,
                    top_p: 0.95,
                    top_k: 0,
                    seed: i as u64,
                },
                stop: vec![],
            }
        })
        .collect();
    let run = |requests: &[GenerateRequest]| -> (u64, f64) {
        let t = Instant::now();
        let handles: Vec<_> = requests
            .iter()
            .cloned()
            .map(|r| {
                let model = Arc::clone(&model);
                std::thread::spawn(move || {
                    vouch_llm::generate_batched(&model, profile, &r, &|| false, &mut |_| {})
                        .map(|g| g.usage.completion_tokens as u64)
                        .unwrap_or(0)
                })
            })
            .collect();
        let tokens: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        (tokens, t.elapsed().as_secs_f64())
    };
    let (one_tokens, one_s) = run(&requests[..1]);
    let (all_tokens, all_s) = run(&requests);
    let one_tps = one_tokens as f64 / one_s;
    let all_tps = all_tokens as f64 / all_s;
    let batcher = model.batcher(profile)?;

    println!(
        "{}",
        serde_json::json!({
            "engine": vouch_llm::EngineId::current().describe(),
            "threads": threads,
            "load_ms": load_ms,
            "prompt_tokens": prompt.len(),
            "prompt_ids": prompt,
            "stream_prompts": requests.iter().map(|r| r.prompt_tokens.clone()).collect::<Vec<_>>(),
            "stream_tokens": stream_tokens,
            "first_token": first,
            "ttft_ms": ttft_ms,
            "decode_tokens": decode_tokens,
            "decode_tokens_per_s": decode_tps,
            "decoded": decoded,
            "stream_one_tokens_per_s": one_tps,
            "streams_8_tokens_per_s": all_tps,
            "streams_8_tokens": all_tokens,
            "streams_ratio": all_tps / one_tps,
            "largest_batch": batcher.largest_batch(),
            "file_bytes": file_bytes,
            "weight_bytes": model.weight_bytes(),
            "rss_before_load": rss_before,
            "rss_loaded": rss_loaded,
            "rss_decoding": rss_decoding,
            "kv_bytes_after_decode": kv_bytes,
            "rss_loaded_over_file": rss_loaded as f64 / file_bytes as f64,
            "rss_decoding_over_file_plus_kv": rss_decoding as f64 / (file_bytes + kv_bytes) as f64,
        })
    );
    Ok(())
}
