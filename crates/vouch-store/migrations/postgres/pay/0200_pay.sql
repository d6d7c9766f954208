-- Payments on PostgreSQL: the ledger and the payment claims of migrations/pay/ (SQLite), shared
-- by every node of a cluster. Nothing is decided in a node's memory: a settlement is one
-- transaction that inserts under the authorization's key (a second settlement of one key waits
-- on the primary key, then finds the first), locks the two balance rows in a fixed order and
-- moves the amount, and numbers its journal entries from the one `pay_journal_head` row in the
-- same transaction, so the journal has no gaps whatever rolls back. Amounts are uint256 token
-- units as NUMERIC(78,0) (2^256 has 78 digits), never negative.
CREATE TABLE pay_balances (
    chain_id    BIGINT NOT NULL,
    asset       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    balance     NUMERIC(78, 0) NOT NULL CHECK (balance >= 0),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (chain_id, asset, owner)
);

CREATE TABLE pay_journal_head (
    id   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    seq  BIGINT NOT NULL
);
INSERT INTO pay_journal_head (id, seq) VALUES (TRUE, 0);

CREATE TABLE pay_entries (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    chain_id    BIGINT NOT NULL,
    asset       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    delta       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    reference   TEXT,
    memo        TEXT
);
CREATE INDEX pay_entries_by_owner ON pay_entries(chain_id, asset, owner, seq);

CREATE TABLE pay_settlements (
    chain_id      BIGINT NOT NULL,
    asset         TEXT NOT NULL,
    payer         TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    digest        TEXT NOT NULL,
    pay_to        TEXT NOT NULL,
    amount        NUMERIC(78, 0) NOT NULL CHECK (amount >= 0),
    reference     TEXT NOT NULL UNIQUE,
    settled_at    BIGINT NOT NULL,
    refunded_at   BIGINT,
    refund_reason TEXT,
    PRIMARY KEY (chain_id, asset, payer, nonce)
);

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
