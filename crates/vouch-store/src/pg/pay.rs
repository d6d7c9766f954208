//! The payment ledger and payment claims on PostgreSQL ([`crate::pay_store`] on SQLite), one
//! ledger for every node of a cluster. Schema and its reasons: `migrations/postgres/pay/`.
//!
//! Where the SQLite ledger decides in one owning process's memory, here PostgreSQL decides:
//! - a settlement inserts its row under the authorization's key first; a second settlement of
//!   the same key (another node, the same moment) waits on that key and then finds the first,
//!   so an authorization settles exactly once;
//! - the payer's and payee's balance rows are locked in one fixed order (by owner) and the
//!   amount moves only if the payer has it, with `CHECK (balance >= 0)` behind the check;
//! - the journal's numbers come from the one `pay_journal_head` row, updated in the same
//!   transaction: a rolled-back transaction takes no number, so the journal has no gaps. That
//!   row serialises ledger writes across the cluster (docs/scale.md measures what it costs).
//!
//! Every commit is durable when it returns (`synchronous_commit` on), so there is nothing to
//! `sync`; claims are single statements, as on SQLite.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use vouch_pay::U256;
use vouch_pay::store::{
    Account, AuthorizationKey, ClaimEnd, ClaimOutcome, Ledger, NonceClaim, NonceStore,
    PendingClaim, RefundOutcome, RefundRecord, SettleOutcome, SettlementRecord, StoreError,
};

use super::Pg;
use crate::pay_store::{addr, chain, corrupt, parse_u256, secs, word};

/// The ledger's and claims' tables in the cluster's database. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct PgPayStore {
    pg: Pg,
}

fn sql(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

fn parsed<T: std::str::FromStr>(r: &PgRow, c: &str) -> Result<T, StoreError> {
    let text: String = r.try_get(c).map_err(sql)?;
    T::from_str(&text).map_err(|_| corrupt(c, &text))
}

fn key_of(r: &PgRow) -> Result<AuthorizationKey, StoreError> {
    let chain_id: i64 = r.try_get("chain_id").map_err(sql)?;
    Ok(AuthorizationKey {
        chain_id: u64::try_from(chain_id)
            .map_err(|_| corrupt("chain id", &chain_id.to_string()))?,
        asset: parsed(r, "asset")?,
        payer: parsed(r, "payer")?,
        nonce: parsed(r, "nonce")?,
    })
}

/// The columns [`settlement_of`] reads (amounts as text: no decimal type crosses the wire).
const SETTLEMENT: &str = "chain_id, asset, payer, nonce, digest, pay_to, amount::text AS amount, \
     reference, settled_at, refunded_at, refund_reason";

fn settlement_of(r: &PgRow) -> Result<SettlementRecord, StoreError> {
    let refunded_at: Option<i64> = r.try_get("refunded_at").map_err(sql)?;
    let refund_reason: Option<String> = r.try_get("refund_reason").map_err(sql)?;
    let settled_at: i64 = r.try_get("settled_at").map_err(sql)?;
    Ok(SettlementRecord {
        key: key_of(r)?,
        digest: parsed(r, "digest")?,
        pay_to: parsed(r, "pay_to")?,
        amount: parse_u256(&r.try_get::<String, _>("amount").map_err(sql)?)?,
        reference: r.try_get("reference").map_err(sql)?,
        settled_at: u64::try_from(settled_at).unwrap_or(0),
        refund: refunded_at.map(|at| RefundRecord {
            refunded_at: u64::try_from(at).unwrap_or(0),
            reason: refund_reason.unwrap_or_default(),
        }),
    })
}

/// Binds the four key columns, in order, after `q`'s earlier binds.
macro_rules! bind_key {
    ($q:expr, $key:expr) => {
        $q.bind(chain($key.chain_id)?)
            .bind(addr(&$key.asset))
            .bind(addr(&$key.payer))
            .bind(word(&$key.nonce))
    };
}

/// One balance change, journaled.
struct Move<'a> {
    account: Account,
    /// `+<amount>` or `-<amount>`.
    delta: String,
    new_balance: U256,
    kind: &'a str,
    reference: Option<&'a str>,
    memo: Option<&'a str>,
}

/// The two journal moves of `amount` from `from` to `to` (each with its locked balance), under
/// `(kind, reference, memo)`; `None` when `from` holds less. One account may be both: the
/// credit then starts where the debit ended.
fn transfer<'a>(
    (from, from_had): (Account, U256),
    (to, to_had): (Account, U256),
    amount: U256,
    (kind, reference, memo): (&'a str, &'a str, Option<&'a str>),
) -> Result<Option<[Move<'a>; 2]>, StoreError> {
    let Some(from_left) = from_had.checked_sub(amount) else {
        return Ok(None);
    };
    let to_had = if to == from { from_left } else { to_had };
    let to_has = to_had
        .checked_add(amount)
        .ok_or_else(|| StoreError(format!("balance of {} would overflow", to.owner)))?;
    let side = |account, delta, new_balance| Move {
        account,
        delta,
        new_balance,
        kind,
        reference: Some(reference),
        memo,
    };
    Ok(Some([
        side(from, format!("-{amount}"), from_left),
        side(to, format!("+{amount}"), to_has),
    ]))
}

/// Locks `accounts`' balance rows (creating missing ones at 0) in one order, and reads them.
async fn lock_balances(
    tx: &mut Transaction<'_, Postgres>,
    accounts: &[Account],
    now: u64,
) -> Result<Vec<U256>, StoreError> {
    let mut order: Vec<&Account> = accounts.iter().collect();
    order.sort_by_key(|a| (a.chain_id, addr(&a.asset), addr(&a.owner)));
    order.dedup();
    for a in &order {
        sqlx::query(
            "INSERT INTO pay_balances (chain_id, asset, owner, balance, updated_at)
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT DO NOTHING",
        )
        .bind(chain(a.chain_id)?)
        .bind(addr(&a.asset))
        .bind(addr(&a.owner))
        .bind(secs(now))
        .execute(&mut **tx)
        .await
        .map_err(sql)?;
    }
    let mut balances = Vec::with_capacity(order.len());
    for a in &order {
        let b: String = sqlx::query_scalar(
            "SELECT balance::text FROM pay_balances
             WHERE chain_id = $1 AND asset = $2 AND owner = $3 FOR UPDATE",
        )
        .bind(chain(a.chain_id)?)
        .bind(addr(&a.asset))
        .bind(addr(&a.owner))
        .fetch_one(&mut **tx)
        .await
        .map_err(sql)?;
        balances.push((**a, parse_u256(&b)?));
    }
    accounts
        .iter()
        .map(|a| {
            balances
                .iter()
                .find(|(b, _)| b == a)
                .map(|(_, v)| *v)
                .ok_or_else(|| StoreError("a locked balance went missing".into()))
        })
        .collect()
}

/// Writes the new balances and their journal entries, numbered from the journal head.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    moves: &[Move<'_>],
    now: u64,
) -> Result<(), StoreError> {
    for m in moves {
        sqlx::query(
            "UPDATE pay_balances SET balance = $1::numeric, updated_at = $2
             WHERE chain_id = $3 AND asset = $4 AND owner = $5",
        )
        .bind(m.new_balance.to_string())
        .bind(secs(now))
        .bind(chain(m.account.chain_id)?)
        .bind(addr(&m.account.asset))
        .bind(addr(&m.account.owner))
        .execute(&mut **tx)
        .await
        .map_err(sql)?;
    }
    // Last, so the one row every ledger write needs is held for the shortest time.
    let last: i64 =
        sqlx::query_scalar("UPDATE pay_journal_head SET seq = seq + $1 WHERE id RETURNING seq")
            .bind(moves.len() as i64)
            .fetch_one(&mut **tx)
            .await
            .map_err(sql)?;
    let first = last - moves.len() as i64 + 1;
    for (i, m) in moves.iter().enumerate() {
        sqlx::query(
            "INSERT INTO pay_entries (seq, at, chain_id, asset, owner, delta, kind, reference, memo)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(first + i as i64)
        .bind(secs(now))
        .bind(chain(m.account.chain_id)?)
        .bind(addr(&m.account.asset))
        .bind(addr(&m.account.owner))
        .bind(&m.delta)
        .bind(m.kind)
        .bind(m.reference)
        .bind(m.memo)
        .execute(&mut **tx)
        .await
        .map_err(sql)?;
    }
    Ok(())
}

impl PgPayStore {
    /// The cluster's ledger and claims; applies their migrations (versions 200–299).
    pub async fn new(pg: Pg) -> Result<Self, StoreError> {
        pg.migrate(super::PAY)
            .await
            .map_err(|e| StoreError(format!("migration: {e}")))?;
        Ok(PgPayStore { pg })
    }

    /// Every commit is durable when it returns: nothing waits here.
    pub async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The balance journal of `account`, newest first: `(seq, owner, delta, kind, reference)`.
    pub async fn entries(
        &self,
        account: &Account,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, String, Option<String>)>, StoreError> {
        sqlx::query_as(
            "SELECT seq, owner, delta, kind, reference FROM pay_entries
             WHERE chain_id = $1 AND asset = $2 AND owner = $3 ORDER BY seq DESC LIMIT $4",
        )
        .bind(chain(account.chain_id)?)
        .bind(addr(&account.asset))
        .bind(addr(&account.owner))
        .bind(i64::from(limit))
        .fetch_all(self.pg.pool())
        .await
        .map_err(sql)
    }

    async fn settlement_where(
        &self,
        tx: Option<&mut Transaction<'_, Postgres>>,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        let q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLEMENT} FROM pay_settlements
             WHERE chain_id = $1 AND asset = $2 AND payer = $3 AND nonce = $4"
        )));
        let q = bind_key!(q, key);
        let row = match tx {
            Some(tx) => q.fetch_optional(&mut **tx).await,
            None => q.fetch_optional(self.pg.pool()).await,
        }
        .map_err(sql)?;
        row.map(|r| settlement_of(&r)).transpose()
    }
}

#[async_trait]
impl Ledger for PgPayStore {
    async fn balance(&self, a: &Account) -> Result<U256, StoreError> {
        let b: Option<String> = sqlx::query_scalar(
            "SELECT balance::text FROM pay_balances WHERE chain_id = $1 AND asset = $2 AND owner = $3",
        )
        .bind(chain(a.chain_id)?)
        .bind(addr(&a.asset))
        .bind(addr(&a.owner))
        .fetch_optional(self.pg.pool())
        .await
        .map_err(sql)?;
        b.map_or(Ok(U256::ZERO), |b| parse_u256(&b))
    }

    async fn credit(&self, a: &Account, add: U256, memo: &str) -> Result<U256, StoreError> {
        let now = vouch_pay::local::system_now();
        let mut tx = self.pg.pool().begin().await.map_err(sql)?;
        let had = lock_balances(&mut tx, std::slice::from_ref(a), now).await?[0];
        let now_has = had
            .checked_add(add)
            .ok_or_else(|| StoreError(format!("balance of {} would overflow", a.owner)))?;
        let m = Move {
            account: *a,
            delta: format!("+{add}"),
            new_balance: now_has,
            kind: "credit",
            reference: None,
            memo: Some(memo),
        };
        apply(&mut tx, &[m], now).await?;
        tx.commit().await.map_err(sql)?;
        Ok(now_has)
    }

    async fn settlement(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        self.settlement_where(None, key).await
    }

    async fn settle(&self, new: &SettlementRecord) -> Result<SettleOutcome, StoreError> {
        let mut tx = self.pg.pool().begin().await.map_err(sql)?;
        // The key first: a concurrent settlement of the same key waits here for this one.
        // No arbiter is named: with only the key named, a racing twin that reaches the
        // `reference` index first fails with a unique violation instead of doing nothing.
        let q = sqlx::query(
            "INSERT INTO pay_settlements (chain_id, asset, payer, nonce, digest, pay_to, amount,
             reference, settled_at) VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9)
             ON CONFLICT DO NOTHING",
        );
        let inserted = bind_key!(q, new.key)
            .bind(word(&new.digest))
            .bind(addr(&new.pay_to))
            .bind(new.amount.to_string())
            .bind(&new.reference)
            .bind(secs(new.settled_at))
            .execute(&mut *tx)
            .await
            .map_err(sql)?
            .rows_affected();
        if inserted == 0 {
            let existing = self.settlement_where(Some(&mut tx), &new.key).await?;
            return Ok(match existing {
                Some(e) if e.digest == new.digest => SettleOutcome::AlreadySettled(e),
                Some(_) => SettleOutcome::NonceUsed,
                None => {
                    return Err(StoreError(format!(
                        "settlement reference {} is already used by another authorization",
                        new.reference
                    )));
                }
            });
        }
        let (payer, payee) = new.accounts();
        let now = new.settled_at;
        let had = lock_balances(&mut tx, &[payer, payee], now).await?;
        let Some(moves) = transfer(
            (payer, had[0]),
            (payee, had[1]),
            new.amount,
            ("settle", &new.reference, None),
        )?
        else {
            // Rolled back: the key stays free for a payment the payer can afford.
            return Ok(SettleOutcome::InsufficientBalance { balance: had[0] });
        };
        apply(&mut tx, &moves, now).await?;
        tx.commit().await.map_err(sql)?;
        Ok(SettleOutcome::Settled(new.clone()))
    }

    async fn refund(
        &self,
        reference: &str,
        reason: &str,
        now: u64,
    ) -> Result<RefundOutcome, StoreError> {
        let mut tx = self.pg.pool().begin().await.map_err(sql)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLEMENT} FROM pay_settlements WHERE reference = $1 FOR UPDATE"
        )))
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql)?;
        let Some(rec) = row.map(|r| settlement_of(&r)).transpose()? else {
            return Ok(RefundOutcome::NotFound);
        };
        if rec.refund.is_some() {
            return Ok(RefundOutcome::AlreadyRefunded(rec));
        }
        let (payer, payee) = rec.accounts();
        let had = lock_balances(&mut tx, &[payer, payee], now).await?;
        let moves = transfer(
            (payee, had[1]),
            (payer, had[0]),
            rec.amount,
            ("refund", reference, Some(reason)),
        )?
        .ok_or_else(|| StoreError(format!("balance of {} would go negative", payee.owner)))?;
        apply(&mut tx, &moves, now).await?;
        sqlx::query(
            "UPDATE pay_settlements SET refunded_at = $1, refund_reason = $2 WHERE reference = $3",
        )
        .bind(secs(now))
        .bind(reason)
        .bind(reference)
        .execute(&mut *tx)
        .await
        .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        Ok(RefundOutcome::Refunded(SettlementRecord {
            refund: Some(RefundRecord {
                refunded_at: now,
                reason: reason.to_owned(),
            }),
            ..rec
        }))
    }
}

#[async_trait]
impl NonceStore for PgPayStore {
    async fn claim(&self, c: &NonceClaim) -> Result<ClaimOutcome, StoreError> {
        let q = sqlx::query(
            "INSERT INTO pay_claims (chain_id, asset, payer, nonce, digest, request_id, state,
             payment_json, requirements_json, lease_until, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8, $9, $10)
             ON CONFLICT (chain_id, asset, payer, nonce) DO NOTHING",
        );
        let inserted = bind_key!(q, c.key)
            .bind(word(&c.digest))
            .bind(&c.request_id)
            .bind(&c.payment_json)
            .bind(&c.requirements_json)
            .bind(secs(c.lease_until))
            .bind(secs(c.now))
            .execute(self.pg.pool())
            .await
            .map_err(sql)?
            .rows_affected();
        if inserted == 1 {
            return Ok(ClaimOutcome::Won);
        }
        // Take-over in one statement: only the same authorization, and only if its output is
        // waiting (unserved) or its holder's lease ran out.
        let q = sqlx::query(
            "UPDATE pay_claims
             SET state = CASE WHEN state IN ('unserved', 'resumed') THEN 'resumed' ELSE 'held' END,
                 request_id = $5, lease_until = $6, updated_at = $7
             WHERE chain_id = $1 AND asset = $2 AND payer = $3 AND nonce = $4 AND digest = $8
               AND (state = 'unserved' OR (state IN ('held', 'resumed') AND lease_until < $7))
             RETURNING state, settlement_json",
        );
        let row = bind_key!(q, c.key)
            .bind(&c.request_id)
            .bind(secs(c.lease_until))
            .bind(secs(c.now))
            .bind(word(&c.digest))
            .fetch_optional(self.pg.pool())
            .await
            .map_err(sql)?;
        let Some(row) = row else {
            return Ok(ClaimOutcome::Taken);
        };
        let state: String = row.try_get("state").map_err(sql)?;
        let settlement_json: Option<String> = row.try_get("settlement_json").map_err(sql)?;
        Ok(if state == "resumed" {
            ClaimOutcome::Resumed {
                settlement_json: settlement_json.unwrap_or_default(),
            }
        } else {
            ClaimOutcome::Won
        })
    }

    async fn release(&self, key: &AuthorizationKey, request_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pg.pool().begin().await.map_err(sql)?;
        let q = sqlx::query(
            "DELETE FROM pay_claims WHERE chain_id = $1 AND asset = $2 AND payer = $3
             AND nonce = $4 AND request_id = $5 AND state = 'held'",
        );
        bind_key!(q, key)
            .bind(request_id)
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        let q = sqlx::query(
            "UPDATE pay_claims SET state = 'unserved' WHERE chain_id = $1 AND asset = $2
             AND payer = $3 AND nonce = $4 AND request_id = $5 AND state = 'resumed'",
        );
        bind_key!(q, key)
            .bind(request_id)
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        tx.commit().await.map_err(sql)
    }

    async fn begin_settle(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE pay_claims SET state = 'settling', updated_at = $6 WHERE chain_id = $1
             AND asset = $2 AND payer = $3 AND nonce = $4 AND request_id = $5 AND state = 'held'",
        );
        Ok(bind_key!(q, key)
            .bind(request_id)
            .bind(secs(now))
            .execute(self.pg.pool())
            .await
            .map_err(sql)?
            .rows_affected()
            == 1)
    }

    async fn finish(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        end: ClaimEnd,
        settlement_json: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        const KEY: &str =
            "chain_id = $1 AND asset = $2 AND payer = $3 AND nonce = $4 AND request_id = $5";
        let changed = match end {
            ClaimEnd::Failed => {
                let q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM pay_claims WHERE {KEY} AND state = 'settling'"
                )));
                bind_key!(q, key)
                    .bind(request_id)
                    .execute(self.pg.pool())
                    .await
            }
            ClaimEnd::Served | ClaimEnd::Unserved => {
                let (to, from) = match end {
                    ClaimEnd::Served => ("served", "('settling', 'resumed')"),
                    _ => ("unserved", "('settling')"),
                };
                let q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE pay_claims SET state = '{to}', settlement_json = $6, updated_at = $7
                     WHERE {KEY} AND state IN {from}"
                )));
                bind_key!(q, key)
                    .bind(request_id)
                    .bind(settlement_json)
                    .bind(secs(now))
                    .execute(self.pg.pool())
                    .await
            }
        }
        .map_err(sql)?
        .rows_affected();
        if changed != 1 {
            tracing::warn!(
                request_id,
                ?end,
                "payment claim was not in the expected state when finishing"
            );
        }
        Ok(())
    }

    async fn pending(&self, older_than: u64, limit: u32) -> Result<Vec<PendingClaim>, StoreError> {
        let rows = sqlx::query(
            "SELECT chain_id, asset, payer, nonce, request_id, payment_json, requirements_json,
             updated_at FROM pay_claims WHERE state = 'settling' AND updated_at < $1
             ORDER BY updated_at LIMIT $2",
        )
        .bind(secs(older_than))
        .bind(i64::from(limit))
        .fetch_all(self.pg.pool())
        .await
        .map_err(sql)?;
        rows.iter()
            .map(|r| {
                let updated: i64 = r.try_get("updated_at").map_err(sql)?;
                Ok(PendingClaim {
                    key: key_of(r)?,
                    request_id: r.try_get("request_id").map_err(sql)?,
                    payment_json: r.try_get("payment_json").map_err(sql)?,
                    requirements_json: r.try_get("requirements_json").map_err(sql)?,
                    since: u64::try_from(updated).unwrap_or(0),
                })
            })
            .collect()
    }
}

/// The payment layer's store on whichever database the node runs: the SQLite ledger file (one
/// owning process) or the cluster's PostgreSQL tables, behind one type for the node.
#[derive(Clone)]
pub enum PayBackend {
    Sqlite(crate::pay_store::SqlitePayStore),
    Postgres(PgPayStore),
}

impl PayBackend {
    /// The ledger and claims of `store`'s database; on SQLite, settlements are made durable as
    /// `durability` says.
    pub async fn open(
        store: &crate::Store,
        durability: crate::pay_store::SettleDurability,
    ) -> Result<PayBackend, StoreError> {
        Ok(match store.backend() {
            crate::Backend::Sqlite(db) => PayBackend::Sqlite(
                crate::pay_store::SqlitePayStore::open(db.clone(), durability).await?,
            ),
            crate::Backend::Postgres(pg) => {
                PayBackend::Postgres(PgPayStore::new(pg.clone()).await?)
            }
        })
    }

    /// Waits until every settlement decided so far is durable (at once on PostgreSQL).
    pub async fn sync(&self) -> Result<(), StoreError> {
        match self {
            PayBackend::Sqlite(s) => s.sync().await,
            PayBackend::Postgres(s) => s.sync().await,
        }
    }

    /// The balance journal of `account`, newest first.
    pub async fn entries(
        &self,
        account: &Account,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, String, Option<String>)>, StoreError> {
        match self {
            PayBackend::Sqlite(s) => s.entries(account, limit).await,
            PayBackend::Postgres(s) => s.entries(account, limit).await,
        }
    }
}

/// Forwards a trait call to the backend's store.
macro_rules! either {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            PayBackend::Sqlite($s) => $e.await,
            PayBackend::Postgres($s) => $e.await,
        }
    };
}

#[async_trait]
impl Ledger for PayBackend {
    async fn balance(&self, a: &Account) -> Result<U256, StoreError> {
        either!(self, s => s.balance(a))
    }
    async fn credit(&self, a: &Account, add: U256, memo: &str) -> Result<U256, StoreError> {
        either!(self, s => s.credit(a, add, memo))
    }
    async fn settlement(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        either!(self, s => s.settlement(key))
    }
    async fn standing(
        &self,
        key: &AuthorizationKey,
        payer: &Account,
    ) -> Result<(bool, U256), StoreError> {
        either!(self, s => s.standing(key, payer))
    }
    async fn settle(&self, new: &SettlementRecord) -> Result<SettleOutcome, StoreError> {
        either!(self, s => s.settle(new))
    }
    async fn refund(
        &self,
        reference: &str,
        reason: &str,
        now: u64,
    ) -> Result<RefundOutcome, StoreError> {
        either!(self, s => s.refund(reference, reason, now))
    }
}

#[async_trait]
impl NonceStore for PayBackend {
    async fn claim(&self, c: &NonceClaim) -> Result<ClaimOutcome, StoreError> {
        either!(self, s => s.claim(c))
    }
    async fn release(&self, key: &AuthorizationKey, request_id: &str) -> Result<(), StoreError> {
        either!(self, s => s.release(key, request_id))
    }
    async fn begin_settle(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        either!(self, s => s.begin_settle(key, request_id, now))
    }
    async fn finish(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        end: ClaimEnd,
        settlement_json: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        either!(self, s => s.finish(key, request_id, end, settlement_json, now))
    }
    async fn pending(&self, older_than: u64, limit: u32) -> Result<Vec<PendingClaim>, StoreError> {
        either!(self, s => s.pending(older_than, limit))
    }
}
