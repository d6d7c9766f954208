//! Prices and the built-in ledger over HTTP: `GET /v1/pricing` (anyone), `POST /v1/pay/credit`
//! (admin: top up a payer's balance in the built-in ledger) and `GET /v1/pay/balance/{address}`
//! (anyone, as a balance on chain is public).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use vouch_api::{CreditRequest, PricingQuery};
use vouch_core::{ErrorCode, Tier};
use vouch_node::wire::amount as api_amount;
use vouch_pay::store::Ledger;
use vouch_pay::{Amount, parse_amount};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

/// The payment terms and price model, without a quote.
fn terms(st: &AppState) -> Result<vouch_api::Pricing, ApiError> {
    let p = &st.node.config.pay;
    Ok(vouch_api::Pricing {
        enabled: st.node.pay.is_some(),
        facilitator: st.node.pay.as_ref().map(|p| p.facilitator.clone()),
        network: p.network.clone(),
        asset: p.asset.clone(),
        asset_symbol: p.asset_symbol.clone(),
        asset_decimals: p.asset_decimals,
        unit: st.node.prices.unit(),
        pay_to: st.node.pay.as_ref().map(|p| p.terms.pay_to.to_string()),
        x402_versions: if p.accept_v1 { vec![2, 1] } else { vec![2] },
        prices: vouch_node::wire::pricing_config(st.node.prices.config())?,
        rule: "a request pays the sum of its tiers' prices; zk = zk_base + ceil(proving_cost / zk_step_units) * zk_per_step; a chat also pays per token: at most prompt_tokens * prompt + max_tokens * completion, charged for the tokens used (x402 upto)".into(),
        quote: None,
    })
}

/// The price model (per-tier defaults, per-model overrides, the zk formula) and payment terms;
/// with `?model=…&tiers=…`, the price of that request, line by line.
#[utoipa::path(get, path = "/v1/pricing", operation_id = "pricing", tag = "payments", params(PricingQuery),
    responses((status = 200, description = "prices in the asset's smallest unit", body = vouch_api::Pricing),
        (status = 400, description = "bad tier list", body = vouch_api::ErrorBody), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn pricing(
    State(st): State<Arc<AppState>>,
    Query(q): Query<PricingQuery>,
) -> Result<Json<vouch_api::Pricing>, ApiError> {
    let mut out = terms(&st)?;
    let Some(model) = q.model else {
        return Ok(Json(out));
    };
    if model.len() > 512 {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "model reference too long",
        ));
    }
    let tiers_raw = q.tiers.unwrap_or_else(|| "signed".into());
    if tiers_raw.len() > 64 {
        return Err(ApiError::new(ErrorCode::BadRequest, "tier list too long"));
    }
    let asked = tiers_raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<Tier>()
                .map_err(|m: String| ApiError::new(ErrorCode::BadRequest, m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tiers = vouch_node::policy::with_implied(&asked);
    let (_, digest) = st.node.catalog.resolve_str(&model).await?;
    let mut lines = Vec::new();
    let mut total = Some(Amount::ZERO);
    for t in &tiers {
        match st.node.prices.tier_price(&st.node, &digest, *t).await? {
            Ok(a) => {
                total = total.and_then(|s| s.checked_add(a).ok());
                lines.push(vouch_api::QuoteLine {
                    tier: *t,
                    amount: Some(api_amount(a)?),
                    display: Some(st.node.prices.display(a)),
                    unavailable: None,
                });
            }
            Err(why) => {
                total = None;
                lines.push(vouch_api::QuoteLine {
                    tier: *t,
                    amount: None,
                    display: None,
                    unavailable: Some(why.to_string()),
                });
            }
        }
    }
    let tokens = match st.node.prices.token_prices(&st.node, &digest).await? {
        Some((prompt, completion)) => Some(vouch_api::TokenPrices {
            prompt: api_amount(prompt)?,
            completion: api_amount(completion)?,
        }),
        None => None,
    };
    out.quote = Some(vouch_api::Quote {
        tokens,
        proving_cost: st.node.prices.cost_of(&st.node, &digest),
        display: total.map(|a| st.node.prices.display(a)),
        total: total.map(api_amount).transpose()?,
        model,
        digest,
        tiers,
        lines,
    });
    Ok(Json(out))
}

fn ledger(st: &AppState) -> Result<&vouch_node::payments::PayState, ApiError> {
    let pay = st.node.pay.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "payments are off on this node ([pay] enabled = false)",
        )
        .with_reason("payments_off")
    })?;
    if pay.ledger.is_none() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "this node settles through the remote facilitator {}; balances live there",
                pay.facilitator
            ),
        )
        .with_reason("no_builtin_ledger"));
    }
    Ok(pay)
}

fn address(s: &str) -> Result<vouch_pay::Address, ApiError> {
    vouch_pay::verify::parse_address(s.trim()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "{:?} is not an EVM address (0x and 40 hex digits)",
                s.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Credits a payer's balance in the built-in ledger (an operator's top-up, e.g. on a private
/// deployment or a test network).
#[utoipa::path(post, path = "/v1/pay/credit", operation_id = "pay_credit", tag = "payments", request_body = CreditRequest,
    responses((status = 200, description = "the new balance", body = vouch_api::CreditResponse),
        (status = 400, description = "bad address or amount, or no built-in ledger", body = vouch_api::ErrorBody),
        (status = 401, description = "missing or wrong admin token", body = vouch_api::ErrorBody)))]
pub async fn credit(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::CreditResponse>, ApiError> {
    let body = body_or_error(body, 4096, ErrorCode::PayloadTooLarge)?;
    let req: CreditRequest = crate::json::parse(
        &body,
        "invalid credit JSON (expected {\"address\": \"0x…\", \"amount\": \"1000\"})",
    )?;
    let pay = ledger(&st)?;
    let owner = address(&req.address)?;
    let amount = parse_amount(req.amount.trim())
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let memo = req.memo.unwrap_or_else(|| "admin credit".into());
    let memo: String = memo.chars().take(200).collect();
    let l = pay
        .ledger
        .as_ref()
        .ok_or_else(|| ApiError::internal("ledger vanished"))?;
    let balance = l
        .credit(&pay.account(owner), amount, &memo)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(address = %owner, %amount, %balance, "ledger credited");
    Ok(Json(vouch_api::CreditResponse {
        address: owner.to_string(),
        credited: api_amount(Amount(amount))?,
        balance: api_amount(Amount(balance))?,
        display: Some(st.node.prices.display(Amount(balance))),
    }))
}

/// A payer's balance in the built-in ledger.
#[utoipa::path(get, path = "/v1/pay/balance/{address}", operation_id = "pay_balance", tag = "payments",
    params(("address" = String, Path, description = "EVM address")),
    responses((status = 200, description = "the balance", body = vouch_api::Balance), (status = 400, description = "bad address or no built-in ledger", body = vouch_api::ErrorBody)))]
pub async fn balance(
    State(st): State<Arc<AppState>>,
    Path(addr): Path<String>,
) -> Result<Json<vouch_api::Balance>, ApiError> {
    let pay = ledger(&st)?;
    let owner = address(&addr)?;
    let l = pay
        .ledger
        .as_ref()
        .ok_or_else(|| ApiError::internal("ledger vanished"))?;
    let balance = l
        .balance(&pay.account(owner))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(vouch_api::Balance {
        address: owner.to_string(),
        balance: api_amount(Amount(balance))?,
        display: st.node.prices.display(Amount(balance)),
        network: pay.terms.network.clone(),
        asset: pay.terms.asset.to_string(),
    }))
}
