//! The zk tier's tables: per-model analysis results and durable proof jobs. Schema:
//! `migrations/zk/` (versions 300–399). Payloads (analysis info, receipts, inputs, evidence) are
//! JSON text the server produces, so this crate needs nothing from `vouch-zk`.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use vouch_core::{Digest, ModelDigest};

use crate::db::columns;
use crate::{Result, Store, StoreError, now_rfc3339};

/// Applies the zk migrations (other owners' versions are left alone).
pub async fn migrate(store: &Store) -> Result<()> {
    crate::migrate_locked(store.sqlite_db("zk proof jobs")?, crate::migrate::ZK).await?;
    Ok(())
}

/// What zk analysis recorded for a model.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ZkModelRow {
    pub digest: ModelDigest,
    /// `analysing`, `available` or `unavailable`.
    pub status: String,
    pub reason: Option<String>,
    pub vk_digest: Option<String>,
    /// `vouch_zk::ZkModelInfo` as JSON.
    pub info: Option<String>,
    pub updated_at: String,
}

/// A proof job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ZkJobRow {
    pub id: String,
    pub model: ModelDigest,
    pub receipt_hash: Digest,
    pub receipt: String,
    pub inputs: String,
    pub cancel_hash: Digest,
    pub status: String,
    pub stage: String,
    pub progress: f64,
    pub estimate_ms: u64,
    pub evidence: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub prove_ms: Option<u64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A new job, queued.
pub struct NewZkJob<'a> {
    pub id: &'a str,
    pub model: ModelDigest,
    pub receipt_hash: Digest,
    pub receipt: &'a str,
    pub inputs: &'a str,
    pub cancel_hash: Digest,
    pub estimate_ms: u64,
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("zk tables: {e}")))
}

fn u64_of(v: Option<i64>) -> Option<u64> {
    v.and_then(|x| u64::try_from(x).ok())
}

/// A `zk_models` row as stored.
type RawZkModel = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn zk_model(
    (digest, status, reason, vk_digest, info, updated_at): RawZkModel,
) -> Result<ZkModelRow> {
    Ok(ZkModelRow {
        digest: parse(&digest)?,
        status,
        reason,
        vk_digest,
        info,
        updated_at,
    })
}

/// A `zk_jobs` row (read inside a database call: its errors are the store's, not rusqlite's).
fn job(r: &Row<'_>) -> Result<ZkJobRow> {
    Ok(ZkJobRow {
        id: r.get("id")?,
        model: parse(&r.get::<_, String>("model")?)?,
        receipt_hash: parse(&r.get::<_, String>("receipt_hash")?)?,
        receipt: r.get("receipt")?,
        inputs: r.get("inputs")?,
        cancel_hash: parse(&r.get::<_, String>("cancel_hash")?)?,
        status: r.get("status")?,
        stage: r.get("stage")?,
        progress: r.get("progress")?,
        estimate_ms: u64_of(r.get("estimate_ms")?).unwrap_or(0),
        evidence: r.get("evidence")?,
        error_code: r.get("error_code")?,
        error: r.get("error")?,
        prove_ms: u64_of(r.get("prove_ms")?),
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
    })
}

/// The job columns, as a macro so queries stay static strings.
macro_rules! job_columns {
    () => {
        "id, model, receipt_hash, receipt, inputs, cancel_hash, status, stage, progress, \
         estimate_ms, evidence, error_code, error, prove_ms, created_at, started_at, finished_at"
    };
}

impl Store {
    /// Records (or replaces) what zk analysis found for a model.
    pub async fn put_zk_model(
        &self,
        digest: &ModelDigest,
        status: &str,
        reason: Option<&str>,
        vk_digest: Option<&str>,
        info: Option<&str>,
    ) -> Result<()> {
        let args = (
            digest.to_string(),
            status.to_owned(),
            reason.map(str::to_owned),
            vk_digest.map(str::to_owned),
            info.map(str::to_owned),
        );
        self.sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO zk_models (digest, status, reason, vk_digest, info, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT(digest) DO UPDATE SET status = excluded.status, reason = excluded.reason,
                     vk_digest = excluded.vk_digest, info = excluded.info, updated_at = excluded.updated_at",
                )?
                .execute(params![args.0, args.1, args.2, args.3, args.4, now_rfc3339()])
            })
            .await?;
        Ok(())
    }

    /// Every model's zk row (the server keeps them in memory).
    pub async fn zk_models(&self) -> Result<Vec<ZkModelRow>> {
        self.sqlite_db("zk proof jobs")?
            .run(|c| {
                c.prepare_cached(
                    "SELECT digest, status, reason, vk_digest, info, updated_at FROM zk_models",
                )?
                .query_map([], columns::<RawZkModel>)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?
            .into_iter()
            .map(zk_model)
            .collect()
    }

    /// Registered models that have no zk row yet (registered before the zk tier was wired).
    pub async fn models_without_zk(&self) -> Result<Vec<ModelDigest>> {
        let rows: Vec<String> = self
            .sqlite_db("zk proof jobs")?
            .run(|c| {
                c.prepare_cached(
                    "SELECT digest FROM models WHERE digest NOT IN (SELECT digest FROM zk_models)",
                )?
                .query_map([], |r| r.get(0))?
                .collect()
            })
            .await?;
        rows.iter().map(|s| parse(s)).collect()
    }

    pub async fn insert_zk_job(&self, j: &NewZkJob<'_>) -> Result<()> {
        let args = (
            j.id.to_owned(),
            j.model.to_string(),
            j.receipt_hash.to_string(),
            j.receipt.to_owned(),
            j.inputs.to_owned(),
            j.cancel_hash.to_string(),
            i64::try_from(j.estimate_ms).unwrap_or(i64::MAX),
        );
        self.sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO zk_jobs (id, model, receipt_hash, receipt, inputs, cancel_hash, status,
                     stage, progress, estimate_ms, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, 'queued', 'queued', 0, ?, ?)",
                )?
                .execute(params![
                    args.0,
                    args.1,
                    args.2,
                    args.3,
                    args.4,
                    args.5,
                    args.6,
                    now_rfc3339()
                ])
            })
            .await?;
        Ok(())
    }

    pub async fn zk_job(&self, id: &str) -> Result<Option<ZkJobRow>> {
        let id = id.to_owned();
        self.sqlite_db("zk proof jobs")?
            .call(move |c| {
                c.prepare_cached(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM zk_jobs WHERE id = ?"
                ))?
                .query_row([id], |r| Ok(job(r)))
                .optional()?
                .transpose()
            })
            .await
    }

    /// Jobs a restart must pick up again, oldest first: queued ones and those that were running
    /// when the node stopped (set back to queued).
    pub async fn requeue_open_zk_jobs(&self) -> Result<Vec<ZkJobRow>> {
        self.sqlite_db("zk proof jobs")?
            .call(|c| {
                c.execute(
                    "UPDATE zk_jobs SET status = 'queued', stage = 'queued', progress = 0, started_at = NULL
                     WHERE status = 'running'",
                    [],
                )?;
                c.prepare_cached(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM zk_jobs WHERE status = 'queued' ORDER BY created_at, id"
                ))?
                .query_map([], |r| Ok(job(r)))?
                .map(|r| r?)
                .collect()
            })
            .await
    }

    /// Marks a queued job running; false if it is no longer queued (cancelled meanwhile).
    pub async fn start_zk_job(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        let n = self
            .sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET status = 'running', stage = 'starting', started_at = ?
                     WHERE id = ? AND status = 'queued'",
                )?
                .execute(params![now_rfc3339(), id])
            })
            .await?;
        Ok(n == 1)
    }

    pub async fn zk_job_progress(&self, id: &str, stage: &str, progress: f64) -> Result<()> {
        let (id, stage) = (id.to_owned(), stage.to_owned());
        self.sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET stage = ?, progress = ? WHERE id = ? AND status = 'running'",
                )?
                .execute(params![stage, progress, id])
            })
            .await?;
        Ok(())
    }

    /// Records a proof; false when the job had left `running` (cancelled meanwhile).
    pub async fn finish_zk_job(&self, id: &str, evidence: &str, prove_ms: u64) -> Result<bool> {
        let (id, evidence) = (id.to_owned(), evidence.to_owned());
        let prove_ms = i64::try_from(prove_ms).unwrap_or(i64::MAX);
        let n = self
            .sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET status = 'done', stage = 'done', progress = 1, evidence = ?,
                     prove_ms = ?, finished_at = ? WHERE id = ? AND status = 'running'",
                )?
                .execute(params![evidence, prove_ms, now_rfc3339(), id])
            })
            .await?;
        Ok(n == 1)
    }

    /// Ends an open job as `failed` or `cancelled`; false when it had already ended.
    pub async fn end_zk_job(
        &self,
        id: &str,
        status: &str,
        error_code: &str,
        error: &str,
    ) -> Result<bool> {
        let args = (
            status.to_owned(),
            error_code.to_owned(),
            error.to_owned(),
            id.to_owned(),
        );
        let n = self
            .sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET status = ?, error_code = ?, error = ?, finished_at = ?
                     WHERE id = ? AND status IN ('queued', 'running')",
                )?
                .execute(params![args.0, args.1, args.2, now_rfc3339(), args.3])
            })
            .await?;
        Ok(n == 1)
    }

    /// Deletes jobs that ended (done, failed, cancelled) before `cutoff` (RFC 3339, as the
    /// store writes it); returns how many. Open jobs are never purged.
    pub async fn purge_ended_zk_jobs(&self, cutoff: std::time::SystemTime) -> Result<u64> {
        let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
        let n = self
            .sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.execute(
                    "DELETE FROM zk_jobs WHERE status IN ('done', 'failed', 'cancelled')
                     AND finished_at IS NOT NULL AND finished_at < ?",
                    [cutoff],
                )
            })
            .await?;
        Ok(n as u64)
    }

    /// Adds a note (e.g. the refund of the request's payment) to an ended job's error text.
    pub async fn note_zk_job(&self, id: &str, note: &str) -> Result<()> {
        let (id, note) = (id.to_owned(), note.to_owned());
        self.sqlite_db("zk proof jobs")?
            .run(move |c| {
                c.execute(
                    "UPDATE zk_jobs SET error = COALESCE(error, '') || ? WHERE id = ? AND status IN ('failed', 'cancelled')",
                    params![note, id],
                )
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewModel;
    use vouch_core::ModelSignature;

    #[tokio::test]
    async fn jobs_move_through_their_states_and_reopen_after_a_restart() {
        let dir = tempdir();
        let store = Store::open(&dir).await.unwrap();
        migrate(&store).await.unwrap();
        let d = ModelDigest::of_model_bytes(b"m");
        store
            .insert_model(&NewModel {
                digest: d,
                size_bytes: 1,
                engine: "tract".into(),
                signature: ModelSignature {
                    inputs: vec![],
                    outputs: vec![],
                },
                llm_facts: None,
            })
            .await
            .unwrap();
        assert_eq!(store.models_without_zk().await.unwrap(), vec![d]);
        store
            .put_zk_model(&d, "unavailable", Some("operator Softmax"), None, None)
            .await
            .unwrap();
        assert!(store.models_without_zk().await.unwrap().is_empty());
        assert_eq!(store.zk_models().await.unwrap()[0].status, "unavailable");

        let h = Digest::of(b"receipt");
        for id in ["a", "b", "c"] {
            store
                .insert_zk_job(&NewZkJob {
                    id,
                    model: d,
                    receipt_hash: h,
                    receipt: "{}",
                    inputs: "{}",
                    cancel_hash: Digest::of(b"t"),
                    estimate_ms: 5,
                })
                .await
                .unwrap();
        }
        assert!(store.start_zk_job("a").await.unwrap());
        assert!(!store.start_zk_job("a").await.unwrap(), "starts once");
        store.zk_job_progress("a", "prove", 0.5).await.unwrap();
        assert!(store.start_zk_job("b").await.unwrap());
        assert!(store.finish_zk_job("b", "{\"p\":1}", 7).await.unwrap());
        assert!(
            store
                .end_zk_job("c", "cancelled", "cancelled", "by admin")
                .await
                .unwrap()
        );
        assert!(
            !store.end_zk_job("b", "failed", "x", "y").await.unwrap(),
            "a finished job stays finished"
        );
        let b = store.zk_job("b").await.unwrap().unwrap();
        assert_eq!(
            (b.status.as_str(), b.evidence.as_deref(), b.prove_ms),
            ("done", Some("{\"p\":1}"), Some(7))
        );
        // "a" was running when the node stopped: it comes back queued, the others stay ended.
        let open = store.requeue_open_zk_jobs().await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].id.as_str(), open[0].status.as_str()),
            ("a", "queued")
        );
        assert_eq!(open[0].receipt_hash, h);
        assert!(store.zk_job("nope").await.unwrap().is_none());
        // Retention: a cutoff before they ended keeps everything; one after purges the ended
        // jobs (b done, c cancelled) and never the open one.
        let hour = std::time::Duration::from_secs(3600);
        let past = std::time::SystemTime::now() - hour;
        assert_eq!(store.purge_ended_zk_jobs(past).await.unwrap(), 0);
        let future = std::time::SystemTime::now() + hour;
        assert_eq!(store.purge_ended_zk_jobs(future).await.unwrap(), 2);
        assert!(store.zk_job("b").await.unwrap().is_none());
        assert!(store.zk_job("c").await.unwrap().is_none());
        assert_eq!(store.zk_job("a").await.unwrap().unwrap().status, "queued");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_opening_a_new_data_dir_together_migrate_once() {
        // As a node and `vouch facilitator` starting at once: every migration runs under a
        // file lock, so none of them fails on tables the other just created.
        for round in 0..5 {
            let dir = std::env::temp_dir()
                .join(format!("vouch-migrate-race-{}-{round}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let dir = dir.clone();
                    tokio::spawn(async move {
                        let store = Store::open(&dir).await?;
                        migrate(&store).await?;
                        crate::log_store::migrate(store.pool().unwrap())
                            .await
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        crate::pay_store::SqlitePayStore::new(store.pool().unwrap().clone())
                            .await
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        Ok::<_, StoreError>(())
                    })
                })
                .collect();
            for o in opens {
                o.await.unwrap().unwrap();
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vouch-zk-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
