//! The model registry: content-addressed models and the name@version pointers to them.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use vouch_core::{ModelDigest, ModelSignature};

use crate::db::columns;
use crate::{Backend, Result, Store, StoreError, now_rfc3339, pg};

/// What registration stores about a model.
pub struct NewModel {
    pub digest: ModelDigest,
    pub size_bytes: u64,
    pub engine: String,
    pub signature: ModelSignature,
    /// An LLM's facts read at registration, as JSON the node owns (`None` for ONNX).
    pub llm_facts: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NamePointer {
    pub name: String,
    pub version: String,
    pub digest: ModelDigest,
    pub updated_at: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelRecord {
    pub digest: ModelDigest,
    pub size_bytes: u64,
    pub engine: String,
    pub signature: ModelSignature,
    /// See [`NewModel::llm_facts`].
    pub llm_facts: Option<String>,
    pub created_at: String,
    /// Every name@version currently pointing here.
    pub names: Vec<NamePointer>,
}

/// What a pointer update did; `Moved` is what the transparency log must record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameChange {
    Created,
    Unchanged,
    Moved { from: ModelDigest },
}

/// One stored pointer move (`version: None`: the name's default pointer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointerChangeRow {
    pub seq: i64,
    pub name: String,
    pub version: Option<String>,
    pub from: Option<ModelDigest>,
    pub to: ModelDigest,
    pub changed_at: String,
}

pub(crate) fn parse_digest(s: &str) -> Result<ModelDigest> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

/// Columns `name, version, digest, updated_at`, digest unparsed (rusqlite's row closures
/// return its own error only).
pub(crate) type RawPointer = (String, String, String, String);

pub(crate) const POINTER_COLUMNS: &str = "name, version, digest, updated_at";

pub(crate) fn pointer((name, version, digest, updated_at): RawPointer) -> Result<NamePointer> {
    Ok(NamePointer {
        name,
        version,
        digest: parse_digest(&digest)?,
        updated_at,
    })
}

/// Columns `digest, size_bytes, engine, signature, llm_facts, created_at`, unparsed.
pub(crate) type RawModel = (String, i64, String, String, Option<String>, String);

pub(crate) const MODEL_COLUMNS: &str =
    "digest, size_bytes, engine, signature, llm_facts, created_at";

pub(crate) fn record(
    (digest, size, engine, sig, llm_facts, created_at): RawModel,
) -> Result<ModelRecord> {
    Ok(ModelRecord {
        digest: parse_digest(&digest)?,
        size_bytes: size as u64,
        engine,
        signature: serde_json::from_str(&sig).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        llm_facts,
        created_at,
        names: Vec::new(),
    })
}

/// Every name@version pointing at `digest`.
pub(crate) fn names_of(
    c: &rusqlite::Connection,
    digest: &str,
) -> rusqlite::Result<Vec<RawPointer>> {
    c.prepare_cached(&format!(
        "SELECT {POINTER_COLUMNS} FROM model_names WHERE digest = ? ORDER BY name, seq"
    ))?
    .query_map([digest], columns::<RawPointer>)?
    .collect()
}

/// Models with their names, as read in one call.
pub(crate) fn records(rows: Vec<(RawModel, Vec<RawPointer>)>) -> Result<Vec<ModelRecord>> {
    rows.into_iter()
        .map(|(m, names)| {
            let mut rec = record(m)?;
            rec.names = names.into_iter().map(pointer).collect::<Result<_>>()?;
            Ok(rec)
        })
        .collect()
}

impl Store {
    /// Inserts a model row; returns false when the digest was already registered (idempotent).
    pub async fn insert_model(&self, m: &NewModel) -> Result<bool> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::registry::insert_model(pg, m).await,
        };
        let sig =
            serde_json::to_string(&m.signature).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (digest, size, engine) = (m.digest.to_string(), m.size_bytes as i64, m.engine.clone());
        let llm_facts = m.llm_facts.clone();
        let inserted = db
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO models (digest, size_bytes, engine, signature, llm_facts, created_at)
                     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING",
                )?
                .execute(params![digest, size, engine, sig, llm_facts, now_rfc3339()])
            })
            .await?;
        Ok(inserted == 1)
    }

    /// Points `name@version` at `digest`. An existing pointer to another digest is a conflict
    /// unless `replace` is set, so a version is never silently re-targeted.
    pub async fn set_name(
        &self,
        name: &str,
        version: &str,
        digest: &ModelDigest,
        replace: bool,
    ) -> Result<NameChange> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::registry::set_name(pg, name, version, digest, replace).await;
            }
        };
        let (name, version, to) = (name.to_owned(), version.to_owned(), digest.to_string());
        db
            .call(move |c| {
                // IMMEDIATE: a read-then-write transaction that starts deferred fails at once
                // with SQLITE_BUSY when another writer (the log committer) commits in between.
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT digest FROM model_names WHERE name = ? AND version = ?",
                        params![name, version],
                        |r| r.get(0),
                    )
                    .optional()?;
                let change = match existing {
                    Some(d) if d == to => return Ok(NameChange::Unchanged),
                    Some(d) if !replace => {
                        return Err(StoreError::VersionConflict {
                            name,
                            version,
                            existing: d,
                            requested: to,
                        });
                    }
                    Some(d) => NameChange::Moved {
                        from: parse_digest(&d)?,
                    },
                    None => NameChange::Created,
                };
                let latest_before: Option<String> = tx
                    .query_row(
                        "SELECT digest FROM model_names WHERE name = ? ORDER BY seq DESC LIMIT 1",
                        [&name],
                        |r| r.get(0),
                    )
                    .optional()?;
                let seq: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM model_names",
                    [],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO model_names (name, version, digest, seq, updated_at) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT(name, version) DO UPDATE SET digest = excluded.digest, seq = excluded.seq,
                     updated_at = excluded.updated_at",
                    params![name, version, to, seq, now_rfc3339()],
                )?;
                // The moved pointer now has the highest seq: it is what `name` alone resolves to.
                let from = match &change {
                    NameChange::Moved { from } => Some(from.to_string()),
                    _ => None,
                };
                let now = now_rfc3339();
                let mut moves = vec![(Some(version.as_str()), from)];
                if latest_before.as_deref() != Some(to.as_str()) {
                    moves.push((None, latest_before));
                }
                for (v, from) in moves {
                    tx.execute(
                        "INSERT INTO pointer_changes (name, version, from_digest, to_digest, changed_at)
                         VALUES (?, ?, ?, ?, ?)",
                        params![name, v, from, to, now],
                    )?;
                }
                tx.commit()?;
                Ok(change)
            })
            .await
    }

    /// Pointer moves not yet in the transparency log, oldest first.
    pub async fn unlogged_pointer_changes(&self, limit: u32) -> Result<Vec<PointerChangeRow>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::registry::unlogged_pointer_changes(pg, limit).await;
            }
        };
        type Raw = (i64, String, Option<String>, Option<String>, String, String);
        let rows: Vec<Raw> = db
            .run(move |c| {
                c.prepare_cached(
                    "SELECT seq, name, version, from_digest, to_digest, changed_at FROM pointer_changes
                     WHERE log_index IS NULL ORDER BY seq LIMIT ?",
                )?
                .query_map([i64::from(limit)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?
                .collect()
            })
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

    /// `name@version`, or the latest registered version of `name` when `version` is `None`.
    pub async fn resolve_name(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<NamePointer>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::registry::resolve_name(pg, name, version).await,
        };
        let (name, version) = (name.to_owned(), version.map(str::to_owned));
        let row = db
            .run(move |c| match version {
                Some(v) => c
                    .prepare_cached(&format!(
                        "SELECT {POINTER_COLUMNS} FROM model_names WHERE name = ? AND version = ?"
                    ))?
                    .query_row(params![name, v], columns::<RawPointer>)
                    .optional(),
                None => c
                    .prepare_cached(&format!(
                        "SELECT {POINTER_COLUMNS} FROM model_names WHERE name = ? ORDER BY seq DESC LIMIT 1"
                    ))?
                    .query_row([name], columns::<RawPointer>)
                    .optional(),
            })
            .await?;
        row.map(pointer).transpose()
    }

    pub async fn model(&self, digest: &ModelDigest) -> Result<Option<ModelRecord>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::registry::model(pg, digest).await,
        };
        let digest = digest.to_string();
        let row = db
            .run(move |c| {
                let Some(m) = c
                    .prepare_cached(&format!(
                        "SELECT {MODEL_COLUMNS} FROM models WHERE digest = ?"
                    ))?
                    .query_row([&digest], columns::<RawModel>)
                    .optional()?
                else {
                    return Ok(None);
                };
                Ok(Some((m, names_of(c, &digest)?)))
            })
            .await?;
        Ok(records(row.into_iter().collect())?.pop())
    }

    /// Models newest first, with their names, paginated.
    pub async fn list_models(&self, limit: u32, offset: u32) -> Result<Vec<ModelRecord>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::registry::list_models(pg, limit, offset).await,
        };
        let rows = db
            .run(move |c| {
                let models: Vec<RawModel> = c
                    .prepare_cached(&format!(
                        "SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at DESC, digest LIMIT ? OFFSET ?"
                    ))?
                    .query_map([i64::from(limit), i64::from(offset)], columns::<RawModel>)?
                    .collect::<rusqlite::Result<_>>()?;
                models
                    .into_iter()
                    .map(|m| {
                        let names = names_of(c, &m.0)?;
                        Ok((m, names))
                    })
                    .collect()
            })
            .await?;
        records(rows)
    }

    pub async fn count_models(&self) -> Result<u64> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::registry::count_models(pg).await,
        };
        let n: i64 = db
            .run(|c| c.query_row("SELECT COUNT(*) FROM models", [], |r| r.get(0)))
            .await?;
        Ok(n as u64)
    }
}
