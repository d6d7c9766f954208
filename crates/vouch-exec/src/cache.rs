//! Compiled models kept in memory, least recently used evicted first, bounded by an estimate of
//! their resident size — so thousands of registered models cost only the hot ones' memory.

use std::future::Future;
use std::sync::Arc;

use moka::future::Cache;
use moka::policy::EvictionPolicy;
use vouch_core::ModelDigest;

use crate::engine::{ExecError, LoadedModel};

#[derive(Clone)]
pub struct ModelCache {
    cache: Cache<ModelDigest, Arc<dyn LoadedModel>>,
}

impl ModelCache {
    /// `budget_bytes`: total estimated memory of loaded models (weights are counted in KiB).
    pub fn new(budget_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity((budget_bytes / 1024).max(1))
            .weigher(|_k, m: &Arc<dyn LoadedModel>| {
                (m.memory_bytes() / 1024).clamp(1, u32::MAX as usize) as u32
            })
            .eviction_policy(EvictionPolicy::lru())
            .build();
        ModelCache { cache }
    }

    /// The loaded model, loading it with `load` on a miss. Concurrent callers for the same model
    /// wait for the single load in flight instead of compiling it again.
    pub async fn get_or_load<F>(
        &self,
        digest: ModelDigest,
        load: F,
    ) -> Result<Arc<dyn LoadedModel>, Arc<ExecError>>
    where
        F: Future<Output = Result<Arc<dyn LoadedModel>, ExecError>>,
    {
        self.cache.try_get_with(digest, load).await
    }

    /// Puts an already-loaded model (from registration) in the cache.
    pub async fn insert(&self, digest: ModelDigest, model: Arc<dyn LoadedModel>) {
        self.cache.insert(digest, model).await;
    }

    pub fn contains(&self, digest: &ModelDigest) -> bool {
        self.cache.contains_key(digest)
    }

    /// (models loaded, estimated bytes) after pending evictions are applied.
    pub async fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks().await;
        (self.cache.entry_count(), self.cache.weighted_size() * 1024)
    }
}
