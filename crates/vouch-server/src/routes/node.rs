//! Node identity and health.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::state::AppState;

/// Liveness.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "node", responses((status = 200, description = "the node is up", body = vouch_api::Health)))]
pub async fn health() -> Json<vouch_api::Health> {
    Json(vouch_api::Health {
        status: vouch_api::HealthStatus::Ok,
    })
}

/// Who this node is: its receipt-signing key, engines and limits.
#[utoipa::path(get, path = "/v1/node", operation_id = "node_info", tag = "node", responses((status = 200, description = "node identity", body = vouch_api::NodeInfo)))]
pub async fn node(
    State(st): State<Arc<AppState>>,
) -> Result<Json<vouch_api::NodeInfo>, crate::error::ApiError> {
    Ok(Json(st.node.info().await?))
}
