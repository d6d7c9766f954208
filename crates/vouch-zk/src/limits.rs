//! What one analysis may cost: size limits checked against [`crate::size`]'s estimate before
//! anything proportional to the circuit is built, and a [`Deadline`] the analysis loops poll so
//! a runaway analysis stops instead of holding a node's memory and its analysis queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::ZkError;

/// Largest circuit, graph and tensor an analysis accepts. Every figure is compared with the
/// estimate from the graph's shapes and attributes ([`crate::size::estimate_model`]), so a model
/// over a limit is refused before calibration, key generation or any allocation proportional to
/// its circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Operators in the ONNX graph, counted on the protobuf wire before the model is decoded.
    pub max_nodes: u64,
    /// Estimated R1CS constraints.
    pub max_constraints: u64,
    /// Elements of any one tensor (graph value or constant).
    pub max_tensor_elements: u64,
    /// Memory the analysis is predicted to need
    /// ([`crate::size::CircuitEstimate::analysis_peak_bytes`]): key generation, plus every value
    /// of every calibration sample (which a graph of free operators, Add and Reshape, can make
    /// large without adding constraints).
    pub max_analysis_bytes: u64,
    /// Values a tensor proof commits (the tensor system's size: MiniLM-L6 at sequence 16 has
    /// about 2.6 M).
    #[serde(default = "default_max_tensor_values")]
    pub max_tensor_values: u64,
}

fn default_max_tensor_values() -> u64 {
    DEFAULT_MAX_TENSOR_VALUES
}

/// 2^23 committed values: about 9 s of proving and 2.7 GB over the weights' share by the tensor
/// estimate (`tensor::system::estimate`).
pub const DEFAULT_MAX_TENSOR_VALUES: u64 = 1 << 23;

/// 2^21 constraints: the proving estimate ([`crate::estimate`]) puts a circuit this size at
/// about 4 GiB of proving memory, the `[zk] max_peak_mib` default; the CNN is 172 k.
pub const DEFAULT_MAX_CONSTRAINTS: u64 = 1 << 21;
/// Far more operators than any model the zk tier proves (the shipped ones have under 20).
pub const DEFAULT_MAX_NODES: u64 = 10_000;
/// The importer's own hard cap ([`crate::onnx`]): 2^26 elements (512 MB as f64).
pub const DEFAULT_MAX_TENSOR_ELEMENTS: u64 = 1 << 26;
/// 4 GiB, the server's `[zk] max_peak_mib` default.
pub const DEFAULT_MAX_ANALYSIS_BYTES: u64 = 4 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: DEFAULT_MAX_NODES,
            max_constraints: DEFAULT_MAX_CONSTRAINTS,
            max_tensor_elements: DEFAULT_MAX_TENSOR_ELEMENTS,
            max_analysis_bytes: DEFAULT_MAX_ANALYSIS_BYTES,
            max_tensor_values: DEFAULT_MAX_TENSOR_VALUES,
        }
    }
}

/// When an analysis must give up: a point in time and/or a cancellation flag, polled between
/// operators, between calibration samples, every few thousand rows of the circuit builder and
/// while the constraints are handed to Spartan2. Spartan2's own key generation after that
/// cannot be interrupted; the size limits bound it.
#[derive(Clone, Debug, Default)]
pub struct Deadline {
    at: Option<Instant>,
    limit: Duration,
    cancel: Option<Arc<AtomicBool>>,
}

impl Deadline {
    /// No deadline: the analysis runs to the end.
    pub fn none() -> Self {
        Deadline::default()
    }

    /// Expires `limit` from now (the one reading of a clock: verifiers never set a deadline).
    #[cfg(feature = "prover")]
    pub fn after(limit: Duration) -> Self {
        Deadline {
            at: Instant::now().checked_add(limit),
            limit,
            cancel: None,
        }
    }

    /// Also expires as soon as `flag` is set (by whoever stopped waiting for the analysis).
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Whether the deadline has passed or the analysis was cancelled.
    pub fn expired(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
            || self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// `Err(OverLimit)` naming the time limit once the deadline has passed.
    pub fn check(&self) -> Result<(), ZkError> {
        if self.expired() {
            Err(self.error())
        } else {
            Ok(())
        }
    }

    /// The error an expired analysis ends with.
    pub fn error(&self) -> ZkError {
        ZkError::OverLimit(format!(
            "analysis exceeded this node's time limit of {} s",
            self.limit.as_secs_f64().ceil() as u64
        ))
    }
}

#[cfg(all(test, feature = "prover"))]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_expires_by_time_or_by_flag() {
        assert!(Deadline::none().check().is_ok());
        assert!(Deadline::after(Duration::from_secs(3600)).check().is_ok());
        let e = Deadline::after(Duration::ZERO).check().unwrap_err();
        assert!(
            matches!(&e, ZkError::OverLimit(m) if m.contains("time limit of 0 s")),
            "{e}"
        );
        let flag = Arc::new(AtomicBool::new(false));
        let d = Deadline::after(Duration::from_secs(7)).with_cancel(flag.clone());
        assert!(!d.expired());
        flag.store(true, Ordering::Relaxed);
        let e = d.check().unwrap_err();
        assert!(e.to_string().contains("time limit of 7 s"), "{e}");
        assert_eq!(e.code(), vouch_core::ErrorCode::TierUnavailable);
    }
}
