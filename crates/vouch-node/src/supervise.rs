//! Background tasks that come back when they die.
//!
//! A task spawned once and left alone dies for good on its first panic: the checkpoint timer
//! did, on a log write to a full disk, and the log's checkpoints stayed behind its entries after
//! the space was freed. [`spawn`] runs a task from a factory and, when it panics, counts it in
//! `vouch_task_restarts_total{task}`, logs it, and starts a fresh one after a short backoff.
//! A task that returns is done and stays done (its work ended, e.g. its channel closed).

use std::future::Future;
use std::time::Duration;

/// First delay before a restart; doubled on each panic in a row, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A task that ran this long before panicking restarts at [`MIN_BACKOFF`] again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The metric name, shared with the tests and `/metrics` readers.
pub const RESTARTS: &str = "vouch_task_restarts_total";

/// Runs `make()` on the runtime, again and again while it panics. `task` names it in
/// `vouch_task_restarts_total{task}`, which is registered at 0 so the series exists before
/// the first restart.
pub fn spawn<F, Fut>(task: &'static str, mut make: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let restarts = metrics::counter!(RESTARTS, "task" => task);
    restarts.increment(0);
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = tokio::time::Instant::now();
            let err = match tokio::spawn(make()).await {
                Ok(()) => return,
                // Aborted with the runtime shutting down: nothing to restart.
                Err(e) if e.is_cancelled() => return,
                Err(e) => e,
            };
            let why = panic_message(err.into_panic());
            if started.elapsed() >= HEALTHY_RUN {
                backoff = MIN_BACKOFF;
            }
            restarts.increment(1);
            tracing::error!(
                task,
                "background task panicked: {why}; restarting in {backoff:?}"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&'static str>()
            .map_or_else(|| "(no message)".to_string(), |s| (*s).to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panicking_task_is_restarted_counted_and_a_finished_one_is_not() {
        let handle = crate::analytics::prometheus();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let sup = spawn("test-flaky", move || {
            let r = r.clone();
            async move {
                // Panics on its first two runs, then finishes.
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), sup)
            .await
            .expect("the supervisor did not finish after the task did")
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let text = handle.render();
        assert!(
            text.lines()
                .any(|l| l == format!("{RESTARTS}{{task=\"test-flaky\"}} 2")),
            "{text}"
        );

        // Registered at 0 before any restart.
        let quiet = spawn("test-quiet", || async {});
        quiet.await.unwrap();
        assert!(
            handle
                .render()
                .lines()
                .any(|l| l == format!("{RESTARTS}{{task=\"test-quiet\"}} 0")),
        );
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7u8)), "(no message)");
    }
}
