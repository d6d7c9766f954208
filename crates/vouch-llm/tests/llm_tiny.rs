//! The other architectures on tiny random-weight GGUFs (models/llm/make_tiny_gguf.py, written
//! by tests/setup/llm.sh): load, facts, tokenizer and greedy tokens against llama.cpp on the
//! same file, seeded replay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use serde_json::json;
use vouch_llm::{
    Architecture, FinishReason, GenerateRequest, LoadedLlm, Message, Profile, Role, SamplingParams,
    generate,
};

const ARCHES: [(&str, Architecture); 4] = [
    ("qwen2", Architecture::Qwen2),
    ("qwen3", Architecture::Qwen3),
    ("phi3", Architecture::Phi3),
    ("gemma3", Architecture::Gemma3),
];

fn tiny(arch: &str) -> Option<(std::path::PathBuf, Arc<LoadedLlm>)> {
    let path = common::model(&format!("llm-tiny/tiny-{arch}.gguf"))?;
    let model = Arc::new(LoadedLlm::load(&path).unwrap());
    Some((path, model))
}

fn messages() -> Vec<Message> {
    vec![
        Message::new(Role::System, "be brief"),
        Message::new(Role::User, "what is the capital of france? 42"),
    ]
}

fn greedy(model: &Arc<LoadedLlm>, prompt_tokens: Vec<u32>, n: u32) -> Vec<u32> {
    let mut session = model.session(Profile::Deterministic).unwrap();
    let request = GenerateRequest {
        prompt_tokens,
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        stop: vec![],
    };
    generate(&mut session, &request, &|| false, &mut |_| {})
        .unwrap()
        .completion_tokens
}

#[test]
fn facts_of_each_architecture() {
    for (name, arch) in ARCHES {
        let Some((_, model)) = tiny(name) else { return };
        let f = model.facts();
        assert_eq!(f.architecture, arch, "{name}");
        assert_eq!(f.quantization, "Q8_0", "{name}");
        assert_eq!(
            (f.context_length, f.embedding_length, f.block_count),
            (256, 64, 2),
            "{name}"
        );
        assert_eq!(
            (f.head_count, f.head_count_kv, f.head_dim),
            (4, 2, 16),
            "{name}"
        );
        assert_eq!(f.tensor_bytes_by_type.len(), 2, "{name}: F32 and Q8_0");
        assert!(f.chat_template.is_some(), "{name}");
        let tokenizer = if matches!(arch, Architecture::Phi3 | Architecture::Gemma3) {
            "llama"
        } else {
            "gpt2"
        };
        assert_eq!(f.tokenizer_model, tokenizer, "{name}");
        assert_eq!(model.context_length(), 256, "{name}");
    }
}

#[test]
fn tokenizers_and_greedy_tokens_match_llama_cpp() {
    let texts = [
        "hello world, the capital of france",
        "the quick brown fox 3.14 and 42!",
        "  two  spaces\nand a newline; unknown: é ü 日本",
    ];
    for (name, _) in ARCHES {
        let Some((path, model)) = tiny(name) else {
            return;
        };
        let (_, prompt) = model.chat_prompt(&messages(), true).unwrap();
        let ours = greedy(&model, prompt.clone(), 16);
        let request = json!({
            "model": path,
            "tokenize": texts,
            "complete": [{"prompt_ids": prompt, "n_predict": 16}],
            "chat": [messages()],
        });
        if name == "phi3" {
            // llama.cpp (xllamacpp 2026.10.11549) refuses this file while loading its
            // vocabulary ("_Map_base::at"), with a SentencePiece or a byte-level vocabulary
            // alike; the same vocabulary loads under gemma3. Not compared: see docs/llm.md.
            eprintln!(
                "phi3: not compared with llama.cpp (it refuses the tiny phi3 file); ours: {ours:?}"
            );
            continue;
        }
        let Some(reference) = common::python_reference("llamacpp_ref.py", &request) else {
            return;
        };
        for (i, text) in texts.iter().enumerate() {
            let theirs: Vec<u32> =
                serde_json::from_value(reference["tokenize"][i].clone()).unwrap();
            assert_eq!(
                model.tokenizer().encode(text).unwrap(),
                theirs,
                "{name}: token ids of {text:?}"
            );
        }
        let theirs: Vec<u32> =
            serde_json::from_value(reference["complete"][0]["tokens"].clone()).unwrap();
        assert_eq!(ours, theirs, "{name}: greedy tokens, ours vs llama.cpp");
        eprintln!("{name}: 16 greedy tokens equal to llama.cpp's");
    }
}

/// llama.cpp refuses the tiny phi3 file, so phi3 is checked against an independent numpy
/// forward pass over `gguf`'s reader (tests/interop/llm/numpy_phi3_ref.py): the first
/// logits agree to within the Q8_0 activation rounding candle does and numpy does not, and
/// the 16 greedy tokens are equal.
#[test]
fn phi3_matches_a_numpy_reference() {
    let Some((path, model)) = tiny("phi3") else {
        return;
    };
    let (_, prompt) = model.chat_prompt(&messages(), true).unwrap();
    let ours = greedy(&model, prompt.clone(), 16);
    let mut session = model.session(Profile::Deterministic).unwrap();
    let logits = session.feed(&prompt).unwrap();
    let Some(reference) = common::python_reference(
        "numpy_phi3_ref.py",
        &json!({"model": path, "prompt_ids": prompt, "n_predict": 16}),
    ) else {
        return;
    };
    let theirs: Vec<f64> = serde_json::from_value(reference["first_logits"].clone()).unwrap();
    assert_eq!(theirs.len(), logits.len());
    let worst = logits
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    let spread = theirs.iter().cloned().fold(f64::MIN, f64::max)
        - theirs.iter().cloned().fold(f64::MAX, f64::min);
    eprintln!("phi3: first logits within {worst:.2e} of numpy's (spread {spread:.1})");
    assert!(
        worst < 0.02 * spread,
        "phi3 logits differ from numpy's by up to {worst}"
    );
    let tokens: Vec<u32> = serde_json::from_value(reference["tokens"].clone()).unwrap();
    assert_eq!(ours, tokens, "phi3 greedy tokens, ours vs numpy");
}

#[test]
fn sampled_generation_replays_on_every_architecture() {
    let sampling = SamplingParams {
        temperature: 1.0,
        top_p: 0.9,
        top_k: 40,
        seed: 7,
    };
    for (name, _) in ARCHES {
        let Some((_, model)) = tiny(name) else { return };
        let (_, prompt_tokens) = model.chat_prompt(&messages(), true).unwrap();
        let run = || {
            let mut session = model.session(Profile::Deterministic).unwrap();
            let request = GenerateRequest {
                prompt_tokens: prompt_tokens.clone(),
                max_tokens: 20,
                sampling,
                stop: vec![],
            };
            generate(&mut session, &request, &|| false, &mut |_| {}).unwrap()
        };
        let (a, b) = (run(), run());
        assert_eq!(a.completion_tokens, b.completion_tokens, "{name}");
        assert!(
            matches!(a.finish_reason, FinishReason::Length | FinishReason::Stop),
            "{name}"
        );
    }
}

/// Sessions share the weights and own their caches: two qwen2 sessions (candle's qwen2 could
/// run one at a time) hold prompts side by side and each continues as a fresh one does.
#[test]
fn sessions_of_one_model_run_side_by_side() {
    let Some((_, model)) = tiny("qwen2") else {
        return;
    };
    let (_, prompt) = model.chat_prompt(&messages(), true).unwrap();
    let first = greedy(&model, prompt.clone(), 8);
    let mut a = model.session(Profile::Deterministic).unwrap();
    let mut b = model.session(Profile::Deterministic).unwrap();
    let la = a.feed(&prompt).unwrap();
    let lb = b.feed(&prompt[..prompt.len() - 1]).unwrap();
    assert_ne!(la, lb, "different prompts, different logits");
    let lb = b.feed(&prompt[prompt.len() - 1..]).unwrap();
    assert_eq!(
        la, lb,
        "the same prompt in one feed or two: the same logits"
    );
    assert_eq!(greedy(&model, prompt, 8), first);
}

#[test]
fn the_context_fills_and_generation_ends_with_length() {
    let Some((_, model)) = tiny("qwen3") else {
        return;
    };
    let prompt: Vec<u32> = (0..250).map(|i| 10 + (i % 200)).collect();
    let mut session = model.session(Profile::Deterministic).unwrap();
    let request = GenerateRequest {
        prompt_tokens: prompt,
        max_tokens: 100,
        sampling: SamplingParams::greedy(),
        stop: vec![],
    };
    let out = generate(&mut session, &request, &|| false, &mut |_| {}).unwrap();
    if out.finish_reason == FinishReason::Length {
        assert!(out.usage.total_tokens <= 256, "{:?}", out.usage);
    }
    // 2 layers × (K + V) × 2 KV heads × 16 × 4 bytes = 512 bytes per position.
    assert_eq!(session.kv_cache_bytes(), 512 * session.position() as u64);
}
