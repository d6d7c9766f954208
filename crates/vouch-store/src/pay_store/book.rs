//! The built-in ledger's state in memory, owned by one process, written behind by one task.
//!
//! Why: a settlement used to be decided inside a SQLite write transaction — two round trips to
//! an async driver's (sqlx's) connection thread (≈ 380 µs on the server's runtime, mostly thread hand-offs) before
//! the receipt naming it could be signed. The process that owns the ledger file (an exclusive
//! lock, [`super::take_ownership`]) now keeps every balance and a 64-bit keyed hash of every
//! settled authorization in memory, decides a settlement under a mutex in microseconds, and
//! queues the change; one writer task commits queued changes in batches, in decision order,
//! each batch one script and one fsync. `written` tells callers how far the disk has caught up,
//! so the server answers only once its settlement is durable (the wait runs beside the
//! receipt's log commit).
//!
//! Completeness of the hash set is what makes a miss a proof that a key is new; a hit (a repeat,
//! or a 2⁻⁶⁴ collision) is checked exactly against the unwritten changes and the database, on a
//! path serialised by [`Book::exact`]. A failed write stops the book: memory may then be ahead
//! of the disk, so every later call fails loudly until a restart reloads the file.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, watch};
use vouch_pay::U256;
use vouch_pay::store::{
    Account, AuthorizationKey, RefundRecord, SettleOutcome, SettlementRecord, StoreError,
};

use super::{addr, balance_of, chain, key_of, secs, word};
use crate::db::{Db, DbError};

/// Most changes committed together.
const MAX_BATCH: usize = 256;

/// A change decided and applied in memory, waiting to be written.
enum Change {
    Settle(SettlementRecord),
    Credit {
        account: Account,
        amount: U256,
        memo: String,
        at: u64,
    },
    /// The settlement as refunded (`refund` set).
    Refund(SettlementRecord),
}

struct Queued {
    seq: u64,
    change: Change,
    /// The touched accounts' balances right after this change: what its batch writes.
    balances: Vec<(Account, U256)>,
}

/// How far the disk has caught up.
#[derive(Clone, Debug, Default)]
struct Written {
    /// Every change with `seq ≤ upto` is committed and synced.
    upto: u64,
    /// Set by the first failed write; nothing after it is written.
    failed: Option<String>,
}

struct State {
    balances: HashMap<Account, U256>,
    /// Keyed hash of every settled authorization key, on disk or decided.
    seen: HashSet<u64>,
    /// Decided settlements not yet committed, with their change's `seq`.
    unwritten: HashMap<AuthorizationKey, (SettlementRecord, u64)>,
    /// `seq` of the last decided change.
    decided: u64,
    failed: Option<String>,
}

/// A settlement's outcome, and `Some(seq)` when it is (or repeats) a change not yet known
/// durable.
pub(super) type Outcome = (SettleOutcome, Option<u64>);

/// What the fast path of a settlement found.
#[allow(clippy::large_enum_variant)] // returned once per settlement and matched at once
pub(super) enum Decided {
    Final(Outcome),
    /// The key may have been settled before: check exactly ([`Book::exact`]).
    Check,
}

pub(super) struct Book {
    state: Arc<Mutex<State>>,
    hasher: RandomState,
    queue: mpsc::UnboundedSender<Queued>,
    written: watch::Receiver<Written>,
    /// Serialises the paths that read the database before deciding (repeats, refunds), so no
    /// two of them decide the same key or reference from the same stale read.
    pub(super) exact: tokio::sync::Mutex<()>,
}

fn stopped(why: &str) -> StoreError {
    StoreError(format!(
        "the ledger stopped after a failed write ({why}); restart the node to reload it from disk"
    ))
}

impl Book {
    /// Loads balances and settled keys from `pool`'s ledger and starts the writer on `writer`.
    /// `owner` (the ownership lock) is held by the writer until the last handle is dropped.
    pub(super) async fn open(
        pool: &Db,
        writer: rusqlite::Connection,
        owner: std::fs::File,
    ) -> Result<Book, StoreError> {
        let hasher = RandomState::new();
        let key_hasher = hasher.clone();
        let (balances, seen) = pool
            .call(move |c| {
                let mut balances = HashMap::new();
                let mut q =
                    c.prepare("SELECT chain_id, asset, owner, balance FROM pay_balances")?;
                let mut rows = q.query([])?;
                while let Some(r) = rows.next()? {
                    let (a, b) = balance_of(r)?;
                    balances.insert(a, b);
                }
                let mut seen = HashSet::new();
                let mut q =
                    c.prepare("SELECT chain_id, asset, payer, nonce FROM pay_settlements")?;
                let mut rows = q.query([])?;
                while let Some(r) = rows.next()? {
                    seen.insert(key_hasher.hash_one(key_of(r)?));
                }
                Ok::<_, Loading>((balances, seen))
            })
            .await
            .map_err(|Loading(e)| e)?;
        let state = Arc::new(Mutex::new(State {
            balances,
            seen,
            unwritten: HashMap::new(),
            decided: 0,
            failed: None,
        }));
        let (queue, changes) = mpsc::unbounded_channel();
        let (report, written) = watch::channel(Written::default());
        let writer_state = state.clone();
        std::thread::Builder::new()
            .name("vouch-ledger-writer".into())
            .spawn(move || write_behind(writer, writer_state, changes, report, owner))
            .map_err(|e| StoreError(format!("ledger writer thread: {e}")))?;
        Ok(Book {
            state,
            hasher,
            queue,
            written,
            exact: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let st = self
            .state
            .lock()
            .map_err(|_| StoreError("ledger state poisoned".into()))?;
        match &st.failed {
            Some(why) => Err(stopped(why)),
            None => Ok(st),
        }
    }

    /// Numbers `change` and hands it to the writer, in decision order (the caller holds the
    /// state lock).
    fn enqueue(
        &self,
        st: &mut State,
        change: Change,
        balances: Vec<(Account, U256)>,
    ) -> Result<u64, StoreError> {
        st.decided += 1;
        let seq = st.decided;
        let sent = self.queue.send(Queued {
            seq,
            change,
            balances,
        });
        if sent.is_err() {
            // The change is applied in memory but can never be written: stop, as a failed
            // write does.
            let why = "the ledger writer stopped".to_owned();
            st.failed = Some(why.clone());
            return Err(stopped(&why));
        }
        Ok(seq)
    }

    pub(super) fn balance(&self, a: &Account) -> Result<U256, StoreError> {
        Ok(self.lock()?.balances.get(a).copied().unwrap_or(U256::ZERO))
    }

    /// The payer's balance, and whether `key` may have been settled (`false` is certain).
    pub(super) fn standing(
        &self,
        key: &AuthorizationKey,
        payer: &Account,
    ) -> Result<(bool, U256), StoreError> {
        let st = self.lock()?;
        Ok((
            st.seen.contains(&self.hasher.hash_one(key)),
            st.balances.get(payer).copied().unwrap_or(U256::ZERO),
        ))
    }

    /// A decided settlement under `key` not yet on disk, with its change's `seq`.
    pub(super) fn unwritten(
        &self,
        key: &AuthorizationKey,
    ) -> Result<Option<(SettlementRecord, u64)>, StoreError> {
        Ok(self.lock()?.unwritten.get(key).cloned())
    }

    /// A decided settlement with this reference not yet on disk.
    pub(super) fn unwritten_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        Ok(self
            .lock()?
            .unwritten
            .values()
            .find(|(r, _)| r.reference == reference)
            .map(|(r, _)| r.clone()))
    }

    /// The fast path: a key the hash set has never seen is new, so the outcome is decided here.
    pub(super) fn try_settle(&self, new: &SettlementRecord) -> Result<Decided, StoreError> {
        let mut st = self.lock()?;
        if st.seen.contains(&self.hasher.hash_one(new.key)) {
            return Ok(Decided::Check);
        }
        self.settle_new(&mut st, new).map(Decided::Final)
    }

    /// Settles `new`, whose key the exact check found unsettled (the caller holds [`Self::exact`],
    /// so no other decision about this key can be in between).
    pub(super) fn settle_checked(&self, new: &SettlementRecord) -> Result<Outcome, StoreError> {
        let mut st = self.lock()?;
        if let Some((existing, seq)) = st.unwritten.get(&new.key) {
            return Ok((repeat(existing, new), Some(*seq)));
        }
        self.settle_new(&mut st, new)
    }

    fn settle_new(&self, st: &mut State, new: &SettlementRecord) -> Result<Outcome, StoreError> {
        let (payer, payee) = new.accounts();
        let balance = st.balances.get(&payer).copied().unwrap_or(U256::ZERO);
        let Some(debited) = balance.checked_sub(new.amount) else {
            return Ok((SettleOutcome::InsufficientBalance { balance }, None));
        };
        // Payer and payee may be one account: the credit reads the debited balance.
        st.balances.insert(payer, debited);
        let credited = st
            .balances
            .get(&payee)
            .copied()
            .unwrap_or(U256::ZERO)
            .checked_add(new.amount);
        let Some(credited) = credited else {
            st.balances.insert(payer, balance);
            return Err(StoreError(format!(
                "balance of {} would overflow",
                payee.owner
            )));
        };
        st.balances.insert(payee, credited);
        st.seen.insert(self.hasher.hash_one(new.key));
        let seq = self.enqueue(
            st,
            Change::Settle(new.clone()),
            vec![(payer, debited), (payee, credited)],
        )?;
        st.unwritten.insert(new.key, (new.clone(), seq));
        Ok((SettleOutcome::Settled(new.clone()), Some(seq)))
    }

    /// Adds `amount` to `a`; returns the new balance and the change's `seq`.
    pub(super) fn credit(
        &self,
        a: &Account,
        amount: U256,
        memo: &str,
        at: u64,
    ) -> Result<(U256, u64), StoreError> {
        let mut st = self.lock()?;
        let new = st
            .balances
            .get(a)
            .copied()
            .unwrap_or(U256::ZERO)
            .checked_add(amount)
            .ok_or_else(|| StoreError(format!("balance of {} would overflow", a.owner)))?;
        st.balances.insert(*a, new);
        let seq = self.enqueue(
            &mut st,
            Change::Credit {
                account: *a,
                amount,
                memo: memo.to_owned(),
                at,
            },
            vec![(*a, new)],
        )?;
        Ok((new, seq))
    }

    /// Moves `rec`'s amount back from payee to payer (the caller checked under [`Self::exact`]
    /// that it is not refunded yet); returns the refunded record and the change's `seq`.
    pub(super) fn refund(
        &self,
        rec: &SettlementRecord,
        reason: &str,
        now: u64,
    ) -> Result<(SettlementRecord, u64), StoreError> {
        let mut st = self.lock()?;
        let (payer, payee) = rec.accounts();
        let payee_had = st.balances.get(&payee).copied().unwrap_or(U256::ZERO);
        let payee_left = payee_had
            .checked_sub(rec.amount)
            .ok_or_else(|| StoreError(format!("balance of {} would go negative", payee.owner)))?;
        st.balances.insert(payee, payee_left);
        let payer_has = st.balances.get(&payer).copied().unwrap_or(U256::ZERO);
        let Some(payer_has) = payer_has.checked_add(rec.amount) else {
            st.balances.insert(payee, payee_had);
            return Err(StoreError(format!(
                "balance of {} would overflow",
                payer.owner
            )));
        };
        st.balances.insert(payer, payer_has);
        let refunded = SettlementRecord {
            refund: Some(RefundRecord {
                refunded_at: now,
                reason: reason.to_owned(),
            }),
            ..rec.clone()
        };
        if let Some((r, _)) = st.unwritten.get_mut(&rec.key) {
            r.refund = refunded.refund.clone();
        }
        let seq = self.enqueue(
            &mut st,
            Change::Refund(refunded.clone()),
            vec![(payee, payee_left), (payer, payer_has)],
        )?;
        Ok((refunded, seq))
    }

    /// Waits until change `seq` (and every one before it) is committed and synced.
    pub(super) async fn written(&self, seq: u64) -> Result<(), StoreError> {
        let mut rx = self.written.clone();
        let w = rx
            .wait_for(|w| w.upto >= seq || w.failed.is_some())
            .await
            .map_err(|_| StoreError("the ledger writer stopped".into()))?;
        match (&w.failed, w.upto >= seq) {
            (_, true) => Ok(()),
            (Some(why), false) => Err(stopped(why)),
            (None, false) => Err(StoreError("the ledger writer stopped".into())),
        }
    }

    /// Waits until every change decided so far is durable.
    pub(super) async fn sync(&self) -> Result<(), StoreError> {
        let decided = self.lock()?.decided;
        self.written(decided).await
    }
}

/// The answer to a repeat of `existing`'s key by `new`.
pub(super) fn repeat(existing: &SettlementRecord, new: &SettlementRecord) -> SettleOutcome {
    if existing.digest == new.digest {
        SettleOutcome::AlreadySettled(existing.clone())
    } else {
        SettleOutcome::NonceUsed
    }
}

/// The writer: a thread of its own with a connection of its own, which commits queued changes
/// in batches, in order, one transaction and one fsync each, through cached prepared
/// statements, then reports progress. (Through sqlx's async wrapper, before, the same
/// batch cost ≈ 250 µs of script parsing and thread hand-offs before its fsync; here ≈ tens of
/// µs.) Holds `_owner` until every handle on the book is gone.
fn write_behind(
    mut conn: rusqlite::Connection,
    state: Arc<Mutex<State>>,
    mut changes: mpsc::UnboundedReceiver<Queued>,
    report: watch::Sender<Written>,
    _owner: std::fs::File,
) {
    while let Some(first) = changes.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match changes.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        if report.borrow().failed.is_some() {
            continue;
        }
        let upto = batch.last().map_or(0, |q| q.seq);
        let result = write_batch(&mut conn, &batch);
        match result {
            Ok(()) => {
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                for q in &batch {
                    if let Change::Settle(r) = &q.change {
                        st.unwritten.remove(&r.key);
                    }
                }
                drop(st);
                report.send_modify(|w| w.upto = upto);
            }
            Err(e) => {
                tracing::error!(error = %e.0, "LEDGER WRITE FAILED: the ledger stops until restart");
                state.lock().unwrap_or_else(PoisonError::into_inner).failed = Some(e.0.clone());
                report.send_modify(|w| w.failed = Some(e.0));
            }
        }
    }
}

/// Loading the book fails with the store's error, whichever layer it came from.
struct Loading(StoreError);

impl From<DbError> for Loading {
    fn from(e: DbError) -> Self {
        Loading(StoreError(e.to_string()))
    }
}

impl From<rusqlite::Error> for Loading {
    fn from(e: rusqlite::Error) -> Self {
        Loading(sql(e))
    }
}

impl From<StoreError> for Loading {
    fn from(e: StoreError) -> Self {
        Loading(e)
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

/// One transaction writing `batch`: balances as of its last change, journal lines (numbered
/// after the last one), new settlements, refund marks.
fn write_batch(conn: &mut rusqlite::Connection, batch: &[Queued]) -> Result<(), StoreError> {
    use rusqlite::params;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    {
        let mut seq: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM pay_entries", [], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        let mut last: Vec<(Account, U256, u64)> = Vec::new();
        let mut entry = tx
            .prepare_cached(
                "INSERT INTO pay_entries (seq, at, chain_id, asset, owner, delta, kind, reference, memo)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(sql)?;
        let mut journal = |at: u64,
                           a: &Account,
                           credit: bool,
                           amount: &U256,
                           kind: &str,
                           reference: Option<&str>,
                           memo: Option<&str>|
         -> Result<(), StoreError> {
            seq += 1;
            let delta = format!("{}{amount}", if credit { '+' } else { '-' });
            entry
                .execute(params![
                    seq,
                    secs(at),
                    chain(a.chain_id)?,
                    addr(&a.asset),
                    addr(&a.owner),
                    delta,
                    kind,
                    reference,
                    memo
                ])
                .map_err(sql)?;
            Ok(())
        };
        for q in batch {
            let at = match &q.change {
                Change::Settle(r) => r.settled_at,
                Change::Credit { at, .. } => *at,
                Change::Refund(r) => r.refund.as_ref().map_or(r.settled_at, |f| f.refunded_at),
            };
            for (a, b) in &q.balances {
                match last.iter_mut().find(|(t, _, _)| t == a) {
                    Some(t) => (t.1, t.2) = (*b, at),
                    None => last.push((*a, *b, at)),
                }
            }
            match &q.change {
                Change::Settle(r) => {
                    let (payer, payee) = r.accounts();
                    let reference = Some(r.reference.as_str());
                    journal(at, &payer, false, &r.amount, "settle", reference, None)?;
                    journal(at, &payee, true, &r.amount, "settle", reference, None)?;
                    let k = &r.key;
                    let chain_id = chain(k.chain_id)?;
                    tx.prepare_cached(
                        "INSERT INTO pay_settlements (chain_id, asset, payer, nonce, digest, pay_to,
                                                      amount, reference, settled_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            chain_id,
                            addr(&k.asset),
                            addr(&k.payer),
                            word(&k.nonce),
                            word(&r.digest),
                            addr(&r.pay_to),
                            r.amount.to_string(),
                            r.reference,
                            secs(r.settled_at)
                        ])
                    })
                    .map_err(sql)?;
                }
                Change::Credit {
                    account,
                    amount,
                    memo,
                    ..
                } => journal(at, account, true, amount, "credit", None, Some(memo))?,
                Change::Refund(r) => {
                    let (payer, payee) = r.accounts();
                    let reason = r.refund.as_ref().map(|f| f.reason.as_str());
                    let reference = Some(r.reference.as_str());
                    journal(at, &payee, false, &r.amount, "refund", reference, reason)?;
                    journal(at, &payer, true, &r.amount, "refund", reference, reason)?;
                    tx.prepare_cached(
                        "UPDATE pay_settlements SET refunded_at = ?1, refund_reason = ?2
                         WHERE reference = ?3",
                    )
                    .and_then(|mut st| st.execute(params![secs(at), reason, r.reference]))
                    .map_err(sql)?;
                }
            }
        }
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO pay_balances (chain_id, asset, owner, balance, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (chain_id, asset, owner) DO UPDATE
                 SET balance = excluded.balance, updated_at = excluded.updated_at",
            )
            .map_err(sql)?;
        for (a, b, at) in &last {
            upsert
                .execute(params![
                    chain(a.chain_id)?,
                    addr(&a.asset),
                    addr(&a.owner),
                    b.to_string(),
                    secs(*at)
                ])
                .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}
