//! `POST /v1/infer`: run a model and answer with outputs and a receipt bundle.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde::Deserialize;
use vouch_core::{Bundle, ErrorCode, ModelRef, TensorMap};
use vouch_node::infer::parse_tiers;
use vouch_node::{InferCall, Inferred};

use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

/// `vouch_api::InferRequest` as the handler reads it: the same fields, with `inputs` borrowed
/// from the body (they are most of a large body) and parsed straight into tensors later, and
/// tiers as strings so an unknown one gets the node's own message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest<'a> {
    /// `name`, `name@version` or `sha256:<hex>`.
    pub model: String,
    /// Input name → `{dtype, shape, data}` (or `b64` instead of `data`). Borrowed from the
    /// body, not copied: the inputs are most of a large body.
    #[serde(borrow)]
    pub inputs: &'a serde_json::value::RawValue,
    /// Verification tiers, any of `signed`, `tee`, `zk`; default `["signed"]`. `[]` returns an
    /// unsigned receipt. `tee` receipts are always signed by the attested key.
    #[serde(default = "default_tiers")]
    pub tiers: Vec<String>,
    /// When the model's policy demands a stronger tier than asked for, add it (at its price)
    /// instead of refusing. The response headers `vouch-upgraded-from` and `vouch-price` say so.
    #[serde(default)]
    pub allow_upgrade: bool,
    /// Wait for the checkpoint that covers this receipt (at most the log's checkpoint period)
    /// and put its inclusion proof in `evidence.log`, so the bundle verifies against the log
    /// offline at once. Without it, `evidence.log` names the entry and `vouch log prove` fetches
    /// the proof later.
    #[serde(default)]
    pub log_proof: bool,
}

fn default_tiers() -> Vec<String> {
    vec!["signed".into()]
}

/// Runs a model. The answer is a receipt bundle: the receipt, the node's signature over it, the
/// outputs, and per-tier evidence (`evidence.tee`). Save it as-is and check it with `vouch verify`.
/// With `zk`, the answer comes at once with `evidence.zk_job = {id, url, status, receipt,
/// estimate_ms, wait_ms}`: the proof (binding this receipt's hash) is made in the background;
/// `GET /v1/proofs/{id}` returns it as `evidence.zk` to complete the bundle. The header
/// `vouch-zk-cancel-token` lets the caller cancel the job.
/// Headers: `vouch-price` (sum of the tiers' prices, with `vouch-price-asset`) and, when the
/// model's policy upgraded the request, `vouch-upgraded-from`. With payments on, send an x402
/// payment in `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1); a paid answer carries
/// `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE` and its receipt names the payment.
#[utoipa::path(post, path = "/v1/infer", operation_id = "infer", tag = "inference", request_body = vouch_api::InferRequest,
    responses((status = 200, description = "outputs and receipt bundle", body = vouch_core::Bundle),
        (status = 400, description = "bad input", body = vouch_api::ErrorBody),
        (status = 402, description = "payment required or refused (x402, when [pay] enabled): PAYMENT-REQUIRED header (v2) and the v1 JSON body, `error` = reason code"),
        (status = 404, description = "no such model", body = vouch_api::ErrorBody),
        (status = 413, description = "body too large", body = vouch_api::ErrorBody), (status = 422, description = "tier unavailable, or below the model's minimum tier", body = vouch_api::ErrorBody),
        (status = 503, description = "queue full (the executor's, or the zk proof queue: reason zk_queue_full); retry after the Retry-After delay", body = vouch_api::ErrorBody)))]
pub async fn infer(
    State(st): State<Arc<AppState>>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(HeaderMap, Json<Bundle>), ApiError> {
    let limits = &st.node.config.limits;
    let body = body_or_error(body, limits.max_body_bytes, ErrorCode::PayloadTooLarge)?;
    // A key given twice (in the request or in `inputs`) is refused before anything is parsed.
    let req: InferRequest = crate::json::parse(&body, "invalid request JSON")?;
    let tiers = parse_tiers(&req.tiers)?;
    let model: ModelRef = req
        .model
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    // Parsed straight from the raw text into tensors: no intermediate JSON tree.
    let inputs: TensorMap = serde_json::from_str(req.inputs.get())
        .map_err(|e| ApiError::new(ErrorCode::BadInput, format!("invalid inputs: {e}")))?;
    let done = st
        .node
        .infer(InferCall {
            model,
            inputs,
            tiers,
            allow_upgrade: req.allow_upgrade,
            log_proof: req.log_proof,
            payment: crate::routes::payment_headers(&request_headers),
        })
        .await?;
    Ok((response_headers(&done), Json(done.bundle)))
}

/// What an answer says beside its bundle: log index, price, upgrade, zk cancel token, x402.
pub(crate) fn response_headers(done: &Inferred) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("vouch-log-index", HeaderValue::from(done.log_index));
    for (name, value) in &done.payment_headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let mut text = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    if let Some(token) = &done.zk_cancel_token {
        text("vouch-zk-cancel-token", token);
    }
    text("vouch-price", &done.price.to_string());
    text("vouch-price-asset", &done.asset);
    if let Some(from) = &done.upgraded_from {
        let shown: Vec<&str> = from.iter().map(|t| t.as_str()).collect();
        text("vouch-upgraded-from", &format!("[{}]", shown.join(",")));
    }
    headers
}
