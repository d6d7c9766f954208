//! Stateless verification of an `exact` EVM payment (EIP-3009 `transferWithAuthorization`
//! signed under EIP-712) against the requirements it claims to satisfy.
//!
//! The checks run in the reference facilitator's order (coinbase/x402
//! `python/x402/mechanisms/evm/exact/facilitator.py`, `_verify`) and report its reason strings:
//! scheme → network → chain id → EIP-712 domain → recipient → exact amount → `validBefore`
//! (at least 6 s ahead) → `validAfter` (not in the future) → signature. Nonce freshness and
//! balance need state and are the facilitator's, after these.
//!
//! The signature must be a 65-byte ECDSA signature with `v` of 27 or 28 and a low `s`, recovering
//! to `authorization.from`: exactly what USDC's `transferWithAuthorization` accepts, so nothing
//! passes here that the token contract would refuse. Contract-wallet signatures (ERC-1271/6492)
//! are not supported.

use alloy_primitives::{Address, B256, Signature, U256};
use alloy_sol_types::{Eip712Domain, SolStruct, sol};
use std::borrow::Cow;

use crate::amount::parse_amount;
use crate::network;
use crate::reason::Reason;
use crate::store::AuthorizationKey;
use crate::wire::{ExactEvmPayload, PaymentPayload, PaymentRequirements, SCHEME_EXACT};

sol! {
    /// EIP-3009's signed message (`TRANSFER_WITH_AUTHORIZATION_TYPEHASH` in FiatTokenV2).
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

/// Seconds `validBefore` must lie ahead of now, so the transfer cannot expire in flight (the
/// reference facilitators use 6 s: about three blocks on Base).
pub const VALID_BEFORE_MARGIN_SECS: u64 = 6;

/// The EIP-712 domain of an EIP-3009 token: `{name, version, chainId, verifyingContract: asset}`.
pub fn token_domain(name: &str, version: &str, chain_id: u64, asset: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(Cow::Owned(name.to_owned())),
        Some(Cow::Owned(version.to_owned())),
        Some(U256::from(chain_id)),
        Some(asset),
        None,
    )
}

/// The EIP-712 signing hash of an authorization: what the payer signs, and Vouch's identity for
/// "the same authorisation" (it covers the domain and every signed field, not the signature, so
/// a re-encoded signature cannot pose as a new payment).
pub fn authorization_digest(domain: &Eip712Domain, auth: &TransferWithAuthorization) -> B256 {
    auth.eip712_signing_hash(domain)
}

/// The x402 schemes Vouch verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// EIP-3009, exactly the price.
    Exact,
    /// Permit2, up to a maximum; settled for the amount used.
    Upto,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Exact => SCHEME_EXACT,
            Scheme::Upto => crate::wire::SCHEME_UPTO,
        }
    }

    /// The reason a used nonce is refused with, in the scheme's naming.
    pub fn nonce_used(self) -> Reason {
        match self {
            Scheme::Exact => Reason::NonceAlreadyUsed,
            Scheme::Upto => Reason::UptoNonceAlreadyUsed,
        }
    }

    /// The reason a short balance is refused with, in the scheme's naming.
    pub fn insufficient_balance(self) -> Reason {
        match self {
            Scheme::Exact => Reason::InsufficientBalance,
            Scheme::Upto => Reason::Permit2InsufficientBalance,
        }
    }
}

/// Verifies a payment of either scheme against `requirements` (the scheme is the
/// requirements'): [`verify_exact`] or [`crate::upto::verify_upto`].
pub fn verify_payment(
    payment: &PaymentPayload,
    requirements: &PaymentRequirements,
    now: Option<u64>,
) -> Result<Verified, VerifyFailure> {
    if requirements.scheme() == crate::wire::SCHEME_UPTO {
        crate::upto::verify_upto(payment, requirements, now)
    } else {
        verify_exact(payment, requirements, now)
    }
}

/// A payment that passed every stateless check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    /// `upto`: the facilitator the payer's witness names (only it may settle).
    pub upto_facilitator: Option<Address>,
    pub version: u32,
    /// The network string as written in the requirements (`eip155:84532` or `base-sepolia`).
    pub network: String,
    pub chain_id: u64,
    pub asset: Address,
    pub payer: Address,
    pub pay_to: Address,
    /// `exact`: the price. `upto`: the maximum authorised; the amount settled is chosen later.
    pub amount: U256,
    /// Unix seconds (saturated to `u64`; `upto`: `witness.validAfter` and `deadline`).
    pub valid_after: u64,
    pub valid_before: u64,
    pub nonce: B256,
    pub digest: B256,
}

impl Verified {
    /// The single-use identity of this authorization: one nonce per payer per token contract.
    pub fn key(&self) -> AuthorizationKey {
        AuthorizationKey {
            chain_id: self.chain_id,
            asset: self.asset,
            payer: self.payer,
            nonce: self.nonce,
        }
    }
}

/// Why a payment failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    pub reason: Reason,
    pub message: String,
    /// `authorization.from` as sent, when the payload was readable.
    pub payer: Option<String>,
}

impl VerifyFailure {
    pub(crate) fn new(reason: Reason, message: impl Into<String>, payer: Option<&str>) -> Self {
        VerifyFailure {
            reason,
            message: message.into(),
            payer: payer.map(str::to_owned),
        }
    }
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// `0x` followed by exactly `2 * N` hex digits.
pub(crate) fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    let mut out = [0u8; N];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(out)
}

/// An EVM address: `0x` and 40 hex digits, any case (checksums are not required by the
/// reference clients' servers either).
pub fn parse_address(s: &str) -> Option<Address> {
    parse_hex::<20>(s).map(Address::from)
}

/// Verifies `payment` against `requirements`. With `now = None` the time window is not checked
/// (used when settling an authorization that may already be on record).
pub fn verify_exact(
    payment: &PaymentPayload,
    requirements: &PaymentRequirements,
    now: Option<u64>,
) -> Result<Verified, VerifyFailure> {
    use Reason::*;
    fn fail(reason: Reason, message: impl Into<String>, payer: Option<&str>) -> VerifyFailure {
        VerifyFailure::new(reason, message, payer)
    }

    // 1. Scheme.
    if payment.scheme() != SCHEME_EXACT || requirements.scheme() != SCHEME_EXACT {
        return Err(fail(
            UnsupportedScheme,
            format!(
                "scheme {:?} is not supported; only \"exact\"",
                payment.scheme()
            ),
            None,
        ));
    }
    // The payload itself: needed for the payer, which every later answer names.
    let evm: ExactEvmPayload = serde_json::from_value(payment.inner().clone())
        .map_err(|e| fail(InvalidPayload, format!("exact EVM payload: {e}"), None))?;
    let auth = &evm.authorization;
    let payer = Some(auth.from.as_str());

    // 2. Network.
    if payment.network() != requirements.network() {
        return Err(fail(
            NetworkMismatch,
            format!(
                "payment is for network {:?}, requirements for {:?}",
                payment.network(),
                requirements.network()
            ),
            payer,
        ));
    }
    // 3. Chain id (v2 must be CAIP-2; v1 may use a legacy name).
    let net = requirements.network();
    let chain_id = match requirements {
        PaymentRequirements::V2(_) if !net.starts_with("eip155:") => None,
        _ => network::chain_id(net),
    }
    .ok_or_else(|| {
        fail(
            FailedToGetNetworkConfig,
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
    let required = parse_amount(requirements.amount()).map_err(|_| bad_req("amount"))?;

    // 4. EIP-712 domain parameters.
    let (Some(name), Some(version)) = (
        requirements.extra_str("name"),
        requirements.extra_str("version"),
    ) else {
        return Err(fail(
            MissingEip712Domain,
            "requirements.extra must carry the token's EIP-712 name and version",
            payer,
        ));
    };

    let bad_payload = |what: &str| {
        fail(
            InvalidPayload,
            format!("authorization has an invalid {what}"),
            payer,
        )
    };
    let from = parse_address(&auth.from).ok_or_else(|| bad_payload("from"))?;
    let to = parse_address(&auth.to).ok_or_else(|| bad_payload("to"))?;
    let value = parse_amount(&auth.value).map_err(|_| bad_payload("value"))?;
    let valid_after = parse_amount(&auth.valid_after).map_err(|_| bad_payload("validAfter"))?;
    let valid_before = parse_amount(&auth.valid_before).map_err(|_| bad_payload("validBefore"))?;
    let nonce = parse_hex::<32>(&auth.nonce)
        .map(B256::from)
        .ok_or_else(|| bad_payload("nonce"))?;

    // 5. Recipient.
    if to != pay_to {
        return Err(fail(
            RecipientMismatch,
            format!("authorization pays {to}, requirements say {pay_to}"),
            payer,
        ));
    }
    // 6. Exact amount.
    if value != required {
        return Err(fail(
            ValueMismatch,
            format!("authorization value {value} ≠ required {required}"),
            payer,
        ));
    }
    // 7–8. Time window.
    if let Some(now) = now {
        if valid_before < U256::from(now.saturating_add(VALID_BEFORE_MARGIN_SECS)) {
            return Err(fail(
                ValidBeforeExpired,
                format!("authorization expired (validBefore {valid_before}, now {now})"),
                payer,
            ));
        }
        if valid_after > U256::from(now) {
            return Err(fail(
                ValidAfterInFuture,
                format!("authorization not yet valid (validAfter {valid_after}, now {now})"),
                payer,
            ));
        }
    }
    // 9. Signature.
    let message = TransferWithAuthorization {
        from,
        to,
        value,
        validAfter: valid_after,
        validBefore: valid_before,
        nonce,
    };
    let digest = authorization_digest(&token_domain(&name, &version, chain_id, asset), &message);
    let signer =
        recover_signer(&evm.signature, &digest).map_err(|m| fail(InvalidSignature, m, payer))?;
    if signer != from {
        return Err(fail(
            InvalidSignature,
            format!("signature recovers to {signer}, not the payer {from}"),
            payer,
        ));
    }

    Ok(Verified {
        scheme: Scheme::Exact,
        upto_facilitator: None,
        version: payment.version(),
        network: net.to_owned(),
        chain_id,
        asset,
        payer: from,
        pay_to,
        amount: value,
        valid_after: saturate(valid_after),
        valid_before: saturate(valid_before),
        nonce,
        digest,
    })
}

pub(crate) fn saturate(v: U256) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Recovers the address that signed `digest`, accepting only what EIP-3009 tokens accept.
pub fn recover_signer(signature_hex: &str, digest: &B256) -> Result<Address, String> {
    if signature_hex.is_empty() {
        return Err("missing signature".into());
    }
    let raw =
        parse_hex::<65>(signature_hex).ok_or("signature must be 0x followed by 65 bytes of hex")?;
    if raw[64] != 27 && raw[64] != 28 {
        return Err(format!("signature v must be 27 or 28, got {}", raw[64]));
    }
    let sig = Signature::from_raw_array(&raw).map_err(|e| format!("malformed signature: {e}"))?;
    if sig.normalize_s().is_some() {
        return Err("signature has a high s value (malleable; tokens reject it)".into());
    }
    sig.recover_address_from_prehash(digest)
        .map_err(|e| format!("signature does not recover: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PaymentPayloadV2, PaymentRequirementsV1};

    /// The spec's example (coinbase/x402 `specs/transports-v2/http.md`): a real signature by
    /// 0x857b…6b66 over Base Sepolia USDC, valid 1740672089..1740672154.
    fn spec_payment() -> (PaymentPayload, PaymentRequirements) {
        let p = PaymentPayload::decode_header(crate::wire::tests::spec_v2_header()).unwrap();
        let PaymentPayload::V2(PaymentPayloadV2 { accepted, .. }) = &p else {
            unreachable!()
        };
        let r = PaymentRequirements::V2(accepted.clone());
        (p, r)
    }
    const SPEC_NOW: u64 = 1740672100;

    #[test]
    fn spec_example_signature_verifies() {
        let (p, r) = spec_payment();
        let v = verify_exact(&p, &r, Some(SPEC_NOW)).unwrap();
        assert_eq!(
            v.payer,
            parse_address("0x857b06519E91e3A54538791bDbb0E22373e36b66").unwrap()
        );
        assert_eq!(v.amount, U256::from(10000u64));
        assert_eq!(v.chain_id, 84532);
    }

    #[test]
    fn spec_example_time_window_is_enforced() {
        let (p, r) = spec_payment();
        // validBefore 1740672154: at now = validBefore − 6 it is still valid, one second later not.
        assert!(verify_exact(&p, &r, Some(1740672148)).is_ok());
        let e = verify_exact(&p, &r, Some(1740672149)).unwrap_err();
        assert_eq!(e.reason, Reason::ValidBeforeExpired);
        let e = verify_exact(&p, &r, Some(1740672088)).unwrap_err();
        assert_eq!(e.reason, Reason::ValidAfterInFuture);
        // Today the example has long expired.
        assert!(verify_exact(&p, &r, Some(1_900_000_000)).is_err());
    }

    #[test]
    fn spec_example_with_other_chain_id_fails_signature() {
        let (p, r) = spec_payment();
        let PaymentPayload::V2(mut v2) = p else {
            unreachable!()
        };
        v2.accepted.network = "eip155:8453".into();
        let PaymentRequirements::V2(mut req) = r else {
            unreachable!()
        };
        req.network = "eip155:8453".into();
        let e = verify_exact(
            &PaymentPayload::V2(v2),
            &PaymentRequirements::V2(req),
            Some(SPEC_NOW),
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::InvalidSignature);
        assert_eq!(
            e.payer.as_deref(),
            Some("0x857b06519E91e3A54538791bDbb0E22373e36b66")
        );
    }

    #[test]
    fn high_s_and_bad_v_are_refused() {
        let (p, r) = spec_payment();
        let PaymentPayload::V2(v2) = &p else {
            unreachable!()
        };
        let mut evm: ExactEvmPayload = serde_json::from_value(v2.payload.clone()).unwrap();
        let raw = parse_hex::<65>(&evm.signature).unwrap();
        let sig = Signature::from_raw_array(&raw).unwrap();
        // Flip to the high-s twin: same signer under plain ecrecover, refused by the token.
        let n = U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .unwrap();
        let twin = Signature::new(sig.r(), n - sig.s(), !sig.v());
        evm.signature = format!("0x{}", hex::encode(twin.as_bytes()));
        let mut p2 = v2.clone();
        p2.payload = serde_json::to_value(&evm).unwrap();
        let e = verify_exact(&PaymentPayload::V2(p2.clone()), &r, Some(SPEC_NOW)).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidSignature);
        assert!(e.message.contains("high s"), "{}", e.message);

        let mut raw0 = raw;
        raw0[64] -= 27; // v as 0/1
        evm.signature = format!("0x{}", hex::encode(raw0));
        p2.payload = serde_json::to_value(&evm).unwrap();
        let e = verify_exact(&PaymentPayload::V2(p2), &r, Some(SPEC_NOW)).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidSignature);
    }

    #[test]
    fn v1_form_of_the_same_payment_verifies() {
        let p = PaymentPayload::decode_header(
            "eyJ4NDAyVmVyc2lvbiI6MSwic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiYmFzZS1zZXBvbGlhIiwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweDJkNmE3NTg4ZDZhY2NhNTA1Y2JmMGQ5YTRhMjI3ZTBjNTJjNmMzNDAwOGM4ZTg5ODZhMTI4MzI1OTc2NDE3MzYwOGEyY2U2NDk2NjQyZTM3N2Q2ZGE4ZGJiZjU4MzZlOWJkMTUwOTJmOWVjYWIwNWRlZDNkNjI5M2FmMTQ4YjU3MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweDg1N2IwNjUxOUU5MWUzQTU0NTM4NzkxYkRiYjBFMjIzNzNlMzZiNjYiLCJ0byI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsInZhbHVlIjoiMTAwMDAiLCJ2YWxpZEFmdGVyIjoiMTc0MDY3MjA4OSIsInZhbGlkQmVmb3JlIjoiMTc0MDY3MjE1NCIsIm5vbmNlIjoiMHhmMzc0NjYxM2MyZDkyMGI1ZmRhYmMwODU2ZjJhZWIyZDRmODhlZTYwMzdiOGNjNWQwNGE3MWE0NDYyZjEzNDgwIn19fQ==",
        )
        .unwrap();
        let r = PaymentRequirements::V1(PaymentRequirementsV1 {
            scheme: "exact".into(),
            network: "base-sepolia".into(),
            max_amount_required: "10000".into(),
            resource: "https://api.example.com/premium-data".into(),
            description: String::new(),
            mime_type: "application/json".into(),
            output_schema: None,
            pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
            max_timeout_seconds: 60,
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            extra: Some(serde_json::json!({"name": "USDC", "version": "2"})),
        });
        let v = verify_exact(&p, &r, Some(SPEC_NOW)).unwrap();
        let (p2, r2) = spec_payment();
        // Same authorization over v1 and v2 → same digest → same nonce key.
        assert_eq!(
            v.key(),
            verify_exact(&p2, &r2, Some(SPEC_NOW)).unwrap().key()
        );
    }
}
