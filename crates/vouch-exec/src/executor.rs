//! A bounded pool of worker threads that runs models off the async runtime, batching concurrent
//! requests for the same model along dim 0 (dynamic batching, as Triton does).
//!
//! Scheduling: one FIFO queue. A worker takes the oldest job whose model is not already running
//! (a model runs one batch at a time, using its engine's threads), then gathers every queued
//! job for that model with compatible shapes, up to `max_batch` rows, waiting at most
//! `max_wait` for more to arrive. When the queue holds `queue_capacity` jobs, new ones are
//! refused at once (the server answers 503 + Retry-After) instead of growing without bound.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use vouch_core::{ModelDigest, TensorMap};

use crate::batch;
use crate::engine::{ExecError, LoadedModel, RunOutput};

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    pub workers: usize,
    pub queue_capacity: usize,
    /// Most rows stacked into one engine call; 1 disables batching.
    pub max_batch: usize,
    /// Longest a job waits for others to fill its batch; zero batches only what is queued.
    pub max_wait: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: 2,
            queue_capacity: 1024,
            max_batch: 32,
            max_wait: Duration::ZERO,
        }
    }
}

struct Job {
    key: ModelDigest,
    model: Arc<dyn LoadedModel>,
    inputs: TensorMap,
    /// Rows along dim 0 when this job may share a batch; `None` runs alone.
    rows: Option<u64>,
    compat: u64,
    enqueued: Instant,
    reply: oneshot::Sender<Result<RunOutput, ExecError>>,
}

struct State {
    queue: VecDeque<Job>,
    running: HashSet<ModelDigest>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    config: ExecutorConfig,
    stats: ExecutorStats,
}

/// Counters for metrics and benchmarks.
#[derive(Default)]
pub struct ExecutorStats {
    pub runs: AtomicU64,
    pub requests: AtomicU64,
    pub rejected: AtomicU64,
    pub max_batch_seen: AtomicU64,
}

pub struct Executor {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Executor {
    pub fn new(config: ExecutorConfig) -> Self {
        let n = config.workers.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: HashSet::new(),
                shutdown: false,
            }),
            cv: Condvar::new(),
            config,
            stats: ExecutorStats::default(),
        });
        let workers = (0..n)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("vouch-exec-{i}"))
                    .spawn(move || worker(s))
                    .expect("spawning an executor thread")
            })
            .collect();
        Executor { shared, workers }
    }

    pub fn stats(&self) -> &ExecutorStats {
        &self.shared.stats
    }

    pub fn queue_len(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// Queues a run; the returned receiver resolves when it is done. Fails at once when full.
    pub fn submit(
        &self,
        key: ModelDigest,
        model: Arc<dyn LoadedModel>,
        inputs: TensorMap,
    ) -> Result<oneshot::Receiver<Result<RunOutput, ExecError>>, ExecError> {
        let batchable = self.shared.config.max_batch > 1
            && model.signature().batchable()
            // A deterministic engine keeps its promise: its runs are never mixed with others'.
            && !model.profile().deterministic;
        let rows = if batchable {
            batch::batch_rows(&inputs)
        } else {
            None
        };
        let compat = batch::compat_key(&inputs);
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.state.lock();
            if st.shutdown {
                return Err(ExecError::Stopped);
            }
            let cap = self.shared.config.queue_capacity;
            if st.queue.len() >= cap {
                self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(ExecError::Overloaded { capacity: cap });
            }
            st.queue.push_back(Job {
                key,
                model,
                inputs,
                rows,
                compat,
                enqueued: Instant::now(),
                reply: tx,
            });
        }
        self.shared.cv.notify_all();
        Ok(rx)
    }

    /// Runs and waits, for callers off the async runtime (CLI, benches).
    pub fn run_blocking(
        &self,
        key: ModelDigest,
        model: Arc<dyn LoadedModel>,
        inputs: TensorMap,
    ) -> Result<RunOutput, ExecError> {
        let rx = self.submit(key, model, inputs)?;
        rx.blocking_recv().map_err(|_| ExecError::Stopped)?
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.cv.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(shared: Arc<Shared>) {
    loop {
        let batch = {
            let mut st = shared.state.lock();
            loop {
                if st.shutdown && st.queue.is_empty() {
                    return;
                }
                if let Some(i) = st.queue.iter().position(|j| !st.running.contains(&j.key)) {
                    let first = st.queue.remove(i).expect("index from position");
                    st.running.insert(first.key);
                    break gather(&shared, &mut st, first);
                }
                shared.cv.wait(&mut st);
            }
        };
        let key = batch[0].key;
        execute(&shared, batch);
        shared.state.lock().running.remove(&key);
        shared.cv.notify_all();
    }
}

/// Collects jobs that can share `first`'s batch, waiting up to `max_wait` for stragglers.
fn gather(shared: &Shared, st: &mut parking_lot::MutexGuard<'_, State>, first: Job) -> Vec<Job> {
    let Some(mut rows) = first.rows else {
        return vec![first];
    };
    let max = shared.config.max_batch as u64;
    let deadline = first.enqueued + shared.config.max_wait;
    let mut batch = vec![first];
    loop {
        let mut i = 0;
        while i < st.queue.len() && rows < max {
            let j = &st.queue[i];
            let fits = j.key == batch[0].key
                && j.compat == batch[0].compat
                && j.rows.is_some_and(|r| rows + r <= max);
            if fits {
                let job = st.queue.remove(i).expect("index in range");
                rows += job.rows.unwrap_or(0);
                batch.push(job);
            } else {
                i += 1;
            }
        }
        if rows >= max || st.shutdown || Instant::now() >= deadline {
            return batch;
        }
        shared.cv.wait_until(st, deadline);
    }
}

fn execute(shared: &Shared, batch: Vec<Job>) {
    let stats = &shared.stats;
    stats.runs.fetch_add(1, Ordering::Relaxed);
    stats
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .max_batch_seen
        .fetch_max(batch.len() as u64, Ordering::Relaxed);
    let model = batch[0].model.clone();
    if batch.len() == 1 {
        let job = batch.into_iter().next().expect("one job");
        let res = model.run(&job.inputs).map(|outputs| RunOutput {
            outputs,
            profile: model.profile(),
        });
        let _ = job.reply.send(res);
        return;
    }
    let rows: Vec<u64> = batch.iter().map(|j| j.rows.unwrap_or(0)).collect();
    let parts: Vec<&TensorMap> = batch.iter().map(|j| &j.inputs).collect();
    let joined = batch::concat(&parts);
    let result = joined
        .map_err(|reason| ExecError::Run {
            engine: model.engine(),
            reason,
        })
        .and_then(|inputs| model.run(&inputs))
        .and_then(|out| {
            batch::split(&out, &rows).map_err(|reason| ExecError::Run {
                engine: model.engine(),
                reason,
            })
        });
    match result {
        Ok(outs) => {
            let mut profile = model.profile();
            profile.batch = batch.len() as u32;
            profile.deterministic = false;
            for (job, outputs) in batch.into_iter().zip(outs) {
                let _ = job.reply.send(Ok(RunOutput {
                    outputs,
                    profile: profile.clone(),
                }));
            }
        }
        Err(_) => {
            // One bad batch must not fail its neighbours: run each request alone instead.
            for job in batch {
                let res = model.run(&job.inputs).map(|outputs| RunOutput {
                    outputs,
                    profile: model.profile(),
                });
                let _ = job.reply.send(res);
            }
        }
    }
}
