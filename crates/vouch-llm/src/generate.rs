//! The generation loop: prompt tokens in, tokens out until an end token, a stop string,
//! `max_tokens`, the end of the context, or cancellation.
//!
//! Text is streamed through `on_token` as it becomes final: a token that ends inside a UTF-8
//! character contributes its bytes only once the character is complete, and text that could
//! still turn out to be the start of a stop string is held back until it cannot.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::model::{LoadedLlm, Session};
use crate::profile::Profile;
use crate::sampler::{Sampler, SamplingParams};

/// Most tokens one generation may ask for, whatever the context.
pub const MAX_TOKENS_LIMIT: u32 = 32_768;
/// Most stop strings, and longest one (bytes).
pub const MAX_STOP_STRINGS: usize = 8;
pub const MAX_STOP_STRING_BYTES: usize = 256;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The prompt, already rendered and tokenized (see `LoadedLlm::chat_prompt`).
    pub prompt_tokens: Vec<u32>,
    /// At most this many completion tokens (1..=[`MAX_TOKENS_LIMIT`]); fewer if the context
    /// fills first.
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    /// Generation stops before the first occurrence of any of these in the text.
    pub stop: Vec<String>,
}

/// Why generation ended (OpenAI's `finish_reason`, plus `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
    /// The caller's cancel check said so.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Completion tokens per second of decoding (after the first token).
    pub decode_tokens_per_second: f64,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    /// Every generated token, the end token included when there was one.
    pub completion_tokens: Vec<u32>,
    /// The completion's text (end and control tokens add none; cut before a stop string).
    pub text: String,
    /// How many bytes of `text` went out through `on_token`. The deltas add up to
    /// `text[..streamed_bytes]`; the rest (held back as a possible stop string, or an
    /// incomplete character, when generation ended) is the stream's last chunk.
    pub streamed_bytes: usize,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub sampling: SamplingParams,
    pub profile: Profile,
    pub threads: usize,
    /// The most sequences one engine step of this generation carried (1: it ran alone). With
    /// batch-invariant kernels it changes no token; the receipt states it all the same.
    pub batch: usize,
    pub timings: Timings,
}

/// One generated token, as streamed.
#[derive(Debug, Clone, Copy)]
pub struct TokenEvent<'a> {
    pub id: u32,
    /// Text that became final with this token (may be empty).
    pub text: &'a str,
}

/// Turns a byte stream into text, holding back an incomplete trailing UTF-8 character.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // valid_up_to bytes are UTF-8 by definition.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, out: &mut String) {
        out.push_str(&String::from_utf8_lossy(&self.pending));
        self.pending.clear();
    }
}

/// Bytes at the end of `text` that could begin a stop string (so must not be sent yet).
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for stop in stops {
        for len in (1..stop.len()).rev() {
            if len <= hold {
                break;
            }
            if text.len() >= len
                && text.is_char_boundary(text.len() - len)
                && stop
                    .as_bytes()
                    .starts_with(&text.as_bytes()[text.len() - len..])
            {
                hold = len;
                break;
            }
        }
    }
    hold
}

impl GenerateRequest {
    pub fn validate(&self, context_length: usize) -> Result<(), LlmError> {
        if self.prompt_tokens.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        if self.prompt_tokens.len() >= context_length {
            return Err(LlmError::PromptTooLong {
                prompt_tokens: self.prompt_tokens.len(),
                context_length,
            });
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_TOKENS_LIMIT {
            return Err(LlmError::BadParameter {
                name: "max_tokens",
                why: format!("{} is not in 1..={MAX_TOKENS_LIMIT}", self.max_tokens),
            });
        }
        if self.stop.len() > MAX_STOP_STRINGS
            || self
                .stop
                .iter()
                .any(|s| s.is_empty() || s.len() > MAX_STOP_STRING_BYTES)
        {
            return Err(LlmError::BadParameter {
                name: "stop",
                why: format!(
                    "at most {MAX_STOP_STRINGS} non-empty strings of at most {MAX_STOP_STRING_BYTES} bytes"
                ),
            });
        }
        self.sampling.validate()
    }
}

/// Runs one generation on a fresh `session` (position 0). `cancelled` is asked before the
/// prompt and between tokens; `on_token` receives each token and the text it made final.
pub fn generate(
    session: &mut Session,
    request: &GenerateRequest,
    cancelled: &dyn Fn() -> bool,
    on_token: &mut dyn FnMut(TokenEvent<'_>),
) -> Result<Generation, LlmError> {
    let model = std::sync::Arc::clone(session.model());
    let context_length = model.context_length();
    request.validate(context_length.saturating_sub(session.position()))?;
    let mut sampler = Sampler::new(request.sampling)?;
    let budget = (request.max_tokens as usize)
        .min(context_length - session.position() - request.prompt_tokens.len());
    let (profile, threads) = (session.profile(), session.threads());
    let mut next = |previous: Option<u32>| -> Result<u32, LlmError> {
        let logits = match previous {
            None => session.feed(&request.prompt_tokens)?,
            Some(id) => session.feed(&[id])?,
        };
        Ok(sampler.sample(&logits))
    };
    drive(
        &model,
        request,
        budget,
        (profile, threads),
        cancelled,
        on_token,
        &mut next,
    )
}

/// Runs one generation through the model's batcher for `profile` ([`crate::batch`]): its
/// decode steps share the weights' pass with the other sequences running on the model, and
/// its tokens are the ones [`generate`] would give alone. Blocks the calling thread.
pub fn generate_batched(
    model: &std::sync::Arc<LoadedLlm>,
    profile: Profile,
    request: &GenerateRequest,
    cancelled: &dyn Fn() -> bool,
    on_token: &mut dyn FnMut(TokenEvent<'_>),
) -> Result<Generation, LlmError> {
    let context_length = model.context_length();
    request.validate(context_length)?;
    model.check_tokens(&request.prompt_tokens)?;
    let budget = (request.max_tokens as usize).min(context_length - request.prompt_tokens.len());
    let batcher = model.batcher(profile)?;
    let threads = batcher.threads();
    let mut submitted = None;
    let mut next = |_previous: Option<u32>| -> Result<u32, LlmError> {
        if submitted.is_none() {
            submitted =
                Some(batcher.submit(request.prompt_tokens.clone(), budget, request.sampling)?);
        }
        let Some(s) = submitted.as_ref() else {
            return Err(LlmError::Engine("sequence not submitted".into()));
        };
        s.tokens
            .recv()
            .map_err(|_| LlmError::Engine("the batcher ended the sequence early".into()))?
    };
    let mut g = drive(
        model,
        request,
        budget,
        (profile, threads),
        cancelled,
        on_token,
        &mut next,
    )?;
    g.batch = submitted.as_ref().map_or(1, |s| s.largest_batch());
    Ok(g)
}

/// The generation loop over a token source: `next(None)` runs the prompt and gives the first
/// token, `next(Some(previous))` each following one.
fn drive(
    model: &LoadedLlm,
    request: &GenerateRequest,
    budget: usize,
    (profile, threads): (Profile, usize),
    cancelled: &dyn Fn() -> bool,
    on_token: &mut dyn FnMut(TokenEvent<'_>),
    next: &mut dyn FnMut(Option<u32>) -> Result<u32, LlmError>,
) -> Result<Generation, LlmError> {
    let tokenizer = model.tokenizer();
    let mut completion: Vec<u32> = Vec::new();
    let mut text = String::new();
    let mut sent = 0usize;
    let mut utf8 = Utf8Stream::default();
    let mut finish = FinishReason::Length;
    let mut cut_at_stop_string = false;
    let mut prefill_ms = 0.0;
    let decode_start;

    if cancelled() {
        finish = FinishReason::Cancelled;
        decode_start = Instant::now();
    } else {
        let start = Instant::now();
        let mut id = next(None)?;
        prefill_ms = start.elapsed().as_secs_f64() * 1e3;
        decode_start = Instant::now();
        loop {
            completion.push(id);
            if tokenizer.end_of_generation.contains(&id) {
                on_token(TokenEvent { id, text: "" });
                finish = FinishReason::Stop;
                break;
            }
            utf8.push(tokenizer.token_bytes(id), &mut text);
            if let Some(cut) = request
                .stop
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(cut);
                let delta = text.get(sent.min(cut)..).unwrap_or("");
                on_token(TokenEvent { id, text: delta });
                sent = text.len();
                finish = FinishReason::Stop;
                cut_at_stop_string = true;
                break;
            }
            let ready = text.len() - held_back(&text, &request.stop);
            let delta = if ready > sent { &text[sent..ready] } else { "" };
            on_token(TokenEvent { id, text: delta });
            sent = sent.max(ready);
            if completion.len() >= budget {
                break;
            }
            if cancelled() {
                finish = FinishReason::Cancelled;
                break;
            }
            id = next(Some(id))?;
        }
    }
    // Bytes of a character the generation never finished: kept (as U+FFFD) unless the text
    // was cut at a stop string before them.
    if !cut_at_stop_string {
        utf8.finish(&mut text);
    }
    let decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
    let decoded = completion.len().saturating_sub(1) as f64;
    let usage = Usage {
        prompt_tokens: request.prompt_tokens.len() as u32,
        completion_tokens: completion.len() as u32,
        total_tokens: (request.prompt_tokens.len() + completion.len()) as u32,
    };
    Ok(Generation {
        prompt_tokens: request.prompt_tokens.clone(),
        completion_tokens: completion,
        streamed_bytes: sent.min(text.len()),
        text,
        finish_reason: finish,
        usage,
        sampling: request.sampling,
        profile,
        threads,
        batch: 1,
        timings: Timings {
            prefill_ms,
            decode_ms,
            decode_tokens_per_second: if decode_ms > 0.0 {
                decoded / (decode_ms / 1e3)
            } else {
                0.0
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_holds_an_incomplete_character() {
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        let euro = "€".as_bytes();
        s.push(&euro[..1], &mut out);
        assert_eq!(out, "");
        s.push(&euro[1..], &mut out);
        assert_eq!(out, "€");
        s.push(&[0xFF, b'a'], &mut out);
        assert_eq!(out, "€\u{FFFD}a");
    }

    #[test]
    fn a_possible_stop_string_prefix_is_held_back() {
        let stops = vec!["</end>".to_string()];
        assert_eq!(held_back("hello </e", &stops), 3);
        assert_eq!(held_back("hello", &stops), 0);
        assert_eq!(held_back("hello <", &stops), 1);
    }
}
