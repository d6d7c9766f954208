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

    /// DELETE with `token`, or the admin token when none is given.
    pub fn delete_with_token(&self, path: &str, token: Option<String>) -> anyhow::Result<Value> {
        let token = token.or_else(|| self.token.clone()).ok_or_else(|| {
            anyhow!("this needs a token: pass the job's --cancel-token, or the admin token (--token, VOUCH_ADMIN_TOKEN, or --data-dir holding admin.token)")
        })?;
        self.send(self.http.delete(self.url(path)).bearer_auth(token))
    }

    /// POST JSON and also return the response headers.
    pub fn post_json_with_headers(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
        let resp: Response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let headers = resp.headers().clone();
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok((body, headers));
        }
        Err(error_of(status, &body))
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

fn error_of(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let code = body["error"]["code"].as_str().unwrap_or("unknown");
    let msg = body["error"]["message"].as_str().unwrap_or("(no message)");
    anyhow!("the node answered {status} {code}: {msg}")
}
