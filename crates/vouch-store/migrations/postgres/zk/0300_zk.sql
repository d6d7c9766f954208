-- The zk tier on PostgreSQL: the tables of migrations/zk/0300_zk.sql, plus what provers on
-- many machines need to share one queue: a lease per running job (`worker`, `lease_until`,
-- renewed by every progress report), the number of attempts, and whether the job's ending
-- without a proof has been handed to the payment layer (`failure_handled`), so a job failed
-- by a `vouch worker` that takes no payments is still refunded by a node, exactly once.
CREATE TABLE zk_models (
    digest      TEXT PRIMARY KEY REFERENCES models(digest),
    status      TEXT NOT NULL,
    reason      TEXT,
    vk_digest   TEXT,
    info        TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE zk_jobs (
    id               TEXT PRIMARY KEY,
    model            TEXT NOT NULL,
    receipt_hash     TEXT NOT NULL,
    receipt          TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    cancel_hash      TEXT NOT NULL,
    status           TEXT NOT NULL,
    stage            TEXT NOT NULL,
    progress         DOUBLE PRECISION NOT NULL,
    estimate_ms      BIGINT NOT NULL,
    evidence         TEXT,
    error_code       TEXT,
    error            TEXT,
    prove_ms         BIGINT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    worker           TEXT,
    lease_until      TIMESTAMPTZ,
    attempts         INTEGER NOT NULL DEFAULT 0,
    failure_handled  BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX zk_jobs_open ON zk_jobs(status, created_at);
CREATE INDEX zk_jobs_unhandled ON zk_jobs(finished_at)
    WHERE status IN ('failed', 'cancelled') AND NOT failure_handled;
