-- The zk tier (owner: vouch-server's proofs module through proof_store.rs). Versions 300-399.

-- What zk analysis found for a registered model. `info` is vouch_zk::ZkModelInfo as JSON (circuit
-- stats, quantisation config, verifying-key digest, admission estimate) when status = 'available'.
CREATE TABLE zk_models (
    digest      TEXT PRIMARY KEY REFERENCES models(digest),
    status      TEXT NOT NULL,             -- 'analysing' | 'available' | 'unavailable'
    reason      TEXT,                      -- why unavailable: "zk: unavailable: operator X ..."
    vk_digest   TEXT,                      -- 'sha256:<hex>' when available
    info        TEXT,                      -- JSON when available
    updated_at  TEXT NOT NULL
);

-- Proof jobs: durable, re-queued at boot while 'queued' or 'running'.
CREATE TABLE zk_jobs (
    id           TEXT PRIMARY KEY,         -- UUIDv4: unguessable, so knowing it is the read capability
    model        TEXT NOT NULL,            -- 'sha256:<hex>'
    receipt_hash TEXT NOT NULL,            -- 'sha256:<hex>' of the receipt the proof binds
    receipt      TEXT NOT NULL,            -- JSON: vouch_core::Receipt
    inputs       TEXT NOT NULL,            -- JSON: vouch_core::TensorMap (bounded by the request body limit)
    cancel_hash  TEXT NOT NULL,            -- 'sha256:<hex>' of the job's cancel token
    status       TEXT NOT NULL,            -- 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
    stage        TEXT NOT NULL,
    progress     REAL NOT NULL,
    estimate_ms  BIGINT NOT NULL,
    evidence     TEXT,                     -- JSON: evidence["zk"] when done
    error_code   TEXT,
    error        TEXT,
    prove_ms     BIGINT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);

CREATE INDEX zk_jobs_open ON zk_jobs(status, created_at);
