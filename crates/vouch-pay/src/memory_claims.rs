//! Payment claims held in memory, for a node whose facilitator is the built-in ledger.
//!
//! A claim only guards requests in flight: the single-use rule itself is enforced by the ledger,
//! whose settlement row for an authorization is written once and refuses every later settlement
//! and verification of that nonce across restarts. Not across nodes: a second node presented
//! the same authorization at the same moment would find the first one's settlement as
//! `AlreadySettled` and serve the request again, so a cluster sharing one ledger uses the
//! durable claims in that database instead (vouch-node's `payments.rs`). The durable claim
//! table also exists for remote facilitators, whose settlement can time out with its outcome
//! unknown and must be found again after a restart; one node's built-in ledger settles in one
//! local transaction, so its claims need no disk write at all. Measured (BENCHMARKS.md, issue 4):
//! the three durable claim writes per paid request, serialised on one connection, were the
//! largest part of the paid path under concurrency.
//!
//! Same state machine as the durable store (see [`NonceStore`]), except that a claim that ends
//! `served` is forgotten: the ledger's settlement row answers for it from then on.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{
    AuthorizationKey, ClaimEnd, ClaimOutcome, NonceClaim, NonceStore, PendingClaim, StoreError,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Held,
    Settling,
    Unserved,
    Resumed,
}

#[derive(Debug)]
struct Held {
    digest: alloy_primitives::B256,
    request_id: String,
    state: State,
    payment_json: String,
    requirements_json: String,
    settlement_json: Option<String>,
    lease_until: u64,
    updated_at: u64,
}

/// Claims whose leases have ended are swept once the map grows past this (requests dropped
/// mid-flight never release theirs).
const SWEEP_ABOVE: usize = 4096;

#[derive(Default)]
pub struct MemoryNonceStore {
    claims: Mutex<HashMap<AuthorizationKey, Held>>,
}

impl MemoryNonceStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<AuthorizationKey, Held>>, StoreError> {
        self.claims
            .lock()
            .map_err(|_| StoreError("claim table poisoned by a panic".into()))
    }
}

#[async_trait]
impl NonceStore for MemoryNonceStore {
    async fn claim(&self, c: &NonceClaim) -> Result<ClaimOutcome, StoreError> {
        let mut claims = self.lock()?;
        if claims.len() > SWEEP_ABOVE {
            claims.retain(|_, h| h.state != State::Held || h.lease_until >= c.now);
        }
        let Some(h) = claims.get_mut(&c.key) else {
            claims.insert(
                c.key,
                Held {
                    digest: c.digest,
                    request_id: c.request_id.clone(),
                    state: State::Held,
                    payment_json: c.payment_json.clone(),
                    requirements_json: c.requirements_json.clone(),
                    settlement_json: None,
                    lease_until: c.lease_until,
                    updated_at: c.now,
                },
            );
            return Ok(ClaimOutcome::Won);
        };
        // Take-over: only the same authorization, and only if its output is waiting (unserved)
        // or its holder's lease ran out.
        let expired = matches!(h.state, State::Held | State::Resumed) && h.lease_until < c.now;
        if h.digest != c.digest || !(h.state == State::Unserved || expired) {
            return Ok(ClaimOutcome::Taken);
        }
        h.state = match h.state {
            State::Unserved | State::Resumed => State::Resumed,
            _ => State::Held,
        };
        h.request_id.clone_from(&c.request_id);
        h.lease_until = c.lease_until;
        h.updated_at = c.now;
        Ok(match h.state {
            State::Resumed => ClaimOutcome::Resumed {
                settlement_json: h.settlement_json.clone().unwrap_or_default(),
            },
            _ => ClaimOutcome::Won,
        })
    }

    async fn release(&self, key: &AuthorizationKey, request_id: &str) -> Result<(), StoreError> {
        let mut claims = self.lock()?;
        match claims.get_mut(key) {
            Some(h) if h.request_id == request_id && h.state == State::Held => {
                claims.remove(key);
            }
            Some(h) if h.request_id == request_id && h.state == State::Resumed => {
                h.state = State::Unserved;
            }
            _ => {}
        }
        Ok(())
    }

    async fn begin_settle(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut claims = self.lock()?;
        Ok(match claims.get_mut(key) {
            Some(h) if h.request_id == request_id && h.state == State::Held => {
                h.state = State::Settling;
                h.updated_at = now;
                true
            }
            _ => false,
        })
    }

    async fn finish(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        end: ClaimEnd,
        settlement_json: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut claims = self.lock()?;
        let from_ok = |s: State| match end {
            ClaimEnd::Failed | ClaimEnd::Unserved => s == State::Settling,
            ClaimEnd::Served => matches!(s, State::Settling | State::Resumed),
        };
        match claims.get_mut(key) {
            Some(h) if h.request_id == request_id && from_ok(h.state) => match end {
                ClaimEnd::Failed | ClaimEnd::Served => {
                    claims.remove(key);
                }
                ClaimEnd::Unserved => {
                    h.state = State::Unserved;
                    h.settlement_json = Some(settlement_json.to_owned());
                    h.updated_at = now;
                }
            },
            _ => tracing::warn!(
                request_id,
                ?end,
                "payment claim was not in the expected state when finishing"
            ),
        }
        Ok(())
    }

    async fn pending(&self, older_than: u64, limit: u32) -> Result<Vec<PendingClaim>, StoreError> {
        let claims = self.lock()?;
        let mut out: Vec<PendingClaim> = claims
            .iter()
            .filter(|(_, h)| h.state == State::Settling && h.updated_at < older_than)
            .map(|(k, h)| PendingClaim {
                key: *k,
                request_id: h.request_id.clone(),
                payment_json: h.payment_json.clone(),
                requirements_json: h.requirements_json.clone(),
                since: h.updated_at,
            })
            .collect();
        out.sort_by_key(|p| p.since);
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use alloy_primitives::{Address, B256};

    fn claim(nonce: u8, digest: u8, request: &str, now: u64) -> NonceClaim {
        NonceClaim {
            key: AuthorizationKey {
                chain_id: 84532,
                asset: Address::repeat_byte(1),
                payer: Address::repeat_byte(2),
                nonce: B256::repeat_byte(nonce),
            },
            digest: B256::repeat_byte(digest),
            request_id: request.into(),
            payment_json: "{}".into(),
            requirements_json: "{}".into(),
            now,
            lease_until: now + 10,
        }
    }

    #[tokio::test]
    async fn one_claim_wins_and_states_move_as_the_durable_store_does() {
        let s = MemoryNonceStore::new();
        let a = claim(1, 9, "a", 100);
        assert_eq!(s.claim(&a).await.unwrap(), ClaimOutcome::Won);
        // Held and leased: another request (same or other authorization) is refused.
        assert_eq!(
            s.claim(&claim(1, 9, "b", 105)).await.unwrap(),
            ClaimOutcome::Taken
        );
        assert_eq!(
            s.claim(&claim(1, 8, "b", 200)).await.unwrap(),
            ClaimOutcome::Taken
        );
        // Lease ended: the same authorization is taken over, the other request now holds it.
        assert_eq!(
            s.claim(&claim(1, 9, "b", 200)).await.unwrap(),
            ClaimOutcome::Won
        );
        assert!(!s.begin_settle(&a.key, "a", 201).await.unwrap());
        assert!(s.begin_settle(&a.key, "b", 201).await.unwrap());
        // Settling shows as pending once older than the cut-off, not before.
        assert!(s.pending(201, 10).await.unwrap().is_empty());
        assert_eq!(s.pending(202, 10).await.unwrap().len(), 1);
        // Settled but not served: a retry of the identical payment resumes with the answer.
        s.finish(&a.key, "b", ClaimEnd::Unserved, "{\"ok\":1}", 203)
            .await
            .unwrap();
        assert_eq!(
            s.claim(&claim(1, 9, "c", 204)).await.unwrap(),
            ClaimOutcome::Resumed {
                settlement_json: "{\"ok\":1}".into()
            }
        );
        s.finish(&a.key, "c", ClaimEnd::Served, "{}", 205)
            .await
            .unwrap();
        // Served claims are forgotten (the ledger refuses the nonce from now on).
        assert_eq!(
            s.claim(&claim(1, 9, "d", 206)).await.unwrap(),
            ClaimOutcome::Won
        );
        s.release(&a.key, "d").await.unwrap();
        assert_eq!(
            s.claim(&claim(1, 9, "e", 207)).await.unwrap(),
            ClaimOutcome::Won
        );
    }

    #[tokio::test]
    async fn sixteen_racing_claims_of_one_nonce_have_one_winner() {
        let s = std::sync::Arc::new(MemoryNonceStore::new());
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.claim(&claim(3, 9, &format!("r{i}"), 100)).await.unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap() == ClaimOutcome::Won {
                won += 1;
            }
        }
        assert_eq!(won, 1);
    }
}
