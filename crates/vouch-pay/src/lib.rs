//! Vouch's payment layer: the x402 protocol (v1 and v2 wire types and header codecs), payment
//! requirements built from a price, verification of EIP-3009 `transferWithAuthorization`
//! (`exact`) and Permit2 `permitWitnessTransferFrom` (`upto`: a maximum authorised, the amount
//! used settled) payments in the reference order with the reference error codes, facilitators behind one trait
//! (the built-in ledger facilitator and a client for remote ones), the [`PaymentGate`] a server
//! puts around a paid request (verify → claim nonce → run → settle or release), pricing by model
//! and tier, and the CLI-side payer that signs a payment from a local key.
//!
//! This crate must not know HTTP *servers* or SQL: it hands the server header names, header values
//! and JSON bodies, and it reaches durable state only through the [`store::Ledger`] and
//! [`store::NonceStore`] traits (implemented over SQLite in `vouch-store`). The only network code
//! here is the HTTP *client* for remote facilitators. Cryptography (EIP-712 hashing, Keccak,
//! secp256k1 recovery and signing) comes from `alloy`, never hand-rolled.

pub mod amount;
pub mod config;
pub mod facilitator;
pub mod gate;
pub mod http;
pub mod local;
pub mod memory_claims;
pub mod network;
pub mod payer;
pub mod pricing;
pub mod reason;
pub mod remote;
pub mod store;
pub mod upto;
pub mod verify;
pub mod wire;

pub use alloy_primitives::{Address, B256, U256};
pub use amount::{Amount, AmountError, format_units, parse_amount};
pub use config::{ConfigError, FacilitatorChoice, Offer, PayConfig, PayTerms};
pub use facilitator::{Facilitator, FacilitatorError};
pub use gate::{GateConfig, PaymentGate, ReconcileReport, Rejection, Settled, Ticket};
pub use local::LocalFacilitator;
pub use memory_claims::MemoryNonceStore;
pub use pricing::{ChatQuote, PriceError, PricingConfig, Quote, QuoteLine, TierPrices};
pub use reason::Reason;
pub use remote::RemoteFacilitator;
pub use verify::{Scheme, Verified, VerifyFailure, verify_exact, verify_payment};
pub use wire::{
    PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse, VerifyResponse,
};
