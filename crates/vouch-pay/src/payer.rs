//! The paying side, for `vouch infer --pay-with KEYFILE` and tests: read a 402, pick a
//! requirement Vouch can pay, sign an EIP-3009 authorization for it with a local key, and encode
//! the payment header — the same payload the official clients produce.

use alloy_primitives::{B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use std::path::Path;

use crate::amount::parse_amount;
use crate::network;
use crate::verify::{TransferWithAuthorization, authorization_digest, parse_address, token_domain};
use crate::wire::{
    AuthorizationWire, ExactEvmPayload, PaymentPayload, PaymentPayloadV1, PaymentPayloadV2,
    PaymentRequired, PaymentRequirements, SCHEME_EXACT,
};

/// How far back `validAfter` is set, to tolerate clock skew (the reference clients use 600 s).
pub const VALID_AFTER_SKEW_SECS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum PayerError {
    #[error("cannot read key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {0} does not hold a secp256k1 private key (0x and 64 hex digits)")]
    BadKey(String),
    #[error("no offered payment can be made: {0}")]
    NothingPayable(String),
    #[error("price {amount} exceeds the limit {limit} you set")]
    OverLimit { amount: U256, limit: U256 },
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Reads a private key: a text file holding `0x` + 64 hex digits (surrounding whitespace ignored).
pub fn load_key(path: &Path) -> Result<PrivateKeySigner, PayerError> {
    let text = std::fs::read_to_string(path).map_err(|source| PayerError::KeyFile {
        path: path.display().to_string(),
        source,
    })?;
    text.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|_| PayerError::BadKey(path.display().to_string()))
}

/// A fresh random key, and its file text (for `vouch pay keygen` and tests).
pub fn generate_key() -> (PrivateKeySigner, String) {
    let signer = PrivateKeySigner::random();
    let text = format!("0x{}\n", hex::encode(signer.to_bytes()));
    (signer, text)
}

/// The parts of a requirement the signer needs, version-independent.
struct Terms {
    chain_id: u64,
    asset: alloy_primitives::Address,
    pay_to: alloy_primitives::Address,
    amount: U256,
    name: String,
    version: String,
    max_timeout_seconds: u64,
}

fn terms_of(r: &PaymentRequirements) -> Result<Terms, String> {
    if r.scheme() != SCHEME_EXACT {
        return Err(format!("scheme {:?}", r.scheme()));
    }
    let chain_id = match r {
        PaymentRequirements::V2(_) if !r.network().starts_with("eip155:") => None,
        _ => network::chain_id(r.network()),
    }
    .ok_or_else(|| format!("network {:?}", r.network()))?;
    Ok(Terms {
        chain_id,
        asset: parse_address(r.asset()).ok_or("asset is not an address")?,
        pay_to: parse_address(r.pay_to()).ok_or("payTo is not an address")?,
        amount: parse_amount(r.amount()).map_err(|e| e.to_string())?,
        name: r.extra_str("name").ok_or("no EIP-712 name in extra")?,
        version: r
            .extra_str("version")
            .ok_or("no EIP-712 version in extra")?,
        max_timeout_seconds: r.max_timeout_seconds(),
    })
}

/// Signs `authorization` under the token's EIP-712 domain; returns the 65-byte signature as
/// `0x…` hex with `v` of 27/28 (what viem and eth-account produce).
pub fn sign_authorization(
    signer: &PrivateKeySigner,
    name: &str,
    version: &str,
    chain_id: u64,
    asset: alloy_primitives::Address,
    authorization: &TransferWithAuthorization,
) -> Result<String, PayerError> {
    let digest = authorization_digest(&token_domain(name, version, chain_id, asset), authorization);
    let sig = signer
        .sign_hash_sync(&digest)
        .map_err(|e| PayerError::Signing(e.to_string()))?;
    Ok(format!("0x{}", hex::encode(sig.as_bytes())))
}

/// Builds the `exact` EVM payload paying `r` from `signer`, valid from `now − 600 s` to
/// `now + maxTimeoutSeconds`, under a random nonce.
fn exact_payload(
    signer: &PrivateKeySigner,
    r: &PaymentRequirements,
    now: u64,
) -> Result<ExactEvmPayload, PayerError> {
    let t = terms_of(r).map_err(PayerError::NothingPayable)?;
    let auth = TransferWithAuthorization {
        from: signer.address(),
        to: t.pay_to,
        value: t.amount,
        validAfter: U256::from(now.saturating_sub(VALID_AFTER_SKEW_SECS)),
        validBefore: U256::from(now.saturating_add(t.max_timeout_seconds)),
        nonce: B256::random(),
    };
    let signature = sign_authorization(signer, &t.name, &t.version, t.chain_id, t.asset, &auth)?;
    Ok(ExactEvmPayload {
        signature,
        authorization: wire_of(&auth),
    })
}

/// The wire form of an authorization.
pub fn wire_of(a: &TransferWithAuthorization) -> AuthorizationWire {
    AuthorizationWire {
        from: a.from.to_string(),
        to: a.to.to_string(),
        value: a.value.to_string(),
        valid_after: a.validAfter.to_string(),
        valid_before: a.validBefore.to_string(),
        nonce: a.nonce.to_string(),
    }
}

/// An `upto` permit for requirement `r` (its `amount` is the maximum): spender the
/// upto proxy, the facilitator named in `extra.facilitatorAddress`, valid from 0 to
/// `now + maxTimeoutSeconds`, a random nonce — what the official clients sign.
pub fn upto_permit(
    r: &PaymentRequirements,
    now: u64,
) -> Result<(u64, crate::upto::PermitWitnessTransferFrom), PayerError> {
    use crate::upto::{
        FACILITATOR_ADDRESS_KEY, PermitWitnessTransferFrom, TokenPermissions, UPTO_PERMIT2_PROXY,
        Witness,
    };
    let nothing = |m: &str| PayerError::NothingPayable(m.to_owned());
    let chain_id = network::chain_id(r.network()).ok_or_else(|| nothing("network"))?;
    let facilitator = r
        .extra_str(FACILITATOR_ADDRESS_KEY)
        .and_then(|a| parse_address(&a))
        .ok_or_else(|| nothing("upto requirement without extra.facilitatorAddress"))?;
    Ok((
        chain_id,
        PermitWitnessTransferFrom {
            permitted: TokenPermissions {
                token: parse_address(r.asset()).ok_or_else(|| nothing("asset"))?,
                amount: parse_amount(r.amount())
                    .map_err(|e| PayerError::NothingPayable(e.to_string()))?,
            },
            spender: UPTO_PERMIT2_PROXY,
            nonce: U256::from_be_bytes(B256::random().0),
            deadline: U256::from(now.saturating_add(r.max_timeout_seconds())),
            witness: Witness {
                to: parse_address(r.pay_to()).ok_or_else(|| nothing("payTo"))?,
                facilitator,
                validAfter: U256::ZERO,
            },
        },
    ))
}

/// Signs a permit under Permit2's domain on `chain_id` (65 bytes, `v` 27/28).
pub fn sign_permit(
    signer: &PrivateKeySigner,
    chain_id: u64,
    permit: &crate::upto::PermitWitnessTransferFrom,
) -> Result<String, PayerError> {
    let digest = crate::upto::permit_digest(chain_id, permit);
    let sig = signer
        .sign_hash_sync(&digest)
        .map_err(|e| PayerError::Signing(e.to_string()))?;
    Ok(format!("0x{}", hex::encode(sig.as_bytes())))
}

/// The wire form of a signed permit (`payload` of an upto payment); the nonce in decimal, as
/// the official clients send it.
pub fn upto_wire(
    from: alloy_primitives::Address,
    permit: &crate::upto::PermitWitnessTransferFrom,
    signature: String,
) -> crate::wire::UptoEvmPayload {
    use crate::wire::{
        Permit2AuthorizationWire, Permit2TokenWire, UptoEvmPayload, UptoWitnessWire,
    };
    UptoEvmPayload {
        signature,
        permit2_authorization: Permit2AuthorizationWire {
            from: from.to_string(),
            permitted: Permit2TokenWire {
                token: permit.permitted.token.to_string(),
                amount: permit.permitted.amount.to_string(),
            },
            spender: permit.spender.to_string(),
            nonce: permit.nonce.to_string(),
            deadline: permit.deadline.to_string(),
            witness: UptoWitnessWire {
                to: permit.witness.to.to_string(),
                facilitator: permit.witness.facilitator.to_string(),
                valid_after: permit.witness.validAfter.to_string(),
            },
        },
    }
}

/// A v2 payment carrying `payload` for the offered requirement `accepted` of `required`.
pub fn v2_payment(
    required: &crate::wire::PaymentRequiredV2,
    accepted: &crate::wire::PaymentRequirementsV2,
    payload: serde_json::Value,
) -> PaymentPayload {
    PaymentPayload::V2(PaymentPayloadV2 {
        x402_version: 2,
        payload,
        accepted: accepted.clone(),
        resource: required.resource.clone(),
        extensions: None,
    })
}

/// Pays an `upto` requirement of a v2 402 in full: signs its maximum.
pub fn sign_upto_payment(
    signer: &PrivateKeySigner,
    required: &crate::wire::PaymentRequiredV2,
    choice: &crate::wire::PaymentRequirementsV2,
    now: u64,
) -> Result<PaymentPayload, PayerError> {
    let r = PaymentRequirements::V2(choice.clone());
    let (chain_id, permit) = upto_permit(&r, now)?;
    let signature = sign_permit(signer, chain_id, &permit)?;
    let payload = serde_json::to_value(upto_wire(signer.address(), &permit, signature))
        .map_err(|e| PayerError::Signing(e.to_string()))?;
    Ok(v2_payment(required, choice, payload))
}

/// Pays one requirement: the full payment (v1 or v2, following the requirement).
pub fn sign_payment(
    signer: &PrivateKeySigner,
    required: &PaymentRequired,
    choice: &PaymentRequirements,
    now: u64,
) -> Result<PaymentPayload, PayerError> {
    let payload = serde_json::to_value(exact_payload(signer, choice, now)?)
        .map_err(|e| PayerError::Signing(e.to_string()))?;
    Ok(match (required, choice) {
        (PaymentRequired::V2(pr), PaymentRequirements::V2(r)) => {
            PaymentPayload::V2(PaymentPayloadV2 {
                x402_version: 2,
                payload,
                accepted: r.clone(),
                resource: pr.resource.clone(),
                extensions: None,
            })
        }
        (_, PaymentRequirements::V1(r)) => PaymentPayload::V1(PaymentPayloadV1 {
            x402_version: 1,
            scheme: r.scheme.clone(),
            network: r.network.clone(),
            payload,
        }),
        (PaymentRequired::V1(_), PaymentRequirements::V2(r)) => {
            PaymentPayload::V2(PaymentPayloadV2 {
                x402_version: 2,
                payload,
                accepted: r.clone(),
                resource: None,
                extensions: None,
            })
        }
    })
}

/// Picks the first payable requirement of a 402 (exact scheme, EVM, EIP-712 domain given) that
/// costs at most `limit`, signs it, and returns `(header name, header value)` to retry with.
pub fn pay(
    signer: &PrivateKeySigner,
    required: &PaymentRequired,
    limit: Option<U256>,
    now: u64,
) -> Result<(&'static str, String), PayerError> {
    let options: Vec<PaymentRequirements> = match required {
        PaymentRequired::V2(pr) => pr
            .accepts
            .iter()
            .cloned()
            .map(PaymentRequirements::V2)
            .collect(),
        PaymentRequired::V1(pr) => pr
            .accepts
            .iter()
            .cloned()
            .map(PaymentRequirements::V1)
            .collect(),
    };
    let mut why = Vec::new();
    for option in &options {
        match terms_of(option) {
            Ok(t) => {
                if let Some(limit) = limit
                    && t.amount > limit
                {
                    return Err(PayerError::OverLimit {
                        amount: t.amount,
                        limit,
                    });
                }
                let payment = sign_payment(signer, required, option, now)?;
                return Ok((payment.header_name(), payment.encode_header()));
            }
            Err(e) => why.push(e),
        }
    }
    Err(PayerError::NothingPayable(if why.is_empty() {
        "the 402 offers nothing".into()
    } else {
        why.join("; ")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PayConfig;
    use crate::verify::verify_exact;
    use crate::wire::ResourceInfo;

    fn offer() -> crate::config::Offer {
        let cfg = PayConfig {
            pay_to: Some("0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into()),
            ..PayConfig::default()
        };
        cfg.terms().unwrap().offer(
            U256::from(1234u64),
            ResourceInfo {
                url: "http://127.0.0.1:1/v1/x".into(),
                description: None,
                mime_type: None,
            },
        )
    }

    #[test]
    fn signed_v2_and_v1_payments_verify() {
        let (signer, _) = generate_key();
        let o = offer();
        let now = crate::local::system_now();
        for required in [
            PaymentRequired::V2(o.payment_required_v2(None)),
            PaymentRequired::V1(o.payment_required_v1("x").unwrap()),
        ] {
            let (name, header) = pay(&signer, &required, None, now).unwrap();
            let p = PaymentPayload::decode_header(&header).unwrap();
            assert_eq!(name, p.header_name());
            let req = o.select(&p).unwrap();
            let v = verify_exact(&p, &req, Some(now)).unwrap();
            assert_eq!(v.payer, signer.address());
            assert_eq!(v.amount, U256::from(1234u64));
        }
    }

    #[test]
    fn limit_is_respected() {
        let (signer, _) = generate_key();
        let required = PaymentRequired::V2(offer().payment_required_v2(None));
        let e = pay(&signer, &required, Some(U256::from(1000u64)), 0).unwrap_err();
        assert!(matches!(e, PayerError::OverLimit { .. }), "{e}");
    }

    #[test]
    fn key_file_round_trips_and_garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("vouch-pay-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (signer, text) = generate_key();
        let path = dir.join("key");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(load_key(&path).unwrap().address(), signer.address());
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_key(&path), Err(PayerError::BadKey(_))));
        assert!(matches!(
            load_key(&dir.join("missing")),
            Err(PayerError::KeyFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
