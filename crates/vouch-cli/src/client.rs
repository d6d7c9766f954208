//! A small blocking HTTP client for the node's API: answers are read into their `vouch-api`
//! types, paths and query strings are built by `url`/`serde_urlencoded` (so a name with `&`,
//! `#` or `/` in it stays one value), and the node's JSON errors become messages.

use anyhow::{Context, anyhow};
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vouch_api::ErrorBody;

use crate::Remote;

pub struct Api {
    base: Url,
    http: Client,
    token: Option<String>,
}

/// An x402 402 body: `error` is the reason code, `message` the explanation.
#[derive(serde::Deserialize)]
struct PaymentRefusal {
    error: String,
    #[serde(default)]
    message: Option<String>,
}

const NEEDS_ADMIN: &str = "this needs the admin token: pass --token, set VOUCH_ADMIN_TOKEN, or run where --data-dir holds admin.token";

impl Api {
    pub fn new(remote: &Remote) -> anyhow::Result<Api> {
        let token = match &remote.token {
            Some(t) => Some(t.clone()),
            None => std::fs::read_to_string(remote.data_dir.join("admin.token"))
                .ok()
                .map(|t| t.trim().to_string()),
        };
        vouch_pay::http::install_tls_provider();
        let http = Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()?;
        let base = Url::parse(remote.server.trim_end_matches('/'))
            .with_context(|| format!("--server {:?} is not a URL", remote.server))?;
        if base.cannot_be_a_base() {
            anyhow::bail!("--server {:?} is not an http(s) URL", remote.server);
        }
        Ok(Api { base, http, token })
    }

    /// The URL of `segments` below the server's base, each one percent-encoded as a single path
    /// segment (a model reference with `/` or `?` in it cannot change the route).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn admin_token(&self) -> anyhow::Result<&str> {
        self.token.as_deref().ok_or_else(|| anyhow!(NEEDS_ADMIN))
    }

    /// `GET` an answer of type `T`.
    pub fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(segments)))
    }

    /// `GET` with a query string encoded from `query`.
    pub fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(segments)).query(query))
    }

    /// `GET` the JSON the user asked to see as it came, after checking it is a `T`.
    pub fn get_raw<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> anyhow::Result<Value> {
        let v: Value = self.get_query(segments, query)?;
        decode::<T>(v.clone())?;
        Ok(v)
    }

    /// `POST` bytes with the admin token and a query string.
    pub fn post_bytes_admin<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
        body: Vec<u8>,
    ) -> anyhow::Result<T> {
        let token = self.admin_token()?;
        self.send(
            self.http
                .post(self.url(segments))
                .query(query)
                .bearer_auth(token)
                .header("content-type", "application/octet-stream")
                .body(body),
        )
    }

    /// A raw resource (checkpoint note, tile) at a path of already-safe segments: its bytes,
    /// or the node's error as a message.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        let resp = self
            .http
            .get(url)
            .send()
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let body = resp.bytes()?.to_vec();
        if status.is_success() {
            return Ok(body);
        }
        Err(error_of(status, &body)).with_context(|| format!("GET {path}"))
    }

    /// `POST` JSON with the admin token.
    pub fn post_json_admin<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> anyhow::Result<T> {
        let token = self.admin_token()?;
        self.send(
            self.http
                .post(self.url(segments))
                .bearer_auth(token)
                .json(body),
        )
    }

    /// `PUT` JSON with the admin token.
    pub fn put_json_admin<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> anyhow::Result<T> {
        let token = self.admin_token()?;
        self.send(
            self.http
                .put(self.url(segments))
                .bearer_auth(token)
                .json(body),
        )
    }

    /// POSTs JSON with extra headers and hands back the raw answer (for x402's 402 dance).
    pub fn post_json_raw<B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let mut req = self.http.post(self.url(segments)).json(body);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.send()
            .with_context(|| format!("cannot reach the node at {}", self.base))
    }

    /// A non-402 answer as a `T`, or its error as a message.
    pub fn answer<T: DeserializeOwned>(&self, resp: Response) -> anyhow::Result<T> {
        let status = resp.status();
        let body = resp.bytes()?;
        if status.is_success() {
            return decode_bytes(&body);
        }
        Err(error_of(status, &body))
    }

    /// DELETE with `token`, or the admin token when none is given.
    pub fn delete_with_token<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        token: Option<String>,
    ) -> anyhow::Result<T> {
        let token = token.or_else(|| self.token.clone()).ok_or_else(|| {
            anyhow!("this needs a token: pass the job's --cancel-token, or the admin token (--token, VOUCH_ADMIN_TOKEN, or --data-dir holding admin.token)")
        })?;
        self.send(self.http.delete(self.url(segments)).bearer_auth(token))
    }

    fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> anyhow::Result<T> {
        let resp: Response = req
            .send()
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        self.answer(resp)
    }
}

fn decode_bytes<T: DeserializeOwned>(body: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(body).map_err(|e| unexpected::<T>(e))
}

fn decode<T: DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    serde_json::from_value(v).map_err(|e| unexpected::<T>(e))
}

fn unexpected<T>(e: serde_json::Error) -> anyhow::Error {
    let ty = std::any::type_name::<T>();
    let ty = ty.rsplit("::").next().unwrap_or(ty);
    anyhow!(
        "the node's answer is not the {ty} this client expects ({e}): is it a Vouch node of this version?"
    )
}

/// The node's error as a message: `{"error": {code, message}}`, or an x402 402 body.
pub fn error_of(status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return anyhow!(
            "the node answered {status} {}: {}",
            e.error.code.as_str(),
            e.error.message
        );
    }
    if let Ok(r) = serde_json::from_slice::<PaymentRefusal>(body) {
        let msg = r.message.as_deref().unwrap_or("(no message)");
        return anyhow!("the node answered {status} {}: {msg}", r.error);
    }
    anyhow!("the node answered {status} unknown: (no message)")
}
