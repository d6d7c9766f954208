//! The `tee` tier's evidence over HTTP: the boot evidence binding the node key, fresh evidence
//! for a verifier's nonce (proving the key is held *now*), and stored envelopes by digest (for
//! receipts that reference their evidence instead of carrying it).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;
use vouch_attest::tee::binding::parse_nonce_hex;
use vouch_core::{Digest, ErrorCode};

use crate::error::ApiError;
use crate::state::{AppState, TeeState};

/// A token bucket: fresh attestations make the platform sign, which real hardware does slowly.
pub struct RateLimiter {
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_sec: u32) -> Self {
        let per_sec = f64::from(per_sec.max(1));
        RateLimiter {
            per_sec,
            state: Mutex::new((per_sec, Instant::now())),
        }
    }

    /// Takes a token if one is left.
    pub fn try_take(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.per_sec;
        s.0 = (s.0 + refill).min(self.per_sec);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

fn tee(st: &AppState) -> Result<&TeeState, ApiError> {
    st.tee.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::TierUnavailable,
            "this node offers no tee tier (tee.producer = \"none\"), so it has no attestation",
        )
        .with_reason("tee_unavailable")
    })
}

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
    let t = tee(&st)?;
    let Some(nonce) = p.nonce else {
        return Ok(Json(t.boot_json.clone()));
    };
    let nonce = parse_nonce_hex(&nonce)?;
    if !t.limiter.try_take() {
        return Err(ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "this node makes at most {} fresh attestations per second; retry shortly",
                st.config.limits.attest_per_sec
            ),
        ));
    }
    let producer = t.producer.clone();
    let key = st.signer.public_key();
    let env = tokio::task::spawn_blocking(move || producer.attest(&key, Some(&nonce)))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(env.to_json()))
}

/// A stored evidence envelope by its digest (SHA-256 of its RFC 8785 form).
#[utoipa::path(get, path = "/v1/attestation/{digest}", params(("digest" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, description = "the envelope"), (status = 404, description = "not stored here")))]
pub async fn by_digest(
    State(st): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = tee(&st)?;
    let d: Digest = digest
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    if d == t.boot_digest {
        return Ok(Json(t.boot_json.clone()));
    }
    // Envelopes from earlier boots of this node; the name is built from parsed hex only.
    let path = t.dir.join(format!("{}.json", d.hex()));
    match tokio::fs::read(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::internal(format!("stored evidence {d} is corrupt: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("this node stores no tee evidence with digest {d}"),
        )
        .with_reason("tee_evidence_not_found")),
        Err(e) => Err(ApiError::internal(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}
