//! Model configurations (system prompt, generation settings) and the append-only history of
//! their changes, an outbox the transparency log drains (as for policies): a change is written
//! with its history row in one transaction, so a crash never loses an entry, only delays it.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use vouch_core::{Digest, ModelDigest};

use crate::db::columns;
use crate::{Backend, Result, Store, StoreError, now_rfc3339, pg};

/// A model's configuration now in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfig {
    pub model: ModelDigest,
    pub config: serde_json::Value,
    pub config_digest: Digest,
    pub updated_at: String,
}

/// One entry of the configuration history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigChange {
    pub seq: i64,
    pub model: ModelDigest,
    pub config: serde_json::Value,
    pub config_digest: Digest,
    pub changed_at: String,
    pub log_index: Option<i64>,
}

pub(crate) fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what} {s:?}: {e}")))
}

pub(crate) fn json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored config: {e}")))
}

pub(crate) const CHANGE_COLUMNS: &str = "seq, model, config, config_digest, changed_at, log_index";

/// A `config_changes` row as stored.
pub(crate) type RawChange = (i64, String, String, String, String, Option<i64>);

pub(crate) fn change(
    (seq, model, config, digest, changed_at, log_index): RawChange,
) -> Result<ConfigChange> {
    Ok(ConfigChange {
        seq,
        model: parse(&model, "model digest")?,
        config: json(&config)?,
        config_digest: parse(&digest, "config digest")?,
        changed_at,
        log_index,
    })
}

impl Store {
    /// Sets `model`'s configuration (`canonical`: its RFC 8785 bytes, `digest`: their SHA-256).
    /// Returns the history entry, or `None` when the same configuration is already in force.
    pub async fn set_model_config(
        &self,
        model: &ModelDigest,
        canonical: &str,
        digest: &Digest,
    ) -> Result<Option<ConfigChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::model_config::set_model_config(pg, model, canonical, digest).await;
            }
        };
        let (model, canonical, digest) =
            (model.to_string(), canonical.to_owned(), digest.to_string());
        let row = db
            .run(move |c| {
                // IMMEDIATE: read-then-write under concurrent log commits (see `set_name`).
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let current: Option<String> = tx
                    .query_row(
                        "SELECT config_digest FROM model_configs WHERE model = ?",
                        [&model],
                        |r| r.get(0),
                    )
                    .optional()?;
                if current.as_deref() == Some(digest.as_str()) {
                    return Ok(None);
                }
                let now = now_rfc3339();
                tx.execute(
                    "INSERT INTO model_configs (model, config, config_digest, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT(model) DO UPDATE SET config = excluded.config,
                         config_digest = excluded.config_digest, updated_at = excluded.updated_at",
                    params![model, canonical, digest, now],
                )?;
                let row = tx.query_row(
                    &format!(
                        "INSERT INTO config_changes (model, config, config_digest, changed_at) VALUES (?, ?, ?, ?)
                         RETURNING {CHANGE_COLUMNS}"
                    ),
                    params![model, canonical, digest, now],
                    columns::<RawChange>,
                )?;
                tx.commit()?;
                Ok(Some(row))
            })
            .await?;
        row.map(change).transpose()
    }

    /// The configuration in force for `model`, if any.
    pub async fn model_config(&self, model: &ModelDigest) -> Result<Option<ModelConfig>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::model_config::model_config(pg, model).await,
        };
        let key = model.to_string();
        let row: Option<(String, String, String)> = db
            .run(move |c| {
                c.prepare_cached(
                    "SELECT config, config_digest, updated_at FROM model_configs WHERE model = ?",
                )?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
            })
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

    /// `model`'s configuration history, newest first, at most `limit` changes.
    pub async fn config_history(
        &self,
        model: &ModelDigest,
        limit: u32,
    ) -> Result<Vec<ConfigChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::model_config::config_history(pg, model, limit).await;
            }
        };
        let key = model.to_string();
        db.run(move |c| {
            c.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM config_changes
                     WHERE model = ? ORDER BY seq DESC LIMIT ?"
            ))?
            .query_map(params![key, i64::from(limit)], columns::<RawChange>)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(change)
        .collect()
    }

    /// Changes not yet in the transparency log, oldest first.
    pub async fn unlogged_config_changes(&self, limit: u32) -> Result<Vec<ConfigChange>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::model_config::unlogged_config_changes(pg, limit).await;
            }
        };
        db.run(move |c| {
            c.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM config_changes
                     WHERE log_index IS NULL ORDER BY seq LIMIT ?"
            ))?
            .query_map([i64::from(limit)], columns::<RawChange>)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(change)
        .collect()
    }
}
