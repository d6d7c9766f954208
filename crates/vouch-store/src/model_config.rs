//! Model configurations (system prompt, generation settings) and the append-only history of
//! their changes, an outbox the transparency log drains (as for policies): a change is written
//! with its history row in one transaction, so a crash never loses an entry, only delays it.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use vouch_core::{Digest, ModelDigest};

use crate::db::columns;
use crate::{Result, Store, StoreError, now_rfc3339};

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

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what} {s:?}: {e}")))
}

fn json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored config: {e}")))
}

const CHANGE_COLUMNS: &str = "seq, model, config, config_digest, changed_at, log_index";

/// A `config_changes` row as stored.
type RawChange = (i64, String, String, String, String, Option<i64>);

fn change((seq, model, config, digest, changed_at, log_index): RawChange) -> Result<ConfigChange> {
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
        let (model, canonical, digest) =
            (model.to_string(), canonical.to_owned(), digest.to_string());
        let row = self
            .pool
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
        let key = model.to_string();
        let row: Option<(String, String, String)> = self
            .pool
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

    /// Changes not yet in the transparency log, oldest first.
    pub async fn unlogged_config_changes(&self, limit: u32) -> Result<Vec<ConfigChange>> {
        self.pool
            .run(move |c| {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_change_is_recorded_once_and_drained_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let m = ModelDigest(Digest::of(b"model"));
        let cfg = r#"{"system_prompt":"be brief"}"#;
        let d = Digest::of(cfg.as_bytes());
        let c = store.set_model_config(&m, cfg, &d).await.unwrap().unwrap();
        assert_eq!(c.config_digest, d);
        assert!(store.set_model_config(&m, cfg, &d).await.unwrap().is_none());
        assert_eq!(
            store.model_config(&m).await.unwrap().unwrap().config_digest,
            d
        );
        let unlogged = store.unlogged_config_changes(10).await.unwrap();
        assert_eq!(unlogged.len(), 1);
        store
            .mark_logged(crate::LogOutbox::Config, c.seq, 7)
            .await
            .unwrap();
        assert!(store.unlogged_config_changes(10).await.unwrap().is_empty());
        let cfg2 = r#"{"system_prompt":"be verbose"}"#;
        let d2 = Digest::of(cfg2.as_bytes());
        store
            .set_model_config(&m, cfg2, &d2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.model_config(&m).await.unwrap().unwrap().config_digest,
            d2
        );
        assert_eq!(store.unlogged_config_changes(10).await.unwrap().len(), 1);
    }
}
