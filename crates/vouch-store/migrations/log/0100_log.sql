-- Transparency log (vouch-log). Versions 100-199 belong to the log.
--
-- Entries and tree hashes are append-only; rows are written by one group-commit transaction per
-- batch and never updated. `log_hash.idx` is the stored-hash index of Go's sumdb/tlog layout
-- (see vouch-log's merkle module), so any proof or tile is a handful of primary-key reads.
--
-- SQLite uses INTEGER PRIMARY KEY so the key is the rowid (no second index). PostgreSQL runs
-- the same schema with BIGINT for INTEGER and BYTEA for BLOB; every statement the log issues is
-- plain SQL that both accept (INSERT ... ON CONFLICT, LIMIT, partial indexes).

CREATE TABLE log_entry (
    idx   INTEGER PRIMARY KEY,   -- leaf index, 0-based, dense
    kind  TEXT    NOT NULL,      -- 'receipt' | 'model-registered' | 'pointer-moved' | ...
    name  TEXT,                  -- model name for pointer entries (history lookups)
    data  BLOB    NOT NULL       -- canonical entry bytes (what the leaf hash covers)
);

CREATE INDEX log_entry_by_name ON log_entry (name, idx) WHERE name IS NOT NULL;

CREATE TABLE log_hash (
    idx   INTEGER PRIMARY KEY,   -- stored-hash index
    hash  BLOB    NOT NULL       -- 32 bytes
);

CREATE TABLE log_checkpoint (
    size        INTEGER PRIMARY KEY,
    root        BLOB    NOT NULL,
    note        BLOB    NOT NULL,  -- signed note, log signature only
    created_ms  INTEGER NOT NULL
);

CREATE TABLE log_cosignature (
    size     INTEGER NOT NULL,
    witness  TEXT    NOT NULL,
    key_id   INTEGER NOT NULL,
    line     TEXT    NOT NULL,     -- '— <witness> <base64>\n', verified before insertion
    PRIMARY KEY (size, witness, key_id)
);
