-- Model registry. Models are identified by the SHA-256 of their bytes; names and versions are
-- pointers to digests. Plain SQL types so the same schema runs on PostgreSQL.
CREATE TABLE models (
    digest      TEXT PRIMARY KEY,          -- 'sha256:<hex>'
    size_bytes  BIGINT NOT NULL,
    engine      TEXT NOT NULL,             -- engine chosen at registration: 'onnxruntime' | 'tract'
    signature   TEXT NOT NULL,             -- JSON: vouch_core::ModelSignature
    created_at  TEXT NOT NULL              -- RFC 3339 UTC
);

CREATE TABLE model_names (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL REFERENCES models(digest),
    seq         BIGINT NOT NULL,           -- registration order: the highest is a name's latest
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE INDEX model_names_by_digest ON model_names(digest);
CREATE INDEX model_names_latest ON model_names(name, seq);
