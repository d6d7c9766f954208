//! The zk tier's tables: per-model analysis results and durable proof jobs. Schema:
//! `migrations/zk/` (versions 300–399). Payloads (analysis info, receipts, inputs, evidence) are
//! JSON text the server produces, so this crate needs nothing from `vouch-zk`.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use vouch_core::{Digest, ModelDigest};

use crate::db::columns;
use crate::{Backend, Result, Store, StoreError, now_rfc3339, pg};

/// Applies the zk migrations (other owners' versions are left alone).
pub async fn migrate(store: &Store) -> Result<()> {
    match &store.backend {
        Backend::Sqlite(db) => crate::migrate_locked(db, crate::migrate::ZK).await?,
        Backend::Postgres(pg) => pg.migrate(crate::pg::ZK).await?,
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: SQLite's lease clock (one process owns the file, so its
/// clock is the only one; PostgreSQL leases use the server's `now()`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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

pub(crate) fn parse<T: std::str::FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("zk tables: {e}")))
}

pub(crate) fn u64_of(v: Option<i64>) -> Option<u64> {
    v.and_then(|x| u64::try_from(x).ok())
}

/// A `zk_models` row as stored.
pub(crate) type RawZkModel = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

pub(crate) fn zk_model(
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
    // Shared with `pg::proofs`.
    () => {
        "id, model, receipt_hash, receipt, inputs, cancel_hash, status, stage, progress, \
         estimate_ms, evidence, error_code, error, prove_ms, created_at, started_at, finished_at"
    };
}
pub(crate) use job_columns;

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
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::proofs::put_zk_model(pg, digest, status, reason, vk_digest, info).await;
            }
        };
        let args = (
            digest.to_string(),
            status.to_owned(),
            reason.map(str::to_owned),
            vk_digest.map(str::to_owned),
            info.map(str::to_owned),
        );
        db
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
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::zk_models(pg).await,
        };
        db.run(|c| {
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
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::models_without_zk(pg).await,
        };
        let rows: Vec<String> = db
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
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::insert_zk_job(pg, j).await,
        };
        let args = (
            j.id.to_owned(),
            j.model.to_string(),
            j.receipt_hash.to_string(),
            j.receipt.to_owned(),
            j.inputs.to_owned(),
            j.cancel_hash.to_string(),
            i64::try_from(j.estimate_ms).unwrap_or(i64::MAX),
        );
        db
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
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::zk_job(pg, id).await,
        };
        let id = id.to_owned();
        db.call(move |c| {
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

    /// Jobs a restart must pick up again, oldest first. On SQLite one process owns the file, so
    /// jobs left running by its previous run start over (set back to queued); on PostgreSQL a
    /// running job belongs to whichever prover holds its lease, and one whose prover died is
    /// claimed again when the lease runs out.
    pub async fn requeue_open_zk_jobs(&self) -> Result<Vec<ZkJobRow>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::queued_zk_jobs(pg).await,
        };
        db.call(|c| {
            c.execute(
                "UPDATE zk_jobs SET status = 'queued', stage = 'queued', progress = 0,
                 started_at = NULL, worker = NULL, lease_until = NULL
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

    /// Claims the oldest job a prover may take — queued, or running under a lease that ran out
    /// (its prover died) and claimed fewer than `max_attempts` times — for `worker` until
    /// `lease` from now. Of provers claiming at once, each gets a different job.
    pub async fn claim_zk_job(
        &self,
        worker: &str,
        lease: std::time::Duration,
        max_attempts: u32,
    ) -> Result<Option<ZkJobRow>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::proofs::claim_zk_job(pg, worker, lease, max_attempts).await;
            }
        };
        let (worker, lease) = (worker.to_owned(), ms(lease));
        db.call(move |c| {
            let now = now_ms();
            c.prepare_cached(concat!(
                "UPDATE zk_jobs SET status = 'running', stage = 'starting', progress = 0,
                 started_at = ?, worker = ?, lease_until = ?, attempts = attempts + 1
                 WHERE id = (SELECT id FROM zk_jobs WHERE status = 'queued'
                     OR (status = 'running' AND lease_until < ? AND attempts < ?)
                     ORDER BY created_at, id LIMIT 1)
                 RETURNING ",
                job_columns!()
            ))?
            .query_row(
                params![
                    now_rfc3339(),
                    worker,
                    now.saturating_add(lease),
                    now,
                    max_attempts
                ],
                |r| Ok(job(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    /// Records progress and renews `worker`'s lease on a running job; false when the job is no
    /// longer `worker`'s to prove (cancelled, or its lease ran out and another prover took it):
    /// the prover then stops.
    pub async fn renew_zk_job(
        &self,
        id: &str,
        worker: &str,
        stage: &str,
        progress: f64,
        lease: std::time::Duration,
    ) -> Result<bool> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::proofs::renew_zk_job(pg, id, worker, stage, progress, lease).await;
            }
        };
        let (id, worker, stage, lease) = (
            id.to_owned(),
            worker.to_owned(),
            stage.to_owned(),
            ms(lease),
        );
        let n = db
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET stage = ?, progress = ?, lease_until = ?
                     WHERE id = ? AND status = 'running' AND worker = ?",
                )?
                .execute(params![
                    stage,
                    progress,
                    now_ms().saturating_add(lease),
                    id,
                    worker
                ])
            })
            .await?;
        Ok(n == 1)
    }

    /// Records `worker`'s proof; false when the job was no longer its (cancelled meanwhile, or
    /// taken over).
    pub async fn finish_zk_job(
        &self,
        id: &str,
        worker: &str,
        evidence: &str,
        prove_ms: u64,
    ) -> Result<bool> {
        let prove_ms = i64::try_from(prove_ms).unwrap_or(i64::MAX);
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::proofs::finish_zk_job(pg, id, worker, evidence, prove_ms).await;
            }
        };
        let (id, worker, evidence) = (id.to_owned(), worker.to_owned(), evidence.to_owned());
        let n = db
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET status = 'done', stage = 'done', progress = 1, evidence = ?,
                     prove_ms = ?, finished_at = ?, lease_until = NULL
                     WHERE id = ? AND status = 'running' AND worker = ?",
                )?
                .execute(params![evidence, prove_ms, now_rfc3339(), id, worker])
            })
            .await?;
        Ok(n == 1)
    }

    /// Ends an open job as `failed` or `cancelled`; false when it had already ended. With
    /// `worker`, only while that prover holds it (a prover failing a job it lost changes
    /// nothing).
    pub async fn end_zk_job(
        &self,
        id: &str,
        status: &str,
        error_code: &str,
        error: &str,
        worker: Option<&str>,
    ) -> Result<bool> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::proofs::end_zk_job(pg, id, status, error_code, error, worker).await;
            }
        };
        let args = (
            status.to_owned(),
            error_code.to_owned(),
            error.to_owned(),
            id.to_owned(),
            worker.map(str::to_owned),
        );
        let n = db
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET status = ?1, error_code = ?2, error = ?3, finished_at = ?4,
                     lease_until = NULL
                     WHERE id = ?5 AND status IN ('queued', 'running')
                     AND (?6 IS NULL OR (status = 'running' AND worker = ?6))",
                )?
                .execute(params![
                    args.0,
                    args.1,
                    args.2,
                    now_rfc3339(),
                    args.3,
                    args.4
                ])
            })
            .await?;
        Ok(n == 1)
    }

    /// Fails running jobs whose lease ran out after `max_attempts` claims (every prover that
    /// took them died), so every job ends; returns how many.
    pub async fn fail_exhausted_zk_jobs(&self, max_attempts: u32) -> Result<u64> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => {
                return pg::proofs::fail_exhausted_zk_jobs(pg, max_attempts).await;
            }
        };
        let n = db
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE zk_jobs SET status = 'failed', error_code = 'internal',
                     error = 'the prover was lost ' || attempts || ' times', finished_at = ?,
                     lease_until = NULL
                     WHERE status = 'running' AND lease_until < ? AND attempts >= ?",
                )?
                .execute(params![now_rfc3339(), now_ms(), max_attempts])
            })
            .await?;
        Ok(n as u64)
    }

    /// Takes jobs that ended without a proof and were not yet handed to the payment layer
    /// (`id`: that one only), marking them handed: each is returned to exactly one caller
    /// across every node, which refunds its payment.
    pub async fn take_zk_failures(&self, id: Option<&str>, limit: u32) -> Result<Vec<ZkJobRow>> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::take_zk_failures(pg, id, limit).await,
        };
        let id = id.map(str::to_owned);
        db.call(move |c| {
            c.prepare_cached(concat!(
                "UPDATE zk_jobs SET failure_handled = 1
                 WHERE id IN (SELECT id FROM zk_jobs WHERE status IN ('failed', 'cancelled')
                     AND failure_handled = 0 AND (?1 IS NULL OR id = ?1) ORDER BY finished_at LIMIT ?2)
                 RETURNING ",
                job_columns!()
            ))?
            .query_map(params![id, limit], |r| Ok(job(r)))?
            .map(|r| r?)
            .collect()
        })
        .await
    }

    /// Deletes jobs that ended (done, failed, cancelled) before `cutoff` (RFC 3339, as the
    /// store writes it); returns how many. Open jobs are never purged.
    pub async fn purge_ended_zk_jobs(&self, cutoff: std::time::SystemTime) -> Result<u64> {
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::purge_ended_zk_jobs(pg, cutoff).await,
        };
        let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
        let n = db
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
        let db = match &self.backend {
            Backend::Sqlite(db) => db,
            Backend::Postgres(pg) => return pg::proofs::note_zk_job(pg, id, note).await,
        };
        let (id, note) = (id.to_owned(), note.to_owned());
        db
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
}
