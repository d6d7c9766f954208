//! Payment configuration (`[pay]` in `vouch.toml`) and what it yields: the terms a deployment
//! offers (network, token, payee) and, for one priced request, the [`Offer`] — the x402
//! requirements of both versions and the rule for matching a payment to them.

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::network;
use crate::pricing::PricingConfig;
use crate::reason::Reason;
use crate::verify::parse_address;
use crate::wire::{
    PaymentPayload, PaymentRequiredV1, PaymentRequiredV2, PaymentRequirements,
    PaymentRequirementsV1, PaymentRequirementsV2, ResourceInfo, SCHEME_EXACT, SCHEME_UPTO,
};

/// Base Sepolia USDC, the default asset: the official clients' spend controls allow it without
/// configuration (coinbase/x402 `NETWORK_CONFIGS["eip155:84532"]`).
pub const BASE_SEPOLIA_USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

/// `[pay]`: whether and how requests are paid. Off by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayConfig {
    pub enabled: bool,
    /// `builtin` (settle into this node's ledger) or the base URL of a remote facilitator.
    pub facilitator: String,
    /// How long to wait for a remote facilitator before the settlement is recorded as pending.
    pub facilitator_timeout_ms: u64,
    /// CAIP-2 network, e.g. `eip155:84532`.
    pub network: String,
    /// Token contract (EIP-3009, e.g. USDC).
    pub asset: String,
    /// The token's EIP-712 domain name and version (USDC on Base Sepolia: `USDC`, `2`).
    pub asset_name: String,
    pub asset_version: String,
    pub asset_decimals: u8,
    /// For display only (`0.001 USDC`).
    pub asset_symbol: String,
    /// Who gets paid. Required when `enabled`.
    pub pay_to: Option<String>,
    /// Longest a signed payment stays valid; clients set `validBefore = now + this`.
    pub max_timeout_seconds: u64,
    /// Also offer x402 v1 (`X-PAYMENT`, JSON 402 body).
    pub accept_v1: bool,
    /// How long a request may hold a claimed payment before another may take it over.
    pub lease_seconds: u64,
    /// The facilitator address `upto` payers bind in their Permit2 witness (only it may settle).
    /// Default with the built-in ledger: `pay_to` (the payee settles its own ledger). With a
    /// remote facilitator `upto` is not offered (see `docs/payments.md`).
    pub facilitator_address: Option<String>,
    pub prices: PricingConfig,
}

impl Default for PayConfig {
    fn default() -> Self {
        PayConfig {
            enabled: false,
            facilitator: "builtin".into(),
            facilitator_timeout_ms: 10_000,
            network: "eip155:84532".into(),
            asset: BASE_SEPOLIA_USDC.into(),
            asset_name: "USDC".into(),
            asset_version: "2".into(),
            asset_decimals: 6,
            asset_symbol: "USDC".into(),
            pay_to: None,
            max_timeout_seconds: 300,
            accept_v1: true,
            lease_seconds: 600,
            facilitator_address: None,
            prices: PricingConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("pay.network {0:?} is not a CAIP-2 EVM network (expected eip155:<chain id>)")]
    Network(String),
    #[error("pay.asset {0:?} is not an EVM address (0x and 40 hex digits)")]
    Asset(String),
    #[error("pay.pay_to is required when payments are enabled (the address that gets paid)")]
    MissingPayTo,
    #[error("pay.pay_to {0:?} is not an EVM address (0x and 40 hex digits)")]
    PayTo(String),
    #[error("pay.asset_name and pay.asset_version must be set (the token's EIP-712 domain)")]
    Domain,
    #[error("pay.max_timeout_seconds must be between 10 and 86400, got {0}")]
    Timeout(u64),
    #[error("pay.facilitator {0:?} must be \"builtin\" or an http(s) URL")]
    Facilitator(String),
    #[error("pay.facilitator_address {0:?} is not an EVM address (0x and 40 hex digits)")]
    FacilitatorAddress(String),
    #[error("pay.prices: {0}")]
    Prices(String),
}

/// Which facilitator a deployment uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FacilitatorChoice {
    Builtin,
    Remote(String),
}

/// Validated `[pay]` settings: what every offer of this deployment has in common.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayTerms {
    pub chain_id: u64,
    /// CAIP-2 form.
    pub network: String,
    /// The v1 name, when v1 is offered and the chain has one.
    pub v1_network: Option<&'static str>,
    pub asset: Address,
    pub asset_name: String,
    pub asset_version: String,
    pub asset_decimals: u8,
    pub asset_symbol: String,
    pub pay_to: Address,
    pub max_timeout_seconds: u64,
    /// The facilitator `upto` payers must name; `None`: `upto` is not offered.
    pub upto_facilitator: Option<Address>,
}

impl PayConfig {
    /// Checks the settings; call at startup so a bad config fails before serving.
    pub fn terms(&self) -> Result<PayTerms, ConfigError> {
        if !self.network.starts_with("eip155:") {
            return Err(ConfigError::Network(self.network.clone()));
        }
        let chain_id = network::chain_id(&self.network)
            .ok_or_else(|| ConfigError::Network(self.network.clone()))?;
        let asset =
            parse_address(&self.asset).ok_or_else(|| ConfigError::Asset(self.asset.clone()))?;
        let pay_to_s = self.pay_to.as_deref().ok_or(ConfigError::MissingPayTo)?;
        let pay_to =
            parse_address(pay_to_s).ok_or_else(|| ConfigError::PayTo(pay_to_s.to_owned()))?;
        if self.asset_name.is_empty() || self.asset_version.is_empty() {
            return Err(ConfigError::Domain);
        }
        if !(10..=86_400).contains(&self.max_timeout_seconds) {
            return Err(ConfigError::Timeout(self.max_timeout_seconds));
        }
        self.prices
            .validate()
            .map_err(|e| ConfigError::Prices(e.to_string()))?;
        let choice = self.facilitator_choice()?;
        let upto_facilitator = match (&choice, &self.facilitator_address) {
            (FacilitatorChoice::Builtin, Some(a)) => {
                Some(parse_address(a).ok_or_else(|| ConfigError::FacilitatorAddress(a.clone()))?)
            }
            (FacilitatorChoice::Builtin, None) => Some(pay_to),
            // A remote facilitator's upto settlement cannot be reconciled after a timeout
            // without the amount used (the durable claim records the maximum): not offered.
            (FacilitatorChoice::Remote(_), _) => None,
        };
        Ok(PayTerms {
            chain_id,
            network: network::caip2(chain_id),
            v1_network: if self.accept_v1 {
                network::v1_name(chain_id)
            } else {
                None
            },
            asset,
            asset_name: self.asset_name.clone(),
            asset_version: self.asset_version.clone(),
            asset_decimals: self.asset_decimals,
            asset_symbol: self.asset_symbol.clone(),
            pay_to,
            max_timeout_seconds: self.max_timeout_seconds,
            upto_facilitator,
        })
    }

    pub fn facilitator_choice(&self) -> Result<FacilitatorChoice, ConfigError> {
        let f = self.facilitator.trim();
        if f == "builtin" {
            Ok(FacilitatorChoice::Builtin)
        } else if f.starts_with("http://") || f.starts_with("https://") {
            Ok(FacilitatorChoice::Remote(
                f.trim_end_matches('/').to_owned(),
            ))
        } else {
            Err(ConfigError::Facilitator(self.facilitator.clone()))
        }
    }
}

impl PayTerms {
    fn extra(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.asset_name.clone()));
        m.insert("version".into(), Value::from(self.asset_version.clone()));
        m
    }

    /// The v2 requirement for paying `amount`.
    pub fn requirements_v2(&self, amount: U256) -> PaymentRequirementsV2 {
        PaymentRequirementsV2 {
            scheme: SCHEME_EXACT.into(),
            network: self.network.clone(),
            asset: self.asset.to_string(),
            amount: amount.to_string(),
            pay_to: self.pay_to.to_string(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: self.extra(),
        }
    }

    /// The v1 requirement for paying `amount` for `resource`, if v1 is offered.
    pub fn requirements_v1(
        &self,
        amount: U256,
        resource: &ResourceInfo,
    ) -> Option<PaymentRequirementsV1> {
        Some(PaymentRequirementsV1 {
            scheme: SCHEME_EXACT.into(),
            network: self.v1_network?.into(),
            max_amount_required: amount.to_string(),
            resource: resource.url.clone(),
            description: resource.description.clone().unwrap_or_default(),
            mime_type: resource
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/json".into()),
            output_schema: None,
            pay_to: self.pay_to.to_string(),
            max_timeout_seconds: self.max_timeout_seconds,
            asset: self.asset.to_string(),
            extra: Some(Value::Object(self.extra())),
        })
    }

    /// The v2 `upto` requirement for at most `maximum`, if `upto` is offered: Permit2, with the
    /// facilitator the witness must name (the official clients refuse an upto requirement
    /// without `extra.facilitatorAddress`).
    pub fn requirements_upto_v2(&self, maximum: U256) -> Option<PaymentRequirementsV2> {
        let facilitator = self.upto_facilitator?;
        let mut extra = self.extra();
        extra.insert("assetTransferMethod".into(), Value::from("permit2"));
        extra.insert(
            crate::upto::FACILITATOR_ADDRESS_KEY.into(),
            Value::from(facilitator.to_string()),
        );
        Some(PaymentRequirementsV2 {
            scheme: SCHEME_UPTO.into(),
            amount: maximum.to_string(),
            extra,
            ..self.requirements_v2(maximum)
        })
    }

    /// A 402 for a metered `resource` costing at most `maximum`: `upto` for the maximum (settled
    /// for what is used) first, then `exact` at the maximum (which charges the maximum), and v1
    /// `exact` at the maximum when v1 is offered (upto is v2 only).
    pub fn offer_metered(&self, maximum: U256, resource: ResourceInfo) -> Offer {
        let mut offer = self.offer(maximum, resource);
        if let Some(upto) = self.requirements_upto_v2(maximum) {
            offer.v2.insert(0, upto);
        }
        offer
    }

    /// Everything a 402 for `resource` at price `amount` offers.
    pub fn offer(&self, amount: U256, resource: ResourceInfo) -> Offer {
        let v1 = self
            .requirements_v1(amount, &resource)
            .into_iter()
            .collect();
        Offer {
            v2: vec![self.requirements_v2(amount)],
            v1,
            resource,
        }
    }
}

/// The payment options for one priced request (one resource, one price).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub resource: ResourceInfo,
    pub v2: Vec<PaymentRequirementsV2>,
    pub v1: Vec<PaymentRequirementsV1>,
}

impl Offer {
    /// The v2 402 answer (for the `PAYMENT-REQUIRED` header).
    pub fn payment_required_v2(&self, error: Option<&str>) -> PaymentRequiredV2 {
        PaymentRequiredV2 {
            x402_version: 2,
            error: error.map(str::to_owned),
            resource: Some(self.resource.clone()),
            accepts: self.v2.clone(),
            extensions: None,
        }
    }

    /// The v1 402 answer (the JSON body), if v1 is offered.
    pub fn payment_required_v1(&self, error: &str) -> Option<PaymentRequiredV1> {
        (!self.v1.is_empty()).then(|| PaymentRequiredV1 {
            x402_version: 1,
            error: error.to_owned(),
            accepts: self.v1.clone(),
        })
    }

    /// The offered requirement `payment` pays against.
    ///
    /// v2: `accepted` must equal an offered requirement field for field (as the reference
    /// servers match), and a `resource.url` the client echoes must be this resource's — so a
    /// payment made for one model, tier set or price is refused on another. v1 payloads name only
    /// scheme and network; the price check in verification then binds them.
    pub fn select(
        &self,
        payment: &PaymentPayload,
    ) -> Result<PaymentRequirements, (Reason, String)> {
        match payment {
            PaymentPayload::V2(p) => {
                if !self.v2.iter().any(|r| r.scheme == p.accepted.scheme) {
                    return Err((
                        Reason::UnsupportedScheme,
                        format!("scheme {:?} is not offered", p.accepted.scheme),
                    ));
                }
                if !self.v2.iter().any(|r| r.network == p.accepted.network) {
                    return Err((
                        Reason::NetworkMismatch,
                        format!("network {:?} is not offered", p.accepted.network),
                    ));
                }
                if let Some(res) = &p.resource
                    && res.url != self.resource.url
                {
                    return Err((
                        Reason::InvalidPaymentRequirements,
                        format!(
                            "payment is for resource {:?}, not {:?}",
                            res.url, self.resource.url
                        ),
                    ));
                }
                self.v2.iter().find(|r| **r == p.accepted).cloned().map(PaymentRequirements::V2).ok_or_else(|| {
                    (
                        Reason::InvalidPaymentRequirements,
                        "no matching payment requirements: the accepted terms (price, payee, asset) are not offered for this request".into(),
                    )
                })
            }
            PaymentPayload::V1(p) => {
                if self.v1.is_empty() {
                    return Err((
                        Reason::InvalidX402Version,
                        "x402 v1 payments are not accepted here; use v2".into(),
                    ));
                }
                if !self.v1.iter().any(|r| r.scheme == p.scheme) {
                    return Err((
                        Reason::UnsupportedScheme,
                        format!("scheme {:?} is not offered", p.scheme),
                    ));
                }
                self.v1
                    .iter()
                    .find(|r| r.scheme == p.scheme && r.network == p.network)
                    .cloned()
                    .map(PaymentRequirements::V1)
                    .ok_or_else(|| {
                        (
                            Reason::NetworkMismatch,
                            format!("network {:?} is not offered", p.network),
                        )
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PayConfig {
        PayConfig {
            enabled: true,
            pay_to: Some("0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into()),
            ..PayConfig::default()
        }
    }

    #[test]
    fn defaults_are_off_and_need_pay_to() {
        let d = PayConfig::default();
        assert!(!d.enabled);
        assert_eq!(d.terms(), Err(ConfigError::MissingPayTo));
        let t = cfg().terms().unwrap();
        assert_eq!(t.chain_id, 84532);
        assert_eq!(t.v1_network, Some("base-sepolia"));
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = cfg();
        c.network = "base-sepolia".into();
        assert!(matches!(c.terms(), Err(ConfigError::Network(_))));
        let mut c = cfg();
        c.pay_to = Some("0x1234".into());
        assert!(matches!(c.terms(), Err(ConfigError::PayTo(_))));
        let mut c = cfg();
        c.facilitator = "ftp://x".into();
        assert!(matches!(c.terms(), Err(ConfigError::Facilitator(_))));
        let mut c = cfg();
        c.max_timeout_seconds = 0;
        assert!(matches!(c.terms(), Err(ConfigError::Timeout(0))));
        assert!(toml_like_unknown_key_is_rejected());
    }

    fn toml_like_unknown_key_is_rejected() -> bool {
        serde_json::from_value::<PayConfig>(serde_json::json!({"enabled": true, "payto": "0x"}))
            .is_err()
    }

    #[test]
    fn offer_has_both_versions_with_required_fields() {
        let t = cfg().terms().unwrap();
        let res = ResourceInfo {
            url: "http://127.0.0.1/v1/models/m/infer".into(),
            description: Some("inference".into()),
            mime_type: Some("application/json".into()),
        };
        let o = t.offer(U256::from(1500u64), res);
        let v2 = serde_json::to_value(o.payment_required_v2(None)).unwrap();
        assert_eq!(v2["accepts"][0]["amount"], "1500");
        assert_eq!(v2["accepts"][0]["network"], "eip155:84532");
        assert_eq!(v2["accepts"][0]["extra"]["name"], "USDC");
        assert!(v2.get("error").is_none());
        let v1 = serde_json::to_value(o.payment_required_v1("payment_required").unwrap()).unwrap();
        assert_eq!(v1["accepts"][0]["maxAmountRequired"], "1500");
        assert_eq!(v1["accepts"][0]["network"], "base-sepolia");
        assert_eq!(
            v1["accepts"][0]["resource"],
            "http://127.0.0.1/v1/models/m/infer"
        );
        assert!(!v1.to_string().contains("null"));
    }
}
