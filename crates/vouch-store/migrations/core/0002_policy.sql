-- Model assurance policies: the least verification tier a request for a model must carry.
-- `subject` is a model name (all its versions) or a model digest ('sha256:<hex>'). A request is
-- held to the strictest policy among its digest and every name pointing at that digest.
CREATE TABLE model_policies (
    subject     TEXT PRIMARY KEY,
    min_tier    TEXT NOT NULL,             -- 'signed' | 'tee' | 'zk'
    updated_at  TEXT NOT NULL              -- RFC 3339 UTC
);

-- Every policy change, append-only, so the transparency log can record each one. `log_index`
-- stays NULL until the change has been appended to the log (the log's hook fills it).
CREATE TABLE policy_changes (
    seq         INTEGER PRIMARY KEY,       -- append-only: rows are never deleted, so never reused
    subject     TEXT NOT NULL,
    min_tier    TEXT,                      -- NULL: policy removed
    previous    TEXT,                      -- NULL: there was none
    changed_at  TEXT NOT NULL,             -- RFC 3339 UTC
    log_index   BIGINT                     -- transparency-log leaf index once logged
);

CREATE INDEX policy_changes_unlogged ON policy_changes(seq) WHERE log_index IS NULL;
