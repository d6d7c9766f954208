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
    let engines: Vec<Value> = st
        .engines
        .available()
        .into_iter()
        .map(|(k, v)| json!({"name": k.as_str(), "version": v}))
        .collect();
    let (loaded, bytes) = st.cache.usage().await;
    let tiers: Vec<&str> = [
        vouch_core::Tier::Signed,
        vouch_core::Tier::Tee,
        vouch_core::Tier::Zk,
    ]
    .into_iter()
    .filter(|t| crate::tiers::unavailable_reason(&st, *t).is_none())
    .map(|t| t.as_str())
    .collect();
    Json(json!({
        "vouch_version": env!("CARGO_PKG_VERSION"),
        "node_key": st.signer.public_key().to_string(),
        "engines": engines,
        "tiers": tiers,
        "tee": st.tee.as_ref().map(|t| json!({
            "platform": t.verdict.platform,
            "trust_assumption": t.verdict.trust_assumption,
            "measurements": t.verdict.measurements,
            "evidence_digest": t.boot_digest,
            "simulated": t.simulated,
        })),
        "key_ephemeral": st.boot.key_ephemeral,
        "log": {"origin": st.log.origin, "log_key": st.log.vkey, "size": st.log.log.size()},
        "prices": st.prices.config(),
        "price_unit": st.prices.unit(),
        "payments": st.pay.is_some(),
        "limits": st.config.limits,
        "cache": {"models_loaded": loaded, "estimated_bytes": bytes, "budget_mib": st.config.exec.cache_mib},
        "queue": {"waiting": st.executor.queue_len(), "capacity": st.config.exec.queue_capacity},
        "zk": st.zk.queue_json(),
    }))
}
