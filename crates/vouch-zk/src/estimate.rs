//! Admission: predicts a proof's time and peak memory from the circuit size, and decides whether
//! this node can take the job now, later, or never.
//!
//! The coefficients are fitted to measurements on the 2-core reference machine (see
//! `docs/zk.md`, "Estimator"); `NodeCapacity::speed` scales them for faster nodes.

use crate::circuit::Stats;

/// Predicted cost of one proof.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    pub prove_ms: u64,
    pub peak_bytes: u64,
    pub verify_ms: u64,
    /// Size of the verifying key (bytes), which a verifier recomputes or downloads.
    pub vk_bytes: u64,
}

/// Padded sizes as Spartan2 sees them.
fn padded(stats: &Stats) -> (f64, f64) {
    let cons = stats.constraints.next_power_of_two() as f64;
    let w = 2048usize;
    let vars = (stats.precommitted.div_ceil(w) * w + stats.rest.div_ceil(w).max(1) * w)
        .next_power_of_two() as f64;
    (cons, vars)
}

pub fn estimate(stats: &Stats) -> Estimate {
    let (cons, vars) = padded(stats);
    let nnz = stats.nnz as f64;
    // Fitted on mlp_small, mlp, cnn and dense-1M (release build, 2 cores).
    let prove_ms =
        8.0 + 0.55e-3 * cons + 1.1e-3 * vars + 0.05e-3 * nnz + 6.0e-3 * stats.rest as f64;
    let peak = 40e6 + 900.0 * cons + 700.0 * vars + 120.0 * nnz;
    let verify_ms = 4.0 + 0.03e-3 * cons + 0.03e-3 * vars + 0.04e-3 * nnz;
    let vk_bytes = 70_000.0 + 48.0 * nnz + 24.0 * (cons + vars);
    Estimate {
        prove_ms: prove_ms as u64,
        peak_bytes: peak as u64,
        verify_ms: verify_ms as u64,
        vk_bytes: vk_bytes as u64,
    }
}

/// What this node can spend on proofs.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeCapacity {
    /// Memory available to one proof.
    pub max_peak_bytes: u64,
    /// Longest proof this node accepts.
    pub max_prove_ms: u64,
    /// Relative speed vs the reference machine (2.0 = twice as fast).
    pub speed: f64,
}

impl Default for NodeCapacity {
    fn default() -> Self {
        NodeCapacity {
            max_peak_bytes: 8 << 30,
            max_prove_ms: 10 * 60 * 1000,
            speed: 1.0,
        }
    }
}

/// The admission decision for one zk job.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Admission {
    /// Start now (a worker is free).
    Accept { prove_ms: u64 },
    /// Queue behind `queued_ms` of work already waiting; expected start and finish.
    Queue { wait_ms: u64, prove_ms: u64 },
    /// This node cannot prove it: the reason names the limit.
    Refuse { reason: String },
}

/// Decides admission given the estimate, the node's limits and the work already queued
/// (`queued_ms` of estimated proving ahead of this job, spread over `free_workers` idle
/// workers of `workers`).
pub fn admit(
    est: &Estimate,
    cap: &NodeCapacity,
    queued_ms: u64,
    workers: usize,
    free_workers: usize,
) -> Admission {
    let prove_ms = (est.prove_ms as f64 / cap.speed.max(0.01)).ceil() as u64;
    if est.peak_bytes > cap.max_peak_bytes {
        return Admission::Refuse {
            reason: format!(
                "needs about {} MiB of memory to prove; this node allows {} MiB per proof",
                est.peak_bytes >> 20,
                cap.max_peak_bytes >> 20
            ),
        };
    }
    if prove_ms > cap.max_prove_ms {
        return Admission::Refuse {
            reason: format!(
                "would take about {} s to prove; this node's limit is {} s",
                prove_ms / 1000,
                cap.max_prove_ms / 1000
            ),
        };
    }
    if free_workers > 0 && queued_ms == 0 {
        Admission::Accept { prove_ms }
    } else {
        Admission::Queue {
            wait_ms: queued_ms / workers.max(1) as u64,
            prove_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(cons: usize, nnz: usize, rest: usize) -> Stats {
        Stats {
            constraints: cons,
            precommitted: cons,
            rest,
            nnz,
            ..Default::default()
        }
    }

    #[test]
    fn bigger_circuits_cost_more() {
        let small = estimate(&stats(3_000, 12_000, 0));
        let cnn = estimate(&stats(172_000, 1_870_000, 106_000));
        assert!(cnn.prove_ms > 10 * small.prove_ms, "{small:?} {cnn:?}");
        assert!(cnn.peak_bytes > small.peak_bytes && cnn.vk_bytes > small.vk_bytes);
    }

    #[test]
    fn admission_refuses_queues_or_accepts() {
        let est = estimate(&stats(172_000, 1_870_000, 106_000));
        let tight = NodeCapacity {
            max_peak_bytes: 64 << 20,
            ..Default::default()
        };
        match admit(&est, &tight, 0, 2, 2) {
            Admission::Refuse { reason } => assert!(reason.contains("MiB"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let slow = NodeCapacity {
            max_prove_ms: 1,
            ..Default::default()
        };
        assert!(matches!(
            admit(&est, &slow, 0, 2, 2),
            Admission::Refuse { .. }
        ));
        let cap = NodeCapacity::default();
        assert!(matches!(
            admit(&est, &cap, 0, 2, 1),
            Admission::Accept { .. }
        ));
        assert_eq!(
            admit(&est, &cap, 10_000, 2, 0),
            Admission::Queue {
                wait_ms: 5_000,
                prove_ms: est.prove_ms
            }
        );
        // A node twice as fast halves the stated proving time.
        let fast = NodeCapacity {
            speed: 2.0,
            ..Default::default()
        };
        match admit(&est, &fast, 0, 1, 1) {
            Admission::Accept { prove_ms } => assert!(prove_ms <= est.prove_ms.div_ceil(2)),
            other => panic!("{other:?}"),
        }
    }
}
