-- The catalog on PostgreSQL: the same tables and meanings as the SQLite file's
-- (migrations/core/0001–0005), in PostgreSQL's own types. Timestamps stay RFC 3339 text, the
-- one format Vouch stores, so both backends return the same strings.
CREATE TABLE models (
    digest      TEXT PRIMARY KEY,          -- 'sha256:<hex>'
    size_bytes  BIGINT NOT NULL,
    engine      TEXT NOT NULL,
    signature   TEXT NOT NULL,             -- JSON: vouch_core::ModelSignature
    llm_facts   TEXT,                      -- JSON the node owns; NULL for ONNX models
    created_at  TEXT NOT NULL
);

-- Registration order across every node: the highest `seq` is what a bare name resolves to.
CREATE SEQUENCE model_names_seq;

CREATE TABLE model_names (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL REFERENCES models(digest),
    seq         BIGINT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_names_by_digest ON model_names(digest);
CREATE INDEX model_names_latest ON model_names(name, seq);

CREATE TABLE model_policies (
    subject     TEXT PRIMARY KEY,
    min_tier    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- The outboxes for the transparency log: `log_index` stays NULL until the change is logged.
CREATE TABLE policy_changes (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     TEXT NOT NULL,
    min_tier    TEXT,
    previous    TEXT,
    changed_at  TEXT NOT NULL,
    log_index   BIGINT
);
CREATE INDEX policy_changes_unlogged ON policy_changes(seq) WHERE log_index IS NULL;

CREATE TABLE model_configs (
    model          TEXT PRIMARY KEY,
    config         TEXT NOT NULL,
    config_digest  TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE config_changes (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model          TEXT NOT NULL,
    config         TEXT NOT NULL,
    config_digest  TEXT NOT NULL,
    changed_at     TEXT NOT NULL,
    log_index      BIGINT
);
CREATE INDEX config_changes_unlogged ON config_changes(seq) WHERE log_index IS NULL;

CREATE TABLE pointer_changes (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT,
    from_digest  TEXT,
    to_digest    TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    log_index    BIGINT
);
CREATE INDEX pointer_changes_unlogged ON pointer_changes(seq) WHERE log_index IS NULL;

-- Every catalog change bumps a row's version and notifies `vouch_catalog`, so each node's
-- caches (names, policies, configurations) learn of a change made on another node.
CREATE TABLE catalog_version (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version  BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (TRUE, 0);
