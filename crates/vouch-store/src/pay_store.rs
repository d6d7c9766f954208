//! Durable state of the payment layer over SQLite: the built-in facilitator's ledger
//! ([`vouch_pay::store::Ledger`], file `<main db>-ledger`) and the server's durable payment
//! claims ([`vouch_pay::store::NonceStore`], file `<main db>-pay-claims`). Tables:
//! `migrations/pay/`.
//!
//! Atomicity comes from the database, not from this process, so it holds across restarts and
//! across processes sharing the file: a claim is one `INSERT … ON CONFLICT DO NOTHING` or one
//! guarded `UPDATE`; ledger changes run in `BEGIN IMMEDIATE` transactions, which take the write
//! lock up front so two settlements can never both read the old balance.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use vouch_pay::store::{
    Account, AuthorizationKey, ClaimEnd, ClaimOutcome, Ledger, NonceClaim, NonceStore,
    PendingClaim, RefundOutcome, RefundRecord, SettleOutcome, SettlementRecord, StoreError,
};
use vouch_pay::{Address, B256, U256};

/// Ledger and claim store: two sidecar databases beside the main one (usually
/// [`crate::Store::pool`]'s file).
#[derive(Clone)]
pub struct SqlitePayStore {
    /// The ledger: `<main file>-ledger`, WAL, `synchronous = FULL` — money must survive power
    /// loss. A file of its own so that its writes never wait for the transparency log's
    /// fsync (one SQLite file admits one writer at a time, and the log holds the write lock
    /// through its fsync), and the two fsyncs of a paid request can run at once.
    pool: SqlitePool,
    /// Claims: a sidecar database (`<main file>-pay-claims`), one connection, `synchronous =
    /// NORMAL`. A claim only guards requests in flight — after any crash a spent authorization
    /// is refused by the ledger (or chain) it was settled in — so it needs no fsync; kept apart,
    /// its writes never wait behind the ledger's fsync, and one connection queues them in the
    /// pool instead of in SQLite's sleeping busy handler.
    claims: SqlitePool,
    /// Queue of the group-committing settlement writer ([`settlement_writer`]).
    settler: mpsc::Sender<SettleJob>,
    /// Settlement commits not yet synced ([`SettleDurability::Deferred`]).
    wal: Arc<WalSync>,
}

/// When a settlement is on disk for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleDurability {
    /// Its commit is synced before `settle` returns: for a facilitator that answers as soon as
    /// it settled (`vouch facilitator`).
    Own,
    /// Committed without a sync (`synchronous = NORMAL`, WAL: survives a process crash, not a
    /// power loss); the caller makes it durable with [`SqlitePayStore::sync`] before it
    /// acknowledges the payment. The server runs that sync at the same time as the log commit
    /// of the receipt naming the settlement, so a paid request waits for one fsync, not two in
    /// a row. Syncs group: one fsync covers every settlement committed before it started.
    Deferred,
}

fn ledger_migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations/pay");
    m.set_ignore_missing(true);
    m
}

/// Applies the ledger's migrations (versions 200–299) to `pool`'s file.
pub async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    crate::migrate_locked(pool, &ledger_migrator()).await
}

/// Group sync of the ledger's WAL for [`SettleDurability::Deferred`].
struct WalSync {
    /// Off for [`SettleDurability::Own`], whose commits are synced already.
    deferred: bool,
    /// `<ledger file>-wal`.
    path: PathBuf,
    /// Settlement transactions committed so far (counted by the writer after each commit).
    committed: AtomicU64,
    /// How many of them a finished fsync covers; held across the fsync, so callers that arrive
    /// during one wait for it and then usually find themselves covered by the next.
    synced: tokio::sync::Mutex<u64>,
}

impl WalSync {
    async fn sync(&self) -> Result<(), StoreError> {
        if !self.deferred {
            return Ok(());
        }
        let want = self.committed.load(Ordering::Acquire);
        let mut synced = self.synced.lock().await;
        if *synced >= want {
            return Ok(());
        }
        let upto = self.committed.load(Ordering::Acquire);
        let path = self.path.clone();
        // fsync on any descriptor of the file flushes all of its written pages, SQLite's
        // included. No WAL file: it was checkpointed into the database, which SQLite syncs
        // after a checkpoint.
        tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| StoreError(format!("ledger sync task: {e}")))?
        .map_err(|e| StoreError(format!("ledger sync: {e}")))?;
        *synced = upto;
        Ok(())
    }
}

/// A sidecar database file next to `main`'s, with `main`'s options otherwise.
fn sidecar(
    main: &sqlx::sqlite::SqliteConnectOptions,
    suffix: &str,
    sync: SqliteSynchronous,
) -> (PathBuf, sqlx::sqlite::SqliteConnectOptions) {
    let path = PathBuf::from(format!("{}-{suffix}", main.get_filename().display()));
    let opts = main
        .clone()
        .filename(&path)
        .create_if_missing(true)
        .synchronous(sync);
    (path, opts)
}

/// Nodes before the ledger had its own file kept it in the main database: copies it over once,
/// into a ledger file that has no entries yet. The old tables stay in place, unread.
async fn import_legacy_ledger(main: &SqlitePool, ledger: &SqlitePool) -> Result<(), StoreError> {
    let legacy: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'pay_entries'",
    )
    .fetch_one(main)
    .await
    .map_err(db)?;
    if legacy == 0 {
        return Ok(());
    }
    let old_entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pay_entries")
        .fetch_one(main)
        .await
        .map_err(db)?;
    let new_entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pay_entries")
        .fetch_one(ledger)
        .await
        .map_err(db)?;
    if old_entries == 0 || new_entries > 0 {
        return Ok(());
    }
    let main_file = main.connect_options().get_filename().display().to_string();
    let mut conn = ledger.acquire().await.map_err(db)?;
    sqlx::query("ATTACH DATABASE ? AS legacy")
        .bind(&main_file)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let copied = async {
        // Under the write lock, and only into a still-empty ledger, so a second process that
        // opened the same ledger meanwhile does not import again.
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let empty: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM main.pay_entries")
            .fetch_one(&mut *tx)
            .await?;
        if empty > 0 {
            return tx.commit().await;
        }
        for table in ["pay_balances", "pay_entries", "pay_settlements"] {
            let sql = format!("INSERT INTO main.{table} SELECT * FROM legacy.{table}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
    .await;
    let detached = sqlx::query("DETACH DATABASE legacy")
        .execute(&mut *conn)
        .await;
    copied.map_err(db)?;
    detached.map_err(db)?;
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
    pub async fn new(main: SqlitePool) -> Result<Self, StoreError> {
        Self::open(main, SettleDurability::Own).await
    }

    /// As [`new`](Self::new), with settlements made durable as `durability` says.
    pub async fn open(main: SqlitePool, durability: SettleDurability) -> Result<Self, StoreError> {
        let main_opts = main.connect_options();
        let (ledger_path, ledger_opts) = sidecar(&main_opts, "ledger", SqliteSynchronous::Full);
        let lock = crate::lock_beside(&ledger_path)
            .await
            .map_err(|e| StoreError(format!("ledger lock: {e}")))?;
        let pool = crate::local_pool(4)
            .connect_with(ledger_opts.clone())
            .await
            .map_err(db)?;
        ledger_migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError(format!("migration: {e}")))?;
        import_legacy_ledger(&main, &pool).await?;
        drop(lock);
        let (claims_path, claims_opts) =
            sidecar(&main_opts, "pay-claims", SqliteSynchronous::Normal);
        let lock = crate::lock_beside(&claims_path)
            .await
            .map_err(|e| StoreError(format!("claims lock: {e}")))?;
        let claims = crate::local_pool(1)
            .connect_with(claims_opts)
            .await
            .map_err(db)?;
        sqlx::migrate!("./migrations/pay/claims")
            .run(&claims)
            .await
            .map_err(|e| StoreError(format!("migration: {e}")))?;
        drop(lock);
        let writer = match durability {
            SettleDurability::Own => pool.clone(),
            SettleDurability::Deferred => crate::local_pool(1)
                .connect_with(ledger_opts.synchronous(SqliteSynchronous::Normal))
                .await
                .map_err(db)?,
        };
        let wal = Arc::new(WalSync {
            deferred: durability == SettleDurability::Deferred,
            path: PathBuf::from(format!("{}-wal", ledger_path.display())),
            committed: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
        });
        let (settler, jobs) = mpsc::channel(1024);
        tokio::spawn(settlement_writer(writer, wal.clone(), jobs));
        Ok(SqlitePayStore {
            pool,
            claims,
            settler,
            wal,
        })
    }

    /// Makes every settlement committed so far durable (a no-op unless the store was opened
    /// [`SettleDurability::Deferred`]: then one grouped fsync of the ledger's WAL).
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.wal.sync().await
    }

    /// The balance journal, newest first: `(seq, owner, delta, kind, reference)` — for the
    /// admin command that shows an account's history.
    pub async fn entries(
        &self,
        account: &Account,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, String, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, owner, delta, kind, reference FROM pay_entries
             WHERE chain_id = ? AND asset = ? AND owner = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(chain(account.chain_id)?)
        .bind(addr(&account.asset))
        .bind(addr(&account.owner))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("seq").map_err(db)?,
                    r.try_get("owner").map_err(db)?,
                    r.try_get("delta").map_err(db)?,
                    r.try_get("kind").map_err(db)?,
                    r.try_get("reference").map_err(db)?,
                ))
            })
            .collect()
    }
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

fn addr(a: &Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

fn word(b: &B256) -> String {
    format!("0x{}", hex::encode(b.as_slice()))
}

fn chain(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError(format!("chain id {id} out of range")))
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError(format!("stored {what} {v:?} is corrupt"))
}

fn parse_u256(s: &str) -> Result<U256, StoreError> {
    vouch_pay::parse_amount(s).map_err(|_| corrupt("amount", s))
}

fn col<T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    r: &SqliteRow,
    c: &str,
) -> Result<T, StoreError> {
    r.try_get(c).map_err(db)
}

/// Column `c` of `r`, stored as text, parsed (addresses, nonces, digests).
fn parsed<T: FromStr>(r: &SqliteRow, c: &str) -> Result<T, StoreError> {
    let text = col::<String>(r, c)?;
    T::from_str(&text).map_err(|_| corrupt(c, &text))
}

fn chain_of(r: &SqliteRow) -> Result<u64, StoreError> {
    let chain_id: i64 = col(r, "chain_id")?;
    u64::try_from(chain_id).map_err(|_| corrupt("chain id", &chain_id.to_string()))
}

/// The authorization key in columns `chain_id, asset, payer, nonce` (settlements and claims).
fn key_of(r: &SqliteRow) -> Result<AuthorizationKey, StoreError> {
    Ok(AuthorizationKey {
        chain_id: chain_of(r)?,
        asset: parsed(r, "asset")?,
        payer: parsed(r, "payer")?,
        nonce: parsed(r, "nonce")?,
    })
}

fn settlement_of(r: &SqliteRow) -> Result<SettlementRecord, StoreError> {
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

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

async fn read_balance(tx: &mut Tx, a: &Account) -> Result<U256, StoreError> {
    let row = sqlx::query(
        "SELECT balance FROM pay_balances WHERE chain_id = ? AND asset = ? AND owner = ?",
    )
    .bind(chain(a.chain_id)?)
    .bind(addr(&a.asset))
    .bind(addr(&a.owner))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    match row {
        Some(r) => parse_u256(&col::<String>(&r, "balance")?),
        None => Ok(U256::ZERO),
    }
}

/// Why a balance changes, as journaled.
struct Entry<'a> {
    kind: &'a str,
    reference: Option<&'a str>,
    memo: Option<&'a str>,
    at: u64,
}

/// Adds (`credit`) or subtracts `amount` to a balance and journals it. Fails rather than wrap.
async fn apply(
    tx: &mut Tx,
    a: &Account,
    amount: U256,
    credit: bool,
    e: &Entry<'_>,
) -> Result<U256, StoreError> {
    let now = e.at;
    let old = read_balance(tx, a).await?;
    let new = if credit {
        old.checked_add(amount)
    } else {
        old.checked_sub(amount)
    }
    .ok_or_else(|| {
        StoreError(format!(
            "balance of {} would {}",
            a.owner,
            if credit { "overflow" } else { "go negative" }
        ))
    })?;
    sqlx::query(
        "INSERT INTO pay_balances (chain_id, asset, owner, balance, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (chain_id, asset, owner) DO UPDATE SET balance = excluded.balance, updated_at = excluded.updated_at",
    )
    .bind(chain(a.chain_id)?)
    .bind(addr(&a.asset))
    .bind(addr(&a.owner))
    .bind(new.to_string())
    .bind(secs(now))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO pay_entries (seq, at, chain_id, asset, owner, delta, kind, reference, memo)
         VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM pay_entries), ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(secs(now))
    .bind(chain(a.chain_id)?)
    .bind(addr(&a.asset))
    .bind(addr(&a.owner))
    .bind(format!("{}{amount}", if credit { '+' } else { '-' }))
    .bind(e.kind)
    .bind(e.reference)
    .bind(e.memo)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(new)
}

const SETTLEMENT_COLUMNS: &str = "chain_id, asset, payer, nonce, digest, pay_to, amount, reference, settled_at, refunded_at, refund_reason";

fn now_secs() -> u64 {
    vouch_pay::local::system_now()
}

/// One settlement waiting for the writer.
struct SettleJob {
    record: SettlementRecord,
    reply: oneshot::Sender<Result<SettleOutcome, StoreError>>,
}

/// Most settlements committed together.
const MAX_BATCH: usize = 256;

/// Group commit: settlements that arrive while one commit is being made durable go into the
/// next transaction together, so N concurrent paid requests cost one fsync, not N. No request
/// waits for company: a lone settlement is committed at once. Each answer is sent only after
/// its transaction committed.
async fn settlement_writer(
    pool: SqlitePool,
    wal: Arc<WalSync>,
    mut jobs: mpsc::Receiver<SettleJob>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let records: Vec<&SettlementRecord> = batch.iter().map(|j| &j.record).collect();
        let settled = settle_batch(&pool, &records).await;
        if settled.is_ok() {
            // Before any answer, so a caller's `sync` always covers its own commit.
            wal.committed.fetch_add(1, Ordering::AcqRel);
        }
        match settled {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Nothing of the batch was committed; settlement is idempotent, callers retry.
                for job in batch {
                    let _ = job.reply.send(Err(StoreError(e.0.clone())));
                }
            }
        }
    }
}

/// Settles `records` in order in one `BEGIN IMMEDIATE` transaction, in two round trips to
/// sqlx's SQLite thread whatever the batch size: one script takes the write lock and reads
/// every settlement and balance the batch touches; Rust decides in arrival order; a second
/// script writes all changes (one multi-row statement per table) and commits. Round trips, not
/// the SQL, were what a settlement cost (tens of µs each on a busy machine, eleven per
/// settlement when done a statement at a time), and they are what capped concurrent paid
/// requests. The scripts carry values as SQL literals, which [`Lit`] writes only from typed
/// values (integers, hex, decimal digits) or with quotes doubled.
async fn settle_batch(
    pool: &SqlitePool,
    records: &[&SettlementRecord],
) -> Result<Vec<SettleOutcome>, StoreError> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let result = settle_batch_on(&mut conn, records).await;
    if result.is_err() {
        // The failing script already rolled back; make sure no transaction stays open.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    result
}

async fn settle_batch_on(
    conn: &mut sqlx::SqliteConnection,
    records: &[&SettlementRecord],
) -> Result<Vec<SettleOutcome>, StoreError> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(read_script(records)?))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut settled: HashMap<AuthorizationKey, SettlementRecord> = HashMap::new();
    let mut balances: HashMap<Account, U256> = HashMap::new();
    for r in &rows {
        match col::<String>(r, "row_kind")?.as_str() {
            "settlement" => {
                let s = settlement_of(r)?;
                settled.insert(s.key, s);
            }
            _ => {
                let (a, b) = balance_of(r)?;
                balances.insert(a, b);
            }
        }
    }
    let mut outcomes = Vec::with_capacity(records.len());
    let mut new_settlements: Vec<&SettlementRecord> = Vec::new();
    let mut entries: Vec<(Account, U256, bool, &SettlementRecord)> = Vec::new();
    for new in records {
        let k = new.key;
        if let Some(existing) = settled.get(&k) {
            outcomes.push(if existing.digest == new.digest {
                SettleOutcome::AlreadySettled(existing.clone())
            } else {
                SettleOutcome::NonceUsed
            });
            continue;
        }
        let (payer, payee) = new.accounts();
        let balance = balances.get(&payer).copied().unwrap_or(U256::ZERO);
        let Some(debited) = balance.checked_sub(new.amount) else {
            outcomes.push(SettleOutcome::InsufficientBalance { balance });
            continue;
        };
        balances.insert(payer, debited);
        let credited = balances
            .get(&payee)
            .copied()
            .unwrap_or(U256::ZERO)
            .checked_add(new.amount)
            .ok_or_else(|| StoreError(format!("balance of {} would overflow", payee.owner)))?;
        balances.insert(payee, credited);
        entries.push((payer, new.amount, false, new));
        entries.push((payee, new.amount, true, new));
        settled.insert(k, (*new).clone());
        new_settlements.push(new);
        outcomes.push(SettleOutcome::Settled((*new).clone()));
    }
    let script = if new_settlements.is_empty() {
        "COMMIT".to_owned()
    } else {
        write_script(&entries, &balances, &new_settlements)?
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(outcomes)
}

/// A value written into a script as an SQL literal.
enum Lit<'a> {
    Int(i64),
    /// Quoted; quotes inside are doubled (SQLite has no other escapes).
    Text(&'a str),
}

impl std::fmt::Display for Lit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lit::Int(i) => write!(f, "{i}"),
            Lit::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

/// `(v1, v2, …)` of literals.
fn tuple(values: &[Lit<'_>]) -> String {
    let inner: Vec<String> = values.iter().map(ToString::to_string).collect();
    format!("({})", inner.join(", "))
}

/// Takes the write lock, then reads the settlements under the batch's keys and the balances of
/// its payers and payees.
fn read_script(records: &[&SettlementRecord]) -> Result<String, StoreError> {
    let mut keys = Vec::with_capacity(records.len());
    let mut owners = Vec::with_capacity(2 * records.len());
    for r in records {
        let k = &r.key;
        let (chain_id, asset) = (chain(k.chain_id)?, addr(&k.asset));
        keys.push(tuple(&[
            Lit::Int(chain_id),
            Lit::Text(&asset),
            Lit::Text(&addr(&k.payer)),
            Lit::Text(&word(&k.nonce)),
        ]));
        for owner in [k.payer, r.pay_to] {
            owners.push(tuple(&[
                Lit::Int(chain_id),
                Lit::Text(&asset),
                Lit::Text(&addr(&owner)),
            ]));
        }
    }
    // CROSS JOIN with the keys outside: one primary-key search per key. (`(…) IN (VALUES …)`
    // makes SQLite scan the table — ever slower as the ledger grows.)
    let columns: Vec<String> = SETTLEMENT_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect();
    Ok(format!(
        "BEGIN IMMEDIATE;
         WITH k(chain_id, asset, payer, nonce) AS (VALUES {})
         SELECT 'settlement' AS row_kind, {} FROM k CROSS JOIN pay_settlements AS s
           ON s.chain_id = k.chain_id AND s.asset = k.asset AND s.payer = k.payer
              AND s.nonce = k.nonce;
         WITH k(chain_id, asset, owner) AS (VALUES {})
         SELECT 'balance' AS row_kind, b.chain_id, b.asset, b.owner, b.balance
           FROM k CROSS JOIN pay_balances AS b
           ON b.chain_id = k.chain_id AND b.asset = k.asset AND b.owner = k.owner;",
        keys.join(", "),
        columns.join(", "),
        owners.join(", ")
    ))
}

fn balance_of(r: &SqliteRow) -> Result<(Account, U256), StoreError> {
    Ok((
        Account {
            chain_id: chain_of(r)?,
            asset: parsed(r, "asset")?,
            owner: parsed(r, "owner")?,
        },
        parse_u256(&col::<String>(r, "balance")?)?,
    ))
}

/// Writes the batch's final balances, its journal lines (numbered after the last one) and its
/// settlements, then commits.
fn write_script(
    entries: &[(Account, U256, bool, &SettlementRecord)],
    balances: &HashMap<Account, U256>,
    new: &[&SettlementRecord],
) -> Result<String, StoreError> {
    let mut touched: Vec<(Account, u64)> = Vec::new();
    for (a, _, _, r) in entries {
        match touched.iter_mut().find(|(t, _)| t == a) {
            Some(t) => t.1 = r.settled_at,
            None => touched.push((*a, r.settled_at)),
        }
    }
    let mut balance_rows = Vec::with_capacity(touched.len());
    for (a, at) in &touched {
        let balance = balances.get(a).copied().unwrap_or(U256::ZERO).to_string();
        balance_rows.push(tuple(&[
            Lit::Int(chain(a.chain_id)?),
            Lit::Text(&addr(&a.asset)),
            Lit::Text(&addr(&a.owner)),
            Lit::Text(&balance),
            Lit::Int(secs(*at)),
        ]));
    }
    let mut entry_rows = Vec::with_capacity(entries.len());
    for (i, (a, amount, credit, r)) in entries.iter().enumerate() {
        let delta = format!("{}{amount}", if *credit { '+' } else { '-' });
        entry_rows.push(tuple(&[
            Lit::Int(i64::try_from(i + 1).unwrap_or(i64::MAX)),
            Lit::Int(secs(r.settled_at)),
            Lit::Int(chain(a.chain_id)?),
            Lit::Text(&addr(&a.asset)),
            Lit::Text(&addr(&a.owner)),
            Lit::Text(&delta),
            Lit::Text(&r.reference),
        ]));
    }
    let mut settlement_rows = Vec::with_capacity(new.len());
    for r in new {
        let k = &r.key;
        settlement_rows.push(tuple(&[
            Lit::Int(chain(k.chain_id)?),
            Lit::Text(&addr(&k.asset)),
            Lit::Text(&addr(&k.payer)),
            Lit::Text(&word(&k.nonce)),
            Lit::Text(&word(&r.digest)),
            Lit::Text(&addr(&r.pay_to)),
            Lit::Text(&r.amount.to_string()),
            Lit::Text(&r.reference),
            Lit::Int(secs(r.settled_at)),
        ]));
    }
    // The journal's INSERT … SELECT reads the table it writes, so SQLite evaluates the whole
    // SELECT first: every row sees the same MAX(seq).
    Ok(format!(
        "INSERT INTO pay_balances (chain_id, asset, owner, balance, updated_at) VALUES {}
           ON CONFLICT (chain_id, asset, owner) DO UPDATE
           SET balance = excluded.balance, updated_at = excluded.updated_at;
         INSERT INTO pay_entries (seq, at, chain_id, asset, owner, delta, kind, reference, memo)
           SELECT last.seq + v.column1, v.column2, v.column3, v.column4, v.column5, v.column6,
                  'settle', v.column7, NULL
           FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM pay_entries) AS last,
                (VALUES {}) AS v
           ORDER BY v.column1;
         INSERT INTO pay_settlements (chain_id, asset, payer, nonce, digest, pay_to, amount,
                                      reference, settled_at) VALUES {};
         COMMIT;",
        balance_rows.join(", "),
        entry_rows.join(", "),
        settlement_rows.join(", ")
    ))
}

#[async_trait]
impl Ledger for SqlitePayStore {
    async fn balance(&self, a: &Account) -> Result<U256, StoreError> {
        let row = sqlx::query(
            "SELECT balance FROM pay_balances WHERE chain_id = ? AND asset = ? AND owner = ?",
        )
        .bind(chain(a.chain_id)?)
        .bind(addr(&a.asset))
        .bind(addr(&a.owner))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match row {
            Some(r) => parse_u256(&col::<String>(&r, "balance")?),
            None => Ok(U256::ZERO),
        }
    }

    async fn standing(
        &self,
        key: &AuthorizationKey,
        payer: &Account,
    ) -> Result<(bool, U256), StoreError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM pay_settlements WHERE chain_id = ? AND asset = ? AND payer = ? AND nonce = ?) AS used,
                    (SELECT balance FROM pay_balances WHERE chain_id = ? AND asset = ? AND owner = ?) AS balance",
        )
        .bind(chain(key.chain_id)?)
        .bind(addr(&key.asset))
        .bind(addr(&key.payer))
        .bind(word(&key.nonce))
        .bind(chain(payer.chain_id)?)
        .bind(addr(&payer.asset))
        .bind(addr(&payer.owner))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let used: bool = col(&row, "used")?;
        let balance = match col::<Option<String>>(&row, "balance")? {
            Some(b) => parse_u256(&b)?,
            None => U256::ZERO,
        };
        Ok((used, balance))
    }

    async fn credit(&self, a: &Account, amount: U256, memo: &str) -> Result<U256, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let new = apply(
            &mut tx,
            a,
            amount,
            true,
            &Entry {
                kind: "credit",
                reference: None,
                memo: Some(memo),
                at: now_secs(),
            },
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(new)
    }

    async fn settlement(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        let sql = format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM pay_settlements WHERE chain_id = ? AND asset = ? AND payer = ? AND nonce = ?"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(chain(key.chain_id)?)
            .bind(addr(&key.asset))
            .bind(addr(&key.payer))
            .bind(word(&key.nonce))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(settlement_of).transpose()
    }

    async fn settle(&self, new: &SettlementRecord) -> Result<SettleOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.settler
            .send(SettleJob {
                record: new.clone(),
                reply,
            })
            .await
            .map_err(|_| StoreError("settlement writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("settlement writer stopped".into()))?
    }

    async fn refund(
        &self,
        reference: &str,
        reason: &str,
        now: u64,
    ) -> Result<RefundOutcome, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let sql = format!("SELECT {SETTLEMENT_COLUMNS} FROM pay_settlements WHERE reference = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(rec) = row.as_ref().map(settlement_of).transpose()? else {
            tx.rollback().await.map_err(db)?;
            return Ok(RefundOutcome::NotFound);
        };
        if rec.refund.is_some() {
            tx.rollback().await.map_err(db)?;
            return Ok(RefundOutcome::AlreadyRefunded(rec));
        }
        let (payer, payee) = rec.accounts();
        apply(
            &mut tx,
            &payee,
            rec.amount,
            false,
            &Entry {
                kind: "refund",
                reference: Some(reference),
                memo: Some(reason),
                at: now,
            },
        )
        .await?;
        apply(
            &mut tx,
            &payer,
            rec.amount,
            true,
            &Entry {
                kind: "refund",
                reference: Some(reference),
                memo: Some(reason),
                at: now,
            },
        )
        .await?;
        sqlx::query(
            "UPDATE pay_settlements SET refunded_at = ?, refund_reason = ? WHERE reference = ?",
        )
        .bind(secs(now))
        .bind(reason)
        .bind(reference)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(RefundOutcome::Refunded(SettlementRecord {
            refund: Some(RefundRecord {
                refunded_at: now,
                reason: reason.to_owned(),
            }),
            ..rec
        }))
    }
}

const KEY_WHERE: &str = "chain_id = ? AND asset = ? AND payer = ? AND nonce = ?";

fn bind_key<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    key: &AuthorizationKey,
) -> Result<sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>, StoreError> {
    Ok(q.bind(chain(key.chain_id)?)
        .bind(addr(&key.asset))
        .bind(addr(&key.payer))
        .bind(word(&key.nonce)))
}

#[async_trait]
impl NonceStore for SqlitePayStore {
    async fn claim(&self, c: &NonceClaim) -> Result<ClaimOutcome, StoreError> {
        let inserted = bind_key(
            sqlx::query(
                "INSERT INTO pay_claims (chain_id, asset, payer, nonce, digest, request_id, state, payment_json,
                                         requirements_json, lease_until, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, 'held', ?, ?, ?, ?)
                 ON CONFLICT (chain_id, asset, payer, nonce) DO NOTHING",
            ),
            &c.key,
        )?
        .bind(word(&c.digest))
        .bind(&c.request_id)
        .bind(&c.payment_json)
        .bind(&c.requirements_json)
        .bind(secs(c.lease_until))
        .bind(secs(c.now))
        .execute(&self.claims)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 1 {
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
        let q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&c.request_id)
            .bind(secs(c.lease_until))
            .bind(secs(c.now));
        let row = bind_key(q, &c.key)?
            .bind(word(&c.digest))
            .bind(secs(c.now))
            .fetch_optional(&self.claims)
            .await
            .map_err(db)?;
        Ok(match row {
            None => ClaimOutcome::Taken,
            Some(r) if col::<String>(&r, "state")? == "resumed" => ClaimOutcome::Resumed {
                settlement_json: col::<Option<String>>(&r, "settlement_json")?.unwrap_or_default(),
            },
            Some(_) => ClaimOutcome::Won,
        })
    }

    async fn release(&self, key: &AuthorizationKey, request_id: &str) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM pay_claims WHERE {KEY_WHERE} AND request_id = ? AND state = 'held'"
        );
        bind_key(sqlx::query(sqlx::AssertSqlSafe(sql)), key)?
            .bind(request_id)
            .execute(&self.claims)
            .await
            .map_err(db)?;
        let sql = format!(
            "UPDATE pay_claims SET state = 'unserved' WHERE {KEY_WHERE} AND request_id = ? AND state = 'resumed'"
        );
        bind_key(sqlx::query(sqlx::AssertSqlSafe(sql)), key)?
            .bind(request_id)
            .execute(&self.claims)
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
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(secs(now));
        let done = bind_key(q, key)?
            .bind(request_id)
            .execute(&self.claims)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish(
        &self,
        key: &AuthorizationKey,
        request_id: &str,
        end: ClaimEnd,
        settlement_json: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let done = match end {
            ClaimEnd::Failed => {
                let sql = format!("DELETE FROM pay_claims WHERE {KEY_WHERE} AND request_id = ? AND state = 'settling'");
                bind_key(sqlx::query(sqlx::AssertSqlSafe(sql)), key)?.bind(request_id).execute(&self.claims).await
            }
            ClaimEnd::Served | ClaimEnd::Unserved => {
                let (to, from) = match end {
                    ClaimEnd::Served => ("served", "('settling', 'resumed')"),
                    _ => ("unserved", "('settling')"),
                };
                let sql = format!(
                    "UPDATE pay_claims SET state = '{to}', settlement_json = ?, updated_at = ?
                     WHERE {KEY_WHERE} AND request_id = ? AND state IN {from}"
                );
                let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(settlement_json).bind(secs(now));
                bind_key(q, key)?.bind(request_id).execute(&self.claims).await
            }
        }
        .map_err(db)?;
        if done.rows_affected() != 1 {
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
            "SELECT chain_id, asset, payer, nonce, request_id, payment_json, requirements_json, updated_at
             FROM pay_claims WHERE state = 'settling' AND updated_at < ? ORDER BY updated_at LIMIT ?",
        )
        .bind(secs(older_than))
        .bind(i64::from(limit))
        .fetch_all(&self.claims)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let s = |c: &str| col::<String>(r, c);
                Ok(PendingClaim {
                    key: key_of(r)?,
                    request_id: s("request_id")?,
                    payment_json: s("payment_json")?,
                    requirements_json: s("requirements_json")?,
                    since: u64::try_from(col::<i64>(r, "updated_at")?).unwrap_or(0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
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
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .unwrap();
        SqlitePayStore::open(pool, durability).await.unwrap()
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
        let db = TempDb::new("race-settle");
        // Four stores, four settlement writers, racing transactions on one file — as four
        // processes would — plus batching within each writer; two of them commit settlements
        // unsynced (the server's mode), two synced.
        let mut stores = Vec::new();
        for i in 0..4 {
            let durability = if i % 2 == 0 {
                SettleDurability::Own
            } else {
                SettleDurability::Deferred
            };
            stores.push(Arc::new(db.open_with(durability).await));
        }
        let s = stores[0].clone();
        s.credit(&payer(), U256::from(1000u64), "top-up")
            .await
            .unwrap();
        // 16 different authorizations under one nonce, all at once.
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let s = stores[usize::from(i) % 4].clone();
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
                let s = stores[i % 4].clone();
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
                let s = stores[usize::from(i) % 4].clone();
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
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(340u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(660u64));
        let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM pay_entries ORDER BY seq")
            .fetch_all(&s.pool)
            .await
            .unwrap();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert_eq!(seqs.len(), 1 + 2 * 2 + 2 * 64);
        let debits: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pay_entries WHERE kind = 'settle' AND delta LIKE '-%'",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap();
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
        // Four stores on one file — four connections, as four processes would have — so the
        // race is decided by SQLite's atomicity, not by a pool handing out one connection.
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(Arc::new(db.open().await));
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
            s.pool.close().await;
            s.claims.close().await;
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
            assert!(*s.wal.synced.lock().await >= 1, "no fsync was made");
            s.pool.close().await;
        }
        let s = db.open().await;
        assert_eq!(s.balance(&payer()).await.unwrap(), U256::from(10u64));
        assert_eq!(s.balance(&payee()).await.unwrap(), U256::from(40u64));
    }

    #[tokio::test]
    async fn a_ledger_kept_in_the_main_database_is_moved_to_its_own_file_once() {
        let db = TempDb::new("legacy");
        let path = db.0.join("pay.db");
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let main = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
        // The old layout: the pay tables in the main file, with a credit and a settlement.
        migrate(&main).await.unwrap();
        for sql in [
            "INSERT INTO pay_balances VALUES (84532, '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0x0101010101010101010101010101010101010101', '70', 1)",
            "INSERT INTO pay_entries VALUES (1, 1, 84532, '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0x0101010101010101010101010101010101010101', '+100', 'credit', NULL, 'x')",
        ] {
            sqlx::query(sql).execute(&main).await.unwrap();
        }
        sqlx::query("INSERT INTO pay_settlements VALUES (84532, '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '0x0101010101010101010101010101010101010101', ?, ?, '0x0202020202020202020202020202020202020202', '30', 'vouch-ledger:old', 1, NULL, NULL)")
            .bind(word(&B256::repeat_byte(5)))
            .bind(word(&B256::repeat_byte(6)))
            .execute(&main)
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
    async fn script_literals_keep_quotes_and_semicolons_as_data() {
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
}
