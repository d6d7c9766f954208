//! The tokenizer, built from the GGUF's own `tokenizer.ggml.*` metadata — never fetched from a
//! hub, so the model digest covers it.
//!
//! Encoding goes through the `tokenizers` crate (pure Rust: its `fancy-regex` engine, no C).
//! Decoding is done here from a per-token byte table instead: the generation loop needs each
//! token's exact bytes to stream text that never splits a UTF-8 character (docs/llm.md).
//!
//! Supported: `gpt2` (byte-level BPE with merges; the pre-tokenizer chosen by
//! `tokenizer.ggml.pre` as llama.cpp does, for the kinds listed in [`PreTokenizer`]) and `llama`
//! (SentencePiece BPE: merges derived from the token scores, byte fallback). Others are refused.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::Split;
use tokenizers::{AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::error::TokenizerError;
use crate::gguf::Meta;

/// GGUF token types (`tokenizer.ggml.token_type`, llama.cpp's `LLAMA_TOKEN_TYPE_*`).
const TYPE_NORMAL: i32 = 1;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

/// GPT-2's pre-tokenizer regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_DEFAULT`/`GPT2`).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Qwen2's (llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`): digits one by one.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's (llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`): digits in groups of up to three.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How the text is split before BPE, by `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `default`, `gpt2` or absent: GPT-2's regex.
    Gpt2,
    /// `smollm`: each digit alone, then GPT-2's regex.
    SmolLm,
    /// `qwen2`.
    Qwen2,
    /// `llama-bpe` (Llama 3): also skips merges for a word that is itself a token.
    Llama3,
}

impl PreTokenizer {
    fn from_name(name: Option<&str>) -> Result<Self, TokenizerError> {
        match name {
            None | Some("default") | Some("gpt2") => Ok(Self::Gpt2),
            Some("smollm") => Ok(Self::SmolLm),
            Some("qwen2") => Ok(Self::Qwen2),
            Some("llama-bpe") | Some("llama3") => Ok(Self::Llama3),
            Some(other) => Err(TokenizerError::UnsupportedPre(other.to_string())),
        }
    }
}

/// The model's tokenizer: encodes with `tokenizers`, decodes through its byte table.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The bytes each token stands for in generated text (control tokens: none).
    token_bytes: Vec<Vec<u8>>,
    /// Each token's vocabulary string (`<|im_end|>`, `Ġthe`, `▁the`).
    token_text: Vec<String>,
    control: Vec<bool>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// Tokens that end a generation: EOS and, when the file names one, end-of-turn
    /// (`tokenizer.ggml.eot_token_id`, e.g. Gemma's `<end_of_turn>`).
    pub end_of_generation: Vec<u32>,
    /// Whether llama.cpp would put BOS before a prompt (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.token_bytes.len())
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_id", &self.eos_token_id)
            .finish_non_exhaustive()
    }
}

fn strings<'a>(values: &'a [Value], key: &str) -> Result<Vec<&'a str>, TokenizerError> {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(TokenizerError::Inconsistent(format!(
                "{key} holds a non-string"
            ))),
        })
        .collect()
}

/// GPT-2's byte ↔ printable-character table: byte-level BPE vocabularies spell byte `b` as
/// `BYTE_TO_CHAR[b]`.
fn gpt2_char_to_byte() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u8..=255 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + extra).unwrap_or('\u{FFFD}');
            extra += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

impl Tokenizer {
    /// Builds the tokenizer from a checked GGUF's metadata.
    pub(crate) fn from_gguf_metadata(
        metadata: &HashMap<String, Value>,
    ) -> Result<Self, TokenizerError> {
        let meta = Meta(metadata);
        let bad = |e: crate::error::GgufError| TokenizerError::Inconsistent(e.to_string());
        let model = meta
            .string("tokenizer.ggml.model")
            .map_err(bad)?
            .unwrap_or("")
            .to_string();
        let tokens = strings(
            meta.array("tokenizer.ggml.tokens")
                .map_err(bad)?
                .unwrap_or(&[]),
            "tokenizer.ggml.tokens",
        )?;
        if tokens.is_empty() {
            return Err(TokenizerError::Inconsistent("no tokens".into()));
        }
        let types: Vec<i32> = match meta.array("tokenizer.ggml.token_type").map_err(bad)? {
            None => vec![TYPE_NORMAL; tokens.len()],
            Some(values) => values
                .iter()
                .map(|v| match v {
                    Value::I32(t) => Ok(*t),
                    Value::U32(t) => i32::try_from(*t).map_err(|_| {
                        TokenizerError::Inconsistent("token type out of range".into())
                    }),
                    _ => Err(TokenizerError::Inconsistent(
                        "token types are not integers".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        if types.len() != tokens.len() {
            return Err(TokenizerError::Inconsistent(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let bos_token_id = meta.token_id("tokenizer.ggml.bos_token_id").map_err(bad)?;
        let eos_token_id = meta.token_id("tokenizer.ggml.eos_token_id").map_err(bad)?;
        let eot_token_id = meta.token_id("tokenizer.ggml.eot_token_id").map_err(bad)?;
        let mut end_of_generation: Vec<u32> =
            eos_token_id.into_iter().chain(eot_token_id).collect();
        end_of_generation.dedup();
        if let Some(&bad_id) = end_of_generation
            .iter()
            .find(|&&id| id as usize >= tokens.len())
        {
            return Err(TokenizerError::Inconsistent(format!(
                "end token {bad_id} is outside the vocabulary"
            )));
        }
        let add_bos_default = model == "llama";
        let add_bos = match meta.get("tokenizer.ggml.add_bos_token") {
            Some(Value::Bool(b)) => *b,
            _ => add_bos_default,
        };

        let vocab: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.to_string(), id as u32))
            .collect();

        let (mut inner, token_bytes) = match model.as_str() {
            "gpt2" => {
                let merges = strings(
                    meta.array("tokenizer.ggml.merges")
                        .map_err(bad)?
                        .ok_or_else(|| {
                            TokenizerError::Inconsistent("gpt2 tokenizer without merges".into())
                        })?,
                    "tokenizer.ggml.merges",
                )?;
                let merges: Vec<(String, String)> = merges
                    .iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| {
                                TokenizerError::Inconsistent(format!("merge `{m}` has no space"))
                            })
                    })
                    .collect::<Result<_, _>>()?;
                let pre = PreTokenizer::from_name(meta.string("tokenizer.ggml.pre").map_err(bad)?)?;
                let bpe = BPE::builder()
                    .vocab_and_merges(
                        vocab
                            .into_iter()
                            .collect::<tokenizers::models::bpe::Vocab>(),
                        merges,
                    )
                    .ignore_merges(pre == PreTokenizer::Llama3)
                    .build()
                    .map_err(|e| TokenizerError::Failed(e.to_string()))?;
                let mut inner = tokenizers::Tokenizer::new(bpe);
                inner.with_pre_tokenizer(Some(gpt2_pre_tokenizer(pre)?));
                let char_to_byte = gpt2_char_to_byte();
                let token_bytes = tokens
                    .iter()
                    .zip(&types)
                    .map(|(t, ty)| match *ty {
                        TYPE_CONTROL => Vec::new(),
                        TYPE_USER_DEFINED => t.as_bytes().to_vec(),
                        _ => t
                            .chars()
                            .map(|c| char_to_byte.get(&c).copied())
                            .collect::<Option<Vec<u8>>>()
                            // Not byte-level spelled (some vocabularies carry such tokens):
                            // the text as written.
                            .unwrap_or_else(|| t.as_bytes().to_vec()),
                    })
                    .collect();
                (inner, token_bytes)
            }
            "llama" => {
                let scores: Vec<f32> = match meta.array("tokenizer.ggml.scores").map_err(bad)? {
                    Some(values) => values
                        .iter()
                        .map(|v| match v {
                            Value::F32(s) => Ok(*s),
                            _ => Err(TokenizerError::Inconsistent("scores are not f32".into())),
                        })
                        .collect::<Result<_, _>>()?,
                    None => {
                        return Err(TokenizerError::Inconsistent(
                            "llama tokenizer without scores".into(),
                        ));
                    }
                };
                if scores.len() != tokens.len() {
                    return Err(TokenizerError::Inconsistent(
                        "scores and tokens differ in number".into(),
                    ));
                }
                let merges = sentencepiece_merges(&tokens, &types, &scores, &vocab);
                let unk = meta
                    .token_id("tokenizer.ggml.unknown_token_id")
                    .map_err(bad)?
                    .and_then(|id| tokens.get(id as usize))
                    .map(|t| t.to_string());
                let mut builder = BPE::builder()
                    .vocab_and_merges(
                        vocab
                            .into_iter()
                            .collect::<tokenizers::models::bpe::Vocab>(),
                        merges,
                    )
                    .byte_fallback(true)
                    .fuse_unk(true);
                if let Some(unk) = unk {
                    builder = builder.unk_token(unk);
                }
                let bpe = builder
                    .build()
                    .map_err(|e| TokenizerError::Failed(e.to_string()))?;
                let mut inner = tokenizers::Tokenizer::new(bpe);
                let add_space_prefix = match meta.get("tokenizer.ggml.add_space_prefix") {
                    Some(Value::Bool(b)) => *b,
                    _ => true,
                };
                let replace =
                    Replace::new(" ", "▁").map_err(|e| TokenizerError::Failed(e.to_string()))?;
                let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
                if add_space_prefix {
                    normalizers.push(Prepend::new("▁".into()).into());
                }
                normalizers.push(replace.into());
                inner
                    .with_normalizer(Some(NormalizerSequence::new(normalizers)))
                    .map_err(|e| TokenizerError::Failed(e.to_string()))?;
                let token_bytes = tokens
                    .iter()
                    .zip(&types)
                    .map(|(t, ty)| match *ty {
                        TYPE_CONTROL => Vec::new(),
                        TYPE_BYTE => parse_byte_token(t).map(|b| vec![b]).unwrap_or_default(),
                        _ => t.replace('▁', " ").into_bytes(),
                    })
                    .collect();
                (inner, token_bytes)
            }
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };

        // Control and user-defined tokens are matched whole, before BPE, as llama.cpp does when
        // it parses special tokens (what a rendered chat template needs).
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, ty)| matches!(**ty, TYPE_CONTROL | TYPE_USER_DEFINED))
            .map(|(t, ty)| AddedToken::from(t.to_string(), *ty == TYPE_CONTROL).normalized(false))
            .collect();
        inner
            .add_special_tokens(added)
            .map_err(|e| TokenizerError::Failed(e.to_string()))?;

        Ok(Self {
            inner,
            token_bytes,
            token_text: tokens.iter().map(|t| t.to_string()).collect(),
            control: types.iter().map(|t| *t == TYPE_CONTROL).collect(),
            bos_token_id,
            eos_token_id,
            end_of_generation,
            add_bos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Token ids of `text`, special tokens written in it (`<|im_start|>`) parsed as such; no BOS
    /// added (a chat template writes its own).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Failed(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The bytes `id` adds to generated text: empty for control tokens and unknown ids.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The vocabulary string of `id` (for templates: `bos_token`, `eos_token`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.token_text.get(id as usize).map(String::as_str)
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// The text of `ids` (control tokens omitted; invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn gpt2_pre_tokenizer(pre: PreTokenizer) -> Result<PreTokenizerWrapper, TokenizerError> {
    let failed = |e: tokenizers::Error| TokenizerError::Failed(e.to_string());
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        Ok(Split::new(
            tokenizers::pre_tokenizers::split::SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(failed)?
        .into())
    };
    // ByteLevel without its own regex after a Split: it only maps bytes to characters.
    let bytes_only: PreTokenizerWrapper = ByteLevel::new(false, false, false).into();
    Ok(match pre {
        PreTokenizer::Gpt2 => PreSequence::new(vec![split(GPT2_PATTERN)?, bytes_only]).into(),
        PreTokenizer::SmolLm => PreSequence::new(vec![
            Digits::new(true).into(),
            split(GPT2_PATTERN)?,
            bytes_only,
        ])
        .into(),
        PreTokenizer::Qwen2 => PreSequence::new(vec![split(QWEN2_PATTERN)?, bytes_only]).into(),
        PreTokenizer::Llama3 => PreSequence::new(vec![split(LLAMA3_PATTERN)?, bytes_only]).into(),
    })
}

/// `<0x0A>` → 0x0A.
fn parse_byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// SentencePiece BPE as merges: llama.cpp merges, at each step, the adjacent pair whose joined
/// token has the highest score. Each token that can be split into two tokens yields the merge
/// (left, right) ranked by its score (ties: lower token id first), which `tokenizers`' BPE
/// applies in rank order.
fn sentencepiece_merges(
    tokens: &[&str],
    types: &[i32],
    scores: &[f32],
    vocab: &HashMap<String, u32>,
) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, String, String)> = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        if types[id] != TYPE_NORMAL && types[id] != TYPE_USER_DEFINED {
            continue;
        }
        for (split, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(split);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                ranked.push((scores[id], id as u32, left.to_string(), right.to_string()));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, _, l, r)| (l, r)).collect()
}
