//! Gateway mode, honestly labelled: a model registered as an upstream OpenAI-compatible
//! endpoint instead of weights. The node forwards the chat (with the model's configuration
//! applied), reads the answer back (whole or streamed) and receipts what it sent and received,
//! with `executed_by: "upstream <url>"` — so a verifier says the model's identity rests on the
//! gateway's word, not on a weights digest.
//!
//! The registered "model" is a small JSON descriptor ([`UpstreamDescriptor`]); its SHA-256 is
//! the catalog digest like any model's bytes. It names the endpoint and the upstream's model,
//! and at most the *name* of an API key: the key itself lives in the node's config
//! (`[llm.upstream_keys]`), never in the descriptor, the registry or the log.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use vouch_core::ErrorCode;
use vouch_core::chat::Usage;

use crate::error::NodeError;

/// The registry's `engine` for upstream endpoints.
pub const UPSTREAM_ENGINE: &str = "upstream";
/// The descriptor's `format`.
pub const UPSTREAM_FORMAT: &str = "vouch.upstream.v1";
/// Largest descriptor accepted: it is a URL and two names.
const MAX_DESCRIPTOR_BYTES: usize = 4096;
/// Longest SSE line read from an upstream; a longer one is refused, not buffered.
const MAX_SSE_LINE_BYTES: usize = 1 << 20;

/// What a gateway model is: where to forward, and as which upstream model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamDescriptor {
    /// Always [`UPSTREAM_FORMAT`].
    pub format: String,
    /// The OpenAI-compatible base URL, e.g. `http://127.0.0.1:8081/v1`; the node posts to
    /// `<url>/chat/completions`.
    pub url: String,
    /// The `model` the upstream is asked for.
    pub model: String,
    /// The name of the bearer key in `[llm.upstream_keys]`, if the upstream needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl UpstreamDescriptor {
    /// The descriptor's canonical bytes (what `vouch models add --upstream` uploads).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Fields in declaration order, no whitespace: the same endpoint written by the CLI
        // always gets the same digest.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `"upstream <url>"`, the receipt's `executed_by`.
    pub fn executed_by(&self) -> String {
        format!("upstream {}", self.url)
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.url.trim_end_matches('/'))
    }

    /// Checks what registration and every chat rely on.
    pub fn validate(&self, keys: &UpstreamKeys) -> Result<(), String> {
        if self.format != UPSTREAM_FORMAT {
            return Err(format!("format must be {UPSTREAM_FORMAT:?}"));
        }
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url: only http and https endpoints".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "url: credentials do not belong in the URL (it is logged); name a key in [llm.upstream_keys]"
                    .into(),
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("url: no query or fragment; give the API's base URL".into());
        }
        if self.model.is_empty()
            || self.model.len() > 256
            || self.model.chars().any(char::is_control)
        {
            return Err("model: 1 to 256 characters, no control characters".into());
        }
        if let Some(k) = &self.api_key
            && !keys.0.contains_key(k)
        {
            return Err(format!(
                "api_key {k:?} is not configured on this node ([llm.upstream_keys])"
            ));
        }
        Ok(())
    }
}

/// Whether the uploaded bytes are a gateway descriptor rather than weights: a small JSON
/// object whose `format` is [`UPSTREAM_FORMAT`].
pub fn is_descriptor(bytes: &[u8]) -> bool {
    bytes.len() <= MAX_DESCRIPTOR_BYTES
        && bytes.first() == Some(&b'{')
        && serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get("format").and_then(Value::as_str).map(str::to_owned))
            .is_some_and(|f| f == UPSTREAM_FORMAT)
}

/// Parses and checks a descriptor: 422 `invalid_model` with the reason when it is wrong.
pub fn parse_descriptor(
    bytes: &[u8],
    keys: &UpstreamKeys,
) -> Result<UpstreamDescriptor, NodeError> {
    let invalid = |m: String| {
        NodeError::new(
            ErrorCode::InvalidModel,
            format!("not an upstream descriptor this node can serve: {m}"),
        )
    };
    if bytes.len() > MAX_DESCRIPTOR_BYTES {
        return Err(invalid(format!("larger than {MAX_DESCRIPTOR_BYTES} bytes")));
    }
    let d: UpstreamDescriptor =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    d.validate(keys).map_err(invalid)?;
    Ok(d)
}

/// `[llm.upstream_keys]`: key name → bearer token. Never serialised or printed.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct UpstreamKeys(pub BTreeMap<String, String>);

impl std::fmt::Debug for UpstreamKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Serialize for UpstreamKeys {
    /// Only the names: a config printed or served never shows a key.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.keys().map(|k| (k, "<redacted>")))
    }
}

/// What is sent upstream, decided before anything is forwarded.
pub struct Forward {
    pub descriptor: UpstreamDescriptor,
    /// The body as posted upstream: the caller's, with the upstream model name, the
    /// configuration's system prompt and the sampling the receipt states made explicit.
    pub body: Value,
    pub stream: bool,
}

/// The sampling a forwarded request states, so the receipt's `sampling` is what was asked
/// upstream, not a guess at the upstream's defaults.
pub struct ForwardSampling<'a> {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    pub stop: &'a [String],
    pub seed: Option<u64>,
}

/// Builds the forwarded body from the caller's: every field the caller sent goes upstream
/// (tools, response_format, …), except Vouch's own `tiers`; `model`, the system prompt and the
/// sampling are the node's.
pub fn forward_body(
    caller: &Value,
    descriptor: &UpstreamDescriptor,
    system_prompt: Option<&str>,
    s: &ForwardSampling<'_>,
    stream: bool,
) -> Result<Value, NodeError> {
    let mut body = caller.clone();
    let obj = body
        .as_object_mut()
        .ok_or_else(|| NodeError::new(ErrorCode::BadRequest, "the body is not a JSON object"))?;
    obj.remove("tiers");
    obj.remove("max_completion_tokens");
    obj.insert("model".into(), Value::from(descriptor.model.clone()));
    if let Some(prompt) = system_prompt {
        let mut messages = vec![serde_json::json!({"role": "system", "content": prompt})];
        if let Some(Value::Array(given)) = obj.remove("messages") {
            messages.extend(given);
        }
        obj.insert("messages".into(), Value::Array(messages));
    }
    obj.insert("temperature".into(), Value::from(s.temperature));
    obj.insert("top_p".into(), Value::from(s.top_p));
    obj.insert("max_tokens".into(), Value::from(s.max_tokens));
    if s.stop.is_empty() {
        obj.remove("stop");
    } else {
        obj.insert("stop".into(), Value::from(s.stop.to_vec()));
    }
    if let Some(seed) = s.seed {
        obj.insert("seed".into(), Value::from(seed));
    }
    obj.insert("stream".into(), Value::from(stream));
    if stream {
        // The receipt needs the upstream's usage, which a stream carries only when asked.
        obj.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    } else {
        obj.remove("stream_options");
    }
    Ok(body)
}

/// How an upstream answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFinish {
    Stop,
    Length,
}

/// What the upstream answered.
pub struct UpstreamAnswer {
    pub text: String,
    pub finish: UpstreamFinish,
    pub usage: Usage,
    /// The `model` the upstream says answered.
    pub model: String,
}

fn upstream_error(m: impl Into<String>) -> NodeError {
    NodeError::new(ErrorCode::UpstreamFailed, m)
}

fn finish_of(f: Option<&str>) -> Result<Option<UpstreamFinish>, NodeError> {
    match f {
        None => Ok(None),
        Some("stop") => Ok(Some(UpstreamFinish::Stop)),
        Some("length") => Ok(Some(UpstreamFinish::Length)),
        Some(other) => Err(upstream_error(format!(
            "the upstream ended with finish_reason {:?}, which a chat receipt cannot state (it commits to the text only)",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl WireUsage {
    fn usage(&self) -> Result<Usage, NodeError> {
        Ok(Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self
                .prompt_tokens
                .checked_add(self.completion_tokens)
                .ok_or_else(|| upstream_error("the upstream's usage overflows"))?,
        })
    }
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    model: String,
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: u32,
    message: Option<WireMessage>,
    delta: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

/// Talks to upstream endpoints: one HTTP client, its limits from `[llm]`.
pub struct Gateway {
    client: reqwest::Client,
    keys: UpstreamKeys,
    max_response_bytes: usize,
}

impl Gateway {
    pub fn new(
        keys: UpstreamKeys,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Self, NodeError> {
        let client = vouch_pay::http::client_builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            // An upstream that redirects is not the endpoint the receipt names.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(NodeError::internal)?;
        Ok(Gateway {
            client,
            keys,
            max_response_bytes,
        })
    }

    pub fn keys(&self) -> &UpstreamKeys {
        &self.keys
    }

    /// Forwards the request and waits for the upstream's status: anything but a success is
    /// a 502 `upstream_failed` naming what it said.
    pub async fn open(&self, f: &Forward) -> Result<reqwest::Response, NodeError> {
        let body = serde_json::to_vec(&f.body).map_err(NodeError::internal)?;
        let mut req = self
            .client
            .post(f.descriptor.endpoint())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(name) = &f.descriptor.api_key {
            let key = self.keys.0.get(name).ok_or_else(|| {
                upstream_error(format!("api_key {name:?} is no longer configured"))
            })?;
            req = req.bearer_auth(key);
        }
        let mut resp = req.send().await.map_err(|e| {
            upstream_error(format!(
                "the upstream {} did not answer: {}",
                f.descriptor.url,
                without_url(&e)
            ))
        })?;
        let status = resp.status();
        if !status.is_success() {
            let body = self.read_capped(&mut resp, 4096).await.unwrap_or_default();
            return Err(upstream_error(format!(
                "the upstream answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        Ok(resp)
    }

    /// Reads the answer [`open`](Self::open) got. Streamed text goes to `deltas` as it
    /// arrives; a closed `deltas` (the caller left) does not stop the read — the upstream's
    /// usage comes last and the receipt needs it.
    pub async fn read(
        &self,
        mut resp: reqwest::Response,
        stream: bool,
        deltas: Option<mpsc::Sender<String>>,
    ) -> Result<UpstreamAnswer, NodeError> {
        if stream {
            return self.read_stream(resp, deltas).await;
        }
        let body = self.read_capped(&mut resp, self.max_response_bytes).await?;
        let c: WireCompletion = serde_json::from_slice(&body)
            .map_err(|e| upstream_error(format!("the upstream's answer: {e}")))?;
        let choice = c
            .choices
            .iter()
            .find(|c| c.index == 0)
            .ok_or_else(|| upstream_error("the upstream's answer has no choice 0"))?;
        let message = choice
            .message
            .as_ref()
            .ok_or_else(|| upstream_error("the upstream's choice 0 has no message"))?;
        refuse_tool_calls(message)?;
        Ok(UpstreamAnswer {
            text: message.content.clone().unwrap_or_default(),
            finish: finish_of(choice.finish_reason.as_deref())?
                .ok_or_else(|| upstream_error("the upstream's choice 0 has no finish_reason"))?,
            usage: c
                .usage
                .as_ref()
                .ok_or_else(|| upstream_error("the upstream's answer has no usage"))?
                .usage()?,
            model: c.model,
        })
    }

    async fn read_capped(
        &self,
        resp: &mut reqwest::Response,
        cap: usize,
    ) -> Result<Vec<u8>, NodeError> {
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| upstream_error(format!("reading the upstream: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > cap {
                return Err(upstream_error(format!(
                    "the upstream's answer is larger than {cap} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Reads server-sent events line by line, each line bounded and the whole bounded.
    async fn read_stream(
        &self,
        mut resp: reqwest::Response,
        mut deltas: Option<mpsc::Sender<String>>,
    ) -> Result<UpstreamAnswer, NodeError> {
        let mut line = Vec::new();
        let mut total = 0usize;
        let mut answer = StreamState::default();
        'read: while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| upstream_error(format!("reading the upstream: {}", without_url(&e))))?
        {
            total += chunk.len();
            if total > self.max_response_bytes {
                return Err(upstream_error(format!(
                    "the upstream's stream is longer than {} bytes",
                    self.max_response_bytes
                )));
            }
            for &b in chunk.iter() {
                if b != b'\n' {
                    if line.len() >= MAX_SSE_LINE_BYTES {
                        return Err(upstream_error("the upstream sent an SSE line over 1 MiB"));
                    }
                    line.push(b);
                    continue;
                }
                let text = std::mem::take(&mut line);
                let text = text.strip_suffix(b"\r").unwrap_or(&text);
                let Some(data) = text.strip_prefix(b"data:") else {
                    continue; // comments, `event:`, `id:`, blank separators
                };
                let data = data.strip_prefix(b" ").unwrap_or(data);
                if data == b"[DONE]" {
                    break 'read;
                }
                if let Some(delta) = answer.push(data)?
                    && let Some(tx) = &deltas
                    && tx.send(delta).await.is_err()
                {
                    deltas = None;
                }
            }
        }
        answer.finish()
    }
}

/// reqwest's errors name the URL; the descriptor's URL is public, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<endpoint>");
    }
    s.chars().take(300).collect()
}

fn refuse_tool_calls(m: &WireMessage) -> Result<(), NodeError> {
    if m.tool_calls.as_ref().is_some_and(|t| !t.is_null()) {
        return Err(upstream_error(
            "the upstream answered with tool calls, which a chat receipt does not cover yet",
        ));
    }
    Ok(())
}

/// A stream's answer as it accumulates.
#[derive(Default)]
struct StreamState {
    text: String,
    finish: Option<UpstreamFinish>,
    usage: Option<Usage>,
    model: String,
}

impl StreamState {
    /// One chunk's data; returns the text it adds.
    fn push(&mut self, data: &[u8]) -> Result<Option<String>, NodeError> {
        let c: WireChunk = serde_json::from_slice(data)
            .map_err(|e| upstream_error(format!("an upstream chunk: {e}")))?;
        if self.model.is_empty() {
            self.model = c.model;
        }
        if let Some(u) = &c.usage {
            self.usage = Some(u.usage()?);
        }
        let mut added = None;
        for choice in c.choices.iter().filter(|c| c.index == 0) {
            if let Some(d) = &choice.delta {
                refuse_tool_calls(d)?;
                if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                    self.text.push_str(t);
                    added = Some(t.to_owned());
                }
            }
            if let Some(f) = finish_of(choice.finish_reason.as_deref())? {
                self.finish = Some(f);
            }
        }
        Ok(added)
    }

    fn finish(self) -> Result<UpstreamAnswer, NodeError> {
        Ok(UpstreamAnswer {
            text: self.text,
            finish: self.finish.ok_or_else(|| {
                upstream_error("the upstream's stream ended without a finish_reason")
            })?,
            usage: self.usage.ok_or_else(|| {
                upstream_error(
                    "the upstream's stream carried no usage (stream_options.include_usage)",
                )
            })?,
            model: self.model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(url: &str) -> UpstreamDescriptor {
        UpstreamDescriptor {
            format: UPSTREAM_FORMAT.into(),
            url: url.into(),
            model: "smollm2".into(),
            api_key: None,
        }
    }

    #[test]
    fn a_descriptor_is_recognised_and_checked() {
        let keys = UpstreamKeys::default();
        let d = descriptor("http://127.0.0.1:8081/v1");
        let bytes = d.to_bytes();
        assert!(is_descriptor(&bytes));
        assert_eq!(parse_descriptor(&bytes, &keys).unwrap(), d);
        assert!(!is_descriptor(b"GGUF...."));
        assert!(!is_descriptor(br#"{"format":"other"}"#));
        for bad in [
            "ftp://h/v1",
            "http://user:pw@h/v1",
            "http://h/v1?key=1",
            "not a url",
        ] {
            let e = parse_descriptor(&descriptor(bad).to_bytes(), &keys).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidModel, "{bad}");
        }
        let mut with_key = descriptor("https://api.example.com/v1");
        with_key.api_key = Some("prod".into());
        let e = parse_descriptor(&with_key.to_bytes(), &keys).unwrap_err();
        assert!(e.message.contains("not configured"), "{}", e.message);
        let keys = UpstreamKeys(BTreeMap::from([("prod".into(), "sk-secret".into())]));
        parse_descriptor(&with_key.to_bytes(), &keys).unwrap();
        // The key never shows.
        assert!(!format!("{keys:?}").contains("sk-secret"));
        assert!(!serde_json::to_string(&keys).unwrap().contains("sk-secret"));
    }

    #[test]
    fn the_forwarded_body_keeps_the_callers_fields_and_states_the_sampling() {
        let caller = serde_json::json!({
            "model": "gw@1", "tiers": ["signed"], "max_completion_tokens": 9,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "text"}, "user": "u1"
        });
        let s = ForwardSampling {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 9,
            stop: &["\n\n".to_string()],
            seed: Some(7),
        };
        let b = forward_body(
            &caller,
            &descriptor("http://h/v1"),
            Some("Be brief."),
            &s,
            true,
        )
        .unwrap();
        assert_eq!(b["model"], "smollm2");
        assert!(b.get("tiers").is_none() && b.get("max_completion_tokens").is_none());
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][1]["content"], "hi");
        assert_eq!(b["max_tokens"], 9);
        assert_eq!(b["seed"], 7);
        assert_eq!(b["stop"][0], "\n\n");
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["response_format"]["type"], "text");
        assert_eq!(b["user"], "u1");
    }

    #[test]
    fn a_stream_needs_a_finish_and_usage_and_refuses_tool_calls() {
        let mut s = StreamState::default();
        let d = s
            .push(br#"{"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#)
            .unwrap();
        assert_eq!(d.as_deref(), Some("Hel"));
        s.push(br#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#)
            .unwrap();
        let no_usage = StreamState {
            text: s.text.clone(),
            finish: s.finish,
            ..Default::default()
        };
        assert!(no_usage.finish().is_err());
        s.push(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        )
        .unwrap();
        let a = s.finish().unwrap();
        assert_eq!(
            (a.text.as_str(), a.finish, a.usage.total_tokens),
            ("Hello", UpstreamFinish::Stop, 5)
        );
        let mut t = StreamState::default();
        assert!(
            t.push(br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x"}]}}]}"#)
                .is_err()
        );
        assert!(
            t.push(br#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#)
                .is_err()
        );
    }
}
