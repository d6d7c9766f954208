//! Policies on PostgreSQL ([`crate::policy`] on SQLite).

use vouch_core::Tier;

use super::Pg;
use super::registry::bump_catalog;
use crate::policy::{
    CHANGE_COLUMNS, ModelPolicy, PolicyChange, RawChange, change, policy_row, tier,
};
use crate::{Result, now_rfc3339};

pub(crate) async fn set_policy(
    pg: &Pg,
    subject: &str,
    min_tier: Option<Tier>,
) -> Result<Option<PolicyChange>> {
    let mut tx = pg.pool().begin().await?;
    // Read-then-write on one subject, serialised across nodes.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('vouch.policy:' || $1, 0))")
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    let previous: Option<String> =
        sqlx::query_scalar("SELECT min_tier FROM model_policies WHERE subject = $1")
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
                "INSERT INTO model_policies (subject, min_tier, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject) DO UPDATE SET min_tier = excluded.min_tier,
             updated_at = excluded.updated_at",
            )
            .bind(subject)
            .bind(t.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM model_policies WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?
        }
    };
    let row: RawChange = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO policy_changes (subject, min_tier, previous, changed_at)
         VALUES ($1, $2, $3, $4) RETURNING {CHANGE_COLUMNS}"
    )))
    .bind(subject)
    .bind(min_tier.map(Tier::as_str))
    .bind(previous.map(Tier::as_str))
    .bind(&now)
    .fetch_one(&mut *tx)
    .await?;
    bump_catalog(&mut tx).await?;
    tx.commit().await?;
    change(row).map(Some)
}

pub(crate) async fn policies_for(pg: &Pg, subjects: &[String]) -> Result<Vec<ModelPolicy>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT subject, min_tier, updated_at FROM model_policies WHERE subject = ANY($1)",
    )
    .bind(subjects)
    .fetch_all(pg.pool())
    .await?;
    // In the order asked, as on SQLite.
    let mut out = Vec::with_capacity(rows.len());
    for s in subjects {
        if let Some(row) = rows.iter().find(|r| &r.0 == s).cloned() {
            out.push(policy_row(row)?);
        }
    }
    Ok(out)
}

pub(crate) async fn all_policies(pg: &Pg, limit: u32) -> Result<Vec<ModelPolicy>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT subject, min_tier, updated_at FROM model_policies ORDER BY subject LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter().map(policy_row).collect()
}

pub(crate) async fn recent_policy_changes(pg: &Pg, limit: u32) -> Result<Vec<PolicyChange>> {
    let rows: Vec<RawChange> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM policy_changes ORDER BY seq DESC LIMIT $1"
    )))
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter().map(change).collect()
}

pub(crate) async fn policy_changes(
    pg: &Pg,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<PolicyChange>> {
    let rows: Vec<RawChange> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM policy_changes WHERE seq > $1 ORDER BY seq LIMIT $2"
    )))
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter().map(change).collect()
}

pub(crate) async fn unlogged_policy_changes(pg: &Pg, limit: u32) -> Result<Vec<PolicyChange>> {
    let rows: Vec<RawChange> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM policy_changes WHERE log_index IS NULL ORDER BY seq LIMIT $1"
    )))
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter().map(change).collect()
}
