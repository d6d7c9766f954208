//! `POST /v1/infer`: run a model and answer with outputs and a receipt bundle.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use serde::Deserialize;
use vouch_core::{
    BUNDLE_FORMAT, Bundle, EngineInfo, ErrorCode, ModelRef, RECEIPT_VERSION, Receipt, TensorMap,
    Tier,
};

use crate::analytics::Outcome;
use crate::catalog;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequest<'a> {
    /// `name`, `name@version` or `sha256:<hex>`.
    pub model: String,
    /// Input name → `{dtype, shape, data}` (or `b64` instead of `data`). Borrowed from the
    /// body, not copied: the inputs are most of a large body.
    #[schema(value_type = Object)]
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
#[utoipa::path(post, path = "/v1/infer", request_body = InferRequest,
    responses((status = 200, description = "outputs and receipt bundle"),
        (status = 400, description = "bad input"),
        (status = 402, description = "payment required or refused (x402, when [pay] enabled): PAYMENT-REQUIRED header (v2) and the v1 JSON body, `error` = reason code"),
        (status = 404, description = "no such model"),
        (status = 413, description = "body too large"), (status = 422, description = "tier unavailable, or below the model's minimum tier"),
        (status = 503, description = "queue full (the executor's, or the zk proof queue: reason zk_queue_full); retry after the Retry-After delay")))]
pub async fn infer(
    State(st): State<Arc<AppState>>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(HeaderMap, Json<Bundle>), ApiError> {
    let limits = &st.config.limits;
    let body = body_or_error(body, limits.max_body_bytes, ErrorCode::PayloadTooLarge)?;
    // A key given twice (in the request or in `inputs`) is refused before anything is parsed.
    let req: InferRequest = crate::json::parse(&body, "invalid request JSON")?;
    let tiers = parse_tiers(&req.tiers)?;
    let model_ref: ModelRef = req
        .model
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    // Parsed straight from the raw text into tensors: no intermediate JSON tree.
    let inputs: TensorMap = serde_json::from_str(req.inputs.get())
        .map_err(|e| ApiError::new(ErrorCode::BadInput, format!("invalid inputs: {e}")))?;
    if inputs.total_elements() > limits.max_input_elements {
        return Err(ApiError::new(
            ErrorCode::BadInput,
            format!(
                "inputs hold {} elements; this node's limit is {}",
                inputs.total_elements(),
                limits.max_input_elements
            ),
        ));
    }
    if let Some((name, t)) = inputs.iter().find(|(_, t)| {
        t.shape()
            .first()
            .is_some_and(|&r| r > limits.max_request_batch)
    }) {
        return Err(ApiError::new(
            ErrorCode::BadInput,
            format!(
                "input {name:?} has {} rows; this node's limit per request is {}",
                t.shape()[0],
                limits.max_request_batch
            ),
        ));
    }

    // Only registered models are figured in `/metrics` and `/status`: a request naming an
    // unknown model leaves no label behind, only a count in one series.
    let known = async {
        let digest = catalog::resolve(&st, &model_ref).await?;
        Ok::<_, ApiError>((digest, catalog::meta(&st, &digest).await?))
    };
    let (digest, meta) = known.await.inspect_err(|e| {
        if e.code == ErrorCode::ModelNotFound {
            metrics::counter!("vouch_unknown_model_requests_total").increment(1);
        }
    })?;
    let started = Instant::now();
    let label = match &model_ref {
        ModelRef::Name { name, .. } => name.clone(),
        ModelRef::Digest(d) => d.to_string(),
    };
    let asked = tiers.clone();
    let result = run(
        &st,
        &request_headers,
        digest,
        &meta,
        model_ref,
        inputs,
        Asked {
            tiers,
            allow_upgrade: req.allow_upgrade,
            log_proof: req.log_proof,
        },
    )
    .await;
    let (tiers, price) = match &result {
        Ok((h, b)) => (
            b.receipt.tiers.clone(),
            h.get("vouch-price")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0),
        ),
        Err(_) => (asked, 0),
    };
    st.analytics.record(&Outcome {
        model: digest,
        label: &label,
        tiers: &tiers,
        ok: result.is_ok(),
        latency: started.elapsed(),
        price,
    });
    result
}

/// What the caller asked for besides the model and inputs.
struct Asked {
    tiers: Vec<Tier>,
    allow_upgrade: bool,
    log_proof: bool,
}

async fn run(
    st: &Arc<AppState>,
    request_headers: &HeaderMap,
    digest: vouch_core::ModelDigest,
    meta: &crate::state::ModelMeta,
    model_ref: ModelRef,
    inputs: TensorMap,
    asked: Asked,
) -> Result<(HeaderMap, Json<Bundle>), ApiError> {
    let log_proof = asked.log_proof;
    let decision = crate::tiers::decide(st, &digest, asked.tiers, asked.allow_upgrade).await?;
    let tiers = decision.tiers;
    vouch_exec::engine::check_inputs(&meta.signature, &inputs)?;
    // zk admission before any work or charge: a refused proof costs the caller nothing.
    let zk = match tiers.contains(&Tier::Zk) {
        true => Some((st.zk.admit(&digest, &inputs)?, inputs.clone())),
        false => None,
    };
    let engine = st.engines.get(meta.engine)?;
    let config = crate::routes::config::facts_for(st, &digest).await?;
    let config_digest = config.digest;
    let request_id = uuid::Uuid::now_v7().to_string();
    let paid = crate::payment::admit(
        st,
        request_headers,
        &digest,
        &tiers,
        &decision.quote,
        &request_id,
    )
    .await?;
    let input_digest = inputs.digest();
    let run = match execute(st, digest, meta, inputs, config.batching).await {
        Ok(run) => run,
        Err(e) => {
            crate::payment::abandon(st, paid).await;
            return Err(e);
        }
    };
    // Settled before the receipt is made, so the signed receipt names the payment.
    let (payment, pay_headers) = crate::payment::settle(st, paid).await?;

    let receipt = Receipt {
        version: RECEIPT_VERSION,
        request_id,
        model: digest,
        model_ref: match &model_ref {
            ModelRef::Digest(_) => None,
            named => Some(named.to_string()),
        },
        input_digest,
        output_digest: run.outputs.digest(),
        engine: EngineInfo {
            name: meta.engine.as_str().into(),
            version: engine.version(),
            profile: run.profile,
        },
        config_digest,
        tiers: tiers.clone(),
        node_key: st.signer.public_key(),
        issued_at: vouch_store::now_rfc3339(),
        payment,
    };
    // Canonicalised once: the signature and the log entry cover the same bytes.
    let canonical = receipt.canonical_bytes();
    let mut evidence = std::collections::BTreeMap::new();
    if tiers.contains(&Tier::Tee) {
        let tee = st
            .tee
            .as_ref()
            .ok_or_else(|| ApiError::internal("tee tier granted without a producer"))?;
        evidence.insert("tee".to_string(), tee.boot_json.clone());
    }
    // The answer waits for the durable log entry: an acknowledged receipt is always in the log.
    // A settlement in the built-in ledger is made durable by a sync running at the same time.
    // The signature covers the same bytes as the log entry, so it is made while the log commit
    // runs (the log future is polled first and hands its entry to the appender).
    let (logged, synced, signature) = tokio::join!(
        crate::transparency::log_receipt(&st.log, &canonical, log_proof),
        crate::payment::make_durable(st, receipt.payment.as_ref()),
        async {
            // Let the log's appender task (woken by the entry, queued behind this task) hand
            // the batch to the committer first; then sign during the commit.
            tokio::task::yield_now().await;
            // `tee` evidence vouches for the key, so a tee receipt is always signed by that key.
            (tiers.contains(&Tier::Signed) || tiers.contains(&Tier::Tee)).then(|| {
                st.signer
                    .sign_receipt_hash(&vouch_core::Digest::of(&canonical))
            })
        },
    );
    let log_evidence = match logged.and_then(|e| synced.map(|()| e)) {
        Ok(e) => e,
        Err(e) => {
            // No output without a logged receipt and a durable settlement; a payment already
            // settled goes back.
            crate::payment::refund_unserved(st, receipt.payment.as_ref(), &e.message).await;
            return Err(e);
        }
    };
    evidence.insert(
        vouch_log::evidence::BUNDLE_EVIDENCE_KEY.to_string(),
        log_evidence.to_json(),
    );
    let mut headers = HeaderMap::new();
    headers.insert("vouch-log-index", HeaderValue::from(log_evidence.index));
    crate::payment::add_headers(&mut headers, pay_headers);
    if let Some((ticket, zk_inputs)) = zk {
        let job = ticket.submit(&receipt, &zk_inputs).await?;
        evidence.insert("zk_job".to_string(), job.reference);
        if let Ok(v) = HeaderValue::from_str(&job.cancel_token) {
            headers.insert("vouch-zk-cancel-token", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&decision.quote.total.to_string()) {
        headers.insert("vouch-price", v);
    }
    if let Ok(v) = HeaderValue::from_str(&st.prices.unit()) {
        headers.insert("vouch-price-asset", v);
    }
    if let Some(from) = &decision.upgraded_from {
        let shown: Vec<&str> = from.iter().map(|t| t.as_str()).collect();
        if let Ok(v) = HeaderValue::from_str(&format!("[{}]", shown.join(","))) {
            headers.insert("vouch-upgraded-from", v);
        }
    }
    Ok((
        headers,
        Json(Bundle {
            format: BUNDLE_FORMAT.into(),
            receipt,
            signature,
            outputs: Some(run.outputs),
            evidence,
        }),
    ))
}

/// Loads the model and runs it on the worker pool.
async fn execute(
    st: &Arc<AppState>,
    digest: vouch_core::ModelDigest,
    meta: &crate::state::ModelMeta,
    inputs: TensorMap,
    batching: bool,
) -> Result<vouch_exec::RunOutput, ApiError> {
    let model = catalog::loaded(st, digest, meta).await?;
    // Dropping the handle (the request timed out, the client left) stops the run.
    let run = st.executor.submit_with(digest, model, inputs, batching)?;
    run.await
        .map_err(|_| ApiError::internal("the executor dropped the request"))?
        .map_err(ApiError::from)
}

/// Known tier names; whether this node can give them for the model is decided per request by
/// [`crate::tiers::decide`], still before any work is done.
fn parse_tiers(raw: &[String]) -> Result<Vec<Tier>, ApiError> {
    let tiers = raw
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|m: String| ApiError::new(ErrorCode::BadRequest, m))
        })
        .collect::<Result<Vec<Tier>, _>>()?;
    Ok(Tier::canonical_set(&tiers))
}
