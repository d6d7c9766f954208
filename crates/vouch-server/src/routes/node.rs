//! Node identity and health.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// Liveness.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "the node is up")))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Who this node is: its receipt-signing key, engines and limits.
#[utoipa::path(get, path = "/v1/node", responses((status = 200, description = "node identity")))]
pub async fn node(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(st.node.info().await)
}
