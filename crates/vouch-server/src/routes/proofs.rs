//! `GET /v1/proofs/{id}[?wait=30s]` and `DELETE /v1/proofs/{id}`: zk proof jobs.
//!
//! A job id is an unguessable UUID handed to the requester in `evidence.zk_job`, so knowing it is
//! what lets one read the job. Cancelling needs more: the admin token, or the job's own cancel
//! token (the `vouch-zk-cancel-token` header of the infer response), as `Bearer <token>`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;
use vouch_api::WaitParams;
use vouch_core::{Digest, ErrorCode};

use crate::error::ApiError;
use crate::state::AppState;

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ProofNotFound,
        format!(
            "no proof job {id:?} on this node (ended jobs are kept for [zk] retain_days, then deleted)"
        ),
    )
}

/// Parses `30s`, `1500ms`, `2m` or a bare number of seconds.
fn parse_wait(s: &str) -> Result<Duration, ApiError> {
    let s = s.trim();
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("wait={s:?}: expected a duration such as 30s, 1500ms or 2m"),
            )
        })
}

/// A proof job: status, stage, progress and, once done, `evidence.zk` to add to the bundle.
#[utoipa::path(get, path = "/v1/proofs/{id}", operation_id = "get_proof_job", tag = "proofs", params(("id" = String, Path, description = "job id"), WaitParams),
    responses((status = 200, description = "the job", body = vouch_api::ProofJob), (status = 404, description = "no such job", body = vouch_api::ErrorBody)))]
pub async fn get(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(p): Query<WaitParams>,
) -> Result<Json<vouch_api::ProofJob>, ApiError> {
    let asked = match &p.wait {
        Some(w) => parse_wait(w)?,
        None => Duration::ZERO,
    };
    let cap = Duration::from_secs(
        st.node
            .zk
            .settings
            .max_wait_secs
            .min(st.node.config.limits.request_timeout_secs.saturating_sub(2)),
    );
    let deadline = tokio::time::Instant::now() + asked.min(cap);
    loop {
        // Registered before reading, so a change between the read and the wait is not missed.
        let changed = st.node.zk.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let view = st.node.zk.view(&id).await?.ok_or_else(|| not_found(&id))?;
        let done = view.status.is_terminal();
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(Json(view));
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}

/// Cancels a queued or running job. Needs the admin token or the job's cancel token.
#[utoipa::path(delete, path = "/v1/proofs/{id}", operation_id = "cancel_proof_job", tag = "proofs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "cancelled, or already ended", body = vouch_api::CancelResponse), (status = 401, description = "no or wrong token", body = vouch_api::ErrorBody),
        (status = 404, description = "no such job", body = vouch_api::ErrorBody)))]
pub async fn cancel(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<vouch_api::CancelResponse>, ApiError> {
    let row = st.node.zk.job(&id).await?.ok_or_else(|| not_found(&id))?;
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "cancelling a proof job needs `Authorization: Bearer <token>`: the job's cancel token (the vouch-zk-cancel-token header of the infer response) or the admin token",
            )
        })?;
    let by = if bool::from(given.as_bytes().ct_eq(st.node.admin_token.as_bytes())) {
        "the admin"
    } else if bool::from(
        Digest::of(given.as_bytes())
            .as_bytes()
            .ct_eq(row.cancel_hash.as_bytes()),
    ) {
        "the requester"
    } else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "that token is neither this job's cancel token nor the admin token",
        ));
    };
    let cancelled = st.node.zk.cancel(&row, by).await?;
    let job = st.node.zk.view(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(vouch_api::CancelResponse { cancelled, job }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_wait("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("1500ms").ok(), Some(Duration::from_millis(1500)));
        assert_eq!(parse_wait("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_wait("7").ok(), Some(Duration::from_secs(7)));
        for bad in ["", "s", "-1s", "1h", "99999999999999999999m"] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
    }
}
