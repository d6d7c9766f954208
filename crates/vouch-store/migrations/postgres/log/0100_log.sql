-- The transparency log on PostgreSQL (versions 100-199): the SQLite tables of
-- migrations/log/0100_log.sql in PostgreSQL's types, plus the head row every writer locks.
--
-- Fork-proof by construction: entries and hashes are keyed by their index, a checkpoint by its
-- size; a batch is written only by the transaction holding the head row's lock and only at the
-- size stored there (docs/log.md, "One log across nodes").

CREATE TABLE log_entry (
    idx   BIGINT PRIMARY KEY,   -- leaf index, 0-based, dense
    kind  TEXT   NOT NULL,
    name  TEXT,                 -- model name for pointer entries (history lookups)
    data  BYTEA  NOT NULL       -- canonical entry bytes (what the leaf hash covers)
);

CREATE INDEX log_entry_by_name ON log_entry (name, idx) WHERE name IS NOT NULL;

CREATE TABLE log_hash (
    idx   BIGINT PRIMARY KEY,   -- stored-hash index (Go sumdb/tlog layout)
    hash  BYTEA  NOT NULL
);

CREATE TABLE log_checkpoint (
    size        BIGINT PRIMARY KEY,
    root        BYTEA  NOT NULL,
    note        BYTEA  NOT NULL,  -- signed note, log signature only
    created_ms  BIGINT NOT NULL
);

CREATE TABLE log_cosignature (
    size     BIGINT NOT NULL,
    witness  TEXT   NOT NULL,
    key_id   BIGINT NOT NULL,
    line     TEXT   NOT NULL,
    PRIMARY KEY (size, witness, key_id)
);

-- The one row a writer locks (SELECT ... FOR UPDATE) for the length of its transaction: the
-- stored size and the latest checkpoint's size, read under the lock and updated with the batch.
CREATE TABLE log_head (
    id               SMALLINT PRIMARY KEY CHECK (id = 1),
    size             BIGINT NOT NULL,
    checkpoint_size  BIGINT NOT NULL
);
INSERT INTO log_head (id, size, checkpoint_size) VALUES (1, 0, 0);
