//! The node's one price model: `vouch-pay`'s `[pay.prices]` (per model, per tier, summed over a
//! request's tiers), plus what it needs from the node: the names a model goes by and its `zk`
//! proving cost. Quotes are made whether or not payments are on — the advisor, refusals,
//! analytics and `GET /v1/pricing` show the same numbers a paid request is charged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use vouch_core::{ErrorCode, ModelDigest, Tier};
use vouch_pay::pricing::QuoteSource;
use vouch_pay::{Amount, PayConfig, PriceError, PricingConfig, Quote};

use crate::Node;
use crate::error::NodeError;

pub struct Prices {
    config: PricingConfig,
    decimals: u8,
    symbol: String,
    /// digest → the names pointing at it, for per-model overrides (only looked up when
    /// `[pay.prices.models]` has entries).
    names: moka::sync::Cache<ModelDigest, Arc<Vec<String>>>,
    /// digest → proving cost in circuit units, set by whoever builds the model's circuit.
    proving_costs: RwLock<HashMap<ModelDigest, u64>>,
}

impl Prices {
    pub fn new(pay: &PayConfig) -> Self {
        Prices {
            config: pay.prices.clone(),
            decimals: pay.asset_decimals,
            symbol: pay.asset_symbol.clone(),
            names: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
            proving_costs: RwLock::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &PricingConfig {
        &self.config
    }

    /// What amounts are counted in: the asset's smallest unit (`micro-USDC` for 6 decimals).
    pub fn unit(&self) -> String {
        match self.decimals {
            0 => self.symbol.clone(),
            3 => format!("milli-{}", self.symbol),
            6 => format!("micro-{}", self.symbol),
            9 => format!("nano-{}", self.symbol),
            d => format!("10^-{d} {}", self.symbol),
        }
    }

    /// `amount` in whole tokens, for people (`0.0003 USDC`).
    pub fn display(&self, amount: Amount) -> String {
        format!(
            "{} {}",
            vouch_pay::format_units(amount.0, self.decimals),
            self.symbol
        )
    }

    /// Records a model's proving cost (circuit size units, as `vouch-zk` reports them); the
    /// `zk` tier of that model is priced from it. The zk layer calls this when it builds the
    /// model's circuit; until then `zk` has no price.
    pub fn set_proving_cost(&self, model: ModelDigest, units: u64) {
        if let Ok(mut m) = self.proving_costs.write() {
            m.insert(model, units);
        }
    }

    pub fn proving_cost(&self, model: &ModelDigest) -> Option<u64> {
        self.proving_costs
            .read()
            .ok()
            .and_then(|m| m.get(model).copied())
    }

    /// The proving cost a quote uses: one set explicitly, else the zk layer's analysis of the
    /// model (its circuit's constraint count).
    pub fn cost_of(&self, node: &Node, model: &ModelDigest) -> Option<u64> {
        self.proving_cost(model)
            .or_else(|| node.zk.proving_cost(model))
    }

    /// The names to look prices up under, most specific first: the digest, then every
    /// `name@version` and `name` pointing at it (sorted). The price depends on the model only,
    /// never on the alias asked for, so no alias is cheaper than another.
    async fn names_of(&self, node: &Node, digest: &ModelDigest) -> Result<Vec<String>, NodeError> {
        let mut names = vec![digest.to_string()];
        if self.config.models.is_empty() {
            return Ok(names);
        }
        let others = match self.names.get(digest) {
            Some(n) => n,
            None => {
                let mut v = Vec::new();
                if let Some(rec) = node.store.model(digest).await? {
                    let mut pointers: Vec<_> = rec.names.into_iter().collect();
                    pointers.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
                    for p in &pointers {
                        v.push(format!("{}@{}", p.name, p.version));
                    }
                    for p in pointers {
                        v.push(p.name);
                    }
                    v.dedup();
                }
                let v = Arc::new(v);
                self.names.insert(*digest, v.clone());
                v
            }
        };
        names.extend(others.iter().cloned());
        Ok(names)
    }

    /// The price of running `digest` at `tiers` (summed).
    pub async fn quote(
        &self,
        node: &Node,
        digest: &ModelDigest,
        tiers: &[Tier],
    ) -> Result<Quote, NodeError> {
        let names = self.names_of(node, digest).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        if tiers.is_empty() {
            // An unsigned receipt proves nothing and costs nothing.
            return Ok(Quote {
                source: self.config.prices_for(&refs).1,
                lines: Vec::new(),
                total: Amount::ZERO,
            });
        }
        self.config
            .quote(&refs, tiers, self.cost_of(node, digest))
            .map_err(price_error)
    }

    /// The maximum price of a chat on `digest` (its tiers, the prompt, `max_tokens` completion
    /// tokens); refused with `token_price_unknown` when the model has no token prices.
    pub async fn chat_quote(
        &self,
        node: &Node,
        digest: &ModelDigest,
        tiers: &[Tier],
        prompt_tokens: u64,
        max_tokens: u64,
    ) -> Result<vouch_pay::ChatQuote, NodeError> {
        let names = self.names_of(node, digest).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.config
            .chat_quote(&refs, tiers, prompt_tokens, max_tokens)
            .map_err(price_error)
    }

    /// A model's per-token prices `(prompt, completion)`, if it has both.
    pub async fn token_prices(
        &self,
        node: &Node,
        digest: &ModelDigest,
    ) -> Result<Option<(Amount, Amount)>, NodeError> {
        let names = self.names_of(node, digest).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (prices, _) = self.config.prices_for(&refs);
        Ok(prices.prompt.zip(prices.completion))
    }

    /// One tier's price for `digest`, or why it has none (`zk` before its circuit is built).
    pub async fn tier_price(
        &self,
        node: &Node,
        digest: &ModelDigest,
        tier: Tier,
    ) -> Result<Result<Amount, String>, NodeError> {
        let names = self.names_of(node, digest).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (prices, _): (_, QuoteSource) = self.config.prices_for(&refs);
        Ok(prices
            .tier_price(tier, self.cost_of(node, digest))
            .map(|l| l.amount)
            .map_err(|e| e.to_string()))
    }
}

/// A quote's total as a counter value (analytics keep u64; a price beyond it saturates).
pub fn as_u64(a: Amount) -> u64 {
    u64::try_from(a.0).unwrap_or(u64::MAX)
}

fn price_error(e: PriceError) -> NodeError {
    match e {
        PriceError::ZkCostUnknown => NodeError::new(
            ErrorCode::TierUnavailable,
            format!("{e}; ask again once the model's zk circuit is built"),
        )
        .with_reason("zk_price_unknown"),
        PriceError::NoTiers => NodeError::new(ErrorCode::BadRequest, e.to_string()),
        PriceError::NoTokenPrices => NodeError::new(ErrorCode::PaymentUnavailable, e.to_string())
            .with_reason("token_price_unknown"),
        PriceError::Overflow | PriceError::ZeroStep(_) => NodeError::internal(e),
    }
}
