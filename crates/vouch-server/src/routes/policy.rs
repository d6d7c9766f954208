//! Per-model assurance: the minimum-tier policy (admin) and the advisor that tells a caller,
//! per tier, whether it is available, what it proves, what it trusts, and what it costs in time
//! and money here.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use vouch_core::{ErrorCode, Tier};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// `signed`, `tee` or `zk`: requests must carry this tier or a stronger one (signed < tee <
    /// zk). `null` removes the policy.
    #[schema(value_type = Option<String>)]
    pub min_tier: Option<Tier>,
}

/// The policy subject a path names: a model name (all versions) or a digest.
/// Sets or removes a model's minimum tier. Every change is stored with its time in the policy
/// history, which the transparency log records.
#[utoipa::path(put, path = "/v1/models/{reference}/policy", request_body = PolicyRequest,
    params(("reference" = String, Path, description = "model name or sha256:<hex>")),
    responses((status = 200, description = "the policy now in force"),
        (status = 401, description = "missing or wrong admin token"), (status = 404, description = "no such model")))]
pub async fn put_policy(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_or_error(body, 4096, ErrorCode::PayloadTooLarge)?;
    let req: PolicyRequest = crate::json::parse(
        &body,
        "invalid policy JSON (expected {\"min_tier\": \"signed\"|\"tee\"|\"zk\"|null})",
    )?;
    Ok(Json(st.node.set_policy(&reference, req.min_tier).await?))
}

/// A model's policy as stored for this subject.
#[utoipa::path(get, path = "/v1/models/{reference}/policy",
    params(("reference" = String, Path, description = "model name or sha256:<hex>")),
    responses((status = 200, description = "the policy, or null"), (status = 404, description = "no such model")))]
pub async fn get_policy(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(st.node.policy_of(&reference).await?))
}

/// Per tier: available here or why not, what it proves, what it trusts, its price, and the
/// latency measured on this model's recent requests at that tier.
#[utoipa::path(get, path = "/v1/models/{reference}/assurance",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    responses((status = 200, description = "the tiers"), (status = 404, description = "no such model")))]
pub async fn assurance(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(st.node.assurance(&reference).await?))
}
