//! Cache coherence across nodes: every catalog change (a name moved, a policy or a
//! configuration set) bumps `catalog_version` in its own transaction, and PostgreSQL notifies
//! `vouch_catalog` at commit. A node's watcher drops its caches on each notification, and also
//! when the listening connection was lost (notifications may have been missed) or when a
//! periodic read of the version finds it changed — so a change made on any node is honoured on
//! every other within the poll interval at worst, and within milliseconds normally.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::Pg;

/// The channel `bump_catalog` notifies.
pub const CATALOG_CHANNEL: &str = "vouch_catalog";

impl Pg {
    /// The catalog's version now (bumped by every catalog change).
    pub async fn catalog_version(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM catalog_version")
            .fetch_one(self.pool())
            .await
    }

    /// Calls `changed` after every catalog change made on any node, at most `poll` late, until
    /// `alive()` (asked every `poll`) is false. Fails on a database error (the caller restarts
    /// it; `changed` is also called at every start, as changes may have been missed meanwhile).
    pub async fn watch_catalog(
        &self,
        poll: Duration,
        alive: impl Fn() -> bool + Send + Sync,
        changed: impl Fn() + Send + Sync,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(self.pool()).await?;
        listener.listen(CATALOG_CHANNEL).await?;
        let mut seen = self.catalog_version().await?;
        changed();
        let mut tick = tokio::time::interval(poll.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = listener.try_recv() => {
                    // `None`: the connection was lost and is re-established by the next call;
                    // whatever was notified meanwhile is lost, so assume a change.
                    if let Some(n) = n? {
                        seen = seen.max(n.payload().parse().unwrap_or(seen));
                    }
                    changed();
                }
                _ = tick.tick() => {
                    if !alive() {
                        return Ok(());
                    }
                    let now = self.catalog_version().await?;
                    if now != seen {
                        seen = now;
                        changed();
                    }
                }
            }
        }
    }
}

/// Held while a node appends the catalog's outboxes (pointer, policy and configuration changes)
/// to the log: on PostgreSQL one node of the cluster at a time (a session advisory lock), so
/// two nodes never log one change twice. Release it with [`OutboxLock::release`]; dropped
/// unreleased (a panic, a cancelled drain), its connection is closed, which frees the lock.
pub struct OutboxLock(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

const OUTBOX_LOCK: &str = "SELECT pg_advisory_lock(hashtextextended('vouch.outboxes', 0))";
const OUTBOX_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('vouch.outboxes', 0))";

impl OutboxLock {
    /// No lock: a database with one writer (SQLite).
    pub fn none() -> OutboxLock {
        OutboxLock(None)
    }

    /// Waits for the cluster's outbox lock.
    pub async fn acquire(pg: &Pg) -> Result<OutboxLock, sqlx::Error> {
        let mut c = pg.pool().acquire().await?;
        sqlx::query(OUTBOX_LOCK).execute(&mut *c).await?;
        Ok(OutboxLock(Some(c)))
    }

    pub async fn release(mut self) {
        if let Some(mut c) = self.0.take()
            && sqlx::query(OUTBOX_UNLOCK).execute(&mut *c).await.is_err()
        {
            drop(c.detach());
        }
    }
}

impl Drop for OutboxLock {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(c.detach());
        }
    }
}
