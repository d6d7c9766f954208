//! The model registry: content-addressed models and the name@version pointers to them.

use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use vouch_core::{ModelDigest, ModelSignature};

use crate::{Result, Store, StoreError, now_rfc3339};

/// What registration stores about a model.
pub struct NewModel {
    pub digest: ModelDigest,
    pub size_bytes: u64,
    pub engine: String,
    pub signature: ModelSignature,
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

fn pointer(row: &SqliteRow) -> Result<NamePointer> {
    Ok(NamePointer {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        digest: parse_digest(row.try_get("digest")?)?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Inserts a model row; returns false when the digest was already registered (idempotent).
    pub async fn insert_model(&self, m: &NewModel) -> Result<bool> {
        let sig =
            serde_json::to_string(&m.signature).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let res = sqlx::query(
            "INSERT INTO models (digest, size_bytes, engine, signature, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(digest) DO NOTHING",
        )
        .bind(m.digest.to_string())
        .bind(m.size_bytes as i64)
        .bind(&m.engine)
        .bind(sig)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
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
        // IMMEDIATE: a read-then-write transaction that starts deferred fails at once with
        // SQLITE_BUSY when another writer (the log committer) commits in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT digest FROM model_names WHERE name = ? AND version = ?")
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        let change = match existing {
            Some(d) if d == digest.to_string() => return Ok(NameChange::Unchanged),
            Some(d) if !replace => {
                return Err(StoreError::VersionConflict {
                    name: name.into(),
                    version: version.into(),
                    existing: d,
                    requested: digest.to_string(),
                });
            }
            Some(d) => NameChange::Moved {
                from: parse_digest(&d)?,
            },
            None => NameChange::Created,
        };
        let latest_before: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM model_names WHERE name = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_names")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO model_names (name, version, digest, seq, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(name, version) DO UPDATE SET digest = excluded.digest, seq = excluded.seq,
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(version)
        .bind(digest.to_string())
        .bind(seq)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        // The moved pointer now has the highest seq: it is what `name` alone resolves to.
        let from = match &change {
            NameChange::Moved { from } => Some(from.to_string()),
            _ => None,
        };
        let to = digest.to_string();
        let now = now_rfc3339();
        let mut moves = vec![(Some(version), from)];
        if latest_before.as_deref() != Some(to.as_str()) {
            moves.push((None, latest_before));
        }
        for (v, from) in moves {
            sqlx::query(
                "INSERT INTO pointer_changes (name, version, from_digest, to_digest, changed_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(name)
            .bind(v)
            .bind(from)
            .bind(&to)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(change)
    }

    /// Pointer moves not yet in the transparency log, oldest first.
    pub async fn unlogged_pointer_changes(&self, limit: u32) -> Result<Vec<PointerChangeRow>> {
        let rows = sqlx::query(
            "SELECT seq, name, version, from_digest, to_digest, changed_at FROM pointer_changes
             WHERE log_index IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_digest")?;
                Ok(PointerChangeRow {
                    seq: r.try_get("seq")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    from: from.as_deref().map(parse_digest).transpose()?,
                    to: parse_digest(r.try_get("to_digest")?)?,
                    changed_at: r.try_get("changed_at")?,
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
        let row = match version {
            Some(v) => {
                sqlx::query("SELECT name, version, digest, updated_at FROM model_names WHERE name = ? AND version = ?")
                    .bind(name)
                    .bind(v)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(
                    "SELECT name, version, digest, updated_at FROM model_names WHERE name = ? ORDER BY seq DESC LIMIT 1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref().map(pointer).transpose()
    }

    pub async fn model(&self, digest: &ModelDigest) -> Result<Option<ModelRecord>> {
        let row = sqlx::query(
            "SELECT digest, size_bytes, engine, signature, created_at FROM models WHERE digest = ?",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let mut rec = self.record(&r)?;
                rec.names = self.names_of(digest).await?;
                Ok(Some(rec))
            }
        }
    }

    /// Models newest first, with their names, paginated.
    pub async fn list_models(&self, limit: u32, offset: u32) -> Result<Vec<ModelRecord>> {
        let rows = sqlx::query(
            "SELECT digest, size_bytes, engine, signature, created_at FROM models
             ORDER BY created_at DESC, digest LIMIT ? OFFSET ?",
        )
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut rec = self.record(r)?;
            rec.names = self.names_of(&rec.digest).await?;
            out.push(rec);
        }
        Ok(out)
    }

    pub async fn count_models(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM models")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn names_of(&self, digest: &ModelDigest) -> Result<Vec<NamePointer>> {
        let rows = sqlx::query(
            "SELECT name, version, digest, updated_at FROM model_names WHERE digest = ? ORDER BY name, seq",
        )
        .bind(digest.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pointer).collect()
    }

    fn record(&self, r: &SqliteRow) -> Result<ModelRecord> {
        let sig: String = r.try_get("signature")?;
        Ok(ModelRecord {
            digest: parse_digest(r.try_get("digest")?)?,
            size_bytes: r.try_get::<i64, _>("size_bytes")? as u64,
            engine: r.try_get("engine")?,
            signature: serde_json::from_str(&sig)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: r.try_get("created_at")?,
            names: Vec::new(),
        })
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
