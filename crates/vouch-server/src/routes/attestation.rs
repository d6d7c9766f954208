//! The `tee` tier's evidence over HTTP (`vouch_node::attestation`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AttestParams {
    /// Hex, 1–64 bytes: ask for fresh evidence committing to this nonce as well as the key.
    pub nonce: Option<String>,
}

/// The evidence binding this node's receipt key to its measured code (`vouch.tee.v1`
/// envelope, see docs/tee.md). With `nonce`, fresh evidence for that nonce (rate-limited).
#[utoipa::path(get, path = "/v1/attestation", params(AttestParams),
    responses((status = 200, description = "a vouch.tee.v1 evidence envelope"),
        (status = 400, description = "bad nonce"), (status = 422, description = "no tee tier on this node"),
        (status = 503, description = "too many fresh attestations; retry later")))]
pub async fn attestation(
    State(st): State<Arc<AppState>>,
    Query(p): Query<AttestParams>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(st.node.attestation(p.nonce.as_deref()).await?))
}

/// A stored evidence envelope by its digest (SHA-256 of its RFC 8785 form).
#[utoipa::path(get, path = "/v1/attestation/{digest}", params(("digest" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, description = "the envelope"), (status = 404, description = "not stored here")))]
pub async fn by_digest(
    State(st): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(st.node.attestation_by_digest(&digest).await?))
}
