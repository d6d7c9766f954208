//! The registry on PostgreSQL ([`crate::registry`] on SQLite): same rows, same answers.

use sqlx::{Postgres, Transaction};
use vouch_core::ModelDigest;

use super::Pg;
use crate::registry::{
    MODEL_COLUMNS, NameChange, NamePointer, NewModel, POINTER_COLUMNS, PointerChangeRow, RawModel,
    RawPointer, parse_digest, pointer, records,
};
use crate::{Result, StoreError, now_rfc3339};

pub(crate) async fn insert_model(pg: &Pg, m: &NewModel) -> Result<bool> {
    let sig =
        serde_json::to_string(&m.signature).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let done = sqlx::query(
        "INSERT INTO models (digest, size_bytes, engine, signature, llm_facts, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING",
    )
    .bind(m.digest.to_string())
    .bind(m.size_bytes as i64)
    .bind(&m.engine)
    .bind(sig)
    .bind(&m.llm_facts)
    .bind(now_rfc3339())
    .execute(pg.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Bumps the catalog's version in `tx`; at commit PostgreSQL notifies `vouch_catalog`, so every
/// node drops the caches this change made stale (`crate::pg::CatalogWatch`).
pub(crate) async fn bump_catalog(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
    sqlx::query(
        "WITH v AS (UPDATE catalog_version SET version = version + 1 RETURNING version)
         SELECT pg_notify('vouch_catalog', version::text) FROM v",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn set_name(
    pg: &Pg,
    name: &str,
    version: &str,
    digest: &ModelDigest,
    replace: bool,
) -> Result<NameChange> {
    let to = digest.to_string();
    let mut tx = pg.pool().begin().await?;
    // One writer per name across every node: what `name` resolved to before this move is read
    // and changed under the same lock, so two nodes moving one name log both moves in order.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('vouch.name:' || $1, 0))")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let existing: Option<String> =
        sqlx::query_scalar("SELECT digest FROM model_names WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
    let change = match existing {
        Some(d) if d == to => return Ok(NameChange::Unchanged),
        Some(d) if !replace => {
            return Err(StoreError::VersionConflict {
                name: name.to_owned(),
                version: version.to_owned(),
                existing: d,
                requested: to,
            });
        }
        Some(d) => NameChange::Moved {
            from: parse_digest(&d)?,
        },
        None => NameChange::Created,
    };
    let latest_before: Option<String> = sqlx::query_scalar(
        "SELECT digest FROM model_names WHERE name = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO model_names (name, version, digest, seq, updated_at)
         VALUES ($1, $2, $3, nextval('model_names_seq'), $4)
         ON CONFLICT (name, version) DO UPDATE SET digest = excluded.digest, seq = excluded.seq,
         updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(version)
    .bind(&to)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let from = match &change {
        NameChange::Moved { from } => Some(from.to_string()),
        _ => None,
    };
    let mut moves = vec![(Some(version), from)];
    if latest_before.as_deref() != Some(to.as_str()) {
        moves.push((None, latest_before));
    }
    for (v, from) in moves {
        sqlx::query(
            "INSERT INTO pointer_changes (name, version, from_digest, to_digest, changed_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(v)
        .bind(from)
        .bind(&to)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    bump_catalog(&mut tx).await?;
    tx.commit().await?;
    Ok(change)
}

pub(crate) async fn unlogged_pointer_changes(pg: &Pg, limit: u32) -> Result<Vec<PointerChangeRow>> {
    type Raw = (i64, String, Option<String>, Option<String>, String, String);
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT seq, name, version, from_digest, to_digest, changed_at FROM pointer_changes
         WHERE log_index IS NULL ORDER BY seq LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?;
    rows.into_iter()
        .map(|(seq, name, version, from, to, changed_at)| {
            Ok(PointerChangeRow {
                seq,
                name,
                version,
                from: from.as_deref().map(parse_digest).transpose()?,
                to: parse_digest(&to)?,
                changed_at,
            })
        })
        .collect()
}

pub(crate) async fn resolve_name(
    pg: &Pg,
    name: &str,
    version: Option<&str>,
) -> Result<Option<NamePointer>> {
    let row: Option<RawPointer> = match version {
        Some(v) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {POINTER_COLUMNS} FROM model_names WHERE name = $1 AND version = $2"
            )))
            .bind(name)
            .bind(v)
            .fetch_optional(pg.pool())
            .await?
        }
        None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {POINTER_COLUMNS} FROM model_names WHERE name = $1 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(pg.pool())
        .await?,
    };
    row.map(pointer).transpose()
}

async fn names_of(pg: &Pg, digest: &str) -> Result<Vec<RawPointer>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {POINTER_COLUMNS} FROM model_names WHERE digest = $1 ORDER BY name, seq"
    )))
    .bind(digest)
    .fetch_all(pg.pool())
    .await?)
}

pub(crate) async fn model(
    pg: &Pg,
    digest: &ModelDigest,
) -> Result<Option<crate::registry::ModelRecord>> {
    let digest = digest.to_string();
    let m: Option<RawModel> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MODEL_COLUMNS} FROM models WHERE digest = $1"
    )))
    .bind(&digest)
    .fetch_optional(pg.pool())
    .await?;
    let Some(m) = m else { return Ok(None) };
    let names = names_of(pg, &digest).await?;
    Ok(records(vec![(m, names)])?.pop())
}

pub(crate) async fn list_models(
    pg: &Pg,
    limit: u32,
    offset: u32,
) -> Result<Vec<crate::registry::ModelRecord>> {
    let models: Vec<RawModel> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at DESC, digest LIMIT $1 OFFSET $2"
    )))
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(pg.pool())
    .await?;
    let mut rows = Vec::with_capacity(models.len());
    for m in models {
        let names = names_of(pg, &m.0).await?;
        rows.push((m, names));
    }
    records(rows)
}

pub(crate) async fn count_models(pg: &Pg) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM models")
        .fetch_one(pg.pool())
        .await?;
    Ok(n as u64)
}
