//! A small blocking HTTP client for the node's API, turning its JSON errors into messages.

use anyhow::{Context, anyhow};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

use crate::Remote;

pub struct Api {
    base: String,
    http: Client,
    token: Option<String>,
}

impl Api {
    pub fn new(remote: &Remote) -> anyhow::Result<Api> {
        let token = match &remote.token {
            Some(t) => Some(t.clone()),
            None => std::fs::read_to_string(remote.data_dir.join("admin.token"))
                .ok()
                .map(|t| t.trim().to_string()),
        };
        let http = Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()?;
        Ok(Api {
            base: remote.server.trim_end_matches('/').to_string(),
            http,
            token,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path)))
    }

    pub fn post_bytes_admin(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let token = self.token.as_deref().ok_or_else(|| {
            anyhow!("this needs the admin token: pass --token, set VOUCH_ADMIN_TOKEN, or run where --data-dir holds admin.token")
        })?;
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .header("content-type", "application/octet-stream")
                .body(body),
        )
    }

    /// A raw resource (checkpoint note, tile): its bytes, or the node's error as a message.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let body = resp.bytes()?.to_vec();
        if status.is_success() {
            return Ok(body);
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(error_of(status, &v)).with_context(|| format!("GET {path}"))
    }

    pub fn post_json_admin(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let token = self.token.as_deref().ok_or_else(|| {
            anyhow!("this needs the admin token: pass --token, set VOUCH_ADMIN_TOKEN, or run where --data-dir holds admin.token")
        })?;
        self.send(self.http.post(self.url(path)).bearer_auth(token).json(body))
    }

    /// POSTs JSON with extra headers and hands back the raw answer (for x402's 402 dance).
    pub fn post_json_raw(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let mut req = self.http.post(self.url(path)).json(body);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.send()
            .with_context(|| format!("cannot reach the node at {}", self.base))
    }

    /// A non-402 answer as the JSON value, or its error as a message.
    pub fn answer(&self, resp: Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(error_of(status, &body))
    }

    /// DELETE with `token`, or the admin token when none is given.
    pub fn delete_with_token(&self, path: &str, token: Option<String>) -> anyhow::Result<Value> {
        let token = token.or_else(|| self.token.clone()).ok_or_else(|| {
            anyhow!("this needs a token: pass the job's --cancel-token, or the admin token (--token, VOUCH_ADMIN_TOKEN, or --data-dir holding admin.token)")
        })?;
        self.send(self.http.delete(self.url(path)).bearer_auth(token))
    }

    fn send(&self, req: RequestBuilder) -> anyhow::Result<Value> {
        let resp: Response = req
            .send()
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(error_of(status, &body))
    }
}

/// The node's error as a message: `{"error": {code, message}}`, or an x402 402 body (`error` is
/// the reason code, `message` the explanation).
pub fn error_of(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    if let Some(reason) = body["error"].as_str() {
        let msg = body["message"].as_str().unwrap_or("(no message)");
        return anyhow!("the node answered {status} {reason}: {msg}");
    }
    let code = body["error"]["code"].as_str().unwrap_or("unknown");
    let msg = body["error"]["message"].as_str().unwrap_or("(no message)");
    anyhow!("the node answered {status} {code}: {msg}")
}
