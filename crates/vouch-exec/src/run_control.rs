//! What bounds one engine run: a deadline, a flag the caller raises when it no longer wants the
//! answer, and a memory budget. Engines that evaluate node by node (tract) poll the flag between
//! nodes; engines that run a graph in native code (ONNX Runtime) register a hook that stops
//! them from another thread.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::engine::ExecError;

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The caller went away (its request timed out or its connection closed).
    Abandoned,
    /// The run passed its deadline.
    DeadlineExceeded,
}

type Hook = Box<dyn FnOnce() + Send>;

pub struct RunControl {
    /// 0: running; else a [`StopReason`] + 1.
    stop: AtomicU8,
    deadline: Option<Instant>,
    /// The run's time limit, for the message when it is exceeded.
    limit: Option<Duration>,
    memory_bytes: usize,
    /// Stops an engine that does not poll [`RunControl::check`]; called at most once.
    on_stop: Mutex<Option<Hook>>,
}

impl RunControl {
    /// A run that may take `limit` from now (none: no deadline) and whose tensors may take
    /// `memory_bytes`.
    pub fn new(limit: Option<Duration>, memory_bytes: usize) -> Self {
        Self::until(limit.map(|l| Instant::now() + l), limit, memory_bytes)
    }

    /// A run that must end by `deadline` (`limit` is how long it was given, for messages).
    pub fn until(deadline: Option<Instant>, limit: Option<Duration>, memory_bytes: usize) -> Self {
        RunControl {
            stop: AtomicU8::new(0),
            deadline,
            limit,
            memory_bytes,
            on_stop: Mutex::new(None),
        }
    }

    /// For direct engine calls (tests, benches, replay): no deadline, the default budget.
    pub fn unbounded() -> Self {
        Self::new(None, DEFAULT_RUN_MEMORY)
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Stops the run (idempotent; the first reason wins) and fires the engine's hook.
    pub fn stop(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Abandoned => 1,
            StopReason::DeadlineExceeded => 2,
        };
        if self
            .stop
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && let Some(hook) = self.on_stop.lock().take()
        {
            hook();
        }
    }

    /// Why the run must stop, if it must: raised by [`RunControl::stop`] or a passed deadline.
    pub fn stopped(&self) -> Option<StopReason> {
        match self.stop.load(Ordering::Acquire) {
            1 => return Some(StopReason::Abandoned),
            2 => return Some(StopReason::DeadlineExceeded),
            _ => {}
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop(StopReason::DeadlineExceeded);
            return Some(StopReason::DeadlineExceeded);
        }
        None
    }

    /// `Err` with the matching [`ExecError`] once the run must stop.
    pub fn check(&self) -> Result<(), ExecError> {
        match self.stopped() {
            None => Ok(()),
            Some(r) => Err(self.error(r)),
        }
    }

    pub fn error(&self, reason: StopReason) -> ExecError {
        match reason {
            StopReason::Abandoned => ExecError::Abandoned,
            StopReason::DeadlineExceeded => ExecError::TimedOut {
                limit: self.limit.unwrap_or_default(),
            },
        }
    }

    /// Registers how to stop the engine from another thread; runs it at once when the run is
    /// already stopped.
    pub fn on_stop(&self, hook: impl FnOnce() + Send + 'static) {
        if self.stopped().is_some() {
            hook();
            return;
        }
        *self.on_stop.lock() = Some(Box::new(hook));
        // A stop between the check and the store would have found no hook.
        if self.stop.load(Ordering::Acquire) != 0
            && let Some(hook) = self.on_stop.lock().take()
        {
            hook();
        }
    }

    /// Drops the hook once the run is over, so a late stop does not touch a finished run.
    pub fn clear_on_stop(&self) {
        self.on_stop.lock().take();
    }
}

/// The memory one run may use when nothing else is configured: 2 GiB.
pub const DEFAULT_RUN_MEMORY: usize = 2 << 30;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_hook_fires_once_whenever_it_is_registered() {
        let fired = Arc::new(AtomicUsize::new(0));
        let c = RunControl::new(None, 1);
        let f = fired.clone();
        c.on_stop(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        c.stop(StopReason::Abandoned);
        c.stop(StopReason::DeadlineExceeded);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(c.stopped(), Some(StopReason::Abandoned));

        let late = RunControl::new(None, 1);
        late.stop(StopReason::Abandoned);
        let f = fired.clone();
        late.on_stop(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(fired.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_passed_deadline_stops_the_run() {
        let c = RunControl::new(Some(Duration::ZERO), 1);
        assert!(matches!(c.check(), Err(ExecError::TimedOut { .. })));
        assert!(RunControl::unbounded().check().is_ok());
    }
}
