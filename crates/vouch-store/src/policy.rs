//! Model assurance policies ("requests for this model need at least the `tee` tier") and the
//! append-only history of their changes, kept so the transparency log can record every one.
//!
//! Log hook: [`Store::unlogged_policy_changes`] lists changes not yet in the log, and
//! [`Store::mark_logged`] records the leaf index once appended.

use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use vouch_core::Tier;

use crate::{Result, Store, StoreError, now_rfc3339};

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

fn tier(s: Option<String>) -> Result<Option<Tier>> {
    s.map(|s| {
        s.parse::<Tier>()
            .map_err(|e| StoreError::Corrupt(format!("policy tier: {e}")))
    })
    .transpose()
}

fn change(row: &SqliteRow) -> Result<PolicyChange> {
    Ok(PolicyChange {
        seq: row.try_get("seq")?,
        subject: row.try_get("subject")?,
        min_tier: tier(row.try_get("min_tier")?)?,
        previous: tier(row.try_get("previous")?)?,
        changed_at: row.try_get("changed_at")?,
        log_index: row.try_get("log_index")?,
    })
}

impl Store {
    /// Sets (`Some`) or removes (`None`) `subject`'s minimum tier. Returns the history entry, or
    /// `None` when nothing changed (no entry is written for a no-op).
    pub async fn set_policy(
        &self,
        subject: &str,
        min_tier: Option<Tier>,
    ) -> Result<Option<PolicyChange>> {
        // IMMEDIATE, as in `set_name`: read-then-write under concurrent log commits.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT min_tier FROM model_policies WHERE subject = ?")
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await?;
        let previous = tier(previous)?;
        if previous == min_tier {
            return Ok(None);
        }
        let now = now_rfc3339();
        match min_tier {
            Some(t) => {
                sqlx::query(
                    "INSERT INTO model_policies (subject, min_tier, updated_at) VALUES (?, ?, ?)
                     ON CONFLICT(subject) DO UPDATE SET min_tier = excluded.min_tier, updated_at = excluded.updated_at",
                )
                .bind(subject)
                .bind(t.as_str())
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM model_policies WHERE subject = ?")
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let row = sqlx::query(
            "INSERT INTO policy_changes (subject, min_tier, previous, changed_at) VALUES (?, ?, ?, ?)
             RETURNING seq, subject, min_tier, previous, changed_at, log_index",
        )
        .bind(subject)
        .bind(min_tier.map(Tier::as_str))
        .bind(previous.map(Tier::as_str))
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?;
        let c = change(&row)?;
        tx.commit().await?;
        Ok(Some(c))
    }

    /// The policies of these subjects that exist.
    pub async fn policies_for(&self, subjects: &[String]) -> Result<Vec<ModelPolicy>> {
        let mut out = Vec::new();
        for s in subjects {
            let row = sqlx::query(
                "SELECT subject, min_tier, updated_at FROM model_policies WHERE subject = ?",
            )
            .bind(s)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                out.push(ModelPolicy {
                    subject: row.try_get("subject")?,
                    min_tier: tier(Some(row.try_get("min_tier")?))?
                        .ok_or_else(|| StoreError::Corrupt("empty policy tier".into()))?,
                    updated_at: row.try_get("updated_at")?,
                });
            }
        }
        Ok(out)
    }

    /// History entries after `after_seq`, oldest first.
    pub async fn policy_changes(&self, after_seq: i64, limit: u32) -> Result<Vec<PolicyChange>> {
        sqlx::query(
            "SELECT seq, subject, min_tier, previous, changed_at, log_index FROM policy_changes
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(change)
        .collect()
    }

    /// Changes the transparency log has not recorded yet, oldest first.
    pub async fn unlogged_policy_changes(&self, limit: u32) -> Result<Vec<PolicyChange>> {
        sqlx::query(
            "SELECT seq, subject, min_tier, previous, changed_at, log_index FROM policy_changes
             WHERE log_index IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(change)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_are_recorded_once_each_and_survive_reopen() {
        let dir = tempfile_dir();
        let store = Store::open(&dir).await.unwrap();
        let c = store
            .set_policy("mlp", Some(Tier::Tee))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.min_tier, c.previous), (Some(Tier::Tee), None));
        assert!(
            store
                .set_policy("mlp", Some(Tier::Tee))
                .await
                .unwrap()
                .is_none()
        );
        let c = store
            .set_policy("mlp", Some(Tier::Zk))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.min_tier, c.previous), (Some(Tier::Zk), Some(Tier::Tee)));
        let p = store
            .policies_for(&["mlp".into(), "other".into()])
            .await
            .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].min_tier, Tier::Zk);
        let c = store.set_policy("mlp", None).await.unwrap().unwrap();
        assert_eq!((c.min_tier, c.previous), (None, Some(Tier::Zk)));
        assert!(
            store
                .policies_for(&["mlp".into()])
                .await
                .unwrap()
                .is_empty()
        );
        drop(store);

        let store = Store::open(&dir).await.unwrap();
        let all = store.policy_changes(0, 100).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        let unlogged = store.unlogged_policy_changes(100).await.unwrap();
        assert_eq!(unlogged.len(), 3);
        store
            .mark_logged(crate::LogOutbox::Policy, all[0].seq, 41)
            .await
            .unwrap();
        let unlogged = store.unlogged_policy_changes(100).await.unwrap();
        assert_eq!(unlogged.len(), 2);
        assert_eq!(
            store.policy_changes(0, 1).await.unwrap()[0].log_index,
            Some(41)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vouch-policy-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
