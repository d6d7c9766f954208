//! The node's log output, which must never take the node down with it.
//!
//! `tracing-subscriber`'s formatter reports a failed write with `eprintln!`, which panics when
//! stderr itself fails (a full disk behind a redirected stderr): the task that logged died —
//! a handler's reply became a dropped connection, the checkpoint timer stopped for good. This
//! writer never fails: a write that cannot be made is dropped and counted
//! (`vouch_log_write_errors_total`), and the node carries on.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

static FAILED: AtomicU64 = AtomicU64::new(0);

/// Stderr that swallows and counts its errors. Use it as the log subscriber's writer
/// (`.with_writer(|| LogWriter)`), with the subscriber's own error reports off.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl LogWriter {
    /// Log lines dropped since the process started because the output failed.
    pub fn failed_writes() -> u64 {
        FAILED.load(Ordering::Relaxed)
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(write_or_count(&mut io::stderr().lock(), buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Writes all of `buf` to `out`, or counts one failed write; claims `buf.len()` either way.
fn write_or_count(out: &mut impl Write, buf: &[u8]) -> usize {
    if out.write_all(buf).is_err() {
        FAILED.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("vouch_log_write_errors_total").increment(1);
    }
    buf.len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_failing_output_is_counted_never_reported_as_an_error() {
        let mut full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        assert!(
            full.write_all(b"x\n").is_err(),
            "/dev/full accepted a write"
        );
        let before = LogWriter::failed_writes();
        assert_eq!(write_or_count(&mut full, b"a log line\n"), 11);
        assert_eq!(LogWriter::failed_writes(), before + 1);
        let mut ok = Vec::new();
        assert_eq!(write_or_count(&mut ok, b"fine\n"), 5);
        assert_eq!(ok, b"fine\n");
        assert_eq!(LogWriter::failed_writes(), before + 1);
    }
}
