//! Facilitators behind one trait: whoever checks a payment and moves the money. The built-in one
//! ([`crate::LocalFacilitator`]) settles into Vouch's own ledger; [`crate::RemoteFacilitator`]
//! talks to any service speaking the standard `/verify`, `/settle`, `/supported` API.
//!
//! An invalid payment is an `Ok` answer with `isValid: false` / `success: false` and a reason;
//! `Err` means the facilitator itself failed, and for `settle` that the outcome is unknown.

use async_trait::async_trait;

use crate::reason::Reason;
use crate::store::{RefundOutcome, StoreError};
use crate::verify::Verified;
use crate::wire::{
    FacilitatorRequest, PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse,
    VerifyResponse,
};

#[derive(Debug, thiserror::Error)]
pub enum FacilitatorError {
    #[error("facilitator did not answer in time")]
    Timeout,
    #[error("facilitator unreachable: {0}")]
    Transport(String),
    #[error("facilitator answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("facilitator answer is not valid x402 JSON: {0}")]
    Protocol(String),
    #[error("this facilitator cannot refund; refund {reference} on chain")]
    RefundUnsupported { reference: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait Facilitator: Send + Sync {
    /// Would this payment settle? No state changes.
    async fn verify(
        &self,
        payment: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<VerifyResponse, FacilitatorError>;

    /// Moves the money. Must be idempotent per authorization: settling the same one again
    /// returns the earlier result or a nonce-used failure, never a second charge.
    async fn settle(
        &self,
        payment: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<SettleResponse, FacilitatorError>;

    /// [`Facilitator::verify`] for a payment the caller already ran through
    /// [`crate::verify_exact`] (with the clock) on these same arguments: lets an in-process
    /// facilitator skip repeating the signature recovery. Default: plain `verify`.
    async fn verify_prechecked(
        &self,
        payment: &PaymentPayload,
        requirements: &PaymentRequirements,
        _verified: &Verified,
    ) -> Result<VerifyResponse, FacilitatorError> {
        self.verify(payment, requirements).await
    }

    /// [`Facilitator::settle`] with the same precondition as [`Facilitator::verify_prechecked`].
    async fn settle_prechecked(
        &self,
        payment: &PaymentPayload,
        requirements: &PaymentRequirements,
        _verified: &Verified,
    ) -> Result<SettleResponse, FacilitatorError> {
        self.settle(payment, requirements).await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError>;

    /// Gives a settled payment back (a paid zk proof that later failed). Only a ledger can.
    async fn refund(
        &self,
        reference: &str,
        _reason: &str,
    ) -> Result<RefundOutcome, FacilitatorError> {
        Err(FacilitatorError::RefundUnsupported {
            reference: reference.to_owned(),
        })
    }

    /// `builtin` or the remote base URL, for logs and `/v1/pricing`.
    fn describe(&self) -> String;
}

/// Serves a `/verify` body: malformed input is an `isValid: false` answer, not an error.
pub async fn serve_verify(
    f: &dyn Facilitator,
    request: &FacilitatorRequest,
) -> Result<VerifyResponse, FacilitatorError> {
    match request.parts() {
        Ok((payment, requirements)) => f.verify(&payment, &requirements).await,
        Err(e) => Ok(VerifyResponse {
            is_valid: false,
            invalid_reason: Some(Reason::InvalidPayload.as_str().into()),
            invalid_message: Some(e.to_string()),
            payer: None,
        }),
    }
}

/// Serves a `/settle` body: malformed input is a `success: false` answer, not an error.
pub async fn serve_settle(
    f: &dyn Facilitator,
    request: &FacilitatorRequest,
) -> Result<SettleResponse, FacilitatorError> {
    match request.parts() {
        Ok((payment, requirements)) => f.settle(&payment, &requirements).await,
        Err(e) => Ok(SettleResponse {
            success: false,
            error_reason: Some(Reason::InvalidPayload.as_str().into()),
            error_message: Some(e.to_string()),
            payer: None,
            transaction: String::new(),
            network: request
                .payment_requirements
                .get("network")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned(),
            amount: None,
        }),
    }
}
