//! x402 payments on `POST /v1/infer` (`docs/payments.md`): the HTTP side of
//! `vouch_pay::PaymentGate`. With `[pay] enabled`, a priced request must carry a payment for
//! exactly this model digest, tier set and price — checked after the tier decision and before
//! any work. A failed inference abandons the payment (nothing charged); a successful one is
//! settled *before* its receipt is signed, so the receipt names the payment.

use std::sync::Arc;
use std::time::Duration;

use vouch_core::{ErrorCode, ModelDigest, PaymentRef, Tier};
use vouch_pay::store::{Account, NonceStore};
use vouch_pay::wire::ResourceInfo;
use vouch_pay::{
    Address, FacilitatorChoice, GateConfig, LocalFacilitator, MemoryNonceStore, PayConfig,
    PayTerms, PaymentGate, Quote, Rejection, RemoteFacilitator, Ticket,
};
use vouch_store::Store;
use vouch_store::pay_store::SettleDurability;
use vouch_store::pg::pay::PayBackend;

use crate::error::{NodeError, ProtocolAnswer};
use crate::node::BootError;

/// Payments, when `[pay] enabled`. Kept in the node so later work (a paid zk proof that
/// fails) can `gate.refund(settlement, reason)`.
pub struct PayState {
    pub gate: Arc<PaymentGate>,
    pub terms: PayTerms,
    /// The built-in ledger, when `facilitator = "builtin"`: credits, balances, refunds.
    pub ledger: Option<Arc<PayBackend>>,
    /// `builtin` or the remote facilitator's URL.
    pub facilitator: String,
}

/// The built-in ledger facilitator for these terms, settling `upto` payments that name this
/// deployment's facilitator address.
fn builtin_facilitator(ledger: Arc<PayBackend>, terms: &PayTerms) -> LocalFacilitator {
    let local = LocalFacilitator::new(ledger, vec![terms.chain_id]);
    match terms.upto_facilitator {
        Some(address) => local.with_upto_facilitator(address),
        None => local,
    }
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
        // Settlements are synced by `make_durable`, beside the receipt's log commit (on
        // PostgreSQL every commit is durable already).
        let pay_store = Arc::new(
            PayBackend::open(store, SettleDurability::Deferred)
                .await
                .map_err(|e| BootError::Pay(e.to_string()))?,
        );
        let shared = matches!(*pay_store, PayBackend::Postgres(_));
        // Claims: in memory with the built-in ledger of one node (its settlement row is the
        // durable single-use record; see `vouch_pay::memory_claims`); durable with a remote
        // facilitator (a settlement that times out must be found again after a restart) and in
        // a cluster (one authorization presented to two nodes at once is served by one: the
        // other node's claim is refused, not answered from the first one's settlement).
        let (facilitator, ledger, claims): (
            Arc<dyn vouch_pay::Facilitator>,
            _,
            Arc<dyn NonceStore>,
        ) = match cfg.facilitator_choice() {
            Ok(FacilitatorChoice::Builtin) => (
                Arc::new(builtin_facilitator(pay_store.clone(), &terms)),
                Some(pay_store.clone()),
                if shared {
                    pay_store.clone()
                } else {
                    Arc::new(MemoryNonceStore::new())
                },
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

/// What a request carries of its payment, in transport-neutral form: the x402 payment headers
/// (`PAYMENT-SIGNATURE` for v2, `X-PAYMENT` for v1) and the host the caller addressed, which the
/// payment's resource URL names.
#[derive(Clone, Debug, Default)]
pub struct PaymentHeaders {
    pub signature: Option<String>,
    pub x_payment: Option<String>,
    pub host: Option<String>,
}

/// The URL a payment is bound to: this node's infer endpoint for one model digest and tier set,
/// so a payment made for one model or tier set is refused on another (v2 echoes it).
pub fn resource_url(
    host: Option<&str>,
    listen: std::net::SocketAddr,
    digest: &ModelDigest,
    tiers: &[Tier],
) -> String {
    bound_url(host, listen, "/v1/infer", digest, tiers)
}

/// The URL a chat payment is bound to: the chat endpoint, one model digest and tier set. The
/// price (prompt and `max_tokens`) is bound by the requirement's amount, which v2 echoes too.
pub fn chat_resource_url(
    host: Option<&str>,
    listen: std::net::SocketAddr,
    digest: &ModelDigest,
    tiers: &[Tier],
) -> String {
    bound_url(host, listen, "/v1/chat/completions", digest, tiers)
}

fn bound_url(
    host: Option<&str>,
    listen: std::net::SocketAddr,
    path: &str,
    digest: &ModelDigest,
    tiers: &[Tier],
) -> String {
    let host = host
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
        "http://{host}{path}?model={digest}&tiers={}",
        tiers.join(",")
    )
}

impl PayState {
    /// Checks the request's payment before any work. `Ok(None)`: the request is free (an
    /// unsigned receipt). `Ok(Some(admitted))`: run, then [`Admitted::settle`]; dropping it
    /// abandons the payment (nothing is charged).
    pub async fn admit(
        self: &Arc<Self>,
        headers: &PaymentHeaders,
        listen: std::net::SocketAddr,
        digest: &ModelDigest,
        tiers: &[Tier],
        quote: &Quote,
        request_id: &str,
    ) -> Result<Option<Admitted>, NodeError> {
        if quote.total.0.is_zero() {
            return Ok(None);
        }
        let shown: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
        let offer = self.terms.offer(
            quote.total.0,
            ResourceInfo {
                url: resource_url(headers.host.as_deref(), listen, digest, tiers),
                description: Some(format!(
                    "Vouch inference of {digest} with tiers [{}]",
                    shown.join(", ")
                )),
                mime_type: Some("application/json".into()),
            },
        );
        self.admit_offer(headers, &offer, request_id)
            .await
            .map(Some)
    }

    async fn admit_offer(
        self: &Arc<Self>,
        headers: &PaymentHeaders,
        offer: &vouch_pay::Offer,
        request_id: &str,
    ) -> Result<Admitted, NodeError> {
        let ticket = self
            .gate
            .admit(
                headers.signature.as_deref(),
                headers.x_payment.as_deref(),
                offer,
                request_id,
            )
            .await
            .map_err(refusal)?;
        Ok(Admitted {
            pay: self.clone(),
            ticket: Some(ticket),
        })
    }

    /// Checks a chat's payment before generation: offered as `upto` the quote's maximum (settled
    /// for the tokens used) and as `exact` the maximum (which charges the maximum). Even a
    /// zero maximum goes through the gate, so every paid chat is bound to a payment.
    pub async fn admit_chat(
        self: &Arc<Self>,
        headers: &PaymentHeaders,
        listen: std::net::SocketAddr,
        digest: &ModelDigest,
        tiers: &[Tier],
        quote: &vouch_pay::ChatQuote,
        request_id: &str,
    ) -> Result<Admitted, NodeError> {
        let offer = self.terms.offer_metered(
            quote.maximum.0,
            ResourceInfo {
                url: chat_resource_url(headers.host.as_deref(), listen, digest, tiers),
                description: Some(format!(
                    "Vouch chat on {digest}: at most {} prompt and {} completion tokens",
                    quote.prompt_tokens, quote.max_tokens
                )),
                mime_type: Some("application/json".into()),
            },
        );
        self.admit_offer(headers, &offer, request_id).await
    }

    /// Makes the settlement a receipt names durable: the built-in ledger answers a settlement
    /// as soon as it is decided ([`SettleDurability::Deferred`]) and the request runs this — a
    /// wait for the ledger writer's batch holding it — beside the log commit of its receipt, so
    /// the two fsyncs overlap instead of queueing. Remote facilitators settle on their side.
    pub async fn make_durable(&self) -> Result<(), NodeError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        ledger.sync().await.map_err(|e| {
            tracing::error!(error = %e, "settlement could not be made durable");
            NodeError::internal("the payment could not be recorded durably")
        })
    }
}

/// An admitted payment, not yet charged. Settle it when the work is done; dropped (the work
/// failed, the request was cancelled) it releases the payment, so nothing is charged.
#[must_use = "an admitted payment is abandoned when dropped"]
pub struct Admitted {
    pay: Arc<PayState>,
    ticket: Option<Ticket>,
}

impl Admitted {
    /// The scheme the payer chose (`exact` or `upto`).
    pub fn scheme(&self) -> Option<vouch_pay::Scheme> {
        self.ticket.as_ref().map(Ticket::scheme)
    }

    /// Takes `used` of an `upto` payment (at most its maximum), or an `exact` payment's whole
    /// price: what a metered request (a chat) charges once it knows what it used.
    pub async fn settle_used(mut self, used: vouch_pay::U256) -> Result<Settled, NodeError> {
        let Some(ticket) = self.ticket.take() else {
            return Err(NodeError::internal("a payment was settled twice"));
        };
        let amount = match ticket.scheme() {
            vouch_pay::Scheme::Upto => used.min(ticket.amount()),
            vouch_pay::Scheme::Exact => ticket.amount(),
        };
        let settled = self
            .pay
            .gate
            .settle_amount(ticket, amount)
            .await
            .map_err(refusal)?;
        Ok(Settled {
            held: Some((self.pay.clone(), settled.payment.clone())),
            headers: settled.headers(),
        })
    }

    /// Takes the money. A refused settlement is a 402 and nothing is served. The answer is a
    /// [`Settled`] guard: from here on, every way the request can still fail refunds it.
    pub async fn settle(mut self) -> Result<Settled, NodeError> {
        let Some(ticket) = self.ticket.take() else {
            return Err(NodeError::internal("a payment was settled twice"));
        };
        let settled = self.pay.gate.settle(ticket).await.map_err(refusal)?;
        Ok(Settled {
            held: Some((self.pay.clone(), settled.payment.clone())),
            headers: settled.headers(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let gate = self.pay.gate.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { gate.abandon(ticket).await });
            }
            // Without a runtime the claim's lease runs out instead (`[pay] lease_seconds`).
            Err(_) => tracing::warn!("an admitted payment was dropped outside the runtime"),
        }
    }
}

/// A settled payment whose answer has not been delivered yet. Every way the request can still
/// fail after settlement ends here: [`Settled::refund`] with the reason, or a drop (an error
/// returned with `?`, a cancelled request) that refunds it in the background. Only
/// [`Settled::delivered`] keeps the money. One guard refunds at most once, and the ledger
/// refuses a second refund of one settlement, so nothing is refunded or charged twice.
#[must_use = "a settled payment is refunded when dropped undelivered"]
pub struct Settled {
    held: Option<(Arc<PayState>, PaymentRef)>,
    headers: Vec<(&'static str, String)>,
}

impl Settled {
    /// No payment (payments off, or a free request): nothing to refund.
    pub fn free() -> Self {
        Settled {
            held: None,
            headers: Vec::new(),
        }
    }

    /// What the receipt records of the payment.
    pub fn payment(&self) -> Option<&PaymentRef> {
        self.held.as_ref().map(|(_, p)| p)
    }

    /// Makes the settlement durable (see [`PayState::make_durable`]).
    pub async fn make_durable(&self) -> Result<(), NodeError> {
        match &self.held {
            Some((pay, _)) => pay.make_durable().await,
            None => Ok(()),
        }
    }

    /// The request cannot be answered: refund now, saying why.
    pub async fn refund(mut self, why: &str) {
        if let Some((pay, p)) = self.held.take() {
            refund_unserved(&pay, &p, why).await;
        }
    }

    /// The answer is complete and handed to the transport: keep the payment. Returns the
    /// x402 response headers (`PAYMENT-RESPONSE` or `X-PAYMENT-RESPONSE`).
    pub fn delivered(mut self) -> Vec<(&'static str, String)> {
        self.held = None;
        std::mem::take(&mut self.headers)
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        let Some((pay, p)) = self.held.take() else {
            return;
        };
        let why = "the request ended before its answer was delivered";
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { refund_unserved(&pay, &p, why).await });
            }
            Err(_) => tracing::error!(
                payer = %p.payer,
                "REFUND NOT MADE: payment {} settled, answer not delivered, no runtime to refund it",
                p.settlement
            ),
        }
    }
}

/// Refunds a settled payment whose request could not be answered. Logged loudly either way: a
/// failure here needs the operator.
async fn refund_unserved(pay: &PayState, p: &PaymentRef, why: &str) {
    let reason = format!("the request was not answered after settlement: {why}");
    match refund(&pay.gate, p, &reason).await {
        Ok(done) => tracing::warn!(payer = %p.payer, "{done}: {reason}"),
        Err(failed) => tracing::error!(payer = %p.payer, "REFUND FAILED: {failed}: {reason}"),
    }
}

/// A refused payment as the x402 answer: status, `PAYMENT-REQUIRED` (v2) and the v1 body, whose
/// `error` is the reference reason code; `message` says it for people.
fn refusal(r: Rejection) -> NodeError {
    let code = match r.status {
        402 => ErrorCode::PaymentRequired,
        503 => ErrorCode::PaymentUnavailable,
        _ => ErrorCode::Internal,
    };
    let mut body = r.body();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("message".into(), serde_json::Value::from(r.message.clone()));
    }
    let mut e = NodeError::new(code, format!("{}: {}", r.reason, r.message));
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
        let h = Some("node.example:443");
        let a = resource_url(h, listen, &d, &[Tier::Signed]);
        assert_eq!(
            a,
            format!("http://node.example:443/v1/infer?model={d}&tiers=signed")
        );
        assert_ne!(a, resource_url(h, listen, &d, &[Tier::Signed, Tier::Tee]));
        let other = ModelDigest(vouch_core::Digest::of(b"n"));
        assert_ne!(a, resource_url(h, listen, &other, &[Tier::Signed]));
        let h = Some("evil/path?x=1");
        assert!(resource_url(h, listen, &d, &[Tier::Signed]).starts_with("http://127.0.0.1:8080/"));
    }
}
