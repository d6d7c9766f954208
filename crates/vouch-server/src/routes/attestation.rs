//! The `tee` tier's evidence over HTTP (`vouch_node::attestation`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use vouch_api::AttestParams;

use crate::error::ApiError;
use crate::state::AppState;

/// The evidence binding this node's receipt key to its measured code (`vouch.tee.v1`
/// envelope, see docs/tee.md). With `nonce`, fresh evidence for that nonce (rate-limited).
#[utoipa::path(get, path = "/v1/attestation", operation_id = "get_attestation", tag = "attestation", params(AttestParams),
    responses((status = 200, description = "a vouch.tee.v1 evidence envelope", body = vouch_api::TeeEvidence),
        (status = 400, description = "bad nonce", body = vouch_api::ErrorBody), (status = 422, description = "no tee tier on this node", body = vouch_api::ErrorBody),
        (status = 503, description = "too many fresh attestations; retry later", body = vouch_api::ErrorBody)))]
pub async fn attestation(
    State(st): State<Arc<AppState>>,
    Query(p): Query<AttestParams>,
) -> Result<Json<vouch_api::TeeEvidence>, ApiError> {
    Ok(Json(st.node.attestation(p.nonce.as_deref()).await?))
}

/// A stored evidence envelope by its digest (SHA-256 of its RFC 8785 form).
#[utoipa::path(get, path = "/v1/attestation/{digest}", operation_id = "get_attestation_by_digest", tag = "attestation", params(("digest" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, description = "the envelope", body = vouch_api::TeeEvidence), (status = 404, description = "not stored here", body = vouch_api::ErrorBody)))]
pub async fn by_digest(
    State(st): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> Result<Json<vouch_api::TeeEvidence>, ApiError> {
    Ok(Json(st.node.attestation_by_digest(&digest).await?))
}
