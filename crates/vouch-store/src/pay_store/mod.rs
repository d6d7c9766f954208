//! Durable state of the payment layer over SQLite: the built-in facilitator's ledger
//! ([`vouch_pay::store::Ledger`], file `<main db>-ledger`) and the server's durable payment
//! claims ([`vouch_pay::store::NonceStore`], file `<main db>-pay-claims`). Tables:
//! `migrations/pay/`.
//!
//! One process owns a ledger file at a time ([`take_ownership`]): it keeps the ledger's state in
//! memory, decides settlements there under one lock and writes them behind, in order, in
//! batches ([`book`]). Claims are atomic in the database itself: a claim is one `INSERT … ON
//! CONFLICT DO NOTHING` or one guarded `UPDATE`.

mod book;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, ToSql, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vouch_pay::store::{
    Account, AuthorizationKey, ClaimEnd, ClaimOutcome, Ledger, NonceClaim, NonceStore,
    PendingClaim, RefundOutcome, RefundRecord, SettleOutcome, SettlementRecord, StoreError,
};
use vouch_pay::{Address, B256, U256};

use crate::db::{Db, DbError, Synchronous};
use book::{Book, Decided};

/// Ledger and claim store: two sidecar databases beside the main one (usually
/// [`crate::Store::pool`]'s file).
#[derive(Clone)]
pub struct SqlitePayStore {
    /// The ledger: `<main file>-ledger`, WAL, `synchronous = FULL` — money must survive power
    /// loss. A file of its own so that its writes never wait for the transparency log's
    /// fsync (one SQLite file admits one writer at a time, and the log holds the write lock
    /// through its fsync), and the two fsyncs of a paid request can run at once. Read here
    /// only for what memory does not hold (settlement records, the journal).
    pool: Db,
    /// Claims: a sidecar database (`<main file>-pay-claims`), one connection, `synchronous =
    /// NORMAL`. A claim only guards requests in flight — after any crash a spent authorization
    /// is refused by the ledger (or chain) it was settled in — so it needs no fsync; kept apart,
    /// its writes never wait behind the ledger's fsync, and one connection queues them in the
    /// pool instead of in SQLite's sleeping busy handler.
    claims: Db,
    /// The ledger's state in memory and its writer.
    book: Arc<Book>,
    durability: SettleDurability,
}

/// When `settle` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleDurability {
    /// Once the settlement is committed and synced: for a facilitator that answers as soon as
    /// it settled (`vouch facilitator`).
    Own,
    /// As soon as it is decided (in memory, final for every later call in this process); the
    /// caller makes it durable with [`SqlitePayStore::sync`] before it acknowledges the payment.
    /// The server runs that wait at the same time as the log commit of the receipt naming the
    /// settlement, so a paid request waits for one fsync, not two in a row. Writes group: one
    /// commit covers every settlement decided while the previous one was being written.
    Deferred,
}

/// How long opening a ledger waits for another handle (a node shutting down, or an earlier
/// open in this process) to let go of it.
const OWNER_WAIT: Duration = Duration::from_secs(10);

/// Takes the exclusive ownership lock of a ledger file (`<ledger>.owner-lock`), waiting up to
/// `wait`: the state in memory is authoritative only while no other process writes the file.
async fn take_ownership(ledger: &Path, wait: Duration) -> Result<std::fs::File, StoreError> {
    let file = crate::lock_file_beside(ledger, "owner-lock")
        .map_err(|e| StoreError(format!("ledger lock {}.owner-lock: {e}", ledger.display())))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError(format!(
                    "the ledger {} is in use by another process (a `vouch serve` or `vouch \
                     facilitator` on the same data directory); one process owns a ledger — \
                     point the other at it as a remote facilitator",
                    ledger.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError(format!(
                    "ledger lock {}.owner-lock: {e}",
                    ledger.display()
                )));
            }
        }
    }
}

/// Applies the ledger's migrations (versions 200–299) to `pool`'s file.
pub async fn migrate(pool: &Db) -> Result<(), DbError> {
    crate::migrate_locked(pool, crate::migrate::PAY).await
}

/// The path of a sidecar database file next to `main`'s.
fn sidecar(main: &Db, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}-{suffix}", main.path().display()))
}

/// Nodes before the ledger had its own file kept it in the main database: copies it over once,
/// into a ledger file that has no entries yet. The old tables stay in place, unread.
async fn import_legacy_ledger(main: &Db, ledger: &Db) -> Result<(), StoreError> {
    let old_entries: Option<i64> = main
        .run(|c| {
            let legacy: i64 = c.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'pay_entries'",
                [],
                |r| r.get(0),
            )?;
            if legacy == 0 {
                return Ok(None);
            }
            c.query_row("SELECT COUNT(*) FROM pay_entries", [], |r| r.get(0))
                .map(Some)
        })
        .await
        .map_err(db)?;
    let Some(old_entries) = old_entries.filter(|&n| n > 0) else {
        return Ok(());
    };
    let main_file = main.path().display().to_string();
    ledger
        .run(move |c| {
            let new_entries: i64 =
                c.query_row("SELECT COUNT(*) FROM pay_entries", [], |r| r.get(0))?;
            if new_entries > 0 {
                return Ok(());
            }
            c.execute("ATTACH DATABASE ? AS legacy", [&main_file])?;
            let copied = (|| {
                // Under the write lock, and only into a still-empty ledger, so a second process
                // that opened the same ledger meanwhile does not import again.
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let empty: i64 =
                    tx.query_row("SELECT COUNT(*) FROM main.pay_entries", [], |r| r.get(0))?;
                if empty > 0 {
                    return tx.commit();
                }
                for table in ["pay_balances", "pay_entries", "pay_settlements"] {
                    tx.execute(
                        &format!("INSERT INTO main.{table} SELECT * FROM legacy.{table}"),
                        [],
                    )?;
                }
                tx.commit()
            })();
            let detached = c.execute("DETACH DATABASE legacy", []);
            copied?;
            detached.map(drop)
        })
        .await
        .map_err(db)?;
    tracing::info!(
        entries = old_entries,
        "ledger moved from the main database to its own file"
    );
    Ok(())
}

impl SqlitePayStore {
    /// Opens the ledger and claim sidecars of `main`'s database file, settlements synced on
    /// their own ([`SettleDurability::Own`]). Spawns the settlement writer, so it must be
    /// called inside a Tokio runtime.
    pub async fn new(main: Db) -> Result<Self, StoreError> {
        Self::open(main, SettleDurability::Own).await
    }

    /// As [`new`](Self::new), with settlements made durable as `durability` says.
    pub async fn open(main: Db, durability: SettleDurability) -> Result<Self, StoreError> {
        Self::open_waiting(main, durability, OWNER_WAIT).await
    }

    /// As [`open`](Self::open), waiting at most `wait` for the ledger's ownership.
    async fn open_waiting(
        main: Db,
        durability: SettleDurability,
        wait: Duration,
    ) -> Result<Self, StoreError> {
        let ledger_path = sidecar(&main, "ledger");
        let owner = take_ownership(&ledger_path, wait).await?;
        let lock = crate::lock_beside(&ledger_path)
            .await
            .map_err(|e| StoreError(format!("ledger lock: {e}")))?;
        crate::create_private_file(&ledger_path)
            .map_err(|e| StoreError(format!("{}: {e}", ledger_path.display())))?;
        let pool = Db::pool(&ledger_path, Synchronous::Full, 4);
        pool.call(|c| crate::migrate::run(c, crate::migrate::PAY))
            .await
            .map_err(|e| StoreError(format!("migration: {e}")))?;
        import_legacy_ledger(&main, &pool).await?;
        drop(lock);
        let claims_path = sidecar(&main, "pay-claims");
        let lock = crate::lock_beside(&claims_path)
            .await
            .map_err(|e| StoreError(format!("claims lock: {e}")))?;
        crate::create_private_file(&claims_path)
            .map_err(|e| StoreError(format!("{}: {e}", claims_path.display())))?;
        let claims = Db::pool(&claims_path, Synchronous::Normal, 1);
        claims
            .call(|c| crate::migrate::run(c, crate::migrate::PAY_CLAIMS))
            .await
            .map_err(|e| StoreError(format!("migration: {e}")))?;
        drop(lock);
        // The writer's own connection (see `book`).
        let writer = pool.connect().map_err(db)?;
        let book = Arc::new(Book::open(&pool, writer, owner).await?);
        Ok(SqlitePayStore {
            pool,
            claims,
            book,
            durability,
        })
    }

    /// Waits until every settlement decided so far is committed and synced (at once for
    /// [`SettleDurability::Own`], whose `settle` already waited). Concurrent callers share the
    /// writer's batches: one fsync covers all of them.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.book.sync().await
    }

    /// The balance journal, newest first: `(seq, owner, delta, kind, reference)` — for the
    /// admin command that shows an account's history.
    pub async fn entries(
        &self,
        account: &Account,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, String, Option<String>)>, StoreError> {
        let args = (
            chain(account.chain_id)?,
            addr(&account.asset),
            addr(&account.owner),
            i64::from(limit),
        );
        self.pool
            .run(move |c| {
                c.prepare_cached(
                    "SELECT seq, owner, delta, kind, reference FROM pay_entries
                     WHERE chain_id = ? AND asset = ? AND owner = ? ORDER BY seq DESC LIMIT ?",
                )?
                .query_map(params![args.0, args.1, args.2, args.3], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .await
            .map_err(db)
    }
}

fn db(e: impl Into<DbError>) -> StoreError {
    StoreError(e.into().to_string())
}

// The column encodings, shared with the PostgreSQL ledger (`pg/pay.rs`).
pub(crate) fn addr(a: &Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

pub(crate) fn word(b: &B256) -> String {
    format!("0x{}", hex::encode(b.as_slice()))
}

pub(crate) fn chain(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError(format!("chain id {id} out of range")))
}

pub(crate) fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

pub(crate) fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError(format!("stored {what} {v:?} is corrupt"))
}

pub(crate) fn parse_u256(s: &str) -> Result<U256, StoreError> {
    vouch_pay::parse_amount(s).map_err(|_| corrupt("amount", s))
}

fn col<T: rusqlite::types::FromSql>(r: &Row<'_>, c: &str) -> Result<T, StoreError> {
    r.get(c).map_err(db)
}

/// Column `c` of `r`, stored as text, parsed (addresses, nonces, digests).
fn parsed<T: FromStr>(r: &Row<'_>, c: &str) -> Result<T, StoreError> {
    let text = col::<String>(r, c)?;
    T::from_str(&text).map_err(|_| corrupt(c, &text))
}

fn chain_of(r: &Row<'_>) -> Result<u64, StoreError> {
    let chain_id: i64 = col(r, "chain_id")?;
    u64::try_from(chain_id).map_err(|_| corrupt("chain id", &chain_id.to_string()))
}

/// The authorization key in columns `chain_id, asset, payer, nonce` (settlements and claims).
fn key_of(r: &Row<'_>) -> Result<AuthorizationKey, StoreError> {
    Ok(AuthorizationKey {
        chain_id: chain_of(r)?,
        asset: parsed(r, "asset")?,
        payer: parsed(r, "payer")?,
        nonce: parsed(r, "nonce")?,
    })
}

fn settlement_of(r: &Row<'_>) -> Result<SettlementRecord, StoreError> {
    let s = |c: &str| col::<String>(r, c);
    let refunded_at: Option<i64> = col(r, "refunded_at")?;
    let refund_reason: Option<String> = col(r, "refund_reason")?;
    Ok(SettlementRecord {
        key: key_of(r)?,
        digest: parsed(r, "digest")?,
        pay_to: parsed(r, "pay_to")?,
        amount: parse_u256(&s("amount")?)?,
        reference: s("reference")?,
        settled_at: u64::try_from(col::<i64>(r, "settled_at")?).unwrap_or(0),
        refund: refunded_at.map(|at| RefundRecord {
            refunded_at: u64::try_from(at).unwrap_or(0),
            reason: refund_reason.unwrap_or_default(),
        }),
    })
}

const SETTLEMENT_COLUMNS: &str = "chain_id, asset, payer, nonce, digest, pay_to, amount, reference, settled_at, refunded_at, refund_reason";

fn now_secs() -> u64 {
    vouch_pay::local::system_now()
}

fn balance_of(r: &Row<'_>) -> Result<(Account, U256), StoreError> {
    Ok((
        Account {
            chain_id: chain_of(r)?,
            asset: parsed(r, "asset")?,
            owner: parsed(r, "owner")?,
        },
        parse_u256(&col::<String>(r, "balance")?)?,
    ))
}

/// A statement's arguments, owned so they can cross to the database thread.
type Args = Vec<Box<dyn ToSql + Send>>;

/// The four columns of [`KEY_WHERE`], bound in order.
fn key_args(key: &AuthorizationKey) -> Result<Args, StoreError> {
    Ok(vec![
        Box::new(chain(key.chain_id)?),
        Box::new(addr(&key.asset)),
        Box::new(addr(&key.payer)),
        Box::new(word(&key.nonce)),
    ])
}

/// Runs `sql` with `args` on `pool` and returns how many rows it changed.
async fn execute(pool: &Db, sql: String, args: Args) -> Result<usize, StoreError> {
    pool.run(move |c| {
        c.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(args.iter().map(|a| &**a)))
    })
    .await
    .map_err(db)
}

/// Runs query `sql` with `args` on `pool` and reads its first row, if any, with `read`.
async fn query_one<T: Send + 'static>(
    pool: &Db,
    sql: String,
    args: Args,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    pool.run(move |c| {
        c.prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(args.iter().map(|a| &**a)), |r| {
                Ok(read(r))
            })
            .optional()
    })
    .await
    .map_err(db)?
    .transpose()
}

impl SqlitePayStore {
    /// The settlement under `key` on disk.
    async fn stored_settlement(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        let sql = format!("SELECT {SETTLEMENT_COLUMNS} FROM pay_settlements WHERE {KEY_WHERE}");
        query_one(&self.pool, sql, key_args(key)?, settlement_of).await
    }

    /// Waits for change `seq` to be durable when settlements must be durable on their own.
    async fn own_durability(&self, seq: Option<u64>) -> Result<(), StoreError> {
        match (seq, self.durability) {
            (Some(seq), SettleDurability::Own) => self.book.written(seq).await,
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Ledger for SqlitePayStore {
    async fn balance(&self, a: &Account) -> Result<U256, StoreError> {
        self.book.balance(a)
    }

    async fn standing(
        &self,
        key: &AuthorizationKey,
        payer: &Account,
    ) -> Result<(bool, U256), StoreError> {
        let (maybe_used, balance) = self.book.standing(key, payer)?;
        if !maybe_used {
            return Ok((false, balance));
        }
        // A settlement leaves `unwritten` only once committed: one of the two reads sees it.
        let used =
            self.book.unwritten(key)?.is_some() || self.stored_settlement(key).await?.is_some();
        Ok((used, balance))
    }

    async fn credit(&self, a: &Account, amount: U256, memo: &str) -> Result<U256, StoreError> {
        let (balance, seq) = self.book.credit(a, amount, memo, now_secs())?;
        self.book.written(seq).await?;
        Ok(balance)
    }

    async fn settlement(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        if let Some((rec, seq)) = self.book.unwritten(key)? {
            self.own_durability(Some(seq)).await?;
            return Ok(Some(rec));
        }
        self.stored_settlement(key).await
    }

    async fn settle(&self, new: &SettlementRecord) -> Result<SettleOutcome, StoreError> {
        let (outcome, seq) = match self.book.try_settle(new)? {
            Decided::Final(decided) => decided,
            Decided::Check => {
                let _exact = self.book.exact.lock().await;
                match self.book.unwritten(&new.key)? {
                    Some((existing, seq)) => (book::repeat(&existing, new), Some(seq)),
                    None => match self.stored_settlement(&new.key).await? {
                        Some(existing) => (book::repeat(&existing, new), None),
                        // A collision of the keyed hash: the key is new after all.
                        None => self.book.settle_checked(new)?,
                    },
                }
            }
        };
        self.own_durability(seq).await?;
        Ok(outcome)
    }

    async fn refund(
        &self,
        reference: &str,
        reason: &str,
        now: u64,
    ) -> Result<RefundOutcome, StoreError> {
        // One refund decision at a time, each durable before the next reads the disk.
        let _exact = self.book.exact.lock().await;
        let rec = match self.book.unwritten_by_reference(reference)? {
            Some(rec) => Some(rec),
            None => {
                let sql =
                    format!("SELECT {SETTLEMENT_COLUMNS} FROM pay_settlements WHERE reference = ?");
                let args: Args = vec![Box::new(reference.to_owned())];
                query_one(&self.pool, sql, args, settlement_of).await?
            }
        };
        let Some(rec) = rec else {
            return Ok(RefundOutcome::NotFound);
        };
        if rec.refund.is_some() {
            return Ok(RefundOutcome::AlreadyRefunded(rec));
        }
        let (refunded, seq) = self.book.refund(&rec, reason, now)?;
        self.book.written(seq).await?;
        Ok(RefundOutcome::Refunded(refunded))
    }
}

const KEY_WHERE: &str = "chain_id = ? AND asset = ? AND payer = ? AND nonce = ?";

/// What the take-over of a claim found: `(state, settlement_json)` of the row it updated.
fn taken_over(r: &Row<'_>) -> Result<(String, Option<String>), StoreError> {
    Ok((col(r, "state")?, col(r, "settlement_json")?))
}

#[async_trait]
impl NonceStore for SqlitePayStore {
    async fn claim(&self, c: &NonceClaim) -> Result<ClaimOutcome, StoreError> {
        let mut args = key_args(&c.key)?;
        args.push(Box::new(word(&c.digest)));
        args.push(Box::new(c.request_id.clone()));
        args.push(Box::new(c.payment_json.clone()));
        args.push(Box::new(c.requirements_json.clone()));
        args.push(Box::new(secs(c.lease_until)));
        args.push(Box::new(secs(c.now)));
        let inserted = execute(
            &self.claims,
            "INSERT INTO pay_claims (chain_id, asset, payer, nonce, digest, request_id, state, payment_json,
                                     requirements_json, lease_until, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, 'held', ?, ?, ?, ?)
             ON CONFLICT (chain_id, asset, payer, nonce) DO NOTHING"
                .to_owned(),
            args,
        )
        .await?;
        if inserted == 1 {
            return Ok(ClaimOutcome::Won);
        }
        // Take-over, guarded in one statement: only the same authorization, and only if its
        // output is waiting (unserved) or its holder's lease ran out.
        let sql = format!(
            "UPDATE pay_claims
             SET state = CASE WHEN state IN ('unserved', 'resumed') THEN 'resumed' ELSE 'held' END,
                 request_id = ?, lease_until = ?, updated_at = ?
             WHERE {KEY_WHERE} AND digest = ?
               AND (state = 'unserved' OR (state IN ('held', 'resumed') AND lease_until < ?))
             RETURNING state, settlement_json"
        );
        let mut args: Args = vec![
            Box::new(c.request_id.clone()),
            Box::new(secs(c.lease_until)),
            Box::new(secs(c.now)),
        ];
        args.extend(key_args(&c.key)?);
        args.push(Box::new(word(&c.digest)));
        args.push(Box::new(secs(c.now)));
        Ok(
            match query_one(&self.claims, sql, args, taken_over).await? {
                None => ClaimOutcome::Taken,
                Some((state, settlement_json)) if state == "resumed" => ClaimOutcome::Resumed {
                    settlement_json: settlement_json.unwrap_or_default(),
                },
                Some(_) => ClaimOutcome::Won,
            },
        )
    }

    async fn release(&self, key: &AuthorizationKey, request_id: &str) -> Result<(), StoreError> {
        let mut args = key_args(key)?;
        args.push(Box::new(request_id.to_owned()));
        self.claims
            .run(move |c| {
                let args = rusqlite::params_from_iter(args.iter().map(|a| &**a));
                c.prepare_cached(&format!(
                    "DELETE FROM pay_claims WHERE {KEY_WHERE} AND request_id = ? AND state = 'held'"
                ))?
                .execute(args.clone())?;
                c.prepare_cached(&format!(
                    "UPDATE pay_claims SET state = 'unserved' WHERE {KEY_WHERE} AND request_id = ? AND state = 'resumed'"
                ))?
                .execute(args)
            })
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn begin_settle(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE pay_claims SET state = 'settling', updated_at = ? WHERE {KEY_WHERE} AND request_id = ? AND state = 'held'"
        );
        let mut args: Args = vec![Box::new(secs(now))];
        args.extend(key_args(key)?);
        args.push(Box::new(request_id.to_owned()));
        Ok(execute(&self.claims, sql, args).await? == 1)
    }

    async fn finish(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        end: ClaimEnd,
        settlement_json: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let (sql, mut args): (String, Args) = match end {
            ClaimEnd::Failed => (
                format!(
                    "DELETE FROM pay_claims WHERE {KEY_WHERE} AND request_id = ? AND state = 'settling'"
                ),
                Vec::new(),
            ),
            ClaimEnd::Served | ClaimEnd::Unserved => {
                let (to, from) = match end {
                    ClaimEnd::Served => ("served", "('settling', 'resumed')"),
                    _ => ("unserved", "('settling')"),
                };
                (
                    format!(
                        "UPDATE pay_claims SET state = '{to}', settlement_json = ?, updated_at = ?
                         WHERE {KEY_WHERE} AND request_id = ? AND state IN {from}"
                    ),
                    vec![Box::new(settlement_json.to_owned()), Box::new(secs(now))],
                )
            }
        };
        args.extend(key_args(key)?);
        args.push(Box::new(request_id.to_owned()));
        if execute(&self.claims, sql, args).await? != 1 {
            tracing::warn!(
                request_id,
                ?end,
                "payment claim was not in the expected state when finishing"
            );
        }
        Ok(())
    }

    async fn pending(&self, older_than: u64, limit: u32) -> Result<Vec<PendingClaim>, StoreError> {
        let (older_than, limit) = (secs(older_than), i64::from(limit));
        self.claims
            .run(move |c| {
                c.prepare_cached(
                    "SELECT chain_id, asset, payer, nonce, request_id, payment_json, requirements_json, updated_at
                     FROM pay_claims WHERE state = 'settling' AND updated_at < ? ORDER BY updated_at LIMIT ?",
                )?
                .query_map([older_than, limit], |r| {
                    Ok((|| {
                        let s = |c: &str| col::<String>(r, c);
                        Ok(PendingClaim {
                            key: key_of(r)?,
                            request_id: s("request_id")?,
                            payment_json: s("payment_json")?,
                            requirements_json: s("requirements_json")?,
                            since: u64::try_from(col::<i64>(r, "updated_at")?).unwrap_or(0),
                        })
                    })())
                })?
                .collect::<rusqlite::Result<Vec<Result<PendingClaim, StoreError>>>>()
            })
            .await
            .map_err(db)?
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    /// A fresh database file with the production settings (WAL, FULL sync, several connections).
    struct TempDb(PathBuf);
    impl TempDb {
        fn new(tag: &str) -> Self {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir()
                .join(format!("vouch-pay-store-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDb(dir)
        }
        async fn open(&self) -> SqlitePayStore {
            open_at(&self.0.join("pay.db"), SettleDurability::Own).await
        }
        async fn open_with(&self, durability: SettleDurability) -> SqlitePayStore {
            open_at(&self.0.join("pay.db"), durability).await
        }
    }
    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn open_at(path: &Path, durability: SettleDurability) -> SqlitePayStore {
        SqlitePayStore::open(main_pool(path).await, durability)
            .await
            .unwrap()
    }

    /// A pool on the main database file `path` (the ledger and claims sit beside it).
    async fn main_pool(path: &Path) -> Db {
        Db::pool(path, Synchronous::Full, 8)
    }

    /// The integers `sql` reads from `db`.
    async fn ints(db: &Db, sql: &'static str) -> Vec<i64> {
        db.run(move |c| c.prepare(sql)?.query_map([], |r| r.get(0))?.collect())
            .await
            .unwrap()
    }

    fn a(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    fn key(nonce: u8) -> AuthorizationKey {
        AuthorizationKey {
            chain_id: 84532,
            asset: a(0xaa),
            payer: a(0x01),
            nonce: B256::repeat_byte(nonce),
        }
    }

    fn payer() -> Account {
        Account {
            chain_id: 84532,
            asset: a(0xaa),
            owner: a(0x01),
        }
    }

    fn payee() -> Account {
        Account {
            chain_id: 84532,
            asset: a(0xaa),
            owner: a(0x02),
        }
    }

    fn record(nonce: u8, digest: u8, amount: u64) -> SettlementRecord {
        SettlementRecord {
            key: key(nonce),
            digest: B256::repeat_byte(digest),
            pay_to: a(0x02),
            amount: U256::from(amount),
            reference: format!("vouch-ledger:{}", word(&B256::repeat_byte(digest))),
            settled_at: 1000,
            refund: None,
        }
    }

    #[tokio::test]
    async fn ledger_settles_once_and_refunds_once() {
        let db = TempDb::new("ledger");
        let s = db.open().await;
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::ZERO);
        assert_eq!(
            s.credit(&payer(), U256::from(100u64), "top-up")
                .await
                .unwrap(),
            U256::from(100u64)
        );

        assert!(matches!(
            s.settle(&record(1, 0x11, 30)).await.unwrap(),
            SettleOutcome::Settled(_)
        ));
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(70u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(30u64));
        // The same authorization again: the earlier result, no second charge.
        assert!(
            matches!(s.settle(&record(1, 0x11, 30)).await.unwrap(), SettleOutcome::AlreadySettled(r) if r.amount == U256::from(30u64))
        );
        // Another authorization under the same nonce.
        assert_eq!(
            s.settle(&record(1, 0x12, 30)).await.unwrap(),
            SettleOutcome::NonceUsed
        );
        // More than the payer has.
        assert_eq!(
            s.settle(&record(2, 0x21, 71)).await.unwrap(),
            SettleOutcome::InsufficientBalance {
                balance: U256::from(70u64)
            }
        );
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(70u64));
        assert_eq!(
            s.settlement(&key(1)).await.unwrap().unwrap().digest,
            B256::repeat_byte(0x11)
        );
        assert!(s.settlement(&key(2)).await.unwrap().is_none());

        let reference = record(1, 0x11, 30).reference;
        assert!(
            matches!(s.refund(&reference, "zk proof failed", 2000).await.unwrap(), RefundOutcome::Refunded(r) if r.refund.is_some())
        );
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(100u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::ZERO);
        assert!(matches!(
            s.refund(&reference, "again", 2001).await.unwrap(),
            RefundOutcome::AlreadyRefunded(_)
        ));
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(100u64));
        assert_eq!(
            s.refund("vouch-ledger:0xnone", "x", 1).await.unwrap(),
            RefundOutcome::NotFound
        );
        // A refunded authorization's nonce stays spent.
        assert!(matches!(
            s.settle(&record(1, 0x11, 30)).await.unwrap(),
            SettleOutcome::AlreadySettled(_)
        ));

        let journal = s.entries(&payer(), 10).await.unwrap();
        let deltas: Vec<&str> = journal.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(deltas, ["+30", "-30", "+100"], "newest first");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sixteen_racing_settlements_debit_once() {
        for durability in [SettleDurability::Own, SettleDurability::Deferred] {
            racing_settlements_debit_once(durability).await;
        }
    }

    async fn racing_settlements_debit_once(durability: SettleDurability) {
        let db = TempDb::new("race-settle");
        // One owner, many tasks on a multi-threaded runtime, batches in the writer.
        let stores = [Arc::new(db.open_with(durability).await)];
        for s in &stores {
            assert_eq!(s.durability, durability);
        }
        let s = stores[0].clone();
        s.credit(&payer(), U256::from(1000u64), "top-up")
            .await
            .unwrap();
        // 16 different authorizations under one nonce, all at once.
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let s = stores[usize::from(i) % stores.len()].clone();
                tokio::spawn(async move { s.settle(&record(7, 0x40 + i, 10)).await.unwrap() })
            })
            .collect();
        let mut settled = 0;
        for t in tasks {
            match t.await.unwrap() {
                SettleOutcome::Settled(_) => settled += 1,
                SettleOutcome::NonceUsed => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(settled, 1);
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(990u64));
        // 16 copies of the same authorization: one charge, 15 earlier results.
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = stores[i % stores.len()].clone();
                tokio::spawn(async move { s.settle(&record(8, 0x80, 10)).await.unwrap() })
            })
            .collect();
        let mut outcomes = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                SettleOutcome::Settled(_) => outcomes.0 += 1,
                SettleOutcome::AlreadySettled(_) => outcomes.1 += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(outcomes, (1, 15));
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(980u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(20u64));
        // Many distinct payments at once (batched by the writers): each settles once, the
        // payer's balance covers only the first 90, and the journal stays gap-free.
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let s = stores[usize::from(i) % stores.len()].clone();
                tokio::spawn(
                    async move { s.settle(&record(0x40 + i, 0xa0 + i, 10)).await.unwrap() },
                )
            })
            .collect();
        let mut settled = 0;
        for t in tasks {
            match t.await.unwrap() {
                SettleOutcome::Settled(_) => settled += 1,
                SettleOutcome::InsufficientBalance { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(settled, 64);
        s.sync().await.unwrap();
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(340u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(660u64));
        let seqs: Vec<i64> = ints(&s.pool, "SELECT seq FROM pay_entries ORDER BY seq").await;
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert_eq!(seqs.len(), 1 + 2 * 2 + 2 * 64);
        let debits: i64 = ints(
            &s.pool,
            "SELECT COUNT(*) FROM pay_entries WHERE kind = 'settle' AND delta LIKE '-%'",
        )
        .await[0];
        assert_eq!(debits, 66);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_batch_refuses_what_the_balance_cannot_cover_in_arrival_order() {
        let db = TempDb::new("race-balance");
        let s = Arc::new(db.open().await);
        s.credit(&payer(), U256::from(55u64), "top-up")
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(
                    async move { s.settle(&record(0x70 + i, 0x30 + i, 10)).await.unwrap() },
                )
            })
            .collect();
        let (mut settled, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                SettleOutcome::Settled(_) => settled += 1,
                SettleOutcome::InsufficientBalance { balance } => {
                    assert_eq!(balance, U256::from(5u64));
                    refused += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((settled, refused), (5, 11));
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(5u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(50u64));
    }

    fn claim(nonce: u8, digest: u8, request: &str, now: u64) -> NonceClaim {
        NonceClaim {
            key: key(nonce),
            digest: B256::repeat_byte(digest),
            request_id: request.into(),
            payment_json: "{\"x402Version\":2}".into(),
            requirements_json: "{}".into(),
            now,
            lease_until: now + 60,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sixteen_racing_claims_exactly_one_wins() {
        let db = TempDb::new("race-claim");
        // Four connections to the claims file, as four processes would have, so the race is
        // decided by SQLite's atomicity, not by a pool handing out one connection.
        let first = db.open().await;
        let claims_file = db.0.join("pay.db-pay-claims");
        let mut stores = vec![Arc::new(first.clone())];
        for _ in 1..4 {
            let claims = Db::pool(&claims_file, Synchronous::Normal, 1);
            stores.push(Arc::new(SqlitePayStore {
                claims,
                ..first.clone()
            }));
        }
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = stores[i % 4].clone();
                tokio::spawn(async move {
                    s.claim(&claim(3, 0x33, &format!("req-{i}"), 100))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                ClaimOutcome::Won => won += 1,
                ClaimOutcome::Taken => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn claim_lifecycle() {
        let db = TempDb::new("lifecycle");
        let s = db.open().await;
        let k = key(4);
        assert_eq!(
            s.claim(&claim(4, 0x44, "a", 100)).await.unwrap(),
            ClaimOutcome::Won
        );
        assert_eq!(
            s.claim(&claim(4, 0x44, "b", 101)).await.unwrap(),
            ClaimOutcome::Taken
        );
        // A failed request releases; the payment can be used again.
        s.release(&k, "a").await.unwrap();
        assert_eq!(
            s.claim(&claim(4, 0x44, "b", 102)).await.unwrap(),
            ClaimOutcome::Won
        );
        // Only the holder may settle.
        assert!(!s.begin_settle(&k, "a", 103).await.unwrap());
        assert!(s.begin_settle(&k, "b", 103).await.unwrap());
        assert!(
            !s.begin_settle(&k, "b", 103).await.unwrap(),
            "already settling"
        );
        // Settling claims are not released by a stray release.
        s.release(&k, "b").await.unwrap();
        assert_eq!(
            s.claim(&claim(4, 0x44, "c", 104)).await.unwrap(),
            ClaimOutcome::Taken
        );
        // Pending once the grace period passed.
        assert!(s.pending(103, 10).await.unwrap().is_empty());
        let p = s.pending(200, 10).await.unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (
                p[0].key,
                p[0].request_id.as_str(),
                p[0].payment_json.as_str()
            ),
            (k, "b", "{\"x402Version\":2}")
        );
        // Reconciled as paid but unserved: the identical payment may collect once…
        s.finish(&k, "b", ClaimEnd::Unserved, "{\"success\":true}", 300)
            .await
            .unwrap();
        assert_eq!(
            s.claim(&claim(4, 0x45, "evil", 301)).await.unwrap(),
            ClaimOutcome::Taken,
            "other digest"
        );
        assert_eq!(
            s.claim(&claim(4, 0x44, "d", 301)).await.unwrap(),
            ClaimOutcome::Resumed {
                settlement_json: "{\"success\":true}".into()
            }
        );
        assert_eq!(
            s.claim(&claim(4, 0x44, "e", 302)).await.unwrap(),
            ClaimOutcome::Taken,
            "held by d"
        );
        // …a failed collection puts it back…
        s.release(&k, "d").await.unwrap();
        assert!(matches!(
            s.claim(&claim(4, 0x44, "f", 303)).await.unwrap(),
            ClaimOutcome::Resumed { .. }
        ));
        // …and once served it is spent for good.
        s.finish(&k, "f", ClaimEnd::Served, "{\"success\":true}", 304)
            .await
            .unwrap();
        assert_eq!(
            s.claim(&claim(4, 0x44, "g", 100_000)).await.unwrap(),
            ClaimOutcome::Taken
        );

        // A held claim whose holder vanished can be taken over after its lease, not before.
        assert_eq!(
            s.claim(&claim(5, 0x55, "h", 100)).await.unwrap(),
            ClaimOutcome::Won
        );
        assert_eq!(
            s.claim(&claim(5, 0x55, "i", 160)).await.unwrap(),
            ClaimOutcome::Taken
        );
        assert_eq!(
            s.claim(&claim(5, 0x55, "i", 161)).await.unwrap(),
            ClaimOutcome::Won
        );
        assert!(
            !s.begin_settle(&key(5), "h", 162).await.unwrap(),
            "the old holder lost it"
        );
        // A failed settlement frees the key.
        assert!(s.begin_settle(&key(5), "i", 162).await.unwrap());
        s.finish(&key(5), "i", ClaimEnd::Failed, "{}", 163)
            .await
            .unwrap();
        assert_eq!(
            s.claim(&claim(5, 0x55, "j", 164)).await.unwrap(),
            ClaimOutcome::Won
        );
    }

    #[tokio::test]
    async fn state_survives_a_restart() {
        let db = TempDb::new("restart");
        {
            let s = db.open().await;
            s.credit(&payer(), U256::from(50u64), "top-up")
                .await
                .unwrap();
            assert!(matches!(
                s.settle(&record(9, 0x99, 20)).await.unwrap(),
                SettleOutcome::Settled(_)
            ));
            assert_eq!(
                s.claim(&claim(9, 0x99, "a", 100)).await.unwrap(),
                ClaimOutcome::Won
            );
        }
        let s = db.open().await; // migrations run again: must be a no-op
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(30u64));
        assert!(matches!(
            s.settle(&record(9, 0x99, 20)).await.unwrap(),
            SettleOutcome::AlreadySettled(_)
        ));
        assert_eq!(
            s.claim(&claim(9, 0x99, "b", 101)).await.unwrap(),
            ClaimOutcome::Taken
        );
    }

    #[tokio::test]
    async fn deferred_settlements_are_answered_then_synced_and_survive_a_restart() {
        let db = TempDb::new("deferred");
        {
            let s = db.open_with(SettleDurability::Deferred).await;
            s.credit(&payer(), U256::from(50u64), "top-up")
                .await
                .unwrap();
            let mut tasks = Vec::new();
            for i in 0..8u8 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let out = s.settle(&record(0x20 + i, 0x60 + i, 5)).await.unwrap();
                    s.sync().await.unwrap();
                    out
                }));
            }
            for t in tasks {
                assert!(matches!(t.await.unwrap(), SettleOutcome::Settled(_)));
            }
            // Synced means committed: another connection sees all eight.
            let on_disk: i64 = ints(&s.pool, "SELECT COUNT(*) FROM pay_settlements").await[0];
            assert_eq!(on_disk, 8);
        }
        let s = db.open().await;
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(10u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(40u64));
    }

    #[tokio::test]
    async fn a_ledger_kept_in_the_main_database_is_moved_to_its_own_file_once() {
        let db = TempDb::new("legacy");
        let path = db.0.join("pay.db");
        let main = Db::pool(&path, Synchronous::Full, 8);
        // The old layout: the pay tables in the main file, with a credit and a settlement.
        migrate(&main).await.unwrap();
        for sql in [
            "INSERT INTO pay_balances VALUES (84532, '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0x0101010101010101010101010101010101010101', '70', 1)",
            "INSERT INTO pay_entries VALUES (1, 1, 84532, '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0x0101010101010101010101010101010101010101', '+100', 'credit', NULL, 'x')",
        ] {
            main.run(move |c| c.execute(sql, [])).await.unwrap();
        }
        main.run(|c| c.execute("INSERT INTO pay_settlements VALUES (84532, '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0x0101010101010101010101010101010101010101', ?, ?, '0x0202020202020202020202020202020202020202', '30', 'vouch-ledger:old', 1, NULL, NULL)",
            [word(&B256::repeat_byte(5)), word(&B256::repeat_byte(6))]))
            .await
            .unwrap();
        let s = SqlitePayStore::new(main.clone()).await.unwrap();
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(70u64));
        assert!(s.settlement(&key(5)).await.unwrap().is_some());
        // The nonce settled in the old file stays spent.
        assert_eq!(
            s.settle(&record(5, 0x07, 1)).await.unwrap(),
            SettleOutcome::NonceUsed
        );
        s.credit(&payer(), U256::from(1u64), "more").await.unwrap();
        drop(s);
        // Opening again imports nothing a second time.
        let again = SqlitePayStore::new(main).await.unwrap();
        assert_eq!(again.balance(&payer()).await.unwrap(), U256::from(71u64));
        assert_eq!(again.entries(&payer(), 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn standing_reads_the_nonce_and_the_balance_at_once() {
        let db = TempDb::new("standing");
        let s = db.open().await;
        assert_eq!(
            s.standing(&key(1), &payer()).await.unwrap(),
            (false, U256::ZERO)
        );
        s.credit(&payer(), U256::from(30u64), "top-up")
            .await
            .unwrap();
        s.settle(&record(1, 0x11, 10)).await.unwrap();
        assert_eq!(
            s.standing(&key(1), &payer()).await.unwrap(),
            (true, U256::from(20u64))
        );
        assert_eq!(
            s.standing(&key(2), &payer()).await.unwrap(),
            (false, U256::from(20u64))
        );
    }

    #[tokio::test]
    async fn quotes_and_semicolons_in_a_reference_stay_data() {
        let db = TempDb::new("literal");
        let s = db.open().await;
        s.credit(&payer(), U256::from(10u64), "top-up")
            .await
            .unwrap();
        let mut r = record(3, 0x33, 4);
        r.reference = "x'); DROP TABLE pay_entries; --".into();
        assert!(matches!(
            s.settle(&r).await.unwrap(),
            SettleOutcome::Settled(_)
        ));
        assert_eq!(
            s.settlement(&key(3)).await.unwrap().unwrap().reference,
            r.reference
        );
        assert_eq!(s.entries(&payer(), 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn one_process_owns_a_ledger_a_second_opener_waits_then_fails() {
        let db = TempDb::new("owner");
        let first = db.open().await;
        let main = main_pool(&db.0.join("pay.db")).await;
        let refused = SqlitePayStore::open_waiting(
            main.clone(),
            SettleDurability::Own,
            Duration::from_millis(100),
        )
        .await
        .err()
        .expect("a second owner was let in");
        assert!(
            refused.0.contains("in use by another process"),
            "{}",
            refused.0
        );
        first
            .credit(&payer(), U256::from(5u64), "top-up")
            .await
            .unwrap();
        drop(first);
        // Released with the last handle: the next owner gets in and sees the credit.
        let second = SqlitePayStore::open_waiting(main, SettleDurability::Own, OWNER_WAIT)
            .await
            .unwrap();
        assert_eq!(second.balance(&payer()).await.unwrap(), U256::from(5u64));
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_ledger_loudly() {
        let db = TempDb::new("failed-write");
        let s = db.open().await;
        s.credit(&payer(), U256::from(50u64), "top-up")
            .await
            .unwrap();
        // Break the file under the writer: its next batch cannot be written.
        s.pool
            .run(|c| c.execute("DROP TABLE pay_entries", []))
            .await
            .unwrap();
        let e = s.settle(&record(4, 0x44, 10)).await.unwrap_err();
        assert!(e.0.contains("no such table"), "{}", e.0);
        // Memory may be ahead of the disk now: everything refuses until a restart.
        let e = s.balance(&payer()).await.unwrap_err();
        assert!(e.0.contains("restart the node"), "{}", e.0);
        assert!(s.settle(&record(5, 0x55, 10)).await.is_err());
        assert!(s.credit(&payer(), U256::from(1u64), "x").await.is_err());
    }
}
