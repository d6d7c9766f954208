//! Which tiers this node can give a model, what each proves and trusts, and the assurance
//! policies that refuse (or, when the caller allows it, upgrade) requests asking for too little.
//! Everything here runs before any work is done or any price is charged.

use vouch_core::{ErrorCode, ModelDigest, Tier};

use crate::error::ApiError;
use crate::state::AppState;

/// Why `tier` cannot be served on this node at all, if it cannot.
pub fn unavailable_reason(st: &AppState, tier: Tier) -> Option<String> {
    match tier {
        Tier::Signed => None,
        Tier::Tee if st.tee.is_some() => None,
        Tier::Tee => Some(
            "this node has no TEE evidence producer (tee.producer = \"none\"); find a node that offers tee".into(),
        ),
        Tier::Zk if st.zk.settings.enabled => None,
        Tier::Zk => Some("zk is disabled on this node ([zk] enabled = false)".into()),
    }
}

/// Why `tier` cannot be served for this model on this node, if it cannot: zk depends on the
/// model's operators (analysed at registration).
pub fn unavailable_for(st: &AppState, digest: &ModelDigest, tier: Tier) -> Option<String> {
    match tier {
        Tier::Zk => st.zk.unavailable_reason(digest),
        other => unavailable_reason(st, other),
    }
}

/// What a tier establishes, in words.
pub fn proves(tier: Tier) -> &'static str {
    match tier {
        Tier::Signed => "the node stated that this model on this input gave this output",
        Tier::Tee => {
            "measured code in a TEE holds the key that signed the receipt, so that code made the statement"
        }
        Tier::Zk => {
            "the output is the committed model (in fixed point) applied to the committed input; the proof arrives asynchronously"
        }
    }
}

/// Whom a verifier must trust for that to hold.
pub fn trusts(st: &AppState, tier: Tier) -> String {
    match tier {
        Tier::Signed => "the node operator (whoever holds the node key)".into(),
        Tier::Tee => match &st.tee {
            Some(t) => t.verdict.trust_assumption.clone(),
            None => "the TEE vendor's hardware and root of attestation".into(),
        },
        Tier::Zk => format!(
            "the soundness of {} (transparent setup: no trusted party or ceremony)",
            vouch_zk::SYSTEM
        ),
    }
}

/// The tiers a request for `tier` alone actually gets: `tee` is always signed by the attested
/// key, so it implies `signed`.
pub fn with_implied(tiers: &[Tier]) -> Vec<Tier> {
    let mut v = tiers.to_vec();
    if v.contains(&Tier::Tee) {
        v.push(Tier::Signed);
    }
    Tier::canonical_set(&v)
}

/// The strictest policy among the digest and the names pointing at it: asking for a model by
/// digest or by another alias cannot dodge a name's policy.
pub async fn effective_policy(
    st: &AppState,
    digest: &ModelDigest,
) -> Result<Option<(Tier, String)>, ApiError> {
    if let Some(p) = st.policies.get(digest) {
        return Ok(p);
    }
    let mut subjects = vec![digest.to_string()];
    if let Some(rec) = st.store.model(digest).await? {
        subjects.extend(rec.names.into_iter().map(|n| n.name));
    }
    subjects.sort();
    subjects.dedup();
    let found = st
        .store
        .policies_for(&subjects)
        .await?
        .into_iter()
        .max_by_key(|p| p.min_tier)
        .map(|p| (p.min_tier, p.subject));
    st.policies.insert(*digest, found.clone());
    Ok(found)
}

/// What the request will get after policy, and whether it was upgraded.
pub struct Decision {
    pub tiers: Vec<Tier>,
    pub upgraded_from: Option<Vec<Tier>>,
    /// What the request costs (`crate::pricing`); charged when payments are on.
    pub quote: vouch_pay::Quote,
}

fn show(tiers: &[Tier]) -> String {
    let v: Vec<String> = tiers.iter().map(|t| format!("{:?}", t.as_str())).collect();
    format!("[{}]", v.join(", "))
}

/// Applies the model's minimum assurance and checks every tier can be served.
pub async fn decide(
    st: &AppState,
    digest: &ModelDigest,
    asked: Vec<Tier>,
    allow_upgrade: bool,
) -> Result<Decision, ApiError> {
    let prices = &st.prices;
    let mut tiers = asked.clone();
    let mut upgraded_from = None;
    if let Some((min, subject)) = effective_policy(st, digest).await?
        && tiers.iter().max().is_none_or(|t| *t < min)
    {
        let mut up = asked.clone();
        up.push(min);
        let up = with_implied(&up);
        if !allow_upgrade {
            let price = async |t: &[Tier]| match prices.quote(st, digest, t).await {
                Ok(q) => q.total.to_string(),
                Err(e) => format!("unknown: {}", e.message),
            };
            return Err(ApiError::new(
                ErrorCode::TierUnavailable,
                format!(
                    "model {subject} requires at least the {min} tier; you asked for {} (price {} {asset}). \
                     Ask for {} (price {} {asset}), or send \"allow_upgrade\": true to be upgraded at that price",
                    show(&asked),
                    price(&asked).await,
                    show(&up),
                    price(&up).await,
                    asset = prices.unit(),
                ),
            )
            .with_reason("below_minimum_assurance"));
        }
        upgraded_from = Some(asked);
        tiers = up;
    }
    for t in &tiers {
        if let Some(why) = unavailable_for(st, digest, *t) {
            let because = if upgraded_from.is_some() {
                " (the model's policy requires it)".to_string()
            } else {
                String::new()
            };
            return Err(ApiError::new(
                ErrorCode::TierUnavailable,
                format!("the {t} tier is not available for this model{because}: {why}"),
            )
            .with_reason(match t {
                Tier::Signed => "signed_unavailable",
                Tier::Tee => "tee_unavailable",
                Tier::Zk => st.zk.unavailable_code(digest),
            }));
        }
    }
    let quote = prices.quote(st, digest, &tiers).await?;
    Ok(Decision {
        tiers,
        upgraded_from,
        quote,
    })
}
