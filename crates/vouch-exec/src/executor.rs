//! A bounded pool of worker threads that runs models off the async runtime, batching concurrent
//! requests for the same model along dim 0 (dynamic batching, as Triton does).
//!
//! Scheduling: one FIFO queue. A worker takes the oldest job whose model can take another run
//! (up to [`LoadedModel::max_concurrency`] batches of one model run at once, one per worker:
//! ONNX Runtime keeps a session per concurrent run), then gathers every queued job for that
//! model with compatible shapes, up to `max_batch` rows, waiting at most `max_wait` for more
//! to arrive. When the queue holds `queue_capacity` jobs, new ones are
//! refused at once (the server answers 503 + Retry-After) instead of growing without bound.

use std::collections::{HashMap, VecDeque};
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
    /// The model's [`LoadedModel::max_concurrency`], read once at submission.
    concurrency: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<RunOutput, ExecError>>,
}

struct State {
    queue: VecDeque<Job>,
    /// Batches running per model.
    running: HashMap<ModelDigest, usize>,
    shutdown: bool,
}

impl State {
    fn may_start(&self, job: &Job) -> bool {
        self.running.get(&job.key).copied().unwrap_or(0) < job.concurrency
    }
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
                running: HashMap::new(),
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
        let concurrency = model.max_concurrency().max(1);
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
                concurrency,
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
                if let Some(i) = st.queue.iter().position(|j| st.may_start(j)) {
                    let first = st.queue.remove(i).expect("index from position");
                    *st.running.entry(first.key).or_insert(0) += 1;
                    break gather(&shared, &mut st, first);
                }
                shared.cv.wait(&mut st);
            }
        };
        let key = batch[0].key;
        execute(&shared, batch);
        {
            let mut st = shared.state.lock();
            if let Some(n) = st.running.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    st.running.remove(&key);
                }
            }
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error
mod tests {
    use super::*;
    use vouch_core::{DType, Dim, ExecProfile, ModelSignature, Tensor, TensorData, TensorSpec};

    /// Echoes its input and records how many of its runs overlapped. Each run waits (bounded)
    /// for a second one to start, so overlap is seen whenever the executor allows it.
    struct Probe {
        signature: ModelSignature,
        concurrency: usize,
        active: Mutex<usize>,
        most: Mutex<usize>,
        cv: Condvar,
    }

    impl Probe {
        fn new(concurrency: usize) -> Self {
            let spec = |name: &str| TensorSpec {
                name: name.into(),
                dtype: DType::Float32,
                shape: vec![Dim::Free(None), Dim::Fixed(1)],
            };
            Probe {
                signature: ModelSignature {
                    inputs: vec![spec("x")],
                    outputs: vec![spec("x")],
                },
                concurrency,
                active: Mutex::new(0),
                most: Mutex::new(0),
                cv: Condvar::new(),
            }
        }
    }

    impl LoadedModel for Probe {
        fn engine(&self) -> crate::EngineKind {
            crate::EngineKind::OnnxRuntime
        }
        fn signature(&self) -> &ModelSignature {
            &self.signature
        }
        fn run(&self, inputs: &TensorMap) -> Result<TensorMap, ExecError> {
            let mut active = self.active.lock();
            *active += 1;
            {
                let mut most = self.most.lock();
                *most = (*most).max(*active);
            }
            self.cv.notify_all();
            if *active < 2 {
                // Not a timing assertion: only bounds how long a run waits for company.
                self.cv.wait_for(&mut active, Duration::from_millis(200));
            }
            *active -= 1;
            Ok(inputs.clone())
        }
        fn profile(&self) -> ExecProfile {
            ExecProfile {
                threads: 1,
                deterministic: false,
                batch: 1,
            }
        }
        fn max_concurrency(&self) -> usize {
            self.concurrency
        }
        fn memory_bytes(&self) -> usize {
            0
        }
    }

    fn input(v: f32) -> TensorMap {
        let mut m = TensorMap::new();
        m.insert(
            "x",
            Tensor::new(vec![1, 1], TensorData::Float32(vec![v])).unwrap(),
        );
        m
    }

    /// Submits one request, waits until a worker holds it, then a second: the second can only
    /// run while the first is still running if the model takes two runs at once.
    fn most_overlap(concurrency: usize) -> usize {
        let exec = Executor::new(ExecutorConfig {
            workers: 2,
            queue_capacity: 16,
            max_batch: 32,
            max_wait: Duration::ZERO,
        });
        let probe = Arc::new(Probe::new(concurrency));
        let model: Arc<dyn LoadedModel> = probe.clone();
        let key = ModelDigest::of_model_bytes(b"probe");
        let first = exec.submit(key, model.clone(), input(1.0)).unwrap();
        {
            let mut active = probe.active.lock();
            while *active == 0 {
                probe.cv.wait(&mut active);
            }
        }
        let second = exec.submit(key, model, input(2.0)).unwrap();
        for (rx, v) in [(first, 1.0), (second, 2.0)] {
            let out = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(out.outputs, input(v));
        }
        *probe.most.lock()
    }

    #[test]
    fn a_model_that_takes_two_runs_at_once_gets_both_workers() {
        assert_eq!(most_overlap(2), 2);
    }

    #[test]
    fn a_model_that_takes_one_run_at_a_time_never_overlaps() {
        assert_eq!(most_overlap(1), 1);
    }
}
