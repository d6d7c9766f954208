//! Batched decoding on SmolLM2: sequences that run together through the model's batcher
//! generate exactly the tokens each generates alone (greedy and sampled), a cancelled one
//! leaves the others unaffected, and a prompt longer than the context is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};

use vouch_llm::{
    FinishReason, GenerateRequest, Generation, LlmError, LoadedLlm, Message, Profile, Role,
    SamplingParams, generate, generate_batched,
};

fn loaded() -> Option<Arc<LoadedLlm>> {
    static MODEL: OnceLock<Arc<LoadedLlm>> = OnceLock::new();
    let path = common::smollm2()?;
    Some(Arc::clone(
        MODEL.get_or_init(|| Arc::new(LoadedLlm::load(&path).unwrap())),
    ))
}

fn request(
    model: &LoadedLlm,
    question: &str,
    max_tokens: u32,
    seed: Option<u64>,
) -> GenerateRequest {
    let (_, prompt_tokens) = model
        .chat_prompt(&[Message::new(Role::User, question)], true)
        .unwrap();
    GenerateRequest {
        prompt_tokens,
        max_tokens,
        sampling: match seed {
            None => SamplingParams::greedy(),
            Some(seed) => SamplingParams {
                temperature: 0.9,
                top_p: 0.95,
                top_k: 0,
                seed,
            },
        },
        stop: vec![],
    }
}

fn alone(model: &Arc<LoadedLlm>, request: &GenerateRequest) -> Generation {
    let mut session = model.session(Profile::Deterministic).unwrap();
    generate(&mut session, request, &|| false, &mut |_| {}).unwrap()
}

/// Runs the requests at once through the batcher, each on its own thread; `cancel_after[i]`
/// cancels request i after that many tokens.
fn together(
    model: &Arc<LoadedLlm>,
    profile: Profile,
    requests: &[GenerateRequest],
    cancel_after: &[Option<usize>],
) -> Vec<Generation> {
    let start = Arc::new(Barrier::new(requests.len()));
    let handles: Vec<_> = requests
        .iter()
        .cloned()
        .zip(cancel_after.iter().copied())
        .map(|(request, cancel)| {
            let (model, start) = (Arc::clone(model), Arc::clone(&start));
            std::thread::spawn(move || {
                let seen = AtomicUsize::new(0);
                start.wait();
                generate_batched(
                    &model,
                    profile,
                    &request,
                    &|| cancel.is_some_and(|n| seen.load(Ordering::SeqCst) >= n),
                    &mut |_| {
                        seen.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn three(model: &LoadedLlm) -> Vec<GenerateRequest> {
    vec![
        request(model, "What is the capital of France?", 24, None),
        request(model, "Write a short poem about the sea.", 24, Some(1234)),
        request(model, "Name three colors.", 24, Some(99)),
    ]
}

#[test]
fn three_sequences_in_one_batch_generate_what_each_generates_alone() {
    let Some(model) = loaded() else { return };
    let requests = three(&model);
    let solo: Vec<_> = requests.iter().map(|r| alone(&model, r)).collect();
    for profile in [Profile::Deterministic, Profile::Fast] {
        let batched = together(&model, profile, &requests, &[None, None, None]);
        for (i, (a, b)) in solo.iter().zip(&batched).enumerate() {
            assert_eq!(
                a.completion_tokens, b.completion_tokens,
                "{profile:?}, request {i}: alone vs in a batch"
            );
            assert_eq!(a.text, b.text);
        }
        let batcher = model.batcher(profile).unwrap();
        eprintln!(
            "{profile:?}: {} kernel thread(s), largest decode batch {}; {:?}",
            batcher.threads(),
            batcher.largest_batch(),
            batched.iter().map(|g| g.text.as_str()).collect::<Vec<_>>()
        );
        assert!(
            batcher.largest_batch() >= 2,
            "the sequences never shared a step"
        );
        // What each generation reports (the receipt's `engine.profile.batch`): a sequence that
        // shared a step says so, and none claims more than the batcher ever carried.
        assert!(
            batched.iter().any(|g| g.batch >= 2),
            "no sequence says it shared a step"
        );
        assert!(batched.iter().all(|g| g.batch <= batcher.largest_batch()));
        assert!(solo.iter().all(|g| g.batch == 1));
    }
}

#[test]
fn a_cancelled_sequence_leaves_the_others_unaffected() {
    let Some(model) = loaded() else { return };
    let requests = three(&model);
    let solo: Vec<_> = requests.iter().map(|r| alone(&model, r)).collect();
    let batched = together(
        &model,
        Profile::Deterministic,
        &requests,
        &[None, Some(3), None],
    );
    assert_eq!(batched[1].finish_reason, FinishReason::Cancelled);
    assert_eq!(batched[1].completion_tokens, solo[1].completion_tokens[..3]);
    for i in [0, 2] {
        assert_eq!(
            batched[i].completion_tokens, solo[i].completion_tokens,
            "request {i}"
        );
    }
}

#[test]
fn a_prompt_longer_than_the_context_is_refused_by_the_batcher() {
    let Some(model) = loaded() else { return };
    let long = "word ".repeat(9000);
    let (_, prompt_tokens) = model
        .chat_prompt(&[Message::new(Role::User, long)], true)
        .unwrap();
    assert!(prompt_tokens.len() > model.context_length());
    let request = GenerateRequest {
        prompt_tokens,
        max_tokens: 4,
        sampling: SamplingParams::greedy(),
        stop: vec![],
    };
    let err = generate_batched(
        &model,
        Profile::Deterministic,
        &request,
        &|| false,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::PromptTooLong {
                context_length: 8192,
                ..
            }
        ),
        "{err}"
    );
}
