//! Prices: per model (or the default) and per verification tier, summed over the tiers a request
//! asks for. `signed` and `tee` are flat; `zk` is a base plus a charge per step of the model's
//! proving cost (circuit size, as `vouch-zk` reports it), so bigger circuits cost more.
//!
//! All amounts are in the asset's smallest unit (USDC: 6 decimals, so `1000` = 0.001 USDC).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vouch_core::Tier;

use crate::amount::Amount;

/// Prices of one model (or the default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierPrices {
    pub signed: Amount,
    pub tee: Amount,
    /// `zk` = `zk_base` + ⌈proving cost ÷ `zk_step_units`⌉ × `zk_per_step`.
    pub zk_base: Amount,
    pub zk_per_step: Amount,
    pub zk_step_units: u64,
    /// Chat (LLMs): the price of one prompt token. No default: a model without token prices is
    /// not served for payment rather than served free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Amount>,
    /// Chat (LLMs): the price of one completion token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<Amount>,
}

impl Default for TierPrices {
    /// Placeholders (USDC: 100 = 0.0001) until operators set their own; the node's quotes in
    /// refusals, the advisor and analytics use the same numbers.
    fn default() -> Self {
        TierPrices {
            signed: Amount::from_u64(100),
            tee: Amount::from_u64(200),
            zk_base: Amount::from_u64(5_000),
            zk_per_step: Amount::from_u64(100),
            zk_step_units: 1_000_000,
            prompt: None,
            completion: None,
        }
    }
}

/// A model's overrides; unset fields fall back to the default prices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelPrices {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tee: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zk_base: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zk_per_step: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zk_step_units: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<Amount>,
}

/// `[pay.prices]`: `default` plus `models."<name>"` (or `models."sha256:…"`) overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    pub default: TierPrices,
    pub models: BTreeMap<String, ModelPrices>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    #[error(
        "the zk tier is priced by proving cost, and this model has none yet (no circuit built)"
    )]
    ZkCostUnknown,
    #[error("price overflows uint256")]
    Overflow,
    #[error("zk_step_units must be at least 1 (in {0})")]
    ZeroStep(String),
    #[error("no tier asked for")]
    NoTiers,
    #[error(
        "this model has no per-token prices (set prompt and completion in [pay.prices]); with payments on, chat is not served free"
    )]
    NoTokenPrices,
}

/// The price of one chat: the tiers' per-request prices plus tokens. Quoted before generation
/// at its maximum (the prompt and `max_tokens` completion tokens); charged for the tokens used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatQuote {
    pub source: QuoteSource,
    /// The tiers' per-request prices (as for `/v1/infer`; none for an unsigned receipt).
    pub tiers: Vec<QuoteLine>,
    pub tiers_total: Amount,
    pub prompt_token: Amount,
    pub completion_token: Amount,
    pub prompt_tokens: u64,
    pub max_tokens: u64,
    /// `tiers_total + prompt_tokens × prompt_token + max_tokens × completion_token`.
    pub maximum: Amount,
}

impl ChatQuote {
    /// What `prompt_tokens` and `completion_tokens` actually cost, never above the maximum.
    pub fn charge(&self, prompt_tokens: u64, completion_tokens: u64) -> Result<Amount, PriceError> {
        let cost = token_cost(
            self.tiers_total,
            self.prompt_token,
            prompt_tokens,
            self.completion_token,
            completion_tokens,
        )?;
        Ok(cost.min(self.maximum))
    }
}

fn token_cost(
    base: Amount,
    prompt_price: Amount,
    prompt_tokens: u64,
    completion_price: Amount,
    completion_tokens: u64,
) -> Result<Amount, PriceError> {
    let times = |price: Amount, n: u64| {
        price
            .0
            .checked_mul(alloy_primitives::U256::from(n))
            .map(Amount)
            .ok_or(PriceError::Overflow)
    };
    let prompt = times(prompt_price, prompt_tokens)?;
    let completion = times(completion_price, completion_tokens)?;
    base.checked_add(prompt)
        .and_then(|a| a.checked_add(completion))
        .map_err(|_| PriceError::Overflow)
}

/// Where a quote's prices came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteSource {
    /// An entry in `models`, named here.
    Model(String),
    Default,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    pub tier: Tier,
    pub amount: Amount,
    /// How a computed price was reached (zk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The price of one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub source: QuoteSource,
    pub lines: Vec<QuoteLine>,
    pub total: Amount,
}

impl ModelPrices {
    fn over(&self, d: &TierPrices) -> TierPrices {
        TierPrices {
            signed: self.signed.unwrap_or(d.signed),
            tee: self.tee.unwrap_or(d.tee),
            zk_base: self.zk_base.unwrap_or(d.zk_base),
            zk_per_step: self.zk_per_step.unwrap_or(d.zk_per_step),
            zk_step_units: self.zk_step_units.unwrap_or(d.zk_step_units),
            prompt: self.prompt.or(d.prompt),
            completion: self.completion.or(d.completion),
        }
    }
}

impl TierPrices {
    /// Price of one tier; `zk_cost_units` is needed for `zk` only.
    pub fn tier_price(
        &self,
        tier: Tier,
        zk_cost_units: Option<u64>,
    ) -> Result<QuoteLine, PriceError> {
        Ok(match tier {
            Tier::Signed => QuoteLine {
                tier,
                amount: self.signed,
                detail: None,
            },
            Tier::Tee => QuoteLine {
                tier,
                amount: self.tee,
                detail: None,
            },
            Tier::Zk => {
                let cost = zk_cost_units.ok_or(PriceError::ZkCostUnknown)?;
                if self.zk_step_units == 0 {
                    return Err(PriceError::ZeroStep("zk price".into()));
                }
                let steps = cost.div_ceil(self.zk_step_units);
                let variable = self
                    .zk_per_step
                    .0
                    .checked_mul(alloy_primitives::U256::from(steps))
                    .ok_or(PriceError::Overflow)?;
                let amount = self
                    .zk_base
                    .checked_add(Amount(variable))
                    .map_err(|_| PriceError::Overflow)?;
                QuoteLine {
                    tier,
                    amount,
                    detail: Some(format!(
                        "{} + ⌈{cost} / {}⌉ × {} (proving cost {cost} units)",
                        self.zk_base, self.zk_step_units, self.zk_per_step
                    )),
                }
            }
        })
    }
}

impl PricingConfig {
    pub fn validate(&self) -> Result<(), PriceError> {
        if self.default.zk_step_units == 0 {
            return Err(PriceError::ZeroStep("default".into()));
        }
        for (name, m) in &self.models {
            if m.zk_step_units == Some(0) {
                return Err(PriceError::ZeroStep(format!("models.{name}")));
            }
        }
        Ok(())
    }

    /// The prices that apply to a model known by any of `names` (tried in order — e.g.
    /// `name@version`, `name`, `sha256:…`), and which entry supplied them.
    pub fn prices_for(&self, names: &[&str]) -> (TierPrices, QuoteSource) {
        for n in names {
            if let Some(m) = self.models.get(*n) {
                return (m.over(&self.default), QuoteSource::Model((*n).to_owned()));
            }
        }
        (self.default.clone(), QuoteSource::Default)
    }

    /// The maximum price of a chat on the model known by `names`: its `tiers` (summed; none
    /// for an unsigned receipt), `prompt_tokens` prompt tokens and `max_tokens` completion
    /// tokens. Refused with [`PriceError::NoTokenPrices`] when the model has no token prices.
    pub fn chat_quote(
        &self,
        names: &[&str],
        tiers: &[Tier],
        prompt_tokens: u64,
        max_tokens: u64,
    ) -> Result<ChatQuote, PriceError> {
        let (prices, source) = self.prices_for(names);
        let (Some(prompt_token), Some(completion_token)) = (prices.prompt, prices.completion)
        else {
            return Err(PriceError::NoTokenPrices);
        };
        let mut tiers_total = Amount::ZERO;
        let mut lines = Vec::new();
        for t in Tier::canonical_set(tiers) {
            let line = prices.tier_price(t, None)?;
            tiers_total = tiers_total
                .checked_add(line.amount)
                .map_err(|_| PriceError::Overflow)?;
            lines.push(line);
        }
        let maximum = token_cost(
            tiers_total,
            prompt_token,
            prompt_tokens,
            completion_token,
            max_tokens,
        )?;
        Ok(ChatQuote {
            source,
            tiers: lines,
            tiers_total,
            prompt_token,
            completion_token,
            prompt_tokens,
            max_tokens,
            maximum,
        })
    }

    /// The price of running the model known by `names` with `tiers` (summed; duplicates count
    /// once). `zk_cost_units` is the model's proving cost, required when `zk` is asked for.
    pub fn quote(
        &self,
        names: &[&str],
        tiers: &[Tier],
        zk_cost_units: Option<u64>,
    ) -> Result<Quote, PriceError> {
        let tiers = Tier::canonical_set(tiers);
        if tiers.is_empty() {
            return Err(PriceError::NoTiers);
        }
        let (prices, source) = self.prices_for(names);
        let mut total = Amount::ZERO;
        let mut lines = Vec::with_capacity(tiers.len());
        for t in tiers {
            let line = prices.tier_price(t, zk_cost_units)?;
            total = total
                .checked_add(line.amount)
                .map_err(|_| PriceError::Overflow)?;
            lines.push(line);
        }
        Ok(Quote {
            source,
            lines,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PricingConfig {
        serde_json::from_value(serde_json::json!({
            "default": {"signed": "1000", "tee": 5000, "zk_base": "20000", "zk_per_step": "1000", "zk_step_units": 1000000},
            "models": {"mnist-cnn": {"signed": "2000", "zk_per_step": "3000"}}
        }))
        .unwrap()
    }

    #[test]
    fn tiers_are_summed_and_deduplicated() {
        let q = config()
            .quote(&["other"], &[Tier::Signed, Tier::Tee, Tier::Signed], None)
            .unwrap();
        assert_eq!(q.total, Amount::from_u64(6000));
        assert_eq!(q.source, QuoteSource::Default);
        assert_eq!(q.lines.len(), 2);
    }

    #[test]
    fn model_overrides_fall_back_per_field() {
        let q = config()
            .quote(
                &["mnist-cnn@1", "mnist-cnn"],
                &[Tier::Signed, Tier::Tee],
                None,
            )
            .unwrap();
        assert_eq!(q.source, QuoteSource::Model("mnist-cnn".into()));
        assert_eq!(q.total, Amount::from_u64(2000 + 5000));
    }

    #[test]
    fn zk_is_priced_by_proving_cost() {
        let c = config();
        // ⌈2_500_000 / 1_000_000⌉ = 3 steps × 3000 + 20000 base.
        let q = c
            .quote(&["mnist-cnn"], &[Tier::Zk], Some(2_500_000))
            .unwrap();
        assert_eq!(q.total, Amount::from_u64(20_000 + 3 * 3000));
        // Exactly on a step boundary, and a tiny circuit.
        assert_eq!(
            c.quote(&["x"], &[Tier::Zk], Some(1_000_000)).unwrap().total,
            Amount::from_u64(21_000)
        );
        assert_eq!(
            c.quote(&["x"], &[Tier::Zk], Some(1)).unwrap().total,
            Amount::from_u64(21_000)
        );
        assert_eq!(
            c.quote(&["x"], &[Tier::Zk], Some(0)).unwrap().total,
            Amount::from_u64(20_000)
        );
        // Bigger circuit, higher price.
        assert!(
            c.quote(&["x"], &[Tier::Zk], Some(9_000_000)).unwrap().total
                > c.quote(&["x"], &[Tier::Zk], Some(2_000_000)).unwrap().total
        );
        assert_eq!(
            c.quote(&["x"], &[Tier::Zk], None),
            Err(PriceError::ZkCostUnknown)
        );
        assert_eq!(
            c.quote(&["x"], &[Tier::Signed, Tier::Zk], Some(1))
                .unwrap()
                .total,
            Amount::from_u64(22_000)
        );
    }

    #[test]
    fn chats_are_priced_per_token_on_top_of_their_tiers() {
        let c: PricingConfig = serde_json::from_value(serde_json::json!({
            "default": {"signed": "100", "tee": "200"},
            "models": {"smollm2": {"prompt": "2", "completion": 5}, "cheap": {"prompt": "1", "completion": "1", "signed": "0"}}
        }))
        .unwrap();
        let q = c
            .chat_quote(&["smollm2@1", "smollm2"], &[Tier::Signed], 30, 64)
            .unwrap();
        assert_eq!(q.source, QuoteSource::Model("smollm2".into()));
        assert_eq!(q.maximum, Amount::from_u64(100 + 30 * 2 + 64 * 5));
        // Charged for what was used; never above the maximum.
        assert_eq!(q.charge(30, 10).unwrap(), Amount::from_u64(100 + 60 + 50));
        assert_eq!(q.charge(30, 0).unwrap(), Amount::from_u64(160));
        assert_eq!(q.charge(30, 1000).unwrap(), q.maximum);
        // Unsigned: tokens only.
        let q = c.chat_quote(&["smollm2"], &[], 3, 4).unwrap();
        assert_eq!(q.maximum, Amount::from_u64(3 * 2 + 4 * 5));
        assert_eq!(
            c.chat_quote(&["other"], &[Tier::Signed], 3, 4),
            Err(PriceError::NoTokenPrices)
        );
        // zk has no price for a chat (no proving cost): refused, not priced at zero.
        assert_eq!(
            c.chat_quote(&["smollm2"], &[Tier::Zk], 3, 4),
            Err(PriceError::ZkCostUnknown)
        );
        let mut big = c.clone();
        big.default.prompt = Some(Amount(alloy_primitives::U256::MAX));
        big.default.completion = Some(Amount::from_u64(1));
        assert_eq!(big.chat_quote(&["x"], &[], 2, 1), Err(PriceError::Overflow));
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = config();
        c.default.zk_step_units = 0;
        assert!(c.validate().is_err());
        assert!(
            serde_json::from_value::<PricingConfig>(serde_json::json!({"default": {"signd": "1"}}))
                .is_err()
        );
        assert_eq!(config().quote(&["x"], &[], None), Err(PriceError::NoTiers));
        let mut c = config();
        c.default.signed = Amount(alloy_primitives::U256::MAX);
        assert_eq!(
            c.quote(&["x"], &[Tier::Signed, Tier::Tee], None),
            Err(PriceError::Overflow)
        );
    }
}
