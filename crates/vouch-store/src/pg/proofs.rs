//! The zk tier's tables on PostgreSQL ([`crate::proof_store`] on SQLite): analyses, and one
//! proof-job queue shared by every node and `vouch worker`. A prover claims the oldest open job
//! with `FOR UPDATE SKIP LOCKED` (provers claiming at once get different jobs, none waits on
//! another) under a lease on the server's clock, renews it with every progress report, and
//! loses it if it stops reporting: the job is then claimed again, up to a number of attempts.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgRow;
use vouch_core::ModelDigest;

use super::Pg;
use crate::proof_store::{
    NewZkJob, RawZkModel, ZkJobRow, ZkModelRow, job_columns, parse, u64_of, zk_model,
};
use crate::{Result, now_rfc3339};

fn job(r: &PgRow) -> Result<ZkJobRow> {
    Ok(ZkJobRow {
        id: r.try_get("id")?,
        model: parse(&r.try_get::<String, _>("model")?)?,
        receipt_hash: parse(&r.try_get::<String, _>("receipt_hash")?)?,
        receipt: r.try_get("receipt")?,
        inputs: r.try_get("inputs")?,
        cancel_hash: parse(&r.try_get::<String, _>("cancel_hash")?)?,
        status: r.try_get("status")?,
        stage: r.try_get("stage")?,
        progress: r.try_get("progress")?,
        estimate_ms: u64_of(r.try_get("estimate_ms")?).unwrap_or(0),
        evidence: r.try_get("evidence")?,
        error_code: r.try_get("error_code")?,
        error: r.try_get("error")?,
        prove_ms: u64_of(r.try_get("prove_ms")?),
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// A lease length as PostgreSQL's interval, in milliseconds.
fn lease_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) async fn put_zk_model(
    pg: &Pg,
    digest: &ModelDigest,
    status: &str,
    reason: Option<&str>,
    vk_digest: Option<&str>,
    info: Option<&str>,
) -> Result<()> {
    let mut tx = pg.pool().begin().await?;
    sqlx::query(
        "INSERT INTO zk_models (digest, status, reason, vk_digest, info, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (digest) DO UPDATE SET status = excluded.status, reason = excluded.reason,
         vk_digest = excluded.vk_digest, info = excluded.info, updated_at = excluded.updated_at",
    )
    .bind(digest.to_string())
    .bind(status)
    .bind(reason)
    .bind(vk_digest)
    .bind(info)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    // Other nodes learn the model's zk status through the catalog watch.
    super::registry::bump_catalog(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn zk_models(pg: &Pg) -> Result<Vec<ZkModelRow>> {
    let rows: Vec<RawZkModel> =
        sqlx::query_as("SELECT digest, status, reason, vk_digest, info, updated_at FROM zk_models")
            .fetch_all(pg.pool())
            .await?;
    rows.into_iter().map(zk_model).collect()
}

pub(crate) async fn models_without_zk(pg: &Pg) -> Result<Vec<ModelDigest>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT digest FROM models WHERE digest NOT IN (SELECT digest FROM zk_models)",
    )
    .fetch_all(pg.pool())
    .await?;
    rows.iter().map(|s| parse(s)).collect()
}

pub(crate) async fn insert_zk_job(pg: &Pg, j: &NewZkJob<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO zk_jobs (id, model, receipt_hash, receipt, inputs, cancel_hash, status,
         stage, progress, estimate_ms, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', 'queued', 0, $7, $8)",
    )
    .bind(j.id)
    .bind(j.model.to_string())
    .bind(j.receipt_hash.to_string())
    .bind(j.receipt)
    .bind(j.inputs)
    .bind(j.cancel_hash.to_string())
    .bind(i64::try_from(j.estimate_ms).unwrap_or(i64::MAX))
    .bind(now_rfc3339())
    .execute(pg.pool())
    .await?;
    Ok(())
}

pub(crate) async fn zk_job(pg: &Pg, id: &str) -> Result<Option<ZkJobRow>> {
    sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM zk_jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pg.pool())
    .await?
    .map(|r| job(&r))
    .transpose()
}

pub(crate) async fn queued_zk_jobs(pg: &Pg) -> Result<Vec<ZkJobRow>> {
    sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM zk_jobs WHERE status = 'queued' ORDER BY created_at, id"
    ))
    .fetch_all(pg.pool())
    .await?
    .iter()
    .map(job)
    .collect()
}

pub(crate) async fn claim_zk_job(
    pg: &Pg,
    worker: &str,
    lease: Duration,
    max_attempts: u32,
) -> Result<Option<ZkJobRow>> {
    sqlx::query(concat!(
        "UPDATE zk_jobs SET status = 'running', stage = 'starting', progress = 0,
         started_at = $1, worker = $2,
         lease_until = now() + make_interval(secs => $3 / 1000.0), attempts = attempts + 1
         WHERE id = (SELECT id FROM zk_jobs WHERE status = 'queued'
             OR (status = 'running' AND lease_until < now() AND attempts < $4)
             ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING ",
        job_columns!()
    ))
    .bind(now_rfc3339())
    .bind(worker)
    .bind(lease_ms(lease))
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .fetch_optional(pg.pool())
    .await?
    .map(|r| job(&r))
    .transpose()
}

pub(crate) async fn renew_zk_job(
    pg: &Pg,
    id: &str,
    worker: &str,
    stage: &str,
    progress: f64,
    lease: Duration,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE zk_jobs SET stage = $1, progress = $2,
         lease_until = now() + make_interval(secs => $3 / 1000.0)
         WHERE id = $4 AND status = 'running' AND worker = $5",
    )
    .bind(stage)
    .bind(progress)
    .bind(lease_ms(lease))
    .bind(id)
    .bind(worker)
    .execute(pg.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn finish_zk_job(
    pg: &Pg,
    id: &str,
    worker: &str,
    evidence: &str,
    prove_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE zk_jobs SET status = 'done', stage = 'done', progress = 1, evidence = $1,
         prove_ms = $2, finished_at = $3, lease_until = NULL
         WHERE id = $4 AND status = 'running' AND worker = $5",
    )
    .bind(evidence)
    .bind(prove_ms)
    .bind(now_rfc3339())
    .bind(id)
    .bind(worker)
    .execute(pg.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn end_zk_job(
    pg: &Pg,
    id: &str,
    status: &str,
    error_code: &str,
    error: &str,
    worker: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE zk_jobs SET status = $1, error_code = $2, error = $3, finished_at = $4,
         lease_until = NULL
         WHERE id = $5 AND status IN ('queued', 'running')
         AND ($6::text IS NULL OR (status = 'running' AND worker = $6))",
    )
    .bind(status)
    .bind(error_code)
    .bind(error)
    .bind(now_rfc3339())
    .bind(id)
    .bind(worker)
    .execute(pg.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn fail_exhausted_zk_jobs(pg: &Pg, max_attempts: u32) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE zk_jobs SET status = 'failed', error_code = 'internal',
         error = 'the prover was lost ' || attempts || ' times', finished_at = $1,
         lease_until = NULL
         WHERE status = 'running' AND lease_until < now() AND attempts >= $2",
    )
    .bind(now_rfc3339())
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .execute(pg.pool())
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn take_zk_failures(
    pg: &Pg,
    id: Option<&str>,
    limit: u32,
) -> Result<Vec<ZkJobRow>> {
    sqlx::query(concat!(
        "UPDATE zk_jobs SET failure_handled = TRUE
         WHERE id IN (SELECT id FROM zk_jobs WHERE status IN ('failed', 'cancelled')
             AND NOT failure_handled AND ($1::text IS NULL OR id = $1)
             ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING ",
        job_columns!()
    ))
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(pg.pool())
    .await?
    .iter()
    .map(job)
    .collect()
}

pub(crate) async fn purge_ended_zk_jobs(pg: &Pg, cutoff: std::time::SystemTime) -> Result<u64> {
    let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
    let done = sqlx::query(
        "DELETE FROM zk_jobs WHERE status IN ('done', 'failed', 'cancelled')
         AND finished_at IS NOT NULL AND finished_at < $1",
    )
    .bind(cutoff)
    .execute(pg.pool())
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn note_zk_job(pg: &Pg, id: &str, note: &str) -> Result<()> {
    sqlx::query(
        "UPDATE zk_jobs SET error = COALESCE(error, '') || $1
         WHERE id = $2 AND status IN ('failed', 'cancelled')",
    )
    .bind(note)
    .bind(id)
    .execute(pg.pool())
    .await?;
    Ok(())
}
