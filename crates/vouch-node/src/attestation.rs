//! The `tee` tier's evidence: the boot evidence binding the node key, fresh evidence for a
//! verifier's nonce (proving the key is held *now*), and stored envelopes by digest (for
//! receipts that reference their evidence instead of carrying it).

use std::sync::Mutex;
use std::time::Instant;

use vouch_attest::tee::binding::parse_nonce_hex;
use vouch_core::{Digest, ErrorCode};

use crate::Node;
use crate::error::NodeError;
use crate::node::TeeState;

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

impl Node {
    /// The evidence a `tee` receipt carries: the boot evidence binding the node key. Policy
    /// grants `tee` only with a producer, so its absence here is a bug, not the caller's error.
    pub(crate) fn tee_evidence(&self) -> Result<serde_json::Value, NodeError> {
        self.tee
            .as_ref()
            .map(|t| t.boot_json.clone())
            .ok_or_else(|| NodeError::internal("tee tier granted without a producer"))
    }

    fn tee_state(&self) -> Result<&TeeState, NodeError> {
        self.tee.as_ref().ok_or_else(|| {
            NodeError::new(
                ErrorCode::TierUnavailable,
                "this node offers no tee tier (tee.producer = \"none\"), so it has no attestation",
            )
            .with_reason("tee_unavailable")
        })
    }

    /// The boot evidence, or with a hex `nonce` fresh evidence committing to it (rate-limited:
    /// the platform signs each one).
    pub async fn attestation(
        &self,
        nonce: Option<&str>,
    ) -> Result<vouch_api::TeeEvidence, NodeError> {
        let t = self.tee_state()?;
        let Some(nonce) = nonce else {
            return crate::wire::tee_evidence(&t.boot);
        };
        let nonce = parse_nonce_hex(nonce)?;
        if !t.limiter.try_take() {
            return Err(NodeError::new(
                ErrorCode::Overloaded,
                format!(
                    "this node makes at most {} fresh attestations per second; retry shortly",
                    self.config.limits.attest_per_sec
                ),
            ));
        }
        let producer = t.producer.clone();
        let key = self.signer.public_key();
        let env = tokio::task::spawn_blocking(move || producer.attest(&key, Some(&nonce)))
            .await
            .map_err(NodeError::internal)??;
        crate::wire::tee_evidence(&env)
    }

    /// A stored evidence envelope by its digest (`sha256:<hex>`).
    pub async fn attestation_by_digest(
        &self,
        digest: &str,
    ) -> Result<vouch_api::TeeEvidence, NodeError> {
        let t = self.tee_state()?;
        let d: Digest = digest
            .parse()
            .map_err(|e| NodeError::new(ErrorCode::BadRequest, format!("{e}")))?;
        if d == t.boot_digest {
            return crate::wire::tee_evidence(&t.boot);
        }
        // Envelopes from earlier boots of this node; the name is built from parsed hex only.
        let path = t.dir.join(format!("{}.json", d.hex()));
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::internal(format!("stored evidence {d} is corrupt: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NodeError::new(
                ErrorCode::ModelNotFound,
                format!("this node stores no tee evidence with digest {d}"),
            )
            .with_reason("tee_evidence_not_found")),
            Err(e) => Err(NodeError::internal(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }
}
