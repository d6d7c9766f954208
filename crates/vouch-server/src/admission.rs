//! Admission of large inference bodies: a bounded number read, parsed and run at once, a bounded
//! number waiting, and a quick 503 + Retry-After for the rest.
//!
//! A 16 MiB JSON body peaks at ~190 MB while it becomes tensors, and nothing bounded how many
//! did at once: 200 of them took 1.9 GB and stalled the node for over a minute. Requests whose
//! body is small (a declared `Content-Length` up to [`SMALL_BODY`]) pass straight through, so
//! ordinary traffic never queues behind large uploads — or behind a client that sends one
//! slowly; the rest take one of `[limits] max_large_bodies` slots before their body is read
//! and keep it until their handler answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vouch_core::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Bodies declared at most this long skip the gate: their parse costs little memory.
pub const SMALL_BODY: u64 = 64 << 10;

/// The slots and the bounded queue in front of them.
pub struct BodyGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

/// Decrements the waiting count however the wait ends (slot, timeout, client gone).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BodyGate {
    pub fn new(slots: usize, max_waiting: usize, wait: Duration) -> BodyGate {
        BodyGate {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            wait,
        }
    }

    pub fn from_limits(l: &vouch_node::config::Limits) -> BodyGate {
        BodyGate::new(
            l.max_large_bodies,
            l.max_large_body_waiting,
            Duration::from_millis(l.large_body_wait_ms),
        )
    }

    /// A slot, at once or after a bounded wait; `overloaded` (503 + Retry-After) when the
    /// queue is full or the wait runs out.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if ahead >= self.max_waiting {
            return Err(busy(format!(
                "{ahead} large requests are already waiting for this node; retry shortly"
            )));
        }
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy(format!(
                "no slot for a large request freed within {} ms; retry shortly",
                self.wait.as_millis()
            ))),
        }
    }
}

fn busy(message: String) -> ApiError {
    metrics::counter!("vouch_large_body_refusals_total").increment(1);
    ApiError::new(ErrorCode::Overloaded, message).with_reason("large_bodies_busy")
}

/// Whether the request declares a body small enough to skip the gate.
fn small(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n <= SMALL_BODY)
}

/// Middleware on `POST /v1/infer`: takes a slot for a large body before it is read.
pub async fn large_bodies(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if small(&req) {
        return next.run(req).await;
    }
    match st.bodies.enter().await {
        Ok(slot) => {
            let answer = next.run(req).await;
            drop(slot);
            answer
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn slots_then_a_bounded_queue_then_quick_refusals() {
        let gate = Arc::new(BodyGate::new(1, 1, Duration::from_millis(300)));
        let held = gate.enter().await.unwrap();
        // One caller may wait...
        let waiter = tokio::spawn({
            let g = gate.clone();
            async move { g.enter().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...the next is refused at once, with the code and reason clients match on.
        let t = std::time::Instant::now();
        let e = gate.enter().await.unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!(e.code, ErrorCode::Overloaded);
        assert_eq!(e.reason, Some("large_bodies_busy"));
        assert!(e.message.contains("already waiting"), "{}", e.message);
        let resp = e.into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        // The waiter gets the slot once it frees.
        drop(held);
        waiter.await.unwrap().unwrap();
        // A wait that runs out is refused too, and leaves the queue empty behind it.
        let held = gate.enter().await.unwrap();
        let e = gate.enter().await.unwrap_err();
        assert!(e.message.contains("300 ms"), "{}", e.message);
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        drop(held);
        let _slot = gate.enter().await.unwrap();
    }

    #[test]
    fn only_a_declared_small_body_skips_the_gate() {
        let req = |len: Option<&str>| {
            let mut b = axum::http::Request::builder()
                .method("POST")
                .uri("/v1/infer");
            if let Some(l) = len {
                b = b.header(header::CONTENT_LENGTH, l);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        assert!(small(&req(Some("100"))));
        assert!(small(&req(Some(&SMALL_BODY.to_string()))));
        assert!(!small(&req(Some(&(SMALL_BODY + 1).to_string()))));
        assert!(!small(&req(None)));
        assert!(!small(&req(Some("lots"))));
    }
}
