//! The chat receipt: the node's statement about one OpenAI-compatible chat completion, the
//! chat bundle that carries it, and the hash chain that binds a streamed answer's chunks to it.
//!
//! A chat receipt is a different statement from an ONNX [`Receipt`](crate::Receipt) (text in,
//! tokens sampled, text out), so it is a different object: `"kind": "chat"` plus its own
//! `version`, unknown fields refused. An ONNX receipt has no `kind` and refuses one, so no byte
//! string parses as both. Its signature has its own domain, `"vouch.chat-receipt.v1\0"`: a
//! signature — or anything else that sees only a receipt *hash*, such as a log monitor — then
//! says which kind of receipt it vouches for without relying on the two JSON grammars staying
//! disjoint.
//!
//! Canonical bytes are RFC 8785 through `serde_jcs` (chat is not on the per-request hot path
//! the ONNX receipt's hand-written writer serves). The two floats, `temperature` and `top_p`,
//! are [`FiniteF64`]: never NaN or infinite, so they always have JCS's one ES6 number form.
//! Formats and test vectors: `docs/receipt.md`, "Chat receipts".

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::bundle::BundleSignature;
use crate::digest::{Digest, ModelDigest};
use crate::receipt::{EngineInfo, NodeKey, PaymentRef, Tier};

/// The value of a chat receipt's `kind`.
pub const CHAT_RECEIPT_KIND: &str = "chat";
pub const CHAT_RECEIPT_VERSION: u32 = 1;
/// The value of a chat bundle's `format`.
pub const CHAT_BUNDLE_FORMAT: &str = "vouch.chat-bundle.v1";
/// `object` of the final SSE event of a streamed answer, whose `vouch` field is the bundle.
pub const CHAT_RECEIPT_EVENT_OBJECT: &str = "vouch.receipt";

const CHAT_SIGNING_DOMAIN: &[u8] = b"vouch.chat-receipt.v1\0";
const TOKENS_DOMAIN: &[u8] = b"vouch.tokens.v1\0";
const CHUNK_DOMAIN: &[u8] = b"vouch.chat-chunk.v1\0";
const STREAM_START_DOMAIN: &[u8] = b"vouch.chat-stream.v1\0";

/// The largest integer an IEEE double holds exactly (2^53 − 1). RFC 8785 writes every number
/// as a double, so a larger integer in a request body would be rounded in its canonical form
/// and the digest would not commit to it.
pub const MAX_EXACT_JSON_INTEGER: u64 = (1 << 53) - 1;

/// The constant `"chat"`: a field that must be there and can hold nothing else, which is what
/// keeps a chat receipt from ever parsing as another kind of receipt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChatKind;

impl Serialize for ChatKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(CHAT_RECEIPT_KIND)
    }
}

impl<'de> Deserialize<'de> for ChatKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == CHAT_RECEIPT_KIND {
            Ok(ChatKind)
        } else {
            Err(serde::de::Error::custom(format!(
                "receipt kind {:?} is not \"chat\"",
                s.chars().take(32).collect::<String>()
            )))
        }
    }
}

/// A finite double, negative zero written as zero: the only floats a chat receipt holds, so
/// every value has exactly one RFC 8785 form (ES6 shortest round-trip: `0.7`, `1`, `1e-7`) and
/// canonicalisation cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct FiniteF64(f64);

impl FiniteF64 {
    /// `None` for NaN and the infinities.
    pub fn new(x: f64) -> Option<Self> {
        // -0.0 == 0.0, so this turns -0 into +0 and leaves every other value alone.
        x.is_finite()
            .then_some(FiniteF64(if x == 0.0 { 0.0 } else { x }))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for FiniteF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        FiniteF64::new(x).ok_or_else(|| serde::de::Error::custom("a finite number is required"))
    }
}

impl fmt::Display for FiniteF64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The sampler seed the engine used, written as a decimal string: seeds are 64-bit and a JSON
/// number (a double, in RFC 8785) would round those above 2^53.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Only the form `to_string` writes: no sign, no leading zeros, so one value, one string.
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        match s.parse() {
            Ok(n) if canonical => Ok(Seed(n)),
            _ => Err(serde::de::Error::custom(format!(
                "seed {:?} is not a decimal u64 without leading zeros",
                s.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// The sampling the engine actually applied: the request's values, with the model
/// configuration's defaults (and the node's limits) filling what the request left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    #[cfg_attr(feature = "utoipa", schema(value_type = f64))]
    pub temperature: FiniteF64,
    #[cfg_attr(feature = "utoipa", schema(value_type = f64))]
    pub top_p: FiniteF64,
    /// The completion-token budget in force (`max_completion_tokens`, `max_tokens` or the
    /// default, capped by the node's limit).
    pub max_tokens: u32,
    /// Stop sequences, in the order given; always present (`[]` for none) so absent and empty
    /// are not two encodings of one thing.
    pub stop: Vec<String>,
    /// The sampler seed used, as a decimal string. Absent only in gateway mode when the caller
    /// sent none: a local run always has one (the node picks it when the caller does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<String>, pattern = "^(0|[1-9][0-9]*)$"))]
    pub seed: Option<Seed>,
}

/// OpenAI's `usage`, as counted by the node (or, in gateway mode, as reported upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// Why generation ended. OpenAI's `tool_calls` and `content_filter` are not here: the node does
/// neither in this version, and a receipt must not claim what its fields cannot show (tool
/// calls parsed out of the text would need a commitment of their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop sequence.
    Stop,
    /// The token budget (`sampling.max_tokens`) or the context ran out.
    Length,
    /// The node stopped generating: the caller went away or the request's deadline passed.
    /// OpenAI has no such value; a receipt with it is one the log has, not one a client got.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A streamed answer's commitment: how many chunks were sent and the chain value after the
/// last one ([`StreamChain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StreamCommitment {
    pub chunks: u32,
    pub head: Digest,
}

/// The signed statement about one chat completion. Field meanings: `docs/receipt.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatReceipt {
    /// Always `"chat"`.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, pattern = "^chat$"))]
    pub kind: ChatKind,
    pub version: u32,
    /// UUIDv7 chosen by the node.
    pub request_id: String,
    /// [`request_digest`] of the request body as received, every field included.
    pub request_digest: Digest,
    /// SHA-256 of the weights file the node ran (in gateway mode: the catalog entry's digest,
    /// which proves nothing about the upstream's model).
    pub model: ModelDigest,
    /// How the caller named the model (`name@version`), absent when called by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_ref: Option<String>,
    /// The model configuration in force (system prompt, generation defaults), as in ONNX
    /// receipts: [`crate::config_digest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<Digest>,
    /// Gateway mode: `"upstream <url>"`, the OpenAI-compatible endpoint that generated the
    /// answer. Absent means the node ran the committed weights itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_by: Option<String>,
    pub sampling: Sampling,
    /// [`tokens_digest`] of the prompt's token ids (chat template applied). Absent only in
    /// gateway mode, where the upstream's tokens are unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_digest: Option<Digest>,
    /// [`tokens_digest`] of the generated token ids; absent only in gateway mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_digest: Option<Digest>,
    /// SHA-256 of the completion text's UTF-8 bytes (`choices[0].message.content`).
    pub completion_digest: Digest,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// Present when the answer was streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamCommitment>,
    pub engine: EngineInfo,
    /// Sorted, no duplicates.
    pub tiers: Vec<Tier>,
    pub node_key: NodeKey,
    /// RFC 3339, UTC, millisecond precision.
    pub issued_at: String,
    /// With x402's `upto` scheme, `amount` is what was settled, not the authorised maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentRef>,
}

impl ChatReceipt {
    /// RFC 8785 canonical JSON bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // serde_jcs fails only on a non-finite float or a non-string map key; the only floats
        // are `FiniteF64` and there are no maps, so this cannot fail.
        serde_jcs::to_vec(self).expect("a ChatReceipt always has a canonical form")
    }

    /// SHA-256 of the canonical bytes: what the signature, TEE binding and log entry commit to.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.canonical_bytes())
    }

    /// The exact bytes an Ed25519 signature over this receipt covers.
    pub fn signing_message(&self) -> Vec<u8> {
        chat_signing_message_for(&self.hash())
    }

    /// Whether the gateway's word, not the node's own run, produced the answer.
    pub fn is_gateway(&self) -> bool {
        self.executed_by.is_some()
    }

    /// Rules the fields must keep between themselves (types alone cannot say them). A node
    /// checks before signing, a verifier before believing.
    pub fn check_consistency(&self) -> Result<(), String> {
        let u = self.usage;
        if u64::from(u.prompt_tokens) + u64::from(u.completion_tokens) != u64::from(u.total_tokens)
        {
            return Err(format!(
                "usage.total_tokens {} is not prompt_tokens {} + completion_tokens {}",
                u.total_tokens, u.prompt_tokens, u.completion_tokens
            ));
        }
        if self.tiers != Tier::canonical_set(&self.tiers) {
            return Err("tiers are not sorted and free of duplicates".into());
        }
        if !self.is_gateway()
            && (self.prompt_tokens_digest.is_none() || self.completion_tokens_digest.is_none())
        {
            return Err(
                "a receipt of a local run (no executed_by) must commit to its prompt and completion tokens"
                    .into(),
            );
        }
        if let Some(url) = &self.executed_by
            && url.strip_prefix("upstream ").is_none_or(str::is_empty)
        {
            return Err(format!(
                "executed_by {:?} is not \"upstream <url>\"",
                url.chars().take(80).collect::<String>()
            ));
        }
        if let Some(s) = self.stream
            && s.chunks == 0
        {
            return Err("a streamed answer has at least one chunk".into());
        }
        Ok(())
    }
}

/// `"vouch.chat-receipt.v1\0" ‖ receipt hash`.
pub fn chat_signing_message_for(receipt_hash: &Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHAT_SIGNING_DOMAIN.len() + 32);
    m.extend_from_slice(CHAT_SIGNING_DOMAIN);
    m.extend_from_slice(receipt_hash.as_bytes());
    m
}

/// Why a request body has no request digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestDigestError {
    #[error(
        "the request holds the integer {value} at {path}, beyond ±(2^53 − 1): its canonical (RFC 8785) form would round it, so the receipt could not commit to it"
    )]
    InexactInteger { path: String, value: String },
    #[error("the request has no canonical JSON form: {0}")]
    NotCanonicalisable(String),
}

/// The request digest: plain SHA-256 of the body's RFC 8785 canonical form, every field
/// included (ones Vouch ignores too), so any byte form of the same JSON gives the same digest
/// and anyone can recompute it with an off-the-shelf JCS library and `sha256sum`. No domain
/// prefix: like `config_digest`, it is the digest of a standard byte string, and what it means
/// is fixed by the signed field that holds it.
///
/// Fails for an integer outside ±(2^53 − 1), which RFC 8785 (numbers as doubles) would round:
/// two different requests must never share a digest. `body` should come from a parser that
/// refuses duplicate keys (the server's does), since `serde_json::Value` keeps only the last.
pub fn request_digest(body: &serde_json::Value) -> Result<Digest, RequestDigestError> {
    check_exact_integers(body, &mut String::from("$"))?;
    let bytes = serde_jcs::to_vec(body)
        .map_err(|e| RequestDigestError::NotCanonicalisable(e.to_string()))?;
    Ok(Digest::of(&bytes))
}

fn check_exact_integers(
    v: &serde_json::Value,
    path: &mut String,
) -> Result<(), RequestDigestError> {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let exact = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_EXACT_JSON_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT_JSON_INTEGER,
                // A float: already a double, exactly what RFC 8785 writes.
                (None, None) => true,
            };
            if !exact {
                return Err(RequestDigestError::InexactInteger {
                    path: path.chars().take(200).collect(),
                    value: n.to_string(),
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_exact_integers(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                check_exact_integers(item, path)?;
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
    Ok(())
}

/// SHA-256(`"vouch.tokens.v1" ‖ 0x00 ‖ count (u32 LE) ‖ each id (u32 LE)`): the commitment to a
/// sequence of token ids. Fails only for more than 2^32 − 1 ids.
pub fn tokens_digest(ids: &[u32]) -> Result<Digest, String> {
    let count = u32::try_from(ids.len())
        .map_err(|_| format!("{} token ids are more than a u32 counts", ids.len()))?;
    let mut h = Sha256::new();
    h.update(TOKENS_DOMAIN);
    h.update(count.to_le_bytes());
    for id in ids {
        h.update(id.to_le_bytes());
    }
    Ok(Digest(h.finalize().into()))
}

/// SHA-256 of the completion text's UTF-8 bytes (a receipt's `completion_digest`).
pub fn completion_digest(text: &str) -> Digest {
    Digest::of(text.as_bytes())
}

/// The `vouch` field of each streamed chunk: its position and the chain value before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ChunkLink {
    /// 0 for the first chunk.
    pub index: u32,
    /// The chain value before this chunk: [`stream_start`] for chunk 0, else the link after
    /// chunk `index − 1`.
    pub prev: Digest,
}

/// link₋₁ = SHA-256(`"vouch.chat-stream.v1" ‖ 0x00 ‖ request digest (32 bytes) ‖ request_id
/// (UTF-8)`). Bound to the request body, so a chain cannot be passed off as the answer to
/// another request, and to the request id, so two answers to one request never share a chain.
pub fn stream_start(request_digest: &Digest, request_id: &str) -> Digest {
    Digest::of_parts([
        STREAM_START_DOMAIN,
        request_digest.as_bytes().as_slice(),
        request_id.as_bytes(),
    ])
}

/// linkᵢ = SHA-256(`"vouch.chat-chunk.v1" ‖ 0x00 ‖ linkᵢ₋₁ ‖ SHA-256(data bytes of chunk i)`),
/// over the exact bytes after `data: ` of the chunk's SSE event.
pub fn chain_link(prev: &Digest, chunk_data: &[u8]) -> Digest {
    let chunk = Digest::of(chunk_data);
    Digest::of_parts([
        CHUNK_DOMAIN,
        prev.as_bytes().as_slice(),
        chunk.as_bytes().as_slice(),
    ])
}

/// The stream hash chain as the sender keeps it: O(1) state, one link per chunk sent.
///
/// For each chunk: put [`StreamChain::next`] in the chunk's `vouch` field, serialise the chunk,
/// send exactly those bytes as one `data:` line, then [`StreamChain::append`] them. After the
/// last chunk, [`StreamChain::commitment`] goes into the receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamChain {
    link: Digest,
    chunks: u32,
}

impl StreamChain {
    pub fn new(request_digest: &Digest, request_id: &str) -> Self {
        StreamChain {
            link: stream_start(request_digest, request_id),
            chunks: 0,
        }
    }

    /// What the next chunk must carry.
    pub fn next(&self) -> ChunkLink {
        ChunkLink {
            index: self.chunks,
            prev: self.link,
        }
    }

    /// Records a chunk sent (its exact data bytes). Fails past 2^32 − 1 chunks.
    pub fn append(&mut self, chunk_data: &[u8]) -> Result<(), String> {
        let next = self
            .chunks
            .checked_add(1)
            .ok_or("a stream has at most 2^32 - 1 chunks")?;
        self.link = chain_link(&self.link, chunk_data);
        self.chunks = next;
        Ok(())
    }

    /// `None` before the first chunk: an empty stream commits to nothing.
    pub fn commitment(&self) -> Option<StreamCommitment> {
        (self.chunks > 0).then_some(StreamCommitment {
            chunks: self.chunks,
            head: self.link,
        })
    }
}

/// What a chat completion returns in its `vouch` field (and a stream in its final event), and
/// what `vouch verify` reads. The token ids are here, not in the receipt: the receipt commits to
/// them by digest, so it stays small however long the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatBundle {
    /// `vouch.chat-bundle.v1`.
    pub format: String,
    pub receipt: ChatReceipt,
    /// Present when the `signed` tier was asked for (`tee` implies it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<BundleSignature>,
    /// The prompt's token ids (chat template applied); absent in gateway mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Vec<u32>>,
    /// The generated token ids; absent in gateway mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<Vec<u32>>,
    /// Per-tier evidence (`tee`, `log`) as in ONNX bundles, over this receipt's hash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, serde_json::Value>,
}

impl FromStr for FinishReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stop" => Ok(FinishReason::Stop),
            "length" => Ok(FinishReason::Length),
            "cancelled" => Ok(FinishReason::Cancelled),
            other => Err(format!(
                "finish reason {:?} is not stop, length or cancelled",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::receipt::ExecProfile;

    pub fn sample() -> ChatReceipt {
        ChatReceipt {
            kind: ChatKind,
            version: CHAT_RECEIPT_VERSION,
            request_id: "0193a1b2-0000-7000-8000-000000000002".into(),
            request_digest: Digest::of(b"request"),
            model: ModelDigest(Digest::of(b"weights")),
            model_ref: Some("tiny-llama@1".into()),
            config_digest: None,
            executed_by: None,
            sampling: Sampling {
                temperature: FiniteF64::new(0.7).unwrap(),
                top_p: FiniteF64::new(1.0).unwrap(),
                max_tokens: 16,
                stop: vec!["\n\n".into()],
                seed: Some(Seed(42)),
            },
            prompt_tokens_digest: Some(tokens_digest(&[1, 2, 3]).unwrap()),
            completion_tokens_digest: Some(tokens_digest(&[4, 5]).unwrap()),
            completion_digest: completion_digest("Hi!"),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                total_tokens: 5,
            },
            stream: None,
            engine: EngineInfo {
                name: "candle".into(),
                version: "0.9.1".into(),
                profile: ExecProfile {
                    threads: 1,
                    deterministic: true,
                    batch: 1,
                },
            },
            tiers: vec![Tier::Signed],
            node_key: NodeKey([7u8; 32]),
            issued_at: "2026-12-07T12:00:00.000Z".into(),
            payment: None,
        }
    }

    #[test]
    fn canonical_bytes_are_jcs_and_round_trip() {
        let r = sample();
        let bytes = r.canonical_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"completion_digest\":"), "{text}");
        assert!(text.contains("\"kind\":\"chat\""));
        assert!(text.contains("\"seed\":\"42\""));
        assert!(!text.contains("null"));
        let back: ChatReceipt = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.canonical_bytes(), bytes);
    }

    #[test]
    fn floats_have_one_encoding_es6_shortest() {
        // ES6 Number.prototype.toString, as RFC 8785 §3.2.2.3 and its appendix B list them.
        for (x, want) in [
            (0.7, "0.7"),
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "0"),
            (2.0, "2"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-7, "1e-7"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (5e-324, "5e-324"),
            (0.95, "0.95"),
        ] {
            let mut r = sample();
            r.sampling.temperature = FiniteF64::new(x).unwrap();
            let text = String::from_utf8(r.canonical_bytes()).unwrap();
            assert!(
                text.contains(&format!("\"temperature\":{want},")),
                "{x}: {text}"
            );
            // Whatever form a receipt arrives in, it hashes as the one form.
            let other = text.replace(
                &format!("\"temperature\":{want},"),
                &format!("\"temperature\":{x:e},"),
            );
            let back: ChatReceipt = serde_json::from_str(&other).unwrap();
            assert_eq!(back.canonical_bytes(), r.canonical_bytes(), "{x}");
        }
        assert!(FiniteF64::new(f64::NAN).is_none());
        assert!(FiniteF64::new(f64::INFINITY).is_none());
    }

    #[test]
    fn an_onnx_receipt_never_parses_as_a_chat_receipt_nor_the_reverse() {
        let chat = sample().canonical_bytes();
        assert!(serde_json::from_slice::<crate::Receipt>(&chat).is_err());
        let onnx = crate::receipt::tests::sample().canonical_bytes();
        assert!(serde_json::from_slice::<ChatReceipt>(&onnx).is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&chat).unwrap();
        v["kind"] = "onnx".into();
        assert!(serde_json::from_value::<ChatReceipt>(v.clone()).is_err());
        v.as_object_mut().unwrap().remove("kind");
        assert!(serde_json::from_value::<ChatReceipt>(v).is_err());
        // The signatures differ by domain even for one hash.
        let h = Digest::of(b"x");
        assert_ne!(
            chat_signing_message_for(&h),
            crate::receipt::signing_message_for(&h)
        );
    }

    #[test]
    fn unknown_fields_and_non_canonical_seeds_are_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = 1.into();
        assert!(serde_json::from_value::<ChatReceipt>(v).is_err());
        for bad in ["042", "-1", "", "1.0", "18446744073709551616", " 1"] {
            assert!(
                serde_json::from_value::<Seed>(bad.into()).is_err(),
                "{bad:?}"
            );
        }
        let max: Seed = serde_json::from_value("18446744073709551615".into()).unwrap();
        assert_eq!(max, Seed(u64::MAX));
    }

    #[test]
    fn consistency_rules() {
        assert_eq!(sample().check_consistency(), Ok(()));
        let mut r = sample();
        r.usage.total_tokens = 6;
        assert!(r.check_consistency().is_err());
        let mut r = sample();
        r.prompt_tokens_digest = None;
        assert!(r.check_consistency().is_err());
        r.executed_by = Some("upstream https://api.example.com/v1".into());
        assert_eq!(r.check_consistency(), Ok(()));
        r.executed_by = Some("https://api.example.com/v1".into());
        assert!(r.check_consistency().is_err());
        let mut r = sample();
        r.tiers = vec![Tier::Tee, Tier::Signed];
        assert!(r.check_consistency().is_err());
    }

    #[test]
    fn request_digest_is_of_the_canonical_form_and_refuses_rounded_integers() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"model":"m","temperature":0.70,"x":{"b":1,"a":[1e0]}}"#)
                .unwrap();
        let b: serde_json::Value = serde_json::from_str(
            r#"{ "x": {"a": [1], "b": 1.0}, "temperature": 7e-1, "model": "m" }"#,
        )
        .unwrap();
        assert_eq!(request_digest(&a).unwrap(), request_digest(&b).unwrap());
        assert_eq!(
            request_digest(&a).unwrap(),
            Digest::of(br#"{"model":"m","temperature":0.7,"x":{"a":[1],"b":1}}"#)
        );
        let ok: serde_json::Value =
            serde_json::json!({"seed": MAX_EXACT_JSON_INTEGER, "n": -9007199254740991i64});
        assert!(request_digest(&ok).is_ok());
        for big in [
            serde_json::json!({"seed": MAX_EXACT_JSON_INTEGER + 1}),
            serde_json::json!({"a": [{"seed": -9007199254740992i64}]}),
            serde_json::json!({"seed": u64::MAX}),
        ] {
            let e = request_digest(&big).unwrap_err();
            assert!(
                matches!(e, RequestDigestError::InexactInteger { .. }),
                "{e}"
            );
        }
        let e = request_digest(&serde_json::json!({"a": [{"seed": u64::MAX}]})).unwrap_err();
        assert!(e.to_string().contains("$.a[0].seed"), "{e}");
    }

    #[test]
    fn tokens_digest_layout() {
        let mut want = b"vouch.tokens.v1\0".to_vec();
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(&0x0102_0304u32.to_le_bytes());
        assert_eq!(tokens_digest(&[1, 0x0102_0304]).unwrap(), Digest::of(&want));
        assert_ne!(tokens_digest(&[]).unwrap(), tokens_digest(&[0]).unwrap());
    }

    #[test]
    fn chain_links_as_documented() {
        let req = Digest::of(b"r");
        let start = stream_start(&req, "id");
        let mut want = b"vouch.chat-stream.v1\0".to_vec();
        want.extend_from_slice(req.as_bytes());
        want.extend_from_slice(b"id");
        assert_eq!(start, Digest::of(&want));

        let mut chain = StreamChain::new(&req, "id");
        assert_eq!(chain.commitment(), None);
        assert_eq!(
            chain.next(),
            ChunkLink {
                index: 0,
                prev: start
            }
        );
        chain.append(b"{\"a\":1}").unwrap();
        let mut want = b"vouch.chat-chunk.v1\0".to_vec();
        want.extend_from_slice(start.as_bytes());
        want.extend_from_slice(Digest::of(b"{\"a\":1}").as_bytes());
        let link0 = Digest::of(&want);
        assert_eq!(
            chain.next(),
            ChunkLink {
                index: 1,
                prev: link0
            }
        );
        assert_eq!(
            chain.commitment(),
            Some(StreamCommitment {
                chunks: 1,
                head: link0
            })
        );
    }
}
