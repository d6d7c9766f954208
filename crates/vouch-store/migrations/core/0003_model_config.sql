-- A model's configuration: the system prompt / generation settings that shape its outputs and
-- whose digest every receipt for the model carries as `config_digest`.
CREATE TABLE model_configs (
    model          TEXT PRIMARY KEY,       -- 'sha256:<hex>' of the model bytes
    config         TEXT NOT NULL,          -- RFC 8785 canonical JSON
    config_digest  TEXT NOT NULL,          -- 'sha256:<hex>' of `config`
    updated_at     TEXT NOT NULL           -- RFC 3339 UTC
);

-- Every change, append-only; an outbox for the transparency log like `policy_changes`:
-- `log_index` stays NULL until the change is appended as a `config-changed` entry.
CREATE TABLE config_changes (
    seq            INTEGER PRIMARY KEY,
    model          TEXT NOT NULL,
    config         TEXT NOT NULL,
    config_digest  TEXT NOT NULL,
    changed_at     TEXT NOT NULL,
    log_index      BIGINT
);

CREATE INDEX config_changes_unlogged ON config_changes(seq) WHERE log_index IS NULL;
