-- Payment claims (owner: vouch-pay, via vouch-store's pay_store.rs), in the sidecar database
-- `<main db>-pay-claims`: hot, small, and needing less durability than the ledger (synchronous
-- NORMAL), so its writes never queue behind the ledger's fsync. Plain SQL types (PostgreSQL).

-- Server side, in front of any facilitator: which request holds which authorization.
-- state: held → settling → served | unserved; unserved → resumed → served. Rows of requests
-- that failed, or whose settlement failed, are deleted (nothing was paid).
CREATE TABLE pay_claims (
    chain_id          BIGINT NOT NULL,
    asset             TEXT NOT NULL,
    payer             TEXT NOT NULL,
    nonce             TEXT NOT NULL,
    digest            TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    state             TEXT NOT NULL,
    payment_json      TEXT NOT NULL,
    requirements_json TEXT NOT NULL,
    settlement_json   TEXT,
    lease_until       BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (chain_id, asset, payer, nonce)
);

CREATE INDEX pay_claims_by_state ON pay_claims(state, updated_at);
