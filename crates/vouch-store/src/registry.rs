//! The model registry: content-addressed models and the name@version pointers to them.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use vouch_core::{ModelDigest, ModelSignature};

use crate::db::columns;
use crate::{Result, Store, StoreError, now_rfc3339};

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

fn parse_digest(s: &str) -> Result<ModelDigest> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

/// Columns `name, version, digest, updated_at`, digest unparsed (rusqlite's row closures
/// return its own error only).
type RawPointer = (String, String, String, String);

const POINTER_COLUMNS: &str = "name, version, digest, updated_at";

fn pointer((name, version, digest, updated_at): RawPointer) -> Result<NamePointer> {
    Ok(NamePointer {
        name,
        version,
        digest: parse_digest(&digest)?,
        updated_at,
    })
}

/// Columns `digest, size_bytes, engine, signature, llm_facts, created_at`, unparsed.
type RawModel = (String, i64, String, String, Option<String>, String);

const MODEL_COLUMNS: &str = "digest, size_bytes, engine, signature, llm_facts, created_at";

fn record((digest, size, engine, sig, llm_facts, created_at): RawModel) -> Result<ModelRecord> {
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
fn names_of(c: &rusqlite::Connection, digest: &str) -> rusqlite::Result<Vec<RawPointer>> {
    c.prepare_cached(&format!(
        "SELECT {POINTER_COLUMNS} FROM model_names WHERE digest = ? ORDER BY name, seq"
    ))?
    .query_map([digest], columns::<RawPointer>)?
    .collect()
}

/// Models with their names, as read in one call.
fn records(rows: Vec<(RawModel, Vec<RawPointer>)>) -> Result<Vec<ModelRecord>> {
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
        let sig =
            serde_json::to_string(&m.signature).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (digest, size, engine) = (m.digest.to_string(), m.size_bytes as i64, m.engine.clone());
        let llm_facts = m.llm_facts.clone();
        let inserted = self
            .pool
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
        let (name, version, to) = (name.to_owned(), version.to_owned(), digest.to_string());
        self.pool
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
        type Raw = (i64, String, Option<String>, Option<String>, String, String);
        let rows: Vec<Raw> = self
            .pool
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
        let (name, version) = (name.to_owned(), version.map(str::to_owned));
        let row = self
            .pool
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
        let digest = digest.to_string();
        let row = self
            .pool
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
        let rows = self
            .pool
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
        let n: i64 = self
            .pool
            .run(|c| c.query_row("SELECT COUNT(*) FROM models", [], |r| r.get(0)))
            .await?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_core::{DType, Dim, TensorSpec};

    fn sig() -> ModelSignature {
        let spec = |n: &str| TensorSpec {
            name: n.into(),
            dtype: DType::Float32,
            shape: vec![Dim::Free(None), Dim::Fixed(4)],
        };
        ModelSignature {
            inputs: vec![spec("x")],
            outputs: vec![spec("y")],
        }
    }

    fn new_model(digest: ModelDigest) -> NewModel {
        NewModel {
            digest,
            size_bytes: 1,
            engine: "tract".into(),
            signature: sig(),
            llm_facts: None,
        }
    }

    #[tokio::test]
    async fn every_pointer_move_is_stored_with_the_move_for_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let a = ModelDigest::of_model_bytes(b"a");
        let b = ModelDigest::of_model_bytes(b"b");
        for d in [a, b] {
            store.insert_model(&new_model(d)).await.unwrap();
        }
        store.set_name("m", "1", &a, false).await.unwrap();
        store.set_name("m", "1", &a, false).await.unwrap(); // unchanged: nothing stored
        store.set_name("m", "2", &b, false).await.unwrap();
        store.set_name("m", "1", &b, true).await.unwrap(); // moved; latest stays b
        let moves: Vec<_> = store
            .unlogged_pointer_changes(100)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.version, c.from, c.to))
            .collect();
        assert_eq!(
            moves,
            vec![
                (Some("1".into()), None, a),
                (None, None, a),
                (Some("2".into()), None, b),
                (None, Some(a), b),
                (Some("1".into()), Some(a), b),
            ]
        );
        let first = store.unlogged_pointer_changes(1).await.unwrap();
        store
            .mark_logged(crate::LogOutbox::Pointer, first[0].seq, 0)
            .await
            .unwrap();
        assert_eq!(store.unlogged_pointer_changes(100).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn registry_round_trip_idempotence_and_conflicts() {
        let dir = std::env::temp_dir().join(format!("vouch-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).await.unwrap();
        let a = ModelDigest::of_model_bytes(b"a");
        let b = ModelDigest::of_model_bytes(b"b");
        for d in [a, b] {
            let m = new_model(d);
            assert!(store.insert_model(&m).await.unwrap());
            assert!(
                !store.insert_model(&m).await.unwrap(),
                "re-insert is idempotent"
            );
        }
        assert_eq!(
            store.set_name("m", "1", &a, false).await.unwrap(),
            NameChange::Created
        );
        assert_eq!(
            store.set_name("m", "1", &a, false).await.unwrap(),
            NameChange::Unchanged
        );
        assert!(matches!(
            store.set_name("m", "1", &b, false).await,
            Err(StoreError::VersionConflict { .. })
        ));
        assert_eq!(
            store.set_name("m", "2", &b, false).await.unwrap(),
            NameChange::Created
        );
        assert_eq!(
            store.resolve_name("m", None).await.unwrap().unwrap().digest,
            b
        );
        assert_eq!(
            store
                .resolve_name("m", Some("1"))
                .await
                .unwrap()
                .unwrap()
                .digest,
            a
        );
        assert_eq!(
            store.set_name("m", "1", &b, true).await.unwrap(),
            NameChange::Moved { from: a }
        );
        assert_eq!(
            store
                .resolve_name("m", None)
                .await
                .unwrap()
                .unwrap()
                .version,
            "1",
            "latest follows the last change"
        );
        let rec = store.model(&b).await.unwrap().unwrap();
        assert_eq!(rec.names.len(), 2);
        assert_eq!(rec.signature, sig());
        assert_eq!(store.count_models().await.unwrap(), 2);
        assert!(store.resolve_name("nope", None).await.unwrap().is_none());

        store
            .blobs
            .put_model(&a, bytes::Bytes::from_static(b"a"))
            .await
            .unwrap();
        assert_eq!(&store.blobs.get_model(&a).await.unwrap()[..], b"a");
        std::fs::write(dir.join("blobs/models").join(a.0.hex()), b"tampered").unwrap();
        assert!(matches!(
            store.blobs.get_model(&a).await,
            Err(StoreError::Corrupt(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
