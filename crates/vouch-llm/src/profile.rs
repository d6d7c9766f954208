//! Execution profiles: how many threads the kernels may use, and so whether a run can be
//! replayed bit for bit.
//!
//! candle's CPU kernels parallelise with rayon: the quantized matmul splits rows over rayon's
//! *current* pool, and the f32 matmul (`gemm`) asks for `candle_core::utils::get_num_threads()`
//! tasks (`RAYON_NUM_THREADS`, else the CPU count) and runs them on that pool too. Inside a
//! one-thread pool's `install`, every one of those tasks runs on the one worker thread, in
//! order: that is the deterministic profile. The fast profile uses rayon's global pool.

use serde::{Deserialize, Serialize};

/// Which profile a run used; the node records it with the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Single-threaded kernels: the same seed, prompt and engine version give the same tokens
    /// bit for bit, greedy or sampled.
    Deterministic,
    /// rayon's global pool (all cores): faster; results may vary in the last bits between runs
    /// on different core counts.
    Fast,
}

impl Profile {
    /// Kernel threads: one for `deterministic`, rayon's global pool size for `fast`.
    pub fn threads(self) -> usize {
        match self {
            Profile::Deterministic => 1,
            Profile::Fast => rayon::current_num_threads(),
        }
    }
}

/// Runs model work under a profile.
pub struct ProfileRunner {
    profile: Profile,
    /// The deterministic profile's own one-thread pool (one per session, so concurrent
    /// deterministic sessions do not queue behind each other).
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for ProfileRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileRunner")
            .field("profile", &self.profile)
            .field("threads", &self.threads())
            .finish()
    }
}

impl ProfileRunner {
    pub fn new(profile: Profile) -> Result<Self, crate::error::LlmError> {
        let pool = match profile {
            Profile::Deterministic => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(|_| "vouch-llm-deterministic".into())
                    .build()
                    .map_err(|e| crate::error::LlmError::Engine(format!("thread pool: {e}")))?,
            ),
            Profile::Fast => None,
        };
        Ok(Self { profile, pool })
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Threads the kernels run on under this profile.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// Runs `work` under the profile.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }
}
