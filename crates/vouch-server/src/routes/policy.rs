//! Per-model assurance: the minimum-tier policy (admin) and the advisor that tells a caller,
//! per tier, whether it is available, what it proves, what it trusts, and what it costs in time
//! and money here.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use bytes::Bytes;
use vouch_api::PolicyRequest;
use vouch_core::ErrorCode;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

/// The policy subject a path names: a model name (all versions) or a digest.
/// Sets or removes a model's minimum tier. Every change is stored with its time in the policy
/// history, which the transparency log records.
#[utoipa::path(put, path = "/v1/models/{reference}/policy", operation_id = "set_policy", tag = "policy", request_body = PolicyRequest,
    params(("reference" = String, Path, description = "model name or sha256:<hex>")),
    responses((status = 200, description = "the policy now in force", body = vouch_api::PolicyUpdate),
        (status = 401, description = "missing or wrong admin token", body = vouch_api::ErrorBody), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn put_policy(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::PolicyUpdate>, ApiError> {
    let body = body_or_error(body, 4096, ErrorCode::PayloadTooLarge)?;
    let req: PolicyRequest = crate::json::parse(
        &body,
        "invalid policy JSON (expected {\"min_tier\": \"signed\"|\"tee\"|\"zk\"|null})",
    )?;
    Ok(Json(st.node.set_policy(&reference, req.min_tier).await?))
}

/// A model's policy as stored for this subject.
#[utoipa::path(get, path = "/v1/models/{reference}/policy", operation_id = "get_policy", tag = "policy",
    params(("reference" = String, Path, description = "model name or sha256:<hex>")),
    responses((status = 200, description = "the policy, or null", body = vouch_api::PolicyView), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn get_policy(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<vouch_api::PolicyView>, ApiError> {
    Ok(Json(st.node.policy_of(&reference).await?))
}

/// Per tier: available here or why not, what it proves, what it trusts, its price, and the
/// latency measured on this model's recent requests at that tier.
#[utoipa::path(get, path = "/v1/models/{reference}/assurance", operation_id = "get_assurance", tag = "policy",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    responses((status = 200, description = "the tiers", body = vouch_api::Assurance), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn assurance(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<vouch_api::Assurance>, ApiError> {
    Ok(Json(st.node.assurance(&reference).await?))
}

/// Every policy in force and the latest 100 changes (newest first).
#[utoipa::path(get, path = "/v1/policies", operation_id = "list_policies", tag = "policy",
    responses((status = 200, description = "policies and changes", body = vouch_api::PolicyList)))]
pub async fn list_policies(
    State(st): State<Arc<AppState>>,
) -> Result<Json<vouch_api::PolicyList>, ApiError> {
    Ok(Json(st.node.policies().await?))
}
