//! Model configurations on PostgreSQL ([`crate::model_config`] on SQLite).

use vouch_core::{Digest, ModelDigest};

use super::Pg;
use super::registry::bump_catalog;
use crate::model_config::{
    CHANGE_COLUMNS, ConfigChange, ModelConfig, RawChange, change, json, parse,
};
use crate::{Result, now_rfc3339};

pub(crate) async fn set_model_config(
    pg: &Pg,
    model: &ModelDigest,
    canonical: &str,
    digest: &Digest,
) -> Result<Option<ConfigChange>> {
    let (key, digest) = (model.to_string(), digest.to_string());
    let mut tx = pg.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('vouch.config:' || $1, 0))")
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT config_digest FROM model_configs WHERE model = $1")
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
    if current.as_deref() == Some(digest.as_str()) {
        return Ok(None);
    }
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO model_configs (model, config, config_digest, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (model) DO UPDATE SET config = excluded.config,
             config_digest = excluded.config_digest, updated_at = excluded.updated_at",
    )
    .bind(&key)
    .bind(canonical)
    .bind(&digest)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let row: RawChange = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO config_changes (model, config, config_digest, changed_at)
         VALUES ($1, $2, $3, $4) RETURNING {CHANGE_COLUMNS}"
    )))
    .bind(&key)
    .bind(canonical)
    .bind(&digest)
    .bind(&now)
    .fetch_one(&mut *tx)
    .await?;
    bump_catalog(&mut tx).await?;
    tx.commit().await?;
    change(row).map(Some)
}

pub(crate) async fn model_config(pg: &Pg, model: &ModelDigest) -> Result<Option<ModelConfig>> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT config, config_digest, updated_at FROM model_configs WHERE model = $1",
    )
    .bind(model.to_string())
    .fetch_optional(pg.pool())
    .await?;
    row.map(|(config, digest, updated_at)| {
        Ok(ModelConfig {
            model: *model,
            config: json(&config)?,
            config_digest: parse(&digest, "config digest")?,
            updated_at,
        })
    })
    .transpose()
}

pub(crate) async fn unlogged_config_changes(pg: &Pg, limit: u32) -> Result<Vec<ConfigChange>> {
    let rows: Vec<RawChange> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM config_changes WHERE log_index IS NULL ORDER BY seq LIMIT $1"
    )))
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter().map(change).collect()
}

pub(crate) async fn config_history(
    pg: &Pg,
    model: &ModelDigest,
    limit: u32,
) -> Result<Vec<ConfigChange>> {
    let rows: Vec<RawChange> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM config_changes WHERE model = $1 ORDER BY seq DESC LIMIT $2"
    )))
    .bind(model.to_string())
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter().map(change).collect()
}
