//! Model assurance policies ("requests for this model need at least the `tee` tier") and the
//! append-only history of their changes, kept so the transparency log can record every one.
//!
//! Log hook: [`Store::unlogged_policy_changes`] lists changes not yet in the log, and
//! [`Store::mark_logged`] records the leaf index once appended.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use vouch_core::Tier;

use crate::db::{Db, columns};
use crate::{Backend, Result, Store, StoreError, now_rfc3339, pg};

/// A subject's current policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelPolicy {
    /// A model name (all its versions) or a digest `sha256:<hex>`.
    pub subject: String,
    /// The least tier a request must carry; stronger tiers also satisfy it.
    pub min_tier: Tier,
    pub updated_at: String,
}

/// One entry of the policy history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    pub seq: i64,
    pub subject: String,
    /// `None`: the policy was removed.
    pub min_tier: Option<Tier>,
    pub previous: Option<Tier>,
    pub changed_at: String,
    /// Leaf index in the transparency log, once logged.
    pub log_index: Option<i64>,
}

pub(crate) fn tier(s: Option<String>) -> Result<Option<Tier>> {
    s.map(|s| {
        s.parse::<Tier>()
            .map_err(|e| StoreError::Corrupt(format!("policy tier: {e}")))
    })
    .transpose()
}

pub(crate) const CHANGE_COLUMNS: &str = "seq, subject, min_tier, previous, changed_at, log_index";

/// A `policy_changes` row as stored.
pub(crate) type RawChange = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
);

pub(crate) fn change(
    (seq, subject, min_tier, previous, changed_at, log_index): RawChange,
) -> Result<PolicyChange> {
    Ok(PolicyChange {
        seq,
        subject,
        min_tier: tier(min_tier)?,
        previous: tier(previous)?,
        changed_at,
        log_index,
    })
}

/// What [`Store::set_policy`]'s transaction found.
enum SetPolicy {
    Unchanged,
    Changed(RawChange),
}

impl Store {
    /// Sets (`Some`) or removes (`None`) `subject`'s minimum tier. Returns the history entry, or
    /// `None` when nothing changed (no entry is written for a no-op).
    pub async fn set_policy(
        &self,
        subject: &str,
        min_tier: Option<Tier>,
    ) -> Result<Option<PolicyChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::policy::set_policy(pg, subject, min_tier).await,
        };
        let subject = subject.to_owned();
        let outcome = db
            .call(move |c| {
                // IMMEDIATE, as in `set_name`: read-then-write under concurrent log commits.
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let previous: Option<String> = tx
                    .query_row(
                        "SELECT min_tier FROM model_policies WHERE subject = ?",
                        [&subject],
                        |r| r.get(0),
                    )
                    .optional()?;
                let previous = tier(previous)?;
                if previous == min_tier {
                    return Ok::<_, StoreError>(SetPolicy::Unchanged);
                }
                let now = now_rfc3339();
                match min_tier {
                    Some(t) => tx.execute(
                        "INSERT INTO model_policies (subject, min_tier, updated_at) VALUES (?, ?, ?)
                         ON CONFLICT(subject) DO UPDATE SET min_tier = excluded.min_tier, updated_at = excluded.updated_at",
                        params![subject, t.as_str(), now],
                    )?,
                    None => tx.execute("DELETE FROM model_policies WHERE subject = ?", [&subject])?,
                };
                let row = tx.query_row(
                    &format!(
                        "INSERT INTO policy_changes (subject, min_tier, previous, changed_at) VALUES (?, ?, ?, ?)
                         RETURNING {CHANGE_COLUMNS}"
                    ),
                    params![
                        subject,
                        min_tier.map(Tier::as_str),
                        previous.map(Tier::as_str),
                        now
                    ],
                    columns::<RawChange>,
                )?;
                tx.commit()?;
                Ok(SetPolicy::Changed(row))
            })
            .await?;
        match outcome {
            SetPolicy::Unchanged => Ok(None),
            SetPolicy::Changed(row) => change(row).map(Some),
        }
    }

    /// The policies of these subjects that exist.
    pub async fn policies_for(&self, subjects: &[String]) -> Result<Vec<ModelPolicy>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::policy::policies_for(pg, subjects).await,
        };
        let subjects = subjects.to_vec();
        let rows: Vec<(String, String, String)> = db
            .run(move |c| {
                let mut q = c.prepare_cached(
                    "SELECT subject, min_tier, updated_at FROM model_policies WHERE subject = ?",
                )?;
                let mut out = Vec::new();
                for s in &subjects {
                    if let Some(row) = q
                        .query_row([s], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?
                    {
                        out.push(row);
                    }
                }
                Ok(out)
            })
            .await?;
        rows.into_iter().map(policy_row).collect()
    }

    /// Every policy in force, by subject, at most `limit`.
    pub async fn all_policies(&self, limit: u32) -> Result<Vec<ModelPolicy>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::policy::all_policies(pg, limit).await,
        };
        let rows: Vec<(String, String, String)> = db
            .run(move |c| {
                c.prepare_cached(
                    "SELECT subject, min_tier, updated_at FROM model_policies
                     ORDER BY subject LIMIT ?",
                )?
                .query_map([i64::from(limit)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(policy_row).collect()
    }

    /// The latest history entries, newest first.
    pub async fn recent_policy_changes(&self, limit: u32) -> Result<Vec<PolicyChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::policy::recent_policy_changes(pg, limit).await,
        };
        changes(db, "ORDER BY seq DESC LIMIT ?", vec![i64::from(limit)]).await
    }

    /// History entries after `after_seq`, oldest first.
    pub async fn policy_changes(&self, after_seq: i64, limit: u32) -> Result<Vec<PolicyChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::policy::policy_changes(pg, after_seq, limit).await,
        };
        changes(
            db,
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![after_seq, i64::from(limit)],
        )
        .await
    }

    /// Changes the transparency log has not recorded yet, oldest first.
    pub async fn unlogged_policy_changes(&self, limit: u32) -> Result<Vec<PolicyChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::policy::unlogged_policy_changes(pg, limit).await,
        };
        changes(
            db,
            "WHERE log_index IS NULL ORDER BY seq LIMIT ?",
            vec![i64::from(limit)],
        )
        .await
    }
}

async fn changes(db: &Db, tail: &'static str, args: Vec<i64>) -> Result<Vec<PolicyChange>> {
    {
        db.run(move |c| {
            c.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM policy_changes {tail}"
            ))?
            .query_map(rusqlite::params_from_iter(args), columns::<RawChange>)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(change)
        .collect()
    }
}

/// A `model_policies` row (`subject, min_tier, updated_at`) as a policy.
pub(crate) fn policy_row(
    (subject, min_tier, updated_at): (String, String, String),
) -> Result<ModelPolicy> {
    Ok(ModelPolicy {
        subject,
        min_tier: tier(Some(min_tier))?
            .ok_or_else(|| StoreError::Corrupt("empty policy tier".into()))?,
        updated_at,
    })
}
