//! `POST /v1/infer`: run a model and answer with outputs and a receipt bundle.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use bytes::Bytes;
use serde::Deserialize;
use vouch_core::{
    BUNDLE_FORMAT, Bundle, EngineInfo, ErrorCode, ModelRef, RECEIPT_VERSION, Receipt, TensorMap,
    Tier,
};

use crate::catalog;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// `name`, `name@version` or `sha256:<hex>`.
    pub model: String,
    /// Input name → `{dtype, shape, data}` (or `b64` instead of `data`).
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    /// Verification tiers; default `["signed"]`. `[]` returns an unsigned receipt.
    #[serde(default = "default_tiers")]
    pub tiers: Vec<String>,
}

fn default_tiers() -> Vec<String> {
    vec!["signed".into()]
}

/// Runs a model. The answer is a receipt bundle: the receipt, the node's signature over it, and
/// the outputs. Save it as-is and check it with `vouch verify`.
#[utoipa::path(post, path = "/v1/infer", request_body = InferRequest,
    responses((status = 200, description = "outputs and receipt bundle"),
        (status = 400, description = "bad input"), (status = 404, description = "no such model"),
        (status = 413, description = "body too large"), (status = 422, description = "tier unavailable"),
        (status = 503, description = "queue full; retry after the Retry-After delay")))]
pub async fn infer(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Bundle>, ApiError> {
    let limits = &st.config.limits;
    let body = body_or_error(body, limits.max_body_bytes, ErrorCode::PayloadTooLarge)?;
    let req: InferRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid request JSON: {e}")))?;
    let tiers = parse_tiers(&req.tiers)?;
    let model_ref: ModelRef = req
        .model
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    let inputs: TensorMap = serde_json::from_value(req.inputs)
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

    let digest = catalog::resolve(&st, &model_ref).await?;
    let meta = catalog::meta(&st, &digest).await?;
    vouch_exec::engine::check_inputs(&meta.signature, &inputs)?;
    let model = catalog::loaded(&st, digest, &meta).await?;
    let input_digest = inputs.digest();
    let rx = st.executor.submit(digest, model.clone(), inputs)?;
    let run = rx
        .await
        .map_err(|_| ApiError::internal("the executor dropped the request"))??;

    let engine = st.engines.get(meta.engine)?;
    let receipt = Receipt {
        version: RECEIPT_VERSION,
        request_id: uuid::Uuid::now_v7().to_string(),
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
        config_digest: None,
        tiers: tiers.clone(),
        node_key: st.signer.public_key(),
        issued_at: vouch_store::now_rfc3339(),
        payment: None,
    };
    let signature = tiers
        .contains(&Tier::Signed)
        .then(|| st.signer.sign_receipt(&receipt));
    Ok(Json(Bundle {
        format: BUNDLE_FORMAT.into(),
        receipt,
        signature,
        outputs: Some(run.outputs),
        evidence: Default::default(),
    }))
}

/// Known tiers this node can provide; anything else fails before any work is done.
fn parse_tiers(raw: &[String]) -> Result<Vec<Tier>, ApiError> {
    let mut tiers = Vec::with_capacity(raw.len());
    for t in raw {
        let tier: Tier = t
            .parse()
            .map_err(|m: String| ApiError::new(ErrorCode::BadRequest, m))?;
        match tier {
            Tier::Signed => tiers.push(tier),
            Tier::Tee | Tier::Zk => {
                return Err(ApiError::new(
                    ErrorCode::TierUnavailable,
                    format!(
                        "the {tier} tier is not available on this node; ask for [\"signed\"] or find a node that offers {tier}"
                    ),
                ));
            }
        }
    }
    Ok(Tier::canonical_set(&tiers))
}
