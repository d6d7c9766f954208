//! Why a payment was refused: the reference SDK's reason strings (coinbase/x402
//! `python/x402/mechanisms/evm/constants.py` and the spec's error list), plus the few Vouch adds
//! for states x402 leaves to the server. Clients match on the string, so none is ever renamed.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No payment header on a request that needs one.
    PaymentRequired,
    /// Header not base64, not JSON, or missing/ill-typed fields.
    InvalidPayload,
    /// `x402Version` absent or not 1/2.
    InvalidX402Version,
    /// The payment was made against requirements this resource does not offer (another model,
    /// tier set, price or URL).
    InvalidPaymentRequirements,
    UnsupportedScheme,
    /// The facilitator does not settle on this network.
    InvalidNetwork,
    NetworkMismatch,
    FailedToGetNetworkConfig,
    MissingEip712Domain,
    RecipientMismatch,
    ValueMismatch,
    ValidBeforeExpired,
    ValidAfterInFuture,
    InvalidSignature,
    NonceAlreadyUsed,
    InsufficientBalance,
    // `upto` (Permit2), the reference's strings (coinbase/x402
    // `python/x402/mechanisms/evm/constants.py`, `upto/permit2_utils.py`).
    UptoInvalidScheme,
    UptoNetworkMismatch,
    UptoFailedToGetNetworkConfig,
    /// Permit2 payload fields missing or not numbers/addresses.
    Permit2PayloadFormat,
    /// `spender` is not the x402 upto Permit2 proxy.
    Permit2InvalidSpender,
    /// `witness.to` is not `payTo`.
    Permit2RecipientMismatch,
    /// `witness.facilitator` is not this deployment's upto facilitator.
    UptoFacilitatorMismatch,
    Permit2DeadlineExpired,
    Permit2NotYetValid,
    /// `permitted.amount` is not the offered maximum.
    Permit2AmountMismatch,
    Permit2TokenMismatch,
    Permit2InvalidSignature,
    Permit2InsufficientBalance,
    /// A settlement asked for more than the payer authorised.
    UptoSettlementExceedsAmount,
    /// The Permit2 nonce was used (Vouch's code, in the reference's naming: the reference
    /// learns it from a failed on-chain simulation).
    UptoNonceAlreadyUsed,
    /// Settlement was attempted and failed.
    TransactionFailed,
    /// Settlement outcome unknown (facilitator timed out): recorded and reconciled later.
    SettlementPending,
    /// The facilitator could not be reached to verify.
    FacilitatorUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PaymentRequired => "payment_required",
            Reason::InvalidPayload => "invalid_payload",
            Reason::InvalidX402Version => "invalid_x402_version",
            Reason::InvalidPaymentRequirements => "invalid_payment_requirements",
            Reason::UnsupportedScheme => "unsupported_scheme",
            Reason::InvalidNetwork => "invalid_network",
            Reason::NetworkMismatch => "network_mismatch",
            Reason::FailedToGetNetworkConfig => "invalid_exact_evm_failed_to_get_network_config",
            Reason::MissingEip712Domain => "missing_eip712_domain",
            Reason::RecipientMismatch => "invalid_exact_evm_payload_recipient_mismatch",
            Reason::ValueMismatch => "invalid_exact_evm_payload_authorization_value_mismatch",
            Reason::ValidBeforeExpired => "invalid_exact_evm_payload_authorization_valid_before",
            Reason::ValidAfterInFuture => "invalid_exact_evm_payload_authorization_valid_after",
            Reason::InvalidSignature => "invalid_exact_evm_payload_signature",
            Reason::NonceAlreadyUsed => "invalid_exact_evm_nonce_already_used",
            Reason::InsufficientBalance => "invalid_exact_evm_insufficient_balance",
            Reason::UptoInvalidScheme => "invalid_upto_evm_scheme",
            Reason::UptoNetworkMismatch => "invalid_upto_evm_network_mismatch",
            Reason::UptoFailedToGetNetworkConfig => "invalid_upto_evm_failed_to_get_network_config",
            Reason::Permit2PayloadFormat => "invalid_permit2_payload_format",
            Reason::Permit2InvalidSpender => "invalid_permit2_spender",
            Reason::Permit2RecipientMismatch => "invalid_permit2_recipient_mismatch",
            Reason::UptoFacilitatorMismatch => "upto_facilitator_mismatch",
            Reason::Permit2DeadlineExpired => "permit2_deadline_expired",
            Reason::Permit2NotYetValid => "permit2_not_yet_valid",
            Reason::Permit2AmountMismatch => "permit2_amount_mismatch",
            Reason::Permit2TokenMismatch => "permit2_token_mismatch",
            Reason::Permit2InvalidSignature => "invalid_permit2_signature",
            Reason::Permit2InsufficientBalance => "permit2_insufficient_balance",
            Reason::UptoSettlementExceedsAmount => {
                "invalid_upto_evm_payload_settlement_exceeds_amount"
            }
            Reason::UptoNonceAlreadyUsed => "invalid_upto_evm_nonce_already_used",
            Reason::TransactionFailed => "transaction_failed",
            Reason::SettlementPending => "settlement_pending",
            Reason::FacilitatorUnavailable => "facilitator_unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
