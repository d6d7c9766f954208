//! x402 payments on `POST /v1/infer` (`docs/payments.md`): the HTTP side of
//! `vouch_pay::PaymentGate`. With `[pay] enabled`, a priced request must carry a payment for
//! exactly this model digest, tier set and price — checked after the tier decision and before
//! any work. A failed inference abandons the payment (nothing charged); a successful one is
//! settled *before* its receipt is signed, so the receipt names the payment.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use vouch_core::{ErrorCode, ModelDigest, PaymentRef, Tier};
use vouch_pay::store::{Account, NonceStore};
use vouch_pay::wire::{PAYMENT_SIGNATURE_HEADER, ResourceInfo, X_PAYMENT_HEADER};
use vouch_pay::{
    Address, FacilitatorChoice, GateConfig, LocalFacilitator, MemoryNonceStore, PayConfig,
    PayTerms, PaymentGate, Quote, Rejection, RemoteFacilitator, Ticket,
};
use vouch_store::Store;
use vouch_store::pay_store::{SettleDurability, SqlitePayStore};

use crate::error::{ApiError, ProtocolAnswer};
use crate::state::{AppState, BootError};

/// Payments, when `[pay] enabled`. Kept in `AppState` so later work (a paid zk proof that
/// fails) can `gate.refund(settlement, reason)`.
pub struct PayState {
    pub gate: Arc<PaymentGate>,
    pub terms: PayTerms,
    /// The built-in ledger, when `facilitator = "builtin"`: credits, balances, refunds.
    pub ledger: Option<Arc<SqlitePayStore>>,
    /// `builtin` or the remote facilitator's URL.
    pub facilitator: String,
}

impl PayState {
    /// Checks `[pay]` and opens the payment stack; `None` when payments are off.
    pub async fn boot(cfg: &PayConfig, store: &Store) -> Result<Option<PayState>, BootError> {
        cfg.prices
            .validate()
            .map_err(|e| BootError::Pay(format!("pay.prices: {e}")))?;
        if !cfg.enabled {
            return Ok(None);
        }
        let terms = cfg.terms().map_err(|e| BootError::Pay(e.to_string()))?;
        let pay_store = Arc::new(
            // Settlements are synced by `make_durable`, beside the receipt's log commit.
            SqlitePayStore::open(store.pool().clone(), SettleDurability::Deferred)
                .await
                .map_err(|e| BootError::Pay(e.to_string()))?,
        );
        // Claims: in memory with the built-in ledger (its settlement row is the durable
        // single-use record; see `vouch_pay::memory_claims`), durable with a remote facilitator
        // (a settlement that times out must be found again after a restart).
        let (facilitator, ledger, claims): (
            Arc<dyn vouch_pay::Facilitator>,
            _,
            Arc<dyn NonceStore>,
        ) = match cfg.facilitator_choice() {
            Ok(FacilitatorChoice::Builtin) => (
                Arc::new(LocalFacilitator::new(
                    pay_store.clone(),
                    vec![terms.chain_id],
                )),
                Some(pay_store.clone()),
                Arc::new(MemoryNonceStore::new()),
            ),
            Ok(FacilitatorChoice::Remote(url)) => (
                Arc::new(
                    RemoteFacilitator::new(
                        &url,
                        Duration::from_millis(cfg.facilitator_timeout_ms.max(1)),
                    )
                    .map_err(|e| BootError::Pay(e.to_string()))?,
                ),
                None,
                pay_store,
            ),
            Err(e) => return Err(BootError::Pay(e.to_string())),
        };
        let described = facilitator.describe();
        let gate = Arc::new(PaymentGate::new(
            facilitator,
            claims,
            GateConfig {
                lease_seconds: cfg.lease_seconds.max(1),
                ..GateConfig::default()
            },
        ));
        spawn_reconciler(gate.clone());
        Ok(Some(PayState {
            gate,
            terms,
            ledger,
            facilitator: described,
        }))
    }

    /// `owner`'s account for this deployment's token.
    pub fn account(&self, owner: Address) -> Account {
        Account {
            chain_id: self.terms.chain_id,
            asset: self.terms.asset,
            owner,
        }
    }
}

/// Makes the settlement a receipt names durable: the built-in ledger answers a settlement as
/// soon as it is decided ([`SettleDurability::Deferred`]) and the request runs this — a wait for
/// the ledger writer's batch holding it — beside the log commit of its receipt, so the two
/// fsyncs overlap instead of queueing. Remote facilitators settle on their side: nothing to do.
pub async fn make_durable(st: &AppState, payment: Option<&PaymentRef>) -> Result<(), ApiError> {
    let (Some(_), Some(ledger)) = (payment, st.pay.as_ref().and_then(|p| p.ledger.as_ref())) else {
        return Ok(());
    };
    ledger.sync().await.map_err(|e| {
        tracing::error!(error = %e, "settlement could not be made durable");
        ApiError::internal("the payment could not be recorded durably")
    })
}

/// Refunds a settled payment whose request could not be answered after settlement (its receipt
/// could not be logged). Logged loudly either way: a failure here needs the operator.
pub async fn refund_unserved(st: &AppState, payment: Option<&PaymentRef>, why: &str) {
    let (Some(p), Some(pay)) = (payment, &st.pay) else {
        return;
    };
    let reason = format!("the request was not answered after settlement: {why}");
    match refund(&pay.gate, p, &reason).await {
        Ok(done) => tracing::warn!(payer = %p.payer, "{done}: {reason}"),
        Err(failed) => tracing::error!(payer = %p.payer, "REFUND FAILED: {failed}: {reason}"),
    }
}

/// Refunds `p` once, in words: what happened (`Ok`: refunded now or before) or why not (`Err`).
async fn refund(gate: &PaymentGate, p: &PaymentRef, reason: &str) -> Result<String, String> {
    use vouch_pay::store::RefundOutcome;
    match gate.refund(&p.settlement, reason).await {
        Ok(RefundOutcome::Refunded(_)) => {
            Ok(format!("payment {} refunded to {}", p.settlement, p.payer))
        }
        Ok(RefundOutcome::AlreadyRefunded(_)) => {
            Ok(format!("payment {} was already refunded", p.settlement))
        }
        Ok(RefundOutcome::NotFound) => Err(format!(
            "payment {} not found in the ledger: not refunded",
            p.settlement
        )),
        Err(e) => Err(format!("refund of payment {} failed: {e}", p.settlement)),
    }
}

/// Refunds the payment of every paid zk request whose proof job ends without a proof (failed or
/// cancelled), once, and notes the refund on the job so `GET /v1/proofs/{id}` says so. The
/// receipt itself is signed and immutable; the job and the ledger carry the refund.
pub fn spawn_zk_refunds(zk: &crate::proofs::ZkState, pay: &PayState, store: Store) {
    let (tx, rx) =
        tokio::sync::mpsc::unbounded_channel::<(vouch_store::proof_store::ZkJobRow, String)>();
    if zk.failures.set(tx).is_err() {
        return;
    }
    let gate = pay.gate.clone();
    // Supervised; the receiver outlives a panicked run, so no failure is lost with it.
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    crate::supervise::spawn("zk-refunds", move || {
        let (rx, gate, store) = (rx.clone(), gate.clone(), store.clone());
        async move { zk_refunds(&mut *rx.lock().await, &gate, &store).await }
    });
}

async fn zk_refunds(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(vouch_store::proof_store::ZkJobRow, String)>,
    gate: &PaymentGate,
    store: &Store,
) {
    while let Some((job, reason)) = rx.recv().await {
        let payment = serde_json::from_str::<vouch_core::Receipt>(&job.receipt)
            .ok()
            .and_then(|r| r.payment);
        let Some(payment) = payment else { continue };
        let why = format!("zk proof job {} ended without a proof: {reason}", job.id);
        let note = format!(
            "; {}",
            refund(gate, &payment, &why).await.unwrap_or_else(|e| e)
        );
        tracing::info!(job = %job.id, "zk refund{note}");
        if let Err(e) = store.note_zk_job(&job.id, &note).await {
            tracing::error!(job = %job.id, "cannot note the refund on the job: {e}");
        }
    }
}

/// Re-settles payments whose settlement outcome was unknown: once at startup, then every
/// `pending_grace_seconds`.
fn spawn_reconciler(gate: Arc<PaymentGate>) {
    let every = Duration::from_secs(GateConfig::default().pending_grace_seconds.max(1));
    crate::supervise::spawn("pay-reconciler", move || {
        let gate = gate.clone();
        async move { reconcile_every(&gate, every).await }
    });
}

async fn reconcile_every(gate: &PaymentGate, every: Duration) {
    loop {
        match gate.reconcile().await {
            Ok(r) if r == vouch_pay::ReconcileReport::default() => {}
            Ok(r) => tracing::info!(
                settled = r.settled,
                failed = r.failed,
                still_pending = r.still_pending,
                "reconciled pending payments"
            ),
            Err(e) => tracing::error!(error = %e, "payment reconciliation failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The URL a payment is bound to: this node's infer endpoint for one model digest and tier set,
/// so a payment made for one model or tier set is refused on another (v2 echoes it).
pub fn resource_url(
    headers: &HeaderMap,
    listen: std::net::SocketAddr,
    digest: &ModelDigest,
    tiers: &[Tier],
) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| listen.to_string());
    let tiers: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
    format!(
        "http://{host}/v1/infer?model={digest}&tiers={}",
        tiers.join(",")
    )
}

/// Checks the request's payment before any work. `Ok(None)`: payments are off or the request
/// is free (an unsigned receipt). `Ok(Some(ticket))`: run, then [`settle`] or [`abandon`].
pub async fn admit(
    st: &AppState,
    headers: &HeaderMap,
    digest: &ModelDigest,
    tiers: &[Tier],
    quote: &Quote,
    request_id: &str,
) -> Result<Option<Ticket>, ApiError> {
    let Some(pay) = &st.pay else {
        return Ok(None);
    };
    if quote.total.0.is_zero() {
        return Ok(None);
    }
    let shown: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
    let offer = pay.terms.offer(
        quote.total.0,
        ResourceInfo {
            url: resource_url(headers, st.config.listen, digest, tiers),
            description: Some(format!(
                "Vouch inference of {digest} with tiers [{}]",
                shown.join(", ")
            )),
            mime_type: Some("application/json".into()),
        },
    );
    // A header that is not visible ASCII cannot be base64: let the decoder say so.
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    pay.gate
        .admit(
            get(PAYMENT_SIGNATURE_HEADER),
            get(X_PAYMENT_HEADER),
            &offer,
            request_id,
        )
        .await
        .map(Some)
        .map_err(refusal)
}

/// The inference failed: release the payment, nothing is charged.
pub async fn abandon(st: &AppState, ticket: Option<Ticket>) {
    if let (Some(pay), Some(t)) = (&st.pay, ticket) {
        pay.gate.abandon(t).await;
    }
}

/// The inference succeeded: take the money. Returns what the receipt records and the response
/// headers (`PAYMENT-RESPONSE` or `X-PAYMENT-RESPONSE`); a failed settlement is a 402 and the
/// output is not sent.
pub async fn settle(
    st: &AppState,
    ticket: Option<Ticket>,
) -> Result<(Option<PaymentRef>, Vec<(&'static str, String)>), ApiError> {
    let (Some(pay), Some(t)) = (&st.pay, ticket) else {
        return Ok((None, Vec::new()));
    };
    let settled = pay.gate.settle(t).await.map_err(refusal)?;
    Ok((Some(settled.payment.clone()), settled.headers()))
}

/// Adds `(name, value)` pairs to a response's headers.
pub fn add_headers(map: &mut HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.insert(n, v);
        }
    }
}

/// A refused payment as the x402 answer: status, `PAYMENT-REQUIRED` (v2) and the v1 body, whose
/// `error` is the reference reason code; `message` says it for people.
fn refusal(r: Rejection) -> ApiError {
    let code = match r.status {
        402 => ErrorCode::PaymentRequired,
        503 => ErrorCode::PaymentUnavailable,
        _ => ErrorCode::Internal,
    };
    let mut body = r.body();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("message".into(), serde_json::Value::from(r.message.clone()));
    }
    let mut e = ApiError::new(code, format!("{}: {}", r.reason, r.message));
    e.protocol = Some(Box::new(ProtocolAnswer {
        headers: r.headers(),
        body,
    }));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_names_digest_and_tiers_and_a_bad_host_is_not_echoed() {
        let d = ModelDigest(vouch_core::Digest::of(b"m"));
        let listen: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("node.example:443"));
        let a = resource_url(&h, listen, &d, &[Tier::Signed]);
        assert_eq!(
            a,
            format!("http://node.example:443/v1/infer?model={d}&tiers=signed")
        );
        assert_ne!(a, resource_url(&h, listen, &d, &[Tier::Signed, Tier::Tee]));
        let other = ModelDigest(vouch_core::Digest::of(b"n"));
        assert_ne!(a, resource_url(&h, listen, &other, &[Tier::Signed]));
        h.insert("host", HeaderValue::from_static("evil/path?x=1"));
        assert!(
            resource_url(&h, listen, &d, &[Tier::Signed]).starts_with("http://127.0.0.1:8080/")
        );
    }
}
