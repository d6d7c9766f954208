-- Every pointer move, written in the same transaction as the move itself: `name@version`, and the
-- name's default ("latest") pointer when the move changes what it resolves to (`version` NULL).
-- An outbox for the transparency log like `policy_changes`: `log_index` stays NULL until the
-- move is appended as a `pointer-moved` entry, so a crash delays the entry and never loses it.
CREATE TABLE pointer_changes (
    seq          INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT,                      -- NULL: the default (latest) pointer
    from_digest  TEXT,                      -- NULL: the pointer was created
    to_digest    TEXT NOT NULL,
    changed_at   TEXT NOT NULL,             -- RFC 3339 UTC
    log_index    BIGINT
);

CREATE INDEX pointer_changes_unlogged ON pointer_changes(seq) WHERE log_index IS NULL;
