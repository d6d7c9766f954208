//! The built-in facilitator: verifies as the reference does, then settles into Vouch's durable
//! ledger instead of a blockchain. Balances are credited by an operator (`vouch pay credit`);
//! a settlement debits the payer and credits `payTo` in one transaction, keyed by the
//! authorization so it can never happen twice.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::facilitator::{Facilitator, FacilitatorError};
use crate::network;
use crate::reason::Reason;
use crate::store::{Account, Ledger, RefundOutcome, SettleOutcome, SettlementRecord};
use crate::upto::{FACILITATOR_ADDRESS_KEY, check_settle_amount, verify_upto_settlement};
use crate::verify::{
    Scheme, VALID_BEFORE_MARGIN_SECS, Verified, VerifyFailure, verify_exact, verify_payment,
};
use crate::wire::{
    PaymentPayload, PaymentRequirements, SCHEME_EXACT, SCHEME_UPTO, SettleResponse, SupportedKind,
    SupportedResponse, VerifyResponse,
};
use alloy_primitives::{Address, U256};

/// Prefix of built-in settlement references, so a receipt shows the money moved in a ledger,
/// not on chain.
pub const LEDGER_REFERENCE_PREFIX: &str = "vouch-ledger:";

/// Unix seconds now.
pub fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct LocalFacilitator {
    ledger: Arc<dyn Ledger>,
    chain_ids: Vec<u64>,
    /// The addresses an `upto` witness may name as its facilitator; empty: no `upto`.
    upto_facilitators: Vec<Address>,
    clock: fn() -> u64,
}

impl LocalFacilitator {
    /// A facilitator settling payments on the given chains (by chain id) into `ledger`.
    pub fn new(ledger: Arc<dyn Ledger>, chain_ids: Vec<u64>) -> Self {
        LocalFacilitator {
            ledger,
            chain_ids,
            upto_facilitators: Vec::new(),
            clock: system_now,
        }
    }

    /// Also settles `upto` payments whose witness names `address` as their facilitator (a
    /// ledger has no on-chain signer; the address is the identity payers bind to, published in
    /// the requirement's `extra.facilitatorAddress` and in `/supported`).
    pub fn with_upto_facilitator(mut self, address: Address) -> Self {
        if !self.upto_facilitators.contains(&address) {
            self.upto_facilitators.push(address);
        }
        self
    }

    /// Replaces the clock (tests of time windows).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// The chain, and for `upto` that the witness names this facilitator.
    fn check_network(&self, v: &Verified) -> Result<(), VerifyFailure> {
        if !self.chain_ids.contains(&v.chain_id) {
            return Err(VerifyFailure {
                reason: Reason::InvalidNetwork,
                message: format!("this facilitator does not settle on chain {}", v.chain_id),
                payer: Some(v.payer.to_string()),
            });
        }
        if v.scheme == Scheme::Upto
            && !v
                .upto_facilitator
                .is_some_and(|f| self.upto_facilitators.contains(&f))
        {
            return Err(VerifyFailure {
                reason: Reason::UptoFacilitatorMismatch,
                message: format!(
                    "the payment names facilitator {}, not one of this facilitator's {:?}",
                    v.upto_facilitator
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    self.upto_facilitators
                ),
                payer: Some(v.payer.to_string()),
            });
        }
        Ok(())
    }

    /// Nonce freshness and balance, after the stateless checks (reference order).
    async fn verify_state(&self, v: &Verified) -> Result<VerifyResponse, FacilitatorError> {
        if let Err(f) = self.check_network(v) {
            return Ok(verify_failure(f));
        }
        let payer = Some(v.payer.to_string());
        let (used, balance) = self.ledger.standing(&v.key(), &payer_account(v)).await?;
        if used {
            return Ok(verify_failure(VerifyFailure {
                reason: v.scheme.nonce_used(),
                message: "this authorization's nonce was already used".into(),
                payer,
            }));
        }
        // `upto`: the balance must cover the maximum, as the reference checks.
        if balance < v.amount {
            return Ok(verify_failure(VerifyFailure {
                reason: v.scheme.insufficient_balance(),
                message: format!("balance {balance} < amount {}", v.amount),
                payer,
            }));
        }
        Ok(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            payer,
        })
    }

    /// Settles `amount` of a payment whose signature and terms are already checked (not its
    /// time window): the price for `exact`, at most the maximum for `upto`.
    async fn settle_state(
        &self,
        v: &Verified,
        amount: U256,
        network: &str,
    ) -> Result<SettleResponse, FacilitatorError> {
        if let Err(f) = self.check_network(v) {
            return Ok(settle_failure(f, network));
        }
        if let Err(f) = check_settle_amount(v, amount) {
            return Ok(settle_failure(f, network));
        }
        let payer = Some(v.payer.to_string());
        let nonce_used = || VerifyFailure {
            reason: v.scheme.nonce_used(),
            message: "this authorization's nonce was already used".into(),
            payer: payer.clone(),
        };
        let now = (self.clock)();
        let outside_window = if v.valid_before < now.saturating_add(VALID_BEFORE_MARGIN_SECS) {
            Some(VerifyFailure {
                reason: Reason::ValidBeforeExpired,
                message: format!("authorization expired (validBefore {})", v.valid_before),
                payer: payer.clone(),
            })
        } else if v.valid_after > now {
            Some(VerifyFailure {
                reason: Reason::ValidAfterInFuture,
                message: format!("authorization not yet valid (validAfter {})", v.valid_after),
                payer: payer.clone(),
            })
        } else {
            None
        };
        if let Some(f) = outside_window {
            // A repeat of a settled authorization gets the earlier answer, even after its
            // window closed; another authorization under the same nonce is refused. (Inside the
            // window the ledger's settle answers the same, without this extra read.)
            return Ok(match self.ledger.settlement(&v.key()).await? {
                Some(rec) if rec.digest == v.digest => settle_success(&rec, network),
                Some(_) => settle_failure(nonce_used(), network),
                None => settle_failure(f, network),
            });
        }
        let record = SettlementRecord {
            key: v.key(),
            digest: v.digest,
            pay_to: v.pay_to,
            // `upto` settled for 0 is recorded too: its nonce is spent like any other.
            amount,
            reference: format!("{LEDGER_REFERENCE_PREFIX}{}", v.digest),
            settled_at: now,
            refund: None,
        };
        Ok(match self.ledger.settle(&record).await? {
            SettleOutcome::Settled(rec) | SettleOutcome::AlreadySettled(rec) => {
                settle_success(&rec, network)
            }
            SettleOutcome::NonceUsed => settle_failure(nonce_used(), network),
            SettleOutcome::InsufficientBalance { balance } => settle_failure(
                VerifyFailure {
                    reason: v.scheme.insufficient_balance(),
                    message: format!("balance {balance} < amount {amount}"),
                    payer,
                },
                network,
            ),
        })
    }
}

fn verify_failure(f: VerifyFailure) -> VerifyResponse {
    VerifyResponse {
        is_valid: false,
        invalid_reason: Some(f.reason.as_str().into()),
        invalid_message: Some(f.message),
        payer: f.payer,
    }
}

fn payer_account(v: &Verified) -> Account {
    Account {
        chain_id: v.chain_id,
        asset: v.asset,
        owner: v.payer,
    }
}

fn settle_failure(f: VerifyFailure, network: &str) -> SettleResponse {
    SettleResponse {
        success: false,
        error_reason: Some(f.reason.as_str().into()),
        error_message: Some(f.message),
        payer: f.payer,
        transaction: String::new(),
        network: network.to_owned(),
        amount: None,
    }
}

fn settle_success(rec: &SettlementRecord, network: &str) -> SettleResponse {
    SettleResponse {
        success: true,
        error_reason: None,
        error_message: None,
        payer: Some(rec.key.payer.to_string()),
        transaction: rec.reference.clone(),
        network: network.to_owned(),
        amount: Some(rec.amount.to_string()),
    }
}

#[async_trait]
impl Facilitator for LocalFacilitator {
    async fn verify(
        &self,
        payment: &PaymentPayload,
        req: &PaymentRequirements,
    ) -> Result<VerifyResponse, FacilitatorError> {
        match verify_payment(payment, req, Some((self.clock)())) {
            Ok(v) => self.verify_state(&v).await,
            Err(f) => Ok(verify_failure(f)),
        }
    }

    async fn verify_prechecked(
        &self,
        _payment: &PaymentPayload,
        _req: &PaymentRequirements,
        verified: &Verified,
    ) -> Result<VerifyResponse, FacilitatorError> {
        self.verify_state(verified).await
    }

    async fn settle(
        &self,
        payment: &PaymentPayload,
        req: &PaymentRequirements,
    ) -> Result<SettleResponse, FacilitatorError> {
        // `upto`: the requirements name the amount to settle; the payload the maximum.
        let checked = if req.scheme() == SCHEME_UPTO {
            verify_upto_settlement(payment, req)
        } else {
            verify_exact(payment, req, None).map(|v| {
                let amount = v.amount;
                (v, amount)
            })
        };
        match checked {
            Ok((v, amount)) => self.settle_state(&v, amount, req.network()).await,
            Err(f) => Ok(settle_failure(f, req.network())),
        }
    }

    async fn settle_prechecked(
        &self,
        _payment: &PaymentPayload,
        req: &PaymentRequirements,
        verified: &Verified,
    ) -> Result<SettleResponse, FacilitatorError> {
        let amount = match verified.scheme {
            Scheme::Exact => verified.amount,
            Scheme::Upto => match crate::amount::parse_amount(req.amount()) {
                Ok(a) => a,
                Err(e) => {
                    return Ok(settle_failure(
                        VerifyFailure {
                            reason: Reason::InvalidPaymentRequirements,
                            message: format!("settlement amount: {e}"),
                            payer: Some(verified.payer.to_string()),
                        },
                        req.network(),
                    ));
                }
            },
        };
        self.settle_state(verified, amount, req.network()).await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        let mut kinds = Vec::new();
        for &id in &self.chain_ids {
            kinds.push(SupportedKind {
                x402_version: 2,
                scheme: SCHEME_EXACT.into(),
                network: network::caip2(id),
                extra: None,
            });
            for f in &self.upto_facilitators {
                let mut extra = serde_json::Map::new();
                extra.insert(FACILITATOR_ADDRESS_KEY.into(), f.to_string().into());
                kinds.push(SupportedKind {
                    x402_version: 2,
                    scheme: SCHEME_UPTO.into(),
                    network: network::caip2(id),
                    extra: Some(serde_json::Value::Object(extra)),
                });
            }
            if let Some(name) = network::v1_name(id) {
                kinds.push(SupportedKind {
                    x402_version: 1,
                    scheme: SCHEME_EXACT.into(),
                    network: name.into(),
                    extra: None,
                });
            }
        }
        // A ledger has no on-chain signer: the family is listed with no addresses.
        let signers = BTreeMap::from([("eip155:*".to_owned(), Vec::new())]);
        Ok(SupportedResponse {
            kinds,
            extensions: Vec::new(),
            signers,
        })
    }

    async fn refund(
        &self,
        reference: &str,
        reason: &str,
    ) -> Result<RefundOutcome, FacilitatorError> {
        Ok(self
            .ledger
            .refund(reference, reason, (self.clock)())
            .await?)
    }

    fn describe(&self) -> String {
        "builtin".into()
    }
}
