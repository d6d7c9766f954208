//! Stateless verification of an `upto` EVM payment: a Permit2 `PermitWitnessTransferFrom`
//! signed under EIP-712, authorising the x402 upto proxy to move *at most* `permitted.amount`
//! to `witness.to`, settled by the facilitator `witness.facilitator` (coinbase/x402
//! `specs/schemes/upto/scheme_upto_evm.md`). The payer signs the maximum; the server settles the
//! amount actually used, which must not exceed it.
//!
//! The checks run in the reference facilitator's order (`python/x402/mechanisms/evm/upto/
//! permit2_utils.py`, `verify_upto_permit2`) with its reason strings: scheme → network → chain id
//! → spender (the upto proxy) → recipient → facilitator → `deadline` (at least 6 s ahead) →
//! `witness.validAfter` → amount (= the offered maximum) → token → signature. Allowance and
//! balance are on-chain state: the built-in ledger checks the balance after these, and keeps no
//! allowances (a ledger credit stands for an approved Permit2 allowance).
//!
//! Signatures: 65-byte EOA signatures with `v` 27/28 and low `s` only, as for `exact`.

use alloy_primitives::{Address, B256, U256, address};
use alloy_sol_types::{Eip712Domain, SolStruct, sol};
use std::borrow::Cow;

use crate::amount::parse_amount;
use crate::network;
use crate::reason::Reason;
use crate::verify::{
    Scheme, VALID_BEFORE_MARGIN_SECS, Verified, VerifyFailure, parse_address, recover_signer,
    saturate,
};
use crate::wire::{PaymentPayload, PaymentRequirements, SCHEME_UPTO, UptoEvmPayload};

sol! {
    /// Permit2's `TokenPermissions`.
    #[derive(Debug, PartialEq, Eq)]
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    /// The upto witness: who is paid, which facilitator may settle, from when.
    #[derive(Debug, PartialEq, Eq)]
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    /// What the payer signs (Permit2 `permitWitnessTransferFrom` with the upto witness).
    #[derive(Debug, PartialEq, Eq)]
    struct PermitWitnessTransferFrom {
        TokenPermissions permitted;
        address spender;
        uint256 nonce;
        uint256 deadline;
        Witness witness;
    }
}

/// The canonical Permit2 contract (same address on every EVM chain): the EIP-712 verifying
/// contract of every upto signature.
pub const PERMIT2_ADDRESS: Address = address!("0x000000000022D473030F116dDEE9F6B43aC78BA3");

/// The x402 upto Permit2 proxy, the only spender an upto payment may authorise (the official
/// clients sign it; the proxy enforces the witness on chain).
pub const UPTO_PERMIT2_PROXY: Address = address!("0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002");

/// The requirement's `extra` key naming the facilitator the payer must bind in the witness.
pub const FACILITATOR_ADDRESS_KEY: &str = "facilitatorAddress";

/// Permit2's EIP-712 domain on `chain_id`: `{name: "Permit2", chainId, verifyingContract}`, no
/// version.
pub fn permit2_domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain::new(
        Some(Cow::Borrowed("Permit2")),
        None,
        Some(U256::from(chain_id)),
        Some(PERMIT2_ADDRESS),
        None,
    )
}

/// The EIP-712 signing hash of a permit: what the payer signs, and Vouch's identity for "the
/// same authorisation".
pub fn permit_digest(chain_id: u64, permit: &PermitWitnessTransferFrom) -> B256 {
    permit.eip712_signing_hash(&permit2_domain(chain_id))
}

/// A Permit2 nonce is a uint256, sent in decimal by the official clients (the spec's example
/// uses `0x` hex): both are read.
fn parse_uint(s: &str) -> Option<U256> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.len() <= 64 => U256::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None => parse_amount(s).ok(),
    }
}

/// Verifies an `upto` payment against `requirements`, whose `amount` is the maximum offered.
/// With `now = None` the time window is not checked (settling an authorisation that may already
/// be on record).
pub fn verify_upto(
    payment: &PaymentPayload,
    requirements: &PaymentRequirements,
    now: Option<u64>,
) -> Result<Verified, VerifyFailure> {
    use Reason::*;
    fn fail(reason: Reason, message: impl Into<String>, payer: Option<&str>) -> VerifyFailure {
        VerifyFailure::new(reason, message, payer)
    }

    // 1. Scheme (upto exists in x402 v2 only).
    if payment.scheme() != SCHEME_UPTO || requirements.scheme() != SCHEME_UPTO {
        return Err(fail(
            UptoInvalidScheme,
            format!("scheme {:?} where \"upto\" is required", payment.scheme()),
            None,
        ));
    }
    if payment.version() != 2 || requirements.version() != 2 {
        return Err(fail(
            UptoInvalidScheme,
            "the upto scheme exists in x402 v2 only",
            None,
        ));
    }
    let evm: UptoEvmPayload = serde_json::from_value(payment.inner().clone()).map_err(|e| {
        fail(
            Permit2PayloadFormat,
            format!("upto Permit2 payload: {e}"),
            None,
        )
    })?;
    let auth = &evm.permit2_authorization;
    let payer = Some(auth.from.as_str());

    // 2. Network, and its chain id.
    if payment.network() != requirements.network() {
        return Err(fail(
            UptoNetworkMismatch,
            format!(
                "payment is for network {:?}, requirements for {:?}",
                payment.network(),
                requirements.network()
            ),
            payer,
        ));
    }
    let net = requirements.network();
    let chain_id = net
        .starts_with("eip155:")
        .then(|| network::chain_id(net))
        .flatten()
        .ok_or_else(|| {
            fail(
                UptoFailedToGetNetworkConfig,
                format!("unknown or malformed network {net:?}"),
                payer,
            )
        })?;
    let bad_req = |what: &str| {
        fail(
            InvalidPaymentRequirements,
            format!("requirements have an invalid {what}"),
            payer,
        )
    };
    let asset = parse_address(requirements.asset()).ok_or_else(|| bad_req("asset"))?;
    let pay_to = parse_address(requirements.pay_to()).ok_or_else(|| bad_req("payTo"))?;
    let maximum = parse_amount(requirements.amount()).map_err(|_| bad_req("amount"))?;
    let facilitator = requirements
        .extra_str(FACILITATOR_ADDRESS_KEY)
        .and_then(|a| parse_address(&a))
        .ok_or_else(|| bad_req("extra.facilitatorAddress"))?;

    // 3. Spender: the upto proxy, nothing else.
    let spender = parse_address(&auth.spender);
    if spender != Some(UPTO_PERMIT2_PROXY) {
        return Err(fail(
            Permit2InvalidSpender,
            format!(
                "spender {:?} is not the x402 upto Permit2 proxy {UPTO_PERMIT2_PROXY}",
                auth.spender.chars().take(64).collect::<String>()
            ),
            payer,
        ));
    }
    // 4. Recipient.
    let to = parse_address(&auth.witness.to);
    if to != Some(pay_to) {
        return Err(fail(
            Permit2RecipientMismatch,
            format!(
                "witness pays {:?}, requirements say {pay_to}",
                auth.witness.to.chars().take(64).collect::<String>()
            ),
            payer,
        ));
    }
    // 5. Facilitator.
    let witness_facilitator = parse_address(&auth.witness.facilitator);
    if witness_facilitator != Some(facilitator) {
        return Err(fail(
            UptoFacilitatorMismatch,
            format!(
                "witness names facilitator {:?}, this deployment's is {facilitator}",
                auth.witness
                    .facilitator
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
            payer,
        ));
    }
    let format = |what: &str| {
        fail(
            Permit2PayloadFormat,
            format!("permit2Authorization has an invalid {what}"),
            payer,
        )
    };
    let deadline = parse_uint(&auth.deadline).ok_or_else(|| format("deadline"))?;
    let valid_after = parse_uint(&auth.witness.valid_after).ok_or_else(|| format("validAfter"))?;
    let amount = parse_uint(&auth.permitted.amount).ok_or_else(|| format("permitted.amount"))?;
    let nonce = parse_uint(&auth.nonce).ok_or_else(|| format("nonce"))?;
    let from = parse_address(&auth.from).ok_or_else(|| format("from"))?;

    // 6–7. Time window.
    if let Some(now) = now {
        if deadline < U256::from(now.saturating_add(VALID_BEFORE_MARGIN_SECS)) {
            return Err(fail(
                Permit2DeadlineExpired,
                format!("permit expired (deadline {deadline}, now {now})"),
                payer,
            ));
        }
        if valid_after > U256::from(now) {
            return Err(fail(
                Permit2NotYetValid,
                format!("permit not yet valid (validAfter {valid_after}, now {now})"),
                payer,
            ));
        }
    }
    // 8. The maximum authorised is the maximum offered.
    if amount != maximum {
        return Err(fail(
            Permit2AmountMismatch,
            format!("permitted amount {amount} ≠ the offered maximum {maximum}"),
            payer,
        ));
    }
    // 9. Token.
    let token = parse_address(&auth.permitted.token);
    if token != Some(asset) {
        return Err(fail(
            Permit2TokenMismatch,
            format!(
                "permit is for token {:?}, requirements for {asset}",
                auth.permitted.token.chars().take(64).collect::<String>()
            ),
            payer,
        ));
    }
    // 10. Signature.
    let permit = PermitWitnessTransferFrom {
        permitted: TokenPermissions {
            token: asset,
            amount,
        },
        spender: UPTO_PERMIT2_PROXY,
        nonce,
        deadline,
        witness: Witness {
            to: pay_to,
            facilitator,
            validAfter: valid_after,
        },
    };
    let digest = permit_digest(chain_id, &permit);
    let signer = recover_signer(&evm.signature, &digest)
        .map_err(|m| fail(Permit2InvalidSignature, m, payer))?;
    if signer != from {
        return Err(fail(
            Permit2InvalidSignature,
            format!("signature recovers to {signer}, not the payer {from}"),
            payer,
        ));
    }
    Ok(Verified {
        scheme: Scheme::Upto,
        upto_facilitator: Some(facilitator),
        version: payment.version(),
        network: net.to_owned(),
        chain_id,
        asset,
        payer: from,
        pay_to,
        amount,
        valid_after: saturate(valid_after),
        valid_before: saturate(deadline),
        nonce: B256::from(nonce.to_be_bytes::<32>()),
        digest,
    })
}

/// The permitted maximum an upto payload states, before any check (a settlement's requirements
/// carry the amount used, so verification must be given the maximum back).
pub fn permitted_amount(payment: &PaymentPayload) -> Option<U256> {
    let evm: UptoEvmPayload = serde_json::from_value(payment.inner().clone()).ok()?;
    parse_uint(&evm.permit2_authorization.permitted.amount)
}

/// Checks a settlement request: `requirements.amount` is the amount to settle. Verifies the
/// payment against the same requirements at its permitted maximum (without the clock, like
/// `exact` settlement), then that the amount does not exceed it.
pub fn verify_upto_settlement(
    payment: &PaymentPayload,
    requirements: &PaymentRequirements,
) -> Result<(Verified, U256), VerifyFailure> {
    let Some(maximum) = permitted_amount(payment) else {
        return Err(VerifyFailure::new(
            Reason::Permit2PayloadFormat,
            "upto Permit2 payload has no readable permitted.amount",
            None,
        ));
    };
    let settle = parse_amount(requirements.amount()).map_err(|_| {
        VerifyFailure::new(
            Reason::InvalidPaymentRequirements,
            "requirements have an invalid amount",
            None,
        )
    })?;
    let v = verify_upto(
        payment,
        &requirements.with_amount(&maximum.to_string()),
        None,
    )?;
    check_settle_amount(&v, settle)?;
    Ok((v, settle))
}

/// A settlement may take at most what was authorised.
pub fn check_settle_amount(v: &Verified, settle: U256) -> Result<(), VerifyFailure> {
    if settle > v.amount {
        return Err(VerifyFailure {
            reason: Reason::UptoSettlementExceedsAmount,
            message: format!(
                "settlement of {settle} exceeds the authorised maximum {}",
                v.amount
            ),
            payer: Some(v.payer.to_string()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_hash_is_permit2s_with_the_upto_witness() {
        // Permit2 hashes `PermitWitnessTransferFrom(TokenPermissions permitted,address spender,
        // uint256 nonce,uint256 deadline,<witness type string>)` with the referenced types
        // appended in alphabetical order: the string the official clients' typed data yields.
        let expected = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
        assert_eq!(PermitWitnessTransferFrom::eip712_encode_type(), expected);
    }

    #[test]
    fn nonces_are_read_in_decimal_and_hex() {
        assert_eq!(parse_uint("255"), Some(U256::from(255u64)));
        assert_eq!(parse_uint("0xff"), Some(U256::from(255u64)));
        for bad in [
            "",
            "0x",
            "-1",
            "1e3",
            "0xg1",
            &format!("0x{}", "f".repeat(65)),
        ] {
            assert_eq!(parse_uint(bad), None, "{bad:?}");
        }
    }
}
