//! Offline verification of chat bundles (`vouch.chat-bundle.v1`) and of a streamed answer's
//! hash chain, chunk by chunk as it arrives.
//!
//! What a chat bundle can prove: the node's key signed this receipt (and, with `tee`, measured
//! code holds that key); the request you sent, the completion you got (text, finish reason,
//! usage, model name), the token ids in the bundle and — streamed — every chunk in order are
//! the ones it commits to. What it cannot: that the committed weights really produced the text
//! (that is the node's word; re-run it with the seed), and in gateway mode (`executed_by`) not
//! even which model answered: only that the gateway says an upstream endpoint did.

use serde::Deserialize as _;
use sha2::{Digest as _, Sha256};
use vouch_attest::tee::{TeeError, TeeOptions, resolve, verify_envelope};
use vouch_attest::verify_chat_receipt_signature;
use vouch_core::chat::{
    CHAT_RECEIPT_EVENT_OBJECT, ChunkLink, chain_link, completion_digest, request_digest,
    stream_start, tokens_digest,
};
use vouch_core::{CHAT_BUNDLE_FORMAT, CHAT_RECEIPT_VERSION, ChatBundle, Digest, Tier};

use crate::{Evidence, Finding, Report, TierReport, VerifyError};

/// `DigestMismatch::what` for the caller's request file (its code is `request_mismatch`).
pub(crate) const REQUEST_FILE: &str = "request file";
/// `DigestMismatch::what` for the bundle's token ids (code `tokens_mismatch`).
pub(crate) const PROMPT_TOKENS: &str = "prompt token ids";
pub(crate) const COMPLETION_TOKENS: &str = "completion token ids";

/// A field of the completion object the receipt commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseField {
    /// `choices[0].message.content` (legacy: `choices[0].text`; streamed: the deltas joined).
    Completion,
    /// `choices[0].finish_reason`.
    FinishReason,
    /// `usage`.
    Usage,
    /// `model`: the receipt's `model_ref`, or its model digest when called by digest.
    Model,
}

impl ResponseField {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseField::Completion => "choices[0].message.content",
            ResponseField::FinishReason => "choices[0].finish_reason",
            ResponseField::Usage => "usage",
            ResponseField::Model => "model",
        }
    }
}

impl std::fmt::Display for ResponseField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a streamed answer's chunks fail to be the chain the receipt commits to. Every variant
/// names the chunk index where the chain first breaks.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("stream chunk {index} is not a chat.completion.chunk with a vouch link: {reason}")]
    Malformed { index: u32, reason: String },
    #[error(
        "stream chunk {expected} is missing: chunk {found} came in its place (dropped, or chunks reordered)"
    )]
    Gap { expected: u32, found: u32 },
    #[error("stream chunk {found} arrived again or out of order where chunk {expected} was due")]
    Behind { expected: u32, found: u32 },
    #[error(
        "the chain breaks at stream chunk {index}: its bytes differ from what the node sent (or the next chunk's link was forged)"
    )]
    Broken { index: u32 },
    #[error(
        "stream chunk 0 does not start the chain of this request: its link is not the start value of the receipt's request id and request digest"
    )]
    StartMismatch,
    #[error(
        "the stream is truncated: {received} chunks received, the receipt commits to {committed} (chunk {received} onwards missing)"
    )]
    Truncated { received: u32, committed: u32 },
    #[error(
        "the stream has {received} chunks but the receipt commits to {committed}: chunk {committed} onwards was not sent by the node"
    )]
    TooLong { received: u32, committed: u32 },
    #[error(
        "the chain's head after chunk {index} is not the one the receipt commits to: chunk {index} was altered"
    )]
    HeadMismatch { index: u32 },
    #[error("the receipt commits to no stream: this answer was not streamed")]
    NotStreamed,
}

impl ChainError {
    /// The chunk where the chain first breaks (`None` when the receipt has no stream at all).
    pub fn index(&self) -> Option<u32> {
        match self {
            ChainError::Malformed { index, .. }
            | ChainError::Broken { index }
            | ChainError::HeadMismatch { index } => Some(*index),
            ChainError::Gap { expected, .. } | ChainError::Behind { expected, .. } => {
                Some(*expected)
            }
            ChainError::StartMismatch => Some(0),
            ChainError::Truncated { received, .. } => Some(*received),
            ChainError::TooLong { committed, .. } => Some(*committed),
            ChainError::NotStreamed => None,
        }
    }
}

/// Checks a streamed answer as it arrives, in O(1) memory: feed it the data of every SSE event
/// before the final receipt event (not `[DONE]`, not the `vouch.receipt` event), then call
/// [`finish`](Self::finish) with that event's bundle. It keeps the chain value, the count, a
/// running SHA-256 of the content deltas, and the last finish reason, usage and model seen.
///
/// A stream that ends without the receipt event is unverified: there is nothing to finish with.
pub struct StreamVerifier {
    /// The start value, when the caller knew it before the first chunk.
    expected_start: Option<Digest>,
    /// Chunk 0's `prev`, checked against the receipt at `finish`.
    first_prev: Option<Digest>,
    link: Digest,
    chunks: u32,
    text: Sha256,
    finish_reason: Option<String>,
    usage: Option<ChunkUsage>,
    model: Option<String>,
}

impl Default for StreamVerifier {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(serde::Deserialize)]
struct ChunkView {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChoiceView>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
    vouch: Option<ChunkLink>,
}

#[derive(serde::Deserialize)]
struct ChoiceView {
    /// Legacy completions' content.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<DeltaView>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct DeltaView {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
struct ChunkUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl StreamVerifier {
    /// Learns the start value from chunk 0 and checks it against the receipt at `finish`.
    pub fn new() -> Self {
        StreamVerifier {
            expected_start: None,
            first_prev: None,
            link: Digest([0; 32]),
            chunks: 0,
            text: Sha256::new(),
            finish_reason: None,
            usage: None,
            model: None,
        }
    }

    /// For a caller that knows the request digest and id before checking chunk 0 (the id is in
    /// every chunk's `id`, `chatcmpl-<request_id>`): a chunk 0 from another request fails at
    /// once instead of at `finish`.
    pub fn for_request(request_digest: &Digest, request_id: &str) -> Self {
        StreamVerifier {
            expected_start: Some(stream_start(request_digest, request_id)),
            ..Self::new()
        }
    }

    /// How many chunks were accepted so far.
    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// One chunk: the exact bytes after `data: ` of its SSE event.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ChainError> {
        let index = self.chunks;
        let malformed = |reason: String| ChainError::Malformed { index, reason };
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| malformed(e.to_string()))?;
        // The object first, so the receipt event pushed by mistake is named as such.
        let object = value.get("object").and_then(|o| o.as_str()).unwrap_or("");
        // Legacy `/v1/completions` streams send `text_completion` objects with `text`.
        if object != "chat.completion.chunk" && object != "text_completion" {
            return Err(malformed(format!(
                "object is {:?}{}",
                object.chars().take(40).collect::<String>(),
                if object == CHAT_RECEIPT_EVENT_OBJECT {
                    ": that is the receipt event, pass it to finish"
                } else {
                    ""
                }
            )));
        }
        let chunk = ChunkView::deserialize(value).map_err(|e| malformed(e.to_string()))?;
        let link = chunk
            .vouch
            .ok_or_else(|| malformed("it has no `vouch` field".into()))?;
        if link.index > index {
            return Err(ChainError::Gap {
                expected: index,
                found: link.index,
            });
        }
        if link.index < index {
            return Err(ChainError::Behind {
                expected: index,
                found: link.index,
            });
        }
        if index == 0 {
            if self.expected_start.is_some_and(|s| s != link.prev) {
                return Err(ChainError::StartMismatch);
            }
            self.first_prev = Some(link.prev);
        } else if link.prev != self.link {
            return Err(ChainError::Broken { index: index - 1 });
        }
        self.chunks = index
            .checked_add(1)
            .ok_or_else(|| malformed("more than 2^32 - 1 chunks".into()))?;
        self.link = chain_link(&link.prev, data);
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let content = choice
                .delta
                .as_ref()
                .and_then(|d| d.content.as_deref())
                .or(choice.text.as_deref());
            if let Some(content) = content {
                self.text.update(content.as_bytes());
            }
            if let Some(f) = &choice.finish_reason {
                self.finish_reason = Some(f.clone());
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        if self.model.is_none() {
            self.model = chunk.model;
        }
        Ok(())
    }

    /// Checks the chain against the receipt, then the bundle itself as
    /// [`verify_chat_bundle`] does (with the request body when given), and what the chunks said
    /// (content, finish reason, usage when `stream_options.include_usage` was set, model).
    pub fn finish(
        self,
        bundle: &ChatBundle,
        request_body: Option<&[u8]>,
        ev: &Evidence<'_>,
    ) -> Result<Report, VerifyError> {
        let mut report = verify_chat_bundle(bundle, request_body, None, ev)?;
        let r = &bundle.receipt;
        let committed = r.stream.ok_or(ChainError::NotStreamed)?;
        if self.chunks < committed.chunks {
            return Err(ChainError::Truncated {
                received: self.chunks,
                committed: committed.chunks,
            }
            .into());
        }
        if self.chunks > committed.chunks {
            return Err(ChainError::TooLong {
                received: self.chunks,
                committed: committed.chunks,
            }
            .into());
        }
        if self.first_prev != Some(stream_start(&r.request_digest, &r.request_id)) {
            return Err(ChainError::StartMismatch.into());
        }
        if self.link != committed.head {
            return Err(ChainError::HeadMismatch {
                index: self.chunks - 1,
            }
            .into());
        }
        report.proven.push(Finding {
            check: "stream",
            detail: format!(
                "the {} chunks received are exactly the ones the node committed to, in order, none missing or added",
                self.chunks
            ),
        });
        report
            .not_proven
            .retain(|n| !n.starts_with(STREAM_NOT_CHECKED) && !n.starts_with(ANSWER_NOT_CHECKED));
        let text = Digest(self.text.finalize().into());
        check_field(
            ResponseField::Completion,
            r.completion_digest,
            text,
            &mut report.proven,
        )?;
        let finish = self.finish_reason.unwrap_or_default();
        check_field(
            ResponseField::FinishReason,
            r.finish_reason.as_str(),
            finish.as_str(),
            &mut report.proven,
        )?;
        check_model(self.model.as_deref(), bundle, &mut report.proven)?;
        match self.usage {
            Some(u) => check_usage(u, bundle, &mut report.proven)?,
            None => report.not_proven.push(
                "the stream's usage: no chunk carried it (ask with stream_options.include_usage)"
                    .into(),
            ),
        }
        Ok(report)
    }
}

/// How the report's "not proven" lines about the answer start, so `finish` can drop them once
/// the chunks proved it.
const STREAM_NOT_CHECKED: &str = "the streamed chunks:";
const ANSWER_NOT_CHECKED: &str = "that the answer you hold is the one committed:";

/// The bundle in a completion object's (or the final stream event's) `vouch` field.
pub fn bundle_in_response(response: &serde_json::Value) -> Result<ChatBundle, VerifyError> {
    let v = response.get("vouch").ok_or_else(|| {
        VerifyError::ResponseInvalid("it has no `vouch` field (the receipt bundle)".into())
    })?;
    serde_json::from_value(v.clone())
        .map_err(|e| VerifyError::ResponseInvalid(format!("its `vouch` field: {e}")))
}

/// Checks a chat bundle, failing at the first discrepancy. `request_body` is the exact body
/// sent (any JSON formatting: it is canonicalised); `response` the non-streamed completion
/// object received. `ev` gives the trusted key, model file, configuration, TEE policy and log
/// trust as for ONNX bundles; `inputs`, `outputs` and `zk_vk_digest` do not apply and are
/// refused. A streamed answer is checked with [`StreamVerifier`], which calls this.
pub fn verify_chat_bundle(
    bundle: &ChatBundle,
    request_body: Option<&[u8]>,
    response: Option<&serde_json::Value>,
    ev: &Evidence<'_>,
) -> Result<Report, VerifyError> {
    let r = &bundle.receipt;
    if bundle.format != CHAT_BUNDLE_FORMAT {
        return Err(VerifyError::ChatFormat(
            bundle.format.chars().take(64).collect(),
        ));
    }
    if r.version != CHAT_RECEIPT_VERSION {
        return Err(VerifyError::ReceiptVersion(r.version));
    }
    for (given, what) in [
        (ev.inputs.is_some(), "an input file"),
        (ev.outputs.is_some(), "an output file"),
        (ev.zk_vk_digest.is_some(), "a zk verifying key"),
        (
            ev.model_bytes.is_some() && r.is_gateway(),
            "a model file (the receipt says an upstream endpoint generated the answer, so no weights file can be checked against it)",
        ),
    ] {
        if given {
            return Err(VerifyError::NotForChat(what));
        }
    }
    r.check_consistency()
        .map_err(VerifyError::ChatReceiptInvalid)?;
    if r.tiers.contains(&Tier::Zk) {
        return Err(VerifyError::UncheckedTier(Tier::Zk));
    }
    let mut proven = Vec::new();
    let mut not_proven = Vec::new();
    let mut tiers = Vec::new();
    let gateway = r
        .executed_by
        .as_deref()
        .map(|e| e.trim_start_matches("upstream "));

    match (&bundle.signature, r.tiers.contains(&Tier::Signed)) {
        (None, true) => return Err(VerifyError::MissingSignature),
        (None, false) => {
            not_proven.push("who produced this receipt: it is unsigned (tiers [])".to_string())
        }
        (Some(sig), _) => {
            verify_chat_receipt_signature(r, sig, ev.trusted_key.as_ref())?;
            let trust = if ev.trusted_key.is_some() {
                "the key you trust"
            } else {
                "a key you did not pin (pass --trust-key)"
            };
            proven.push(Finding {
                check: "signature",
                detail: format!("node {} signed this chat receipt ({trust})", r.node_key),
            });
            if r.tiers.contains(&Tier::Signed) {
                tiers.push(TierReport {
                    tier: Tier::Signed,
                    proven: format!("node key {} signed this chat receipt ({trust})", r.node_key),
                    trust_assumption: match gateway {
                        None => "the node's operator: whoever holds that key".into(),
                        Some(url) => format!(
                            "the gateway's operator, for what the upstream endpoint {url} answered"
                        ),
                    },
                    simulated: false,
                });
            }
        }
    }

    let mut tee_summary = None;
    if r.tiers.contains(&Tier::Tee) {
        let at_time = ev.at_time.ok_or(VerifyError::NoTime)?;
        if bundle.signature.is_none() {
            return Err(TeeError::Receipt(
                "a tee receipt needs the attested key's signature over it (bundle.signature)"
                    .into(),
            )
            .into());
        }
        let value = bundle
            .evidence
            .get("tee")
            .ok_or_else(|| TeeError::Receipt("the bundle has no evidence[\"tee\"]".into()))?;
        let options = TeeOptions {
            at_time,
            allow_simulated: ev.allow_simulated,
            expected_nonce: None,
        };
        let env = resolve(value, ev.tee_supplied)?;
        let verdict = verify_envelope(&env, &r.node_key, &ev.tee_policy, &options)?;
        let (finding, tier) = crate::tee_findings(&verdict, "chat receipt");
        proven.push(finding);
        tiers.push(tier);
        tee_summary = Some(verdict.summary());
    }

    match &ev.log_trust {
        None => not_proven.push(match bundle.evidence.get(vouch_log::evidence::BUNDLE_EVIDENCE_KEY) {
            Some(_) => "that the receipt is in the public log: pass --log-key (and --witness) to check its inclusion proof".into(),
            None => "that the receipt is in a transparency log: the bundle carries no log evidence".into(),
        }),
        Some(policy) => {
            let v = vouch_log::verify_chat_bundle_log(bundle, policy)?;
            proven.push(crate::log_finding(&v));
        }
    }

    match request_body {
        Some(body) => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| VerifyError::RequestInvalid(format!("not JSON: {e}")))?;
            let d = request_digest(&value).map_err(|e| VerifyError::RequestInvalid(e.to_string()))?;
            digest_match(REQUEST_FILE, r.request_digest, d, &mut proven)?;
        }
        None => not_proven.push(format!(
            "which request this answers: the receipt names request digest {}; pass --request with the body you sent",
            r.request_digest
        )),
    }
    for (what, expected, ids, count) in [
        (
            PROMPT_TOKENS,
            r.prompt_tokens_digest,
            bundle.prompt_tokens.as_deref(),
            r.usage.prompt_tokens,
        ),
        (
            COMPLETION_TOKENS,
            r.completion_tokens_digest,
            bundle.completion_tokens.as_deref(),
            r.usage.completion_tokens,
        ),
    ] {
        match (expected, ids) {
            (Some(expected), Some(ids)) => {
                let actual = tokens_digest(ids).map_err(VerifyError::ChatReceiptInvalid)?;
                digest_match(what, expected, actual, &mut proven)?;
                if u32::try_from(ids.len()).ok() != Some(count) {
                    return Err(VerifyError::TokenCount {
                        what,
                        ids: ids.len(),
                        usage: count,
                    });
                }
            }
            (Some(_), None) => not_proven.push(format!(
                "the {what}: the receipt commits to them but the bundle does not carry them"
            )),
            (None, Some(_)) => {
                return Err(VerifyError::ChatReceiptInvalid(format!(
                    "the bundle carries {what} but the receipt commits to none"
                )));
            }
            (None, None) => {}
        }
    }
    match (gateway, ev.model_bytes) {
        (Some(_), _) => {}
        (None, Some(bytes)) => {
            digest_match(crate::MODEL_FILE, r.model.0, Digest::of(bytes), &mut proven)?
        }
        (None, None) => not_proven.push(
            "which weights file this is: pass --model to compare it with the receipt's model digest"
                .into(),
        ),
    }
    match (r.config_digest, ev.config) {
        (None, Some(_)) => return Err(VerifyError::NoConfig),
        (Some(expected), Some(c)) => {
            let actual = vouch_core::config_digest(c).map_err(VerifyError::BadConfig)?;
            digest_match(crate::CONFIGURATION, expected, actual, &mut proven)?;
        }
        (Some(d), None) => not_proven.push(format!(
            "which configuration (system prompt, settings) was in force: the receipt names {d}; pass --config"
        )),
        (None, None) => {}
    }

    if let Some(resp) = response {
        check_response(resp, bundle, &mut proven)?;
    } else {
        not_proven.push(format!(
            "{ANSWER_NOT_CHECKED} pass --response (the completion object), or check a stream with StreamVerifier"
        ));
    }
    if let Some(s) = r.stream {
        not_proven.push(format!(
            "{STREAM_NOT_CHECKED} the receipt commits to {} streamed chunks; check them as they arrive (StreamVerifier)",
            s.chunks
        ));
    }

    for t in &ev.require {
        if !tiers.iter().any(|r| r.tier == *t) {
            return Err(VerifyError::Required {
                tier: *t,
                why: format!("the receipt does not carry the {t} tier"),
            });
        }
    }
    let summary = match gateway {
        Some(url) => {
            not_proven.push(format!(
                "which model produced the answer: the receipt says the upstream endpoint {url} did (gateway mode); its identity rests on the gateway's word, and the model digest proves nothing about it"
            ));
            format!(
                "gateway: the node vouches for what {url} answered; the model's identity is NOT proven"
            )
        }
        None => {
            not_proven.push(if tee_summary.is_some() {
                "that the committed weights really produced this text: the tee tier vouches for the measured code's word; re-run with the receipt's seed and sampling to check".into()
            } else {
                "that the committed weights really produced this text: a signature only vouches for the node's word; re-run with the receipt's seed and sampling to check".into()
            });
            match tee_summary {
                Some(s) => s,
                None if bundle.signature.is_some() => "signature only: trusts the node".to_string(),
                None => "unsigned: integrity of the given files only".to_string(),
            }
        }
    };
    Ok(Report {
        tiers,
        proven,
        not_proven,
        summary,
    })
}

fn digest_match(
    what: &'static str,
    expected: Digest,
    actual: Digest,
    proven: &mut Vec<Finding>,
) -> Result<(), VerifyError> {
    if actual != expected {
        return Err(VerifyError::DigestMismatch {
            what,
            expected,
            actual,
        });
    }
    proven.push(Finding {
        check: what,
        detail: format!("the {what} hash to the receipt's {expected}"),
    });
    Ok(())
}

fn check_field<T: PartialEq + std::fmt::Display>(
    field: ResponseField,
    receipt: T,
    response: T,
    proven: &mut Vec<Finding>,
) -> Result<(), VerifyError> {
    if receipt != response {
        return Err(VerifyError::ResponseMismatch {
            field,
            receipt: receipt.to_string(),
            response: response.to_string().chars().take(200).collect(),
        });
    }
    proven.push(Finding {
        check: field.as_str(),
        detail: format!("{field} is the receipt's ({receipt})"),
    });
    Ok(())
}

/// The completion object's `model` must be the name the caller used (`model_ref`), or the
/// digest when the model was called by digest.
fn check_model(
    model: Option<&str>,
    bundle: &ChatBundle,
    proven: &mut Vec<Finding>,
) -> Result<(), VerifyError> {
    let r = &bundle.receipt;
    let expected = r.model_ref.clone().unwrap_or_else(|| r.model.to_string());
    check_field(
        ResponseField::Model,
        expected.as_str(),
        model.unwrap_or_default(),
        proven,
    )
}

fn check_usage(
    u: ChunkUsage,
    bundle: &ChatBundle,
    proven: &mut Vec<Finding>,
) -> Result<(), VerifyError> {
    let r = bundle.receipt.usage;
    let show = |p: u64, c: u64, t: u64| format!("prompt {p}, completion {c}, total {t}");
    check_field(
        ResponseField::Usage,
        show(
            r.prompt_tokens.into(),
            r.completion_tokens.into(),
            r.total_tokens.into(),
        ),
        show(u.prompt_tokens, u.completion_tokens, u.total_tokens),
        proven,
    )
}

fn check_response(
    resp: &serde_json::Value,
    bundle: &ChatBundle,
    proven: &mut Vec<Finding>,
) -> Result<(), VerifyError> {
    let r = &bundle.receipt;
    let invalid = |what: &str| VerifyError::ResponseInvalid(format!("it has no {what}"));
    let legacy = match resp.get("object").and_then(|o| o.as_str()) {
        Some("chat.completion") => false,
        Some("text_completion") => true,
        _ => {
            return Err(VerifyError::ResponseInvalid(
                "its object is neither \"chat.completion\" nor \"text_completion\" (a stream is checked with StreamVerifier)"
                    .into(),
            ));
        }
    };
    let choice = resp
        .get("choices")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
        .ok_or_else(|| invalid("choices[0]"))?;
    let content = if legacy {
        choice.get("text")
    } else {
        choice.get("message").and_then(|m| m.get("content"))
    };
    let content = match content {
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(serde_json::Value::Null) | None => "",
        Some(_) => {
            return Err(VerifyError::ResponseInvalid(
                "choices[0].message.content (choices[0].text) is not a string".into(),
            ));
        }
    };
    check_field(
        ResponseField::Completion,
        r.completion_digest,
        completion_digest(content),
        proven,
    )?;
    let finish = choice
        .get("finish_reason")
        .and_then(|f| f.as_str())
        .unwrap_or_default();
    check_field(
        ResponseField::FinishReason,
        r.finish_reason.as_str(),
        finish,
        proven,
    )?;
    let usage: ChunkUsage = resp
        .get("usage")
        .cloned()
        .ok_or_else(|| invalid("usage"))
        .and_then(|u| {
            serde_json::from_value(u)
                .map_err(|e| VerifyError::ResponseInvalid(format!("usage: {e}")))
        })?;
    check_usage(usage, bundle, proven)?;
    check_model(resp.get("model").and_then(|m| m.as_str()), bundle, proven)
}
