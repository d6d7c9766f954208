//! Who analyses next: `[zk] analysis_slots` analyses run at once and the waiting ones start
//! smallest predicted circuit first, so a small model registered behind a large one is analysed
//! as soon as a slot frees instead of after it (each analysis is also bounded in size and time,
//! so a slot always frees).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::lock;

pub struct AnalysisSlots {
    inner: Mutex<Inner>,
}

struct Inner {
    free: usize,
    /// Arrival order breaks ties between equal sizes.
    next: u64,
    /// Waiting analyses by (predicted size, arrival); each is woken with its slot.
    waiting: BTreeMap<(u64, u64), oneshot::Sender<Slot>>,
}

/// A running analysis's slot, given back when dropped (on whichever thread the analysis ends).
pub struct Slot {
    slots: Arc<AnalysisSlots>,
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            let mut inner = lock(&self.slots.inner);
            inner.free += 1;
            self.slots.dispatch(&mut inner);
        }
    }
}

impl AnalysisSlots {
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(AnalysisSlots {
            inner: Mutex::new(Inner {
                free: slots.max(1),
                next: 0,
                waiting: BTreeMap::new(),
            }),
        })
    }

    /// Waits for a slot; among waiting analyses the smallest `size` goes first.
    pub async fn acquire(self: &Arc<Self>, size: u64) -> Slot {
        let rx = {
            let mut inner = lock(&self.inner);
            let (tx, rx) = oneshot::channel();
            let seq = inner.next;
            inner.next += 1;
            inner.waiting.insert((size, seq), tx);
            self.dispatch(&mut inner);
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // Every sender is used by `dispatch`, never dropped: not reached. Should it ever be,
            // the analysis still runs, unaccounted, rather than never.
            Err(_) => Slot {
                slots: self.clone(),
                armed: false,
            },
        }
    }

    /// Hands free slots to the smallest waiting analyses.
    fn dispatch(self: &Arc<Self>, inner: &mut Inner) {
        while inner.free > 0 {
            let Some((_, tx)) = inner.waiting.pop_first() else {
                return;
            };
            inner.free -= 1;
            let slot = Slot {
                slots: self.clone(),
                armed: true,
            };
            if let Err(mut unused) = tx.send(slot) {
                // The waiter is gone: take the slot back here (dropping it would lock again).
                unused.armed = false;
                inner.free += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_smallest_waiting_analysis_gets_the_next_slot() {
        let slots = AnalysisSlots::new(1);
        let big_running = slots.acquire(1_000).await;
        let order = Arc::new(Mutex::new(vec![]));
        let mut tasks = vec![];
        for size in [900u64, 5, 40] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = slots.acquire(size).await;
                lock(&order).push(size);
                drop(slot);
            }));
            tokio::task::yield_now().await;
        }
        // All three are waiting behind the running analysis.
        assert!(lock(&order).is_empty());
        drop(big_running);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), vec![5, 40, 900]);
    }

    #[tokio::test]
    async fn a_second_slot_lets_a_small_analysis_run_beside_a_large_one() {
        let slots = AnalysisSlots::new(2);
        let _large = slots.acquire(u64::MAX).await;
        let small = tokio::time::timeout(std::time::Duration::from_secs(30), slots.acquire(1))
            .await
            .expect("a free slot is handed out at once");
        drop(small);
        // A waiter that gave up does not keep its slot.
        let second = slots.acquire(2).await;
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire(3));
        assert!(gave_up.await.is_err());
        drop(second);
        let again = tokio::time::timeout(std::time::Duration::from_secs(30), slots.acquire(4));
        assert!(again.await.is_ok());
    }
}
