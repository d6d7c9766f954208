//! Which tiers this node can give a model, what each proves and trusts, and the assurance
//! policies that refuse (or, when the caller allows it, upgrade) requests asking for too little.
//! Everything here runs before any work is done or any price is charged.

use vouch_core::model::validate_name;
use vouch_core::{ErrorCode, ModelDigest, Tier};

use crate::analytics::level;

use std::time::Duration;

use vouch_store::Store;

use crate::Node;
use crate::error::NodeError;

/// Per-model minimum tiers (assurance policies), cached in front of the database.
pub struct Policy {
    store: Store,
    /// digest → strictest minimum tier among the digest and the names pointing at it (with the
    /// policy's subject); short-lived and dropped on every policy or name change.
    effective: moka::sync::Cache<ModelDigest, Option<(Tier, String)>>,
}

/// Why `tier` cannot be served on this node at all, if it cannot.
pub fn unavailable_reason(node: &Node, tier: Tier) -> Option<String> {
    match tier {
        Tier::Signed => None,
        Tier::Tee if node.tee.is_some() => None,
        Tier::Tee => Some(
            "this node has no TEE evidence producer (tee.producer = \"none\"); find a node that offers tee".into(),
        ),
        Tier::Zk if node.zk.settings.enabled => None,
        Tier::Zk => Some("zk is disabled on this node ([zk] enabled = false)".into()),
    }
}

/// Why `tier` cannot be served for this model on this node, if it cannot: zk depends on the
/// model's operators (analysed at registration).
pub fn unavailable_for(node: &Node, digest: &ModelDigest, tier: Tier) -> Option<String> {
    match tier {
        Tier::Zk => node.zk.unavailable_reason(digest),
        other => unavailable_reason(node, other),
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
pub fn trusts(node: &Node, tier: Tier) -> String {
    match tier {
        Tier::Signed => "the node operator (whoever holds the node key)".into(),
        Tier::Tee => match &node.tee {
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

/// Whether a receipt at these tiers is signed: `signed` was asked for, or is implied by `tee`.
pub fn signs(tiers: &[Tier]) -> bool {
    with_implied(tiers).contains(&Tier::Signed)
}

impl Policy {
    pub fn new(store: Store) -> Self {
        Policy {
            store,
            effective: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
        }
    }

    /// A policy or a name changed: forget every effective policy.
    pub fn changed(&self) {
        self.effective.invalidate_all();
    }

    /// The strictest policy among the digest and the names pointing at it: asking for a model
    /// by digest or by another alias cannot dodge a name's policy.
    pub async fn effective(
        &self,
        digest: &ModelDigest,
    ) -> Result<Option<(Tier, String)>, NodeError> {
        if let Some(p) = self.effective.get(digest) {
            return Ok(p);
        }
        let mut subjects = vec![digest.to_string()];
        if let Some(rec) = self.store.model(digest).await? {
            subjects.extend(rec.names.into_iter().map(|n| n.name));
        }
        subjects.sort();
        subjects.dedup();
        let found = self
            .store
            .policies_for(&subjects)
            .await?
            .into_iter()
            .max_by_key(|p| p.min_tier)
            .map(|p| (p.min_tier, p.subject));
        self.effective.insert(*digest, found.clone());
        Ok(found)
    }
}

/// What the request will get after policy, and whether it was upgraded.
pub struct Decision {
    pub tiers: Vec<Tier>,
    pub upgraded_from: Option<Vec<Tier>>,
    /// What the request costs (`crate::prices`); charged when payments are on.
    pub quote: vouch_pay::Quote,
}

fn show(tiers: &[Tier]) -> String {
    let v: Vec<String> = tiers.iter().map(|t| format!("{:?}", t.as_str())).collect();
    format!("[{}]", v.join(", "))
}

/// Applies the model's minimum assurance and checks every tier can be served.
pub async fn decide(
    node: &Node,
    digest: &ModelDigest,
    asked: Vec<Tier>,
    allow_upgrade: bool,
) -> Result<Decision, NodeError> {
    let prices = &node.prices;
    let mut tiers = asked.clone();
    let mut upgraded_from = None;
    if let Some((min, subject)) = node.policy.effective(digest).await?
        && tiers.iter().max().is_none_or(|t| *t < min)
    {
        let mut up = asked.clone();
        up.push(min);
        let up = with_implied(&up);
        if !allow_upgrade {
            let price = async |t: &[Tier]| match prices.quote(node, digest, t).await {
                Ok(q) => q.total.to_string(),
                Err(e) => format!("unknown: {}", e.message),
            };
            return Err(NodeError::new(
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
        if let Some(why) = unavailable_for(node, digest, *t) {
            let because = if upgraded_from.is_some() {
                " (the model's policy requires it)".to_string()
            } else {
                String::new()
            };
            return Err(NodeError::new(
                ErrorCode::TierUnavailable,
                format!("the {t} tier is not available for this model{because}: {why}"),
            )
            .with_reason(match t {
                Tier::Signed => "signed_unavailable",
                Tier::Tee => "tee_unavailable",
                Tier::Zk => node.zk.unavailable_code(digest),
            }));
        }
    }
    let quote = prices.quote(node, digest, &tiers).await?;
    Ok(Decision {
        tiers,
        upgraded_from,
        quote,
    })
}

impl Node {
    async fn subject(&self, reference: &str) -> Result<String, NodeError> {
        if reference.starts_with("sha256:") {
            let d: ModelDigest = reference
                .parse()
                .map_err(|e| NodeError::new(ErrorCode::BadRequest, format!("{e}")))?;
            if self.store.model(&d).await?.is_none() {
                return Err(NodeError::new(
                    ErrorCode::ModelNotFound,
                    format!("no model with digest {d}"),
                ));
            }
            return Ok(d.to_string());
        }
        if reference.contains('@') {
            return Err(NodeError::new(
                ErrorCode::BadRequest,
                "a policy applies to a model name (all its versions) or a digest, not to name@version",
            ));
        }
        validate_name(reference).map_err(|m| {
            NodeError::new(ErrorCode::BadRequest, format!("name {reference:?}: {m}"))
        })?;
        if self.store.resolve_name(reference, None).await?.is_none() {
            return Err(NodeError::new(
                ErrorCode::ModelNotFound,
                format!("no model is registered as {reference}"),
            ));
        }
        Ok(reference.to_string())
    }

    /// Sets (`Some`) or removes (`None`) the minimum tier of a model name or digest. Every
    /// change is stored with its time in the policy history and logged before the answer.
    pub async fn set_policy(
        &self,
        reference: &str,
        min_tier: Option<Tier>,
    ) -> Result<vouch_api::PolicyUpdate, NodeError> {
        let subject = self.subject(reference).await?;
        let change = self.store.set_policy(&subject, min_tier).await?;
        self.policy.changed();
        if let Some(c) = &change {
            tracing::info!(subject = %c.subject, min_tier = ?c.min_tier, previous = ?c.previous, seq = c.seq, "policy changed");
            // Appended before answering; a crash in between leaves the change in the outbox,
            // which boot drains.
            crate::transparency::drain_outboxes(&self.log, &self.store)
                .await
                .map_err(NodeError::internal)?;
        }
        // Re-read so the answer shows the change's log index.
        let change = match change {
            Some(c) => self
                .store
                .policy_changes(c.seq - 1, 1)
                .await?
                .into_iter()
                .next()
                .or(Some(c)),
            None => None,
        };
        let policy = self
            .store
            .policies_for(std::slice::from_ref(&subject))
            .await?;
        Ok(vouch_api::PolicyUpdate {
            subject,
            policy: policy.into_iter().next().map(crate::wire::policy),
            change: change.map(crate::wire::policy_change),
        })
    }

    /// Every policy in force (at most 1,000 subjects) and the latest changes.
    pub async fn policies(&self) -> Result<vouch_api::PolicyList, NodeError> {
        let policies = self.store.all_policies(1000).await?;
        let changes = self
            .store
            .recent_policy_changes(crate::configs::HISTORY_LIMIT)
            .await?;
        Ok(vouch_api::PolicyList {
            policies: policies.into_iter().map(crate::wire::policy).collect(),
            changes: changes
                .into_iter()
                .map(crate::wire::policy_change)
                .collect(),
        })
    }

    /// A model's policy as stored for this subject.
    pub async fn policy_of(&self, reference: &str) -> Result<vouch_api::PolicyView, NodeError> {
        let subject = self.subject(reference).await?;
        let policy = self
            .store
            .policies_for(std::slice::from_ref(&subject))
            .await?;
        Ok(vouch_api::PolicyView {
            subject,
            policy: policy.into_iter().next().map(crate::wire::policy),
        })
    }

    /// Per tier: available here or why not, what it proves, what it trusts, its price, and the
    /// latency measured on this model's recent requests at that tier.
    pub async fn assurance(&self, reference: &str) -> Result<vouch_api::Assurance, NodeError> {
        let (_, digest) = self.catalog.resolve_str(reference).await?;
        let policy = self.policy.effective(&digest).await?;
        let prices = &self.prices;
        let mut rows = Vec::new();
        for t in [Tier::Signed, Tier::Tee, Tier::Zk] {
            let request = with_implied(&[t]);
            let price = prices.tier_price(self, &digest, t).await?.ok();
            let request_price = prices
                .quote(self, &digest, &request)
                .await
                .ok()
                .map(|q| q.total);
            rows.push({
                let measured = self.analytics.model_level(&digest, level(&request));
                let ms = |p: f64| measured.percentile(p).map(|s| (s * 1e5).round() / 1e2);
                let reason = unavailable_for(self, &digest, t);
                vouch_api::TierAssurance {
                    tier: t,
                    available: reason.is_none(),
                    unavailable_reason: reason,
                    meets_policy: policy.as_ref().is_none_or(|(min, _)| t >= *min),
                    proves: proves(t).into(),
                    zk: (t == Tier::Zk).then(|| self.zk.model_json(&digest)),
                    trusts: trusts(self, t),
                    price: price.map(crate::wire::amount).transpose()?,
                    request,
                    request_price: request_price.map(crate::wire::amount).transpose()?,
                    measured: vouch_api::Measured {
                        requests: measured.requests,
                        errors: measured.errors,
                        samples: measured.recent.len() as u64,
                        p50_ms: ms(0.5),
                        p95_ms: ms(0.95),
                    },
                }
            });
        }
        Ok(vouch_api::Assurance {
            model: reference.to_string(),
            digest,
            policy: policy.map(|(min_tier, subject)| vouch_api::EffectivePolicy {
                min_tier,
                subject: subject.to_string(),
            }),
            asset: prices.unit(),
            tiers: rows,
        })
    }
}
