//! The durable state payments need, as traits: the built-in facilitator's [`Ledger`] (balances
//! and settlements) and the server's [`NonceStore`] (which request holds which authorization).
//! `vouch-store` implements both over SQL; this crate never sees a database.
//!
//! Both are keyed by [`AuthorizationKey`] — `(chain, token, payer, nonce)`, exactly EIP-3009's
//! single-use rule — and both must be atomic across processes sharing the database: the
//! implementation, not the caller, guarantees that of N racing claims or settlements of one key
//! exactly one wins.

use alloy_primitives::{Address, B256, U256};
use async_trait::async_trait;

/// One EIP-3009 authorization's identity: a nonce is single-use per payer per token contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthorizationKey {
    pub chain_id: u64,
    pub asset: Address,
    pub payer: Address,
    pub nonce: B256,
}

/// A balance holder: an address's holding of one token on one chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    pub chain_id: u64,
    pub asset: Address,
    pub owner: Address,
}

/// A settled payment in the built-in ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRecord {
    pub key: AuthorizationKey,
    /// EIP-712 digest of the authorization ([`crate::verify::authorization_digest`]).
    pub digest: B256,
    pub pay_to: Address,
    pub amount: U256,
    /// The settlement reference reported to the client and written into receipts.
    pub reference: String,
    /// Unix seconds.
    pub settled_at: u64,
    pub refund: Option<RefundRecord>,
}

impl SettlementRecord {
    /// The accounts it moves money between: (payer, payee).
    pub fn accounts(&self) -> (Account, Account) {
        let k = &self.key;
        let account = |owner| Account {
            chain_id: k.chain_id,
            asset: k.asset,
            owner,
        };
        (account(k.payer), account(self.pay_to))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRecord {
    pub refunded_at: u64,
    pub reason: String,
}

/// Result of [`Ledger::settle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Debited the payer, credited the payee, recorded the settlement.
    Settled(SettlementRecord),
    /// This very authorization (same digest) was settled before: nothing moved this time.
    AlreadySettled(SettlementRecord),
    /// The key was settled with a different authorization.
    NonceUsed,
    InsufficientBalance {
        balance: U256,
    },
}

/// Result of [`Ledger::refund`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded(SettlementRecord),
    /// Refunded before: nothing moved this time.
    AlreadyRefunded(SettlementRecord),
    NotFound,
}

/// Failure of the storage itself (not of a payment).
#[derive(Debug, thiserror::Error)]
#[error("payment store: {0}")]
pub struct StoreError(pub String);

/// Balances and settlements of the built-in facilitator. Every method is atomic.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn balance(&self, account: &Account) -> Result<U256, StoreError>;

    /// Adds `amount` (an operator's top-up); returns the new balance.
    async fn credit(&self, account: &Account, amount: U256, memo: &str)
    -> Result<U256, StoreError>;

    /// The settlement recorded under `key`, if any.
    async fn settlement(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError>;

    /// Whether `key` is settled, and `payer`'s balance: what a verification checks. One read
    /// where the store can (the default makes two).
    async fn standing(
        &self,
        key: &AuthorizationKey,
        payer: &Account,
    ) -> Result<(bool, U256), StoreError> {
        Ok((
            self.settlement(key).await?.is_some(),
            self.balance(payer).await?,
        ))
    }

    /// In one transaction: if `key` is settled, report it (same digest) or `NonceUsed`; else move
    /// `amount` from payer to `pay_to` if the payer has it, and record `new` under `key`.
    async fn settle(&self, new: &SettlementRecord) -> Result<SettleOutcome, StoreError>;

    /// Moves a settled amount back from payee to payer, once.
    async fn refund(
        &self,
        reference: &str,
        reason: &str,
        now: u64,
    ) -> Result<RefundOutcome, StoreError>;
}

/// A request's claim on an authorization, stored so a crashed or timed-out settlement can be
/// finished later by [`crate::PaymentGate::reconcile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceClaim {
    pub key: AuthorizationKey,
    pub digest: B256,
    pub request_id: String,
    /// The payment and the requirements it matched, as JSON (to re-settle later).
    pub payment_json: String,
    pub requirements_json: String,
    pub now: u64,
    /// The claim may be taken over by another request after this (its holder died mid-request).
    pub lease_until: u64,
}

/// Result of [`NonceStore::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This request holds the authorization now.
    Won,
    /// This authorization was settled earlier but its output never delivered (the settlement
    /// timed out and was reconciled afterwards): this request holds it now and must not settle
    /// again. Carries the stored settlement response JSON.
    Resumed { settlement_json: String },
    /// Another request holds or has used this key.
    Taken,
}

/// How a settlement attempt ended, for [`NonceStore::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimEnd {
    /// Settled and the output delivered: the key is spent for good.
    Served,
    /// Settled but the output was not delivered (reconciled later): a retry of the identical
    /// payment may collect it once.
    Unserved,
    /// Settlement failed: nothing was paid, the key is free again.
    Failed,
}

/// A claim whose settlement outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingClaim {
    pub key: AuthorizationKey,
    pub request_id: String,
    pub payment_json: String,
    pub requirements_json: String,
    pub since: u64,
}

/// The server's single-use guard on authorizations, in front of any facilitator. States per key:
/// held (request running) → settling (facilitator called) → served | unserved; a held claim whose
/// request failed is released (deleted), as is one whose settlement failed.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Claims `claim.key` for `claim.request_id`. Of concurrent claims of one key exactly one
    /// wins. An existing claim is taken over only if it carries the same digest and is either
    /// `unserved` (→ `Resumed`) or `held` with an expired lease (→ `Won`).
    async fn claim(&self, claim: &NonceClaim) -> Result<ClaimOutcome, StoreError>;

    /// Drops a held claim (the request failed before settling). No-op if not held by `request_id`.
    async fn release(&self, key: &AuthorizationKey, request_id: &str) -> Result<(), StoreError>;

    /// held → settling. `false` if `request_id` no longer holds the key (its lease was taken over).
    async fn begin_settle(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        now: u64,
    ) -> Result<bool, StoreError>;

    /// settling (or unserved, when resumed) → the end state, storing the facilitator's response.
    async fn finish(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        end: ClaimEnd,
        settlement_json: &str,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Claims stuck in `settling` since before `older_than`, oldest first.
    async fn pending(&self, older_than: u64, limit: u32) -> Result<Vec<PendingClaim>, StoreError>;
}
