//! The HTTP/1.1 accept loop every listener of this crate runs (node, witness, facilitator):
//! a cap on open connections, a deadline for a request's headers, and graceful shutdown.
//!
//! `axum::serve` sets neither a header deadline nor a connection cap, so a client holding
//! ~1,000 half-open connections exhausted the default file-descriptor limit and locked every
//! other client out (slowloris). Here:
//!
//! - at most `max_connections` connections are open; at the cap the loop stops accepting, so
//!   new connections wait in the kernel's accept backlog and existing ones carry on untouched;
//! - a connection that has not sent a whole request head within `header_timeout` of starting to
//!   wait for one is closed. hyper starts that timer whenever a connection waits for a request,
//!   so it bounds idle keep-alive connections too;
//! - `RLIMIT_NOFILE`'s soft limit is raised to the hard limit once per process, and the cap is
//!   lowered (with a warning) if the descriptors would still not cover it.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Descriptors kept free of connections for the database, blobs, model files and the log.
const FD_RESERVE: u64 = 256;

/// Connection-level limits of one listener.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a whole request head (also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// After the shutdown signal, how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
}

impl ConnLimits {
    pub fn from_limits(l: &vouch_node::config::Limits) -> ConnLimits {
        ConnLimits {
            max_connections: l.max_connections.max(1),
            header_timeout: Duration::from_millis(l.header_timeout_ms.max(1)),
            shutdown_grace: Duration::from_secs(l.request_timeout_secs.saturating_add(5)),
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits::from_limits(&vouch_node::config::Limits::default())
    }
}

/// The process's open-file limits `(soft, hard)` after raising the soft one to the hard one
/// (once per process; `None` where the platform has no such limit or refuses to say).
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    static LIMITS: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    *LIMITS.get_or_init(raise_fd_limit_now)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every Unix
fn raise_fd_limit_now() -> Option<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!("open-file limit raised from {soft} to {hard}");
                return Some((hard as u64, hard as u64));
            }
            Err(e) => tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}"),
        }
    }
    Some((soft as u64, hard as u64))
}

#[cfg(not(unix))]
fn raise_fd_limit_now() -> Option<(u64, u64)> {
    None
}

/// `wanted`, lowered so that connections and [`FD_RESERVE`] fit in `soft` descriptors.
fn fit_connections(wanted: usize, soft: Option<u64>) -> usize {
    let Some(soft) = soft else { return wanted };
    let room = usize::try_from(soft.saturating_sub(FD_RESERVE))
        .unwrap_or(usize::MAX)
        .max(16);
    if wanted > room {
        tracing::warn!(
            "[limits] max_connections = {wanted} does not fit the open-file limit {soft}; \
             serving at most {room} connections"
        );
        return room;
    }
    wanted
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish (at most `limits.shutdown_grace`) and closes idle connections at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let soft = raise_fd_limit().map(|(soft, _)| soft);
    let cap = fit_connections(limits.max_connections, soft);
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    metrics::gauge!("vouch_http_connections_max").set(cap as f64);
    let mut shutdown = pin!(shutdown);
    loop {
        // A free slot first: at the cap, new connections wait in the accept backlog rather
        // than being accepted and starving the ones already served.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((s, _peer)) => s,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        metrics::gauge!("vouch_http_connections").increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    metrics::counter!("vouch_http_header_timeouts_total").increment(1);
                }
                tracing::debug!("connection ended: {e}");
            }
            metrics::gauge!("vouch_http_connections").decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running {:?} after shutdown began; stopping anyway",
            limits.shutdown_grace
        );
    }
    Ok(())
}

/// A failed accept: a connection that died in the backlog is skipped; anything else (out of
/// descriptors) is logged and the loop pauses briefly so it does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    ) {
        return;
    }
    tracing::error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn limits(max_connections: usize, header_ms: u64) -> ConnLimits {
        ConnLimits {
            max_connections,
            header_timeout: Duration::from_millis(header_ms),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    async fn start(
        l: ConnLimits,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "done"
                }),
            );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, l, async {
            let _ = rx.await;
        }));
        (addr, tx, task)
    }

    /// One request on a fresh connection; the whole answer as text.
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Reads until the peer closes; how long that took.
    async fn until_closed(s: &mut TcpStream) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return t.elapsed(),
                Ok(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn idle_and_half_open_connections_beyond_the_cap_do_not_lock_clients_out() {
        let (addr, _stop, _task) = start(limits(8, 500)).await;
        // Twice the cap in connections that never finish a request head: some say nothing,
        // some send half a head.
        let mut idle = Vec::new();
        for i in 0..16 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
            }
            idle.push(s);
        }
        // A real client still gets its answer, once the header deadline frees slots.
        let t = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), get(addr, "/"))
            .await
            .expect("a real client was locked out");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // Every idle connection is closed by the server, none lives much past the deadline
        // after it was accepted.
        for mut s in idle {
            let waited = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut s))
                .await
                .expect("an idle connection stayed open");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        }
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
        let (addr, _stop, _task) = start(limits(8, 300)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // The connection is kept alive for a next request, but not for ever.
        let waited = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut s))
            .await
            .expect("an idle keep-alive connection stayed open");
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_waits_and_is_served_when_a_slot_frees() {
        let (addr, _stop, _task) = start(limits(1, 5_000)).await;
        // One slot, taken by a slow request; the second client is served after it, not refused.
        let slow = tokio::spawn(get(addr, "/slow"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let second = get(addr, "/").await;
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        assert!(slow.await.unwrap().ends_with("done"));
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
        let (addr, stop, task) = start(limits(8, 5_000)).await;
        let slow = tokio::spawn(get(addr, "/slow"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        assert!(slow.await.unwrap().ends_with("done"));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve did not return after shutdown")
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[cfg(unix)]
    #[test]
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every Unix
    fn the_fd_limit_is_raised_and_the_cap_fits_it() {
        let (soft, hard) = raise_fd_limit().unwrap();
        assert_eq!(soft, hard);
        let (now, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(now as u64, hard);
        assert_eq!(fit_connections(1024, Some(4096)), 1024);
        assert_eq!(
            fit_connections(1024, Some(1024)),
            1024 - FD_RESERVE as usize
        );
        assert_eq!(fit_connections(1024, Some(100)), 16);
        assert_eq!(fit_connections(7, None), 7);
    }
}
