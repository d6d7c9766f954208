-- Payments (owner: vouch-pay, via vouch-store's pay_store.rs). Versions 200-299.
-- Amounts are uint256 token units as decimal TEXT (they do not fit BIGINT); arithmetic happens
-- in Rust inside write-locked transactions. Addresses, nonces and digests are lowercase 0x hex.
-- Plain SQL types so the same schema runs on PostgreSQL.

-- Built-in facilitator: balances per (chain, token, holder).
CREATE TABLE pay_balances (
    chain_id    BIGINT NOT NULL,
    asset       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    balance     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,               -- unix seconds
    PRIMARY KEY (chain_id, asset, owner)
);

-- Append-only journal of every balance change, for audit.
CREATE TABLE pay_entries (
    seq         BIGINT NOT NULL PRIMARY KEY,   -- 1, 2, 3… assigned inside the writing transaction
    at          BIGINT NOT NULL,
    chain_id    BIGINT NOT NULL,
    asset       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    delta       TEXT NOT NULL,                 -- '+<amount>' or '-<amount>'
    kind        TEXT NOT NULL,                 -- 'credit' | 'settle' | 'refund'
    reference   TEXT,                          -- settlement reference, if any
    memo        TEXT
);

-- Built-in facilitator: one row per settled EIP-3009 authorization. The key is EIP-3009's
-- single-use rule (a nonce per payer per token contract), so a second settlement cannot exist.
CREATE TABLE pay_settlements (
    chain_id      BIGINT NOT NULL,
    asset         TEXT NOT NULL,
    payer         TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    digest        TEXT NOT NULL,               -- EIP-712 hash of the authorization
    pay_to        TEXT NOT NULL,
    amount        TEXT NOT NULL,
    reference     TEXT NOT NULL UNIQUE,
    settled_at    BIGINT NOT NULL,
    refunded_at   BIGINT,
    refund_reason TEXT,
    PRIMARY KEY (chain_id, asset, payer, nonce)
);

-- The server's payment claims live in a sidecar database: see claims/.
