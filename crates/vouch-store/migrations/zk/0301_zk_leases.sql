-- Proof jobs claimed under a lease (the PostgreSQL schema's columns, so one prover loop serves
-- both backends): the prover holding a running job, until when (ms since the Unix epoch; every
-- progress report renews it), how many times the job was claimed, and whether its ending
-- without a proof was handed to the payment layer. Jobs that ended before this migration were
-- handed over then.
ALTER TABLE zk_jobs ADD COLUMN worker TEXT;
ALTER TABLE zk_jobs ADD COLUMN lease_until BIGINT;
ALTER TABLE zk_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE zk_jobs ADD COLUMN failure_handled INTEGER NOT NULL DEFAULT 0;
UPDATE zk_jobs SET failure_handled = 1 WHERE status IN ('done', 'failed', 'cancelled');
CREATE INDEX zk_jobs_unhandled ON zk_jobs(finished_at)
    WHERE status IN ('failed', 'cancelled') AND failure_handled = 0;
