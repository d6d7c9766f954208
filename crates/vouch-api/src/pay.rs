//! Prices and the built-in ledger: `GET /v1/pricing`, `POST /v1/pay/credit`,
//! `GET /v1/pay/balance/{address}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use vouch_core::{ModelDigest, Tier};

/// An amount in the asset's smallest unit, as a decimal string (JSON numbers lose precision
/// beyond 2^53; token amounts are 256-bit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^[0-9]{1,78}$")]
pub struct Amount(String);

impl Amount {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An integer amount (its decimal digits are always a valid amount).
    pub fn from_digits(v: u128) -> Self {
        Amount(v.to_string())
    }
}

impl std::str::FromStr for Amount {
    type Err = String;
    /// Decimal digits only, at most 78 (a 256-bit amount).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 78 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "amount {:?}: expected a decimal number of smallest units",
                s.chars().take(80).collect::<String>()
            ));
        }
        Ok(Amount(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Query of `GET /v1/pricing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PricingQuery {
    /// Quote this model (`name`, `name@version` or `sha256:<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Comma-separated tiers to quote (default `signed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<String>,
}

/// Prices of one model (or the default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TierPrices {
    pub signed: Amount,
    pub tee: Amount,
    /// `zk` = `zk_base` + ⌈proving cost ÷ `zk_step_units`⌉ × `zk_per_step`.
    pub zk_base: Amount,
    pub zk_per_step: Amount,
    pub zk_step_units: u64,
    /// Chat: the price of one prompt token (absent: chats are not sold by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Amount>,
    /// Chat: the price of one completion token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Amount>,
}

/// A model's overrides; absent fields fall back to the default prices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelPrices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zk_base: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zk_per_step: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zk_step_units: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Amount>,
}

/// `[pay.prices]`: the default prices and per-model overrides (by digest, `name@version` or
/// `name`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PricingConfig {
    pub default: TierPrices,
    pub models: BTreeMap<String, ModelPrices>,
}

/// `GET /v1/pricing`: the price model and payment terms, and with `?model=` a quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pricing {
    /// Payments are charged (x402); otherwise prices are quotes only.
    pub enabled: bool,
    pub facilitator: Option<String>,
    /// CAIP-2, e.g. `eip155:84532`.
    pub network: String,
    pub asset: String,
    pub asset_symbol: String,
    pub asset_decimals: u8,
    /// What amounts are counted in, e.g. `micro-USDC`.
    pub unit: String,
    pub pay_to: Option<String>,
    pub x402_versions: Vec<u32>,
    pub prices: PricingConfig,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
}

/// The price of one request, line by line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    /// The reference as asked.
    pub model: String,
    pub digest: ModelDigest,
    /// The tiers quoted, implied ones included.
    pub tiers: Vec<Tier>,
    pub lines: Vec<QuoteLine>,
    /// `null` until every tier has a price.
    pub total: Option<Amount>,
    pub display: Option<String>,
    /// The model's proving cost, in circuit size units, when known.
    pub proving_cost: Option<u64>,
    /// Chat (LLMs): the per-token prices that apply to this model, when it has them. A chat
    /// costs at most `total + prompt tokens × prompt + max_tokens × completion` and is charged
    /// for the tokens used (`upto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenPrices>,
}

/// A model's per-token chat prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenPrices {
    pub prompt: Amount,
    pub completion: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteLine {
    pub tier: Tier,
    /// `null` when the tier has no price for this model here (`unavailable` says why).
    pub amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// The body of `POST /v1/pay/credit` (node and standalone facilitator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    /// The payer's EVM address (`0x` + 40 hex digits).
    pub address: String,
    /// Smallest token units, decimal string (USDC: `1000000` = 1 USDC).
    pub amount: String,
    /// Why, for the ledger's journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// `POST /v1/pay/credit`: the new balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditResponse {
    pub address: String,
    pub credited: Amount,
    pub balance: Amount,
    /// In the asset's units (absent from a standalone facilitator, which has no prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// `GET /v1/pay/balance/{address}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    pub address: String,
    pub balance: Amount,
    pub display: String,
    pub network: String,
    pub asset: String,
}
