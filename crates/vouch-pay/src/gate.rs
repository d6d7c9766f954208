//! The payment gate a server puts around one paid request:
//!
//! ```text
//! admit(headers, offer, request id)      decode → match offer → verify (stateless) →
//!                                        claim nonce (atomic; exactly one racing request wins) →
//!                                        facilitator verify (nonce on record, balance)
//!   ├─ Rejection → answer 402 (nothing run, nothing charged)
//!   └─ Ticket → run the inference
//!        ├─ failed    → abandon(ticket): claim released, nothing charged
//!        └─ succeeded → settle(ticket)
//!             ├─ Settled   → 200 + output + PAYMENT-RESPONSE; receipt names the PaymentRef
//!             └─ Rejection → 402 + PAYMENT-RESPONSE (success:false), no output
//! ```
//!
//! A settlement whose outcome is unknown (facilitator timed out) stays recorded as pending and
//! the request is refused; [`PaymentGate::reconcile`] later re-settles it (settlement is
//! idempotent per authorization) and, if it went through, lets a retry of the identical payment
//! collect its output once — nothing is lost and nothing is charged twice.
//!
//! The gate returns header names, header values and JSON bodies; the server turns them into an
//! HTTP response.

use alloy_primitives::{Address, U256};
use serde_json::Value;
use std::sync::Arc;
use vouch_core::PaymentRef;

use crate::config::Offer;
use crate::facilitator::{Facilitator, FacilitatorError};
use crate::local::system_now;
use crate::network;
use crate::reason::Reason;
use crate::store::{
    AuthorizationKey, ClaimEnd, ClaimOutcome, NonceClaim, NonceStore, RefundOutcome, StoreError,
};
use crate::verify::{Scheme, Verified, verify_payment};
use crate::wire::{
    DecodeError, PAYMENT_REQUIRED_HEADER, PaymentPayload, PaymentRequiredV1, PaymentRequiredV2,
    PaymentRequirements, SCHEME_UPTO, SettleResponse, encode_header,
};

/// Lets browser clients read the x402 headers (the reference servers send the same).
pub const EXPOSE_HEADERS: (&str, &str) = (
    "Access-Control-Expose-Headers",
    "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE",
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateConfig {
    /// How long an admitted request may hold its payment before another may take it over.
    pub lease_seconds: u64,
    /// A settlement pending for longer than this is re-settled by `reconcile`.
    pub pending_grace_seconds: u64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            lease_seconds: 600,
            pending_grace_seconds: 30,
        }
    }
}

/// A refused payment: what to answer. Status is 402 unless the node itself failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub message: String,
    pub payer: Option<String>,
    pub payment_required: PaymentRequiredV2,
    pub payment_required_v1: Option<PaymentRequiredV1>,
    /// After a failed settlement: the response header carrying the facilitator's answer.
    pub settlement: Option<(&'static str, SettleResponse)>,
}

impl Rejection {
    /// Headers to send: `PAYMENT-REQUIRED`, the settlement header if any, and the CORS expose list.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![(
            PAYMENT_REQUIRED_HEADER,
            encode_header(&self.payment_required),
        )];
        if let Some((name, resp)) = &self.settlement {
            h.push((name, encode_header(resp)));
        }
        h.push((EXPOSE_HEADERS.0, EXPOSE_HEADERS.1.to_owned()));
        h
    }

    /// The JSON body: the v1 402 document when v1 is offered (legacy clients read the body, v2
    /// clients the header), else the v2 one.
    pub fn body(&self) -> Value {
        match &self.payment_required_v1 {
            Some(v1) => serde_json::to_value(v1),
            None => serde_json::to_value(&self.payment_required),
        }
        .unwrap_or(Value::Null)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// An admitted payment: hold it while the inference runs, then `settle` or `abandon` it.
#[derive(Debug)]
pub struct Ticket {
    payment: PaymentPayload,
    requirements: PaymentRequirements,
    verified: Verified,
    request_id: String,
    /// Set when this payment was settled earlier but never served (see module docs).
    resumed: Option<SettleResponse>,
    offer: Offer,
}

impl Ticket {
    pub fn payer(&self) -> Address {
        self.verified.payer
    }
    /// The price (`exact`) or the maximum authorised (`upto`).
    pub fn amount(&self) -> U256 {
        self.verified.amount
    }
    pub fn scheme(&self) -> Scheme {
        self.verified.scheme
    }
    pub fn version(&self) -> u32 {
        self.payment.version()
    }
    pub fn key(&self) -> AuthorizationKey {
        self.verified.key()
    }
}

/// A settled payment: the header to answer with and what the receipt records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub response: SettleResponse,
    /// `PAYMENT-RESPONSE` (v2) or `X-PAYMENT-RESPONSE` (v1).
    pub header_name: &'static str,
    pub header_value: String,
    pub payment: PaymentRef,
}

impl Settled {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (self.header_name, self.header_value.clone()),
            (EXPOSE_HEADERS.0, EXPOSE_HEADERS.1.to_owned()),
        ]
    }
}

/// What a `reconcile` pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Settled now (or found settled): a retry of the same payment collects its output.
    pub settled: u32,
    /// Refused by the facilitator: the claim is dropped, nothing was paid.
    pub failed: u32,
    /// The facilitator is still not answering.
    pub still_pending: u32,
}

pub struct PaymentGate {
    facilitator: Arc<dyn Facilitator>,
    nonces: Arc<dyn NonceStore>,
    config: GateConfig,
    clock: fn() -> u64,
}

fn internal(offer: &Offer, e: impl std::fmt::Display) -> Rejection {
    tracing::error!(error = %e, "payment store or facilitator failed");
    Rejection {
        status: 500,
        reason: "internal".into(),
        message: "the payment could not be processed; nothing was charged".into(),
        payer: None,
        payment_required: offer.payment_required_v2(Some("internal")),
        payment_required_v1: offer.payment_required_v1("internal"),
        settlement: None,
    }
}

fn reject(
    offer: &Offer,
    reason: &str,
    message: impl Into<String>,
    payer: Option<String>,
) -> Rejection {
    Rejection {
        status: 402,
        reason: reason.to_owned(),
        message: message.into(),
        payer,
        payment_required: offer.payment_required_v2(Some(reason)),
        payment_required_v1: offer.payment_required_v1(reason),
        settlement: None,
    }
}

impl PaymentGate {
    pub fn new(
        facilitator: Arc<dyn Facilitator>,
        nonces: Arc<dyn NonceStore>,
        config: GateConfig,
    ) -> Self {
        PaymentGate {
            facilitator,
            nonces,
            config,
            clock: system_now,
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    pub fn facilitator(&self) -> &Arc<dyn Facilitator> {
        &self.facilitator
    }

    /// The 402 for a request that carried no payment.
    pub fn payment_required(&self, offer: &Offer) -> Rejection {
        reject(
            offer,
            Reason::PaymentRequired.as_str(),
            "this request must be paid (x402)",
            None,
        )
    }

    /// Checks the payment a request carries (`PAYMENT-SIGNATURE`, else `X-PAYMENT`) against
    /// `offer` and claims it for `request_id`. Run the inference only on `Ok`.
    pub async fn admit(
        &self,
        payment_signature: Option<&str>,
        x_payment: Option<&str>,
        offer: &Offer,
        request_id: &str,
    ) -> Result<Ticket, Rejection> {
        let Some(header) = payment_signature.or(x_payment) else {
            return Err(self.payment_required(offer));
        };
        let payment = PaymentPayload::decode_header(header).map_err(|e| {
            let reason = match e {
                DecodeError::Version(_) => Reason::InvalidX402Version,
                _ => Reason::InvalidPayload,
            };
            reject(offer, reason.as_str(), e.to_string(), None)
        })?;
        let requirements = offer
            .select(&payment)
            .map_err(|(r, m)| reject(offer, r.as_str(), m, None))?;
        let now = (self.clock)();
        let verified = verify_payment(&payment, &requirements, Some(now))
            .map_err(|f| reject(offer, f.reason.as_str(), f.message, f.payer))?;
        let payer = Some(verified.payer.to_string());

        let claim = NonceClaim {
            key: verified.key(),
            digest: verified.digest,
            request_id: request_id.to_owned(),
            payment_json: payment.to_json().to_string(),
            requirements_json: requirements.to_json().to_string(),
            now,
            lease_until: now.saturating_add(self.config.lease_seconds),
        };
        let resumed = match self
            .nonces
            .claim(&claim)
            .await
            .map_err(|e| internal(offer, e))?
        {
            ClaimOutcome::Taken => {
                return Err(reject(
                    offer,
                    verified.scheme.nonce_used().as_str(),
                    "this payment was already used",
                    payer,
                ));
            }
            ClaimOutcome::Resumed { settlement_json } => {
                match serde_json::from_str::<SettleResponse>(&settlement_json) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        return Err(internal(
                            offer,
                            format!("stored settlement unreadable: {e}"),
                        ));
                    }
                }
            }
            ClaimOutcome::Won => None,
        };
        let ticket = Ticket {
            payment,
            requirements,
            verified,
            request_id: request_id.to_owned(),
            resumed,
            offer: offer.clone(),
        };
        if ticket.resumed.is_some() {
            // Paid earlier, never served: nothing more to check.
            return Ok(ticket);
        }
        let answer = self
            .facilitator
            .verify_prechecked(&ticket.payment, &ticket.requirements, &ticket.verified)
            .await;
        let refusal = match answer {
            Ok(v) if v.is_valid => return Ok(ticket),
            Ok(v) => reject(
                offer,
                v.invalid_reason
                    .as_deref()
                    .unwrap_or(Reason::TransactionFailed.as_str()),
                v.invalid_message
                    .unwrap_or_else(|| "the facilitator refused this payment".into()),
                v.payer.or(payer),
            ),
            Err(e) => {
                let mut r = reject(
                    offer,
                    Reason::FacilitatorUnavailable.as_str(),
                    e.to_string(),
                    payer,
                );
                r.status = 503;
                r
            }
        };
        self.release(&ticket).await;
        Err(refusal)
    }

    async fn release(&self, t: &Ticket) {
        if let Err(e) = self.nonces.release(&t.verified.key(), &t.request_id).await {
            tracing::error!(error = %e, "could not release a payment claim; it frees itself when its lease ends");
        }
    }

    /// The inference failed: nothing is charged and the payment may be used again.
    pub async fn abandon(&self, ticket: Ticket) {
        self.release(&ticket).await;
    }

    /// The inference succeeded: take the money (the price; an `upto` payment its maximum). On
    /// `Err` answer the rejection and no output.
    pub async fn settle(&self, ticket: Ticket) -> Result<Settled, Rejection> {
        let amount = ticket.verified.amount;
        self.settle_amount(ticket, amount).await
    }

    /// Takes `amount`: for `upto` the amount used, at most the maximum authorised; for `exact`
    /// it must be the price. On `Err` answer the rejection and no output.
    pub async fn settle_amount(&self, ticket: Ticket, amount: U256) -> Result<Settled, Rejection> {
        let offer = &ticket.offer;
        if amount > ticket.verified.amount
            || (ticket.verified.scheme == Scheme::Exact && amount != ticket.verified.amount)
        {
            let why = format!(
                "cannot settle {amount} of a {} payment of {}",
                ticket.verified.scheme.as_str(),
                ticket.verified.amount
            );
            self.release(&ticket).await;
            return Err(internal(offer, why));
        }
        // `upto` settles through the requirements naming the amount used, as x402's `/settle`.
        let requirements = if ticket.requirements.scheme() == SCHEME_UPTO {
            ticket.requirements.with_amount(&amount.to_string())
        } else {
            ticket.requirements.clone()
        };
        let key = ticket.verified.key();
        let header_name = ticket.payment.response_header_name();
        let now = (self.clock)();
        if let Some(resp) = &ticket.resumed {
            self.nonces
                .finish(&key, &ticket.request_id, ClaimEnd::Served, &json(resp), now)
                .await
                .map_err(|e| internal(offer, e))?;
            return Ok(self.settled(&ticket, resp.clone(), amount));
        }
        if !self
            .nonces
            .begin_settle(&key, &ticket.request_id, now)
            .await
            .map_err(|e| internal(offer, e))?
        {
            // Our lease ran out and another request took the payment over.
            return Err(reject(
                offer,
                Reason::NonceAlreadyUsed.as_str(),
                "this payment was taken over by another request",
                None,
            ));
        }
        match self
            .facilitator
            .settle_prechecked(&ticket.payment, &requirements, &ticket.verified)
            .await
        {
            Ok(resp) if resp.success => {
                self.nonces
                    .finish(
                        &key,
                        &ticket.request_id,
                        ClaimEnd::Served,
                        &json(&resp),
                        (self.clock)(),
                    )
                    .await
                    .map_err(|e| internal(offer, e))?;
                Ok(self.settled(&ticket, resp, amount))
            }
            Ok(resp) => {
                if let Err(e) = self
                    .nonces
                    .finish(
                        &key,
                        &ticket.request_id,
                        ClaimEnd::Failed,
                        &json(&resp),
                        (self.clock)(),
                    )
                    .await
                {
                    tracing::error!(error = %e, "could not record a failed settlement");
                }
                let reason = resp
                    .error_reason
                    .clone()
                    .unwrap_or_else(|| Reason::TransactionFailed.as_str().into());
                let mut r = reject(
                    offer,
                    &reason,
                    resp.error_message
                        .clone()
                        .unwrap_or_else(|| "settlement failed".into()),
                    resp.payer.clone(),
                );
                r.settlement = Some((header_name, resp));
                Err(r)
            }
            Err(e) => {
                // Outcome unknown: the claim stays `settling` for `reconcile`.
                tracing::warn!(error = %e, payer = %ticket.verified.payer, "settlement outcome unknown; recorded as pending");
                let resp = SettleResponse {
                    success: false,
                    error_reason: Some(Reason::SettlementPending.as_str().into()),
                    error_message: Some(format!(
                        "{e}; the payment is recorded and will be reconciled — retry the same payment later"
                    )),
                    payer: Some(ticket.verified.payer.to_string()),
                    transaction: String::new(),
                    network: ticket.requirements.network().to_owned(),
                    amount: None,
                };
                let mut r = reject(
                    offer,
                    Reason::SettlementPending.as_str(),
                    e.to_string(),
                    resp.payer.clone(),
                );
                r.settlement = Some((header_name, resp));
                Err(r)
            }
        }
    }

    /// What the receipt records: the scheme, and the amount the facilitator reports settled
    /// (for `upto` the amount used), else the amount asked.
    fn settled(&self, t: &Ticket, response: SettleResponse, asked: U256) -> Settled {
        let v = &t.verified;
        let amount = response
            .amount
            .as_deref()
            .and_then(|a| crate::amount::parse_amount(a).ok())
            .unwrap_or(asked);
        let payment = PaymentRef {
            scheme: v.scheme.as_str().into(),
            network: network::caip2(v.chain_id),
            asset: v.asset.to_string(),
            amount: amount.to_string(),
            payer: v.payer.to_string(),
            settlement: response.transaction.clone(),
        };
        let header_name = t.payment.response_header_name();
        Settled {
            header_value: encode_header(&response),
            header_name,
            response,
            payment,
        }
    }

    /// Gives back a settled payment (a paid zk proof that failed). `settlement` is
    /// [`PaymentRef::settlement`]. Only the built-in ledger can; a remote one reports
    /// [`FacilitatorError::RefundUnsupported`].
    pub async fn refund(
        &self,
        settlement: &str,
        reason: &str,
    ) -> Result<RefundOutcome, FacilitatorError> {
        self.facilitator.refund(settlement, reason).await
    }

    /// Re-settles payments whose settlement outcome was unknown. Run periodically (every
    /// `pending_grace_seconds`) and at startup.
    pub async fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        let now = (self.clock)();
        let mut report = ReconcileReport::default();
        let pending = self
            .nonces
            .pending(now.saturating_sub(self.config.pending_grace_seconds), 100)
            .await?;
        for p in pending {
            let parsed = serde_json::from_str::<Value>(&p.payment_json)
                .ok()
                .and_then(|v| PaymentPayload::from_json(v).ok())
                .and_then(|pay| {
                    let req = serde_json::from_str::<Value>(&p.requirements_json).ok()?;
                    Some((
                        PaymentRequirements::from_json(pay.version(), req).ok()?,
                        pay,
                    ))
                });
            if parsed
                .as_ref()
                .is_some_and(|(req, _)| req.scheme() == SCHEME_UPTO)
            {
                // The claim records the offered maximum, not the amount used: re-settling it
                // could overcharge. Left for the operator (`upto` is offered with the built-in
                // ledger only, whose settlement cannot time out).
                tracing::error!(request_id = %p.request_id, payer = %p.key.payer, "an upto settlement's outcome is unknown; not re-settling it at its maximum — check the facilitator");
                self.nonces
                    .finish(&p.key, &p.request_id, ClaimEnd::Failed, "{}", now)
                    .await?;
                report.failed += 1;
                continue;
            }
            let Some((req, pay)) = parsed else {
                tracing::error!(request_id = %p.request_id, "pending payment record unreadable; dropping the claim");
                self.nonces
                    .finish(&p.key, &p.request_id, ClaimEnd::Failed, "{}", now)
                    .await?;
                report.failed += 1;
                continue;
            };
            match self.facilitator.settle(&pay, &req).await {
                Ok(resp) if resp.success => {
                    self.nonces
                        .finish(&p.key, &p.request_id, ClaimEnd::Unserved, &json(&resp), now)
                        .await?;
                    report.settled += 1;
                }
                Ok(resp) => {
                    if resp.error_reason.as_deref() == Some(Reason::NonceAlreadyUsed.as_str()) {
                        // A remote facilitator cannot tell "settled by our lost call" from
                        // "spent elsewhere"; the operator must look on chain.
                        tracing::warn!(payer = %p.key.payer, nonce = %p.key.nonce, "pending payment's nonce is used on the facilitator; check the chain, not serving it");
                    }
                    self.nonces
                        .finish(&p.key, &p.request_id, ClaimEnd::Failed, &json(&resp), now)
                        .await?;
                    report.failed += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "facilitator still not answering; payment stays pending");
                    report.still_pending += 1;
                }
            }
        }
        Ok(report)
    }
}

fn json(r: &SettleResponse) -> String {
    serde_json::to_string(r).unwrap_or_else(|_| "{}".into())
}
