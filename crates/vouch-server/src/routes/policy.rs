//! Per-model assurance: the minimum-tier policy (admin) and the advisor that tells a caller,
//! per tier, whether it is available, what it proves, what it trusts, and what it costs in time
//! and money here.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use vouch_core::model::validate_name;
use vouch_core::{ErrorCode, ModelDigest, Tier};

use crate::analytics::level;
use crate::auth::Admin;
use crate::catalog;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;
use crate::tiers;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// `signed`, `tee` or `zk`: requests must carry this tier or a stronger one (signed < tee <
    /// zk). `null` removes the policy.
    #[schema(value_type = Option<String>)]
    pub min_tier: Option<Tier>,
}

/// The policy subject a path names: a model name (all versions) or a digest.
async fn subject(st: &AppState, reference: &str) -> Result<String, ApiError> {
    if reference.starts_with("sha256:") {
        let d: ModelDigest = reference
            .parse()
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
        if st.store.model(&d).await?.is_none() {
            return Err(ApiError::new(
                ErrorCode::ModelNotFound,
                format!("no model with digest {d}"),
            ));
        }
        return Ok(d.to_string());
    }
    if reference.contains('@') {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "a policy applies to a model name (all its versions) or a digest, not to name@version",
        ));
    }
    validate_name(reference)
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, format!("name {reference:?}: {m}")))?;
    if st.store.resolve_name(reference, None).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("no model is registered as {reference}"),
        ));
    }
    Ok(reference.to_string())
}

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
    let subject = subject(&st, &reference).await?;
    let change = st.store.set_policy(&subject, req.min_tier).await?;
    st.policies.invalidate_all();
    if let Some(c) = &change {
        tracing::info!(subject = %c.subject, min_tier = ?c.min_tier, previous = ?c.previous, seq = c.seq, "policy changed");
        // Appended before answering; a crash in between leaves the change in the outbox,
        // which boot drains.
        crate::transparency::drain_outboxes(&st.log, &st.store)
            .await
            .map_err(ApiError::internal)?;
    }
    // Re-read so the answer shows the change's log index.
    let change = match change {
        Some(c) => st
            .store
            .policy_changes(c.seq - 1, 1)
            .await?
            .into_iter()
            .next()
            .or(Some(c)),
        None => None,
    };
    let policy = st
        .store
        .policies_for(std::slice::from_ref(&subject))
        .await?;
    Ok(Json(json!({
        "subject": subject,
        "policy": policy.first(),
        "change": change,
    })))
}

/// A model's policy as stored for this subject.
#[utoipa::path(get, path = "/v1/models/{reference}/policy",
    params(("reference" = String, Path, description = "model name or sha256:<hex>")),
    responses((status = 200, description = "the policy, or null"), (status = 404, description = "no such model")))]
pub async fn get_policy(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let subject = subject(&st, &reference).await?;
    let policy = st
        .store
        .policies_for(std::slice::from_ref(&subject))
        .await?;
    Ok(Json(json!({"subject": subject, "policy": policy.first()})))
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
    let (_, digest) = catalog::resolve_str(&st, &reference).await?;
    let policy = tiers::effective_policy(&st, &digest).await?;
    let prices = &st.prices;
    let mut rows = Vec::new();
    for t in [Tier::Signed, Tier::Tee, Tier::Zk] {
        let request = tiers::with_implied(&[t]);
        let price = prices.tier_price(&st, &digest, t).await?.ok();
        let request_price = prices
            .quote(&st, &digest, &request)
            .await
            .ok()
            .map(|q| q.total);
        rows.push({
            let measured = st.analytics.model_level(&digest, level(&request));
            let ms = |p: f64| measured.percentile(p).map(|s| (s * 1e5).round() / 1e2);
            let reason = tiers::unavailable_for(&st, &digest, t);
            json!({
                "tier": t,
                "available": reason.is_none(),
                "unavailable_reason": reason,
                "meets_policy": policy.as_ref().is_none_or(|(min, _)| t >= *min),
                "proves": tiers::proves(t),
                "zk": (t == Tier::Zk).then(|| st.zk.model_json(&digest)),
                "trusts": tiers::trusts(&st, t),
                "price": price,
                "request": request,
                "request_price": request_price,
                "measured": {
                    "requests": measured.requests,
                    "errors": measured.errors,
                    "samples": measured.recent.len(),
                    "p50_ms": ms(0.5),
                    "p95_ms": ms(0.95),
                },
            })
        });
    }
    Ok(Json(json!({
        "model": reference,
        "digest": digest,
        "policy": policy.map(|(min, subject)| json!({"min_tier": min, "subject": subject})),
        "asset": prices.unit(),
        "tiers": rows,
    })))
}
