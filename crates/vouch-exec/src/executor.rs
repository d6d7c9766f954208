//! A bounded pool of worker threads that runs models off the async runtime, batching concurrent
//! requests for the same model along dim 0 (dynamic batching, as Triton does).
//!
//! Scheduling: one FIFO queue. A worker takes the oldest job whose model can take another run
//! (up to [`LoadedModel::max_concurrency`] batches of one model run at once, one per worker:
//! ONNX Runtime keeps a session per concurrent run), then gathers every queued job for that
//! model with compatible shapes, up to `max_batch` rows, waiting at most `max_wait` for more
//! to arrive. Only models whose rows are proven independent
//! ([`LoadedModel::row_independence`]) are batched: a batch must never change an answer. When
//! the queue holds `queue_capacity` live jobs, new ones are refused at once (the server answers
//! 503 + Retry-After) instead of growing without bound.
//!
//! Every job carries a [`RunControl`]: dropping its [`RunHandle`] (the caller timed out or went
//! away) stops it — dropped from the queue if it has not started, stopped mid-run if it has —
//! and a watchdog thread stops runs that pass their deadline. An engine panic fails its run
//! and leaves the worker alive.
//!
//! Microsecond models run inline: when a model's recent runs took under [`INLINE_MAX_RUN`],
//! the queue is empty and the model has a free slot, a small request runs on the submitting
//! thread instead of a worker. Handing it to a worker and back cost two thread wake-ups, more
//! CPU than the run itself (BENCHMARKS.md, "Node layer"); an empty queue means there was
//! nothing to batch it with. Larger or slower work, and anything arriving while work is
//! queued, takes the queue as before.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use vouch_core::{ModelDigest, TensorMap};

use crate::batch;
use crate::engine::{EngineKind, ExecError, LoadedModel, RunOutput};
use crate::run_control::{DEFAULT_RUN_MEMORY, RunControl, StopReason};

/// Runs whose moving average is below this may run on the submitting thread (an async
/// runtime's worker can afford it: well under the ~100 µs tokio suggests between yields).
pub const INLINE_MAX_RUN: Duration = Duration::from_micros(50);

/// Most input elements an inline run may take, so that a large input to a fast model (which
/// could run long) never runs on the submitting thread.
const INLINE_MAX_ELEMENTS: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    pub workers: usize,
    pub queue_capacity: usize,
    /// Most rows stacked into one engine call; 1 disables batching.
    pub max_batch: usize,
    /// Longest a job waits for others to fill its batch; zero batches only what is queued.
    pub max_wait: Duration,
    /// Longest a job may take from submission to its answer, queueing included; past it the
    /// job is dropped or its run stopped. `None`: no limit.
    pub run_timeout: Option<Duration>,
    /// Most bytes one run's tensors may take (see [`RunControl`]).
    pub run_memory: usize,
    /// Let microsecond models run on the submitting thread (see the module docs).
    pub inline_fast_runs: bool,
    /// A model whose runs average under this may run inline ([`INLINE_MAX_RUN`] by default).
    pub inline_max_run: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: 2,
            queue_capacity: 1024,
            max_batch: 32,
            max_wait: Duration::ZERO,
            run_timeout: Some(Duration::from_secs(60)),
            run_memory: DEFAULT_RUN_MEMORY,
            inline_fast_runs: true,
            inline_max_run: INLINE_MAX_RUN,
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
    control: Arc<RunControl>,
    reply: oneshot::Sender<Result<RunOutput, ExecError>>,
}

impl Job {
    /// Answers a job that will not run because it was stopped while queued.
    fn drop_stopped(self, reason: StopReason) {
        let _ = self.reply.send(Err(self.control.error(reason)));
    }
}

struct State {
    queue: VecDeque<Job>,
    /// Batches running per model.
    running: HashMap<ModelDigest, usize>,
    /// Runs in progress, watched for deadlines and abandonment: (run id, the run's control, the
    /// controls of the jobs in it).
    watched: Vec<(u64, Arc<RunControl>, Vec<Arc<RunControl>>)>,
    next_run: u64,
    shutdown: bool,
    /// Moving average of each model's run time in nanoseconds (1/8 weight to the newest run),
    /// which decides whether it may run inline.
    run_ns: HashMap<ModelDigest, u64>,
}

impl State {
    fn may_start(&self, job: &Job) -> bool {
        self.running.get(&job.key).copied().unwrap_or(0) < job.concurrency
    }

    /// Answers and removes queued jobs whose callers left or whose deadline passed.
    fn purge_stopped(&mut self) -> usize {
        let before = self.queue.len();
        let mut kept = VecDeque::with_capacity(before);
        for job in self.queue.drain(..) {
            match job.control.stopped() {
                Some(reason) => job.drop_stopped(reason),
                None => kept.push_back(job),
            }
        }
        self.queue = kept;
        before - self.queue.len()
    }

    /// Counts a run against its model's slots; taken before a batch is gathered, since
    /// gathering may wait and another worker must not take the slot meanwhile.
    fn claim_slot(&mut self, key: ModelDigest) {
        *self.running.entry(key).or_insert(0) += 1;
    }

    /// Starts watching a run for its deadline and its callers leaving.
    fn watch(&mut self, control: Arc<RunControl>, members: Vec<Arc<RunControl>>) -> u64 {
        let id = self.next_run;
        self.next_run += 1;
        self.watched.push((id, control, members));
        id
    }

    /// Ends what [`State::claim_slot`] and [`State::watch`] began and records how long the run took; true when jobs
    /// are queued (the freed slot may serve one of them).
    fn end_run(&mut self, key: ModelDigest, run_id: u64, took: Duration) -> bool {
        self.watched.retain(|(id, _, _)| *id != run_id);
        if let Some(n) = self.running.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(&key);
            }
        }
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.run_ns
            .entry(key)
            .and_modify(|avg| *avg = (*avg * 7 + ns) / 8)
            .or_insert(ns);
        !self.queue.is_empty()
    }

    /// Whether a job may skip the queue and run on the submitting thread.
    fn may_run_inline(
        &self,
        key: &ModelDigest,
        concurrency: usize,
        inputs: &TensorMap,
        max_run: Duration,
    ) -> bool {
        self.queue.is_empty()
            && self.running.get(key).copied().unwrap_or(0) < concurrency
            && self
                .run_ns
                .get(key)
                .is_some_and(|&ns| u128::from(ns) < max_run.as_nanos())
            && inputs.total_elements() <= INLINE_MAX_ELEMENTS
    }
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    /// The watchdog's own wake-up (shutdown only): on `cv` it would wake at every job.
    watchdog_cv: Condvar,
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
    /// Jobs dropped from the queue or stopped mid-run (caller gone or deadline passed).
    pub stopped: AtomicU64,
    /// Runs in which an engine panicked (the worker survived).
    pub panics: AtomicU64,
    /// Requests run on the submitting thread (see the module docs).
    pub inline: AtomicU64,
}

/// A submitted job's answer. Dropping it before the answer arrives stops the job: the caller
/// no longer wants it, so it leaves the queue or its run is stopped.
pub struct RunHandle {
    rx: oneshot::Receiver<Result<RunOutput, ExecError>>,
    control: Arc<RunControl>,
}

impl RunHandle {
    /// Waits for the answer, for callers off the async runtime.
    pub fn blocking_recv(mut self) -> Result<Result<RunOutput, ExecError>, ExecError> {
        let rx = std::mem::replace(&mut self.rx, oneshot::channel().1);
        rx.blocking_recv().map_err(|_| ExecError::Stopped)
    }
}

impl Future for RunHandle {
    type Output = Result<Result<RunOutput, ExecError>, ExecError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| ExecError::Stopped))
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        // A no-op once the job has answered: its run is over and its hook cleared.
        self.control.stop(StopReason::Abandoned);
    }
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
                watched: Vec::new(),
                next_run: 0,
                shutdown: false,
                run_ns: HashMap::new(),
            }),
            cv: Condvar::new(),
            watchdog_cv: Condvar::new(),
            config,
            stats: ExecutorStats::default(),
        });
        let mut workers: Vec<JoinHandle<()>> = (0..n)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("vouch-exec-{i}"))
                    .spawn(move || worker(s))
                    .expect("spawning an executor thread")
            })
            .collect();
        let s = shared.clone();
        workers.push(
            std::thread::Builder::new()
                .name("vouch-exec-watchdog".into())
                .spawn(move || watchdog(s))
                .expect("spawning the executor watchdog"),
        );
        Executor { shared, workers }
    }

    pub fn stats(&self) -> &ExecutorStats {
        &self.shared.stats
    }

    pub fn queue_len(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// Queues a run; the returned handle resolves when it is done, and stops the job when
    /// dropped early. Fails at once when the queue is full of live jobs.
    pub fn submit(
        &self,
        key: ModelDigest,
        model: Arc<dyn LoadedModel>,
        inputs: TensorMap,
    ) -> Result<RunHandle, ExecError> {
        self.submit_with(key, model, inputs, true)
    }

    /// [`Executor::submit`], with `may_batch = false` to run alone whatever the model allows
    /// (a model's configuration can turn batching off).
    pub fn submit_with(
        &self,
        key: ModelDigest,
        model: Arc<dyn LoadedModel>,
        inputs: TensorMap,
        may_batch: bool,
    ) -> Result<RunHandle, ExecError> {
        let config = &self.shared.config;
        let batchable = may_batch
            && config.max_batch > 1
            && model.signature().batchable()
            // Only graphs proven to keep rows apart: a batch must not change any answer.
            && model.row_independence().is_ok()
            // A deterministic engine keeps its promise: its runs are never mixed with others'.
            && !model.profile().deterministic;
        let rows = if batchable {
            batch::batch_rows(&inputs)
        } else {
            None
        };
        let compat = batch::compat_key(&inputs);
        let concurrency = model.max_concurrency().max(1);
        let control = Arc::new(RunControl::new(config.run_timeout, config.run_memory));
        let (tx, rx) = oneshot::channel();
        let job = Job {
            key,
            model,
            inputs,
            rows,
            compat,
            concurrency,
            enqueued: Instant::now(),
            control: control.clone(),
            reply: tx,
        };
        {
            let mut st = self.shared.state.lock();
            if st.shutdown {
                return Err(ExecError::Stopped);
            }
            if config.inline_fast_runs
                && st.may_run_inline(&key, concurrency, &job.inputs, config.inline_max_run)
            {
                st.claim_slot(key);
                let run_id = st.watch(control.clone(), vec![control.clone()]);
                drop(st);
                self.shared.stats.inline.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                execute(&self.shared, vec![job], &control);
                if self
                    .shared
                    .state
                    .lock()
                    .end_run(key, run_id, started.elapsed())
                {
                    self.shared.cv.notify_all();
                }
                return Ok(RunHandle { rx, control });
            }
            let cap = config.queue_capacity;
            if st.queue.len() >= cap {
                let purged = st.purge_stopped();
                self.shared
                    .stats
                    .stopped
                    .fetch_add(purged as u64, Ordering::Relaxed);
            }
            if st.queue.len() >= cap {
                self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(ExecError::Overloaded { capacity: cap });
            }
            st.queue.push_back(job);
        }
        // Without a batching wait every sleeper on `cv` is an idle worker, and any of them can
        // start any job, so one wake-up suffices (waking all cost a futex wake and a context
        // switch per idle worker per request). With `max_wait`, a worker gathering a batch
        // sleeps on `cv` too and must see the new job.
        if config.max_wait.is_zero() {
            self.shared.cv.notify_one();
        } else {
            self.shared.cv.notify_all();
        }
        Ok(RunHandle { rx, control })
    }

    /// Runs and waits, for callers off the async runtime (CLI, benches).
    pub fn run_blocking(
        &self,
        key: ModelDigest,
        model: Arc<dyn LoadedModel>,
        inputs: TensorMap,
    ) -> Result<RunOutput, ExecError> {
        self.submit(key, model, inputs)?.blocking_recv()?
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.cv.notify_all();
        self.shared.watchdog_cv.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Runs `f`, turning a panic inside an engine into an error: the worker thread and the loaded
/// model survive (tract panicked on shape overflows; ONNX Runtime calls are C++ that reports
/// errors as statuses, but the Rust around them can still panic).
pub(crate) fn catch_panic<T>(
    engine: EngineKind,
    f: impl FnOnce() -> Result<T, ExecError>,
) -> Result<T, ExecError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!("{engine} panicked while running a model: {reason}");
        Err(ExecError::Panicked { engine, reason })
    })
}

fn worker(shared: Arc<Shared>) {
    loop {
        let (batch, run_id, control) = {
            let mut st = shared.state.lock();
            loop {
                if st.shutdown && st.queue.is_empty() {
                    return;
                }
                if let Some(i) = st.queue.iter().position(|j| st.may_start(j)) {
                    let first = st.queue.remove(i).expect("index from position");
                    if let Some(reason) = first.control.stopped() {
                        shared.stats.stopped.fetch_add(1, Ordering::Relaxed);
                        first.drop_stopped(reason);
                        continue;
                    }
                    st.claim_slot(first.key);
                    let batch = gather(&shared, &mut st, first);
                    let control = match batch.as_slice() {
                        [one] => one.control.clone(),
                        many => Arc::new(RunControl::until(
                            many.iter().filter_map(|j| j.control.deadline()).max(),
                            shared.config.run_timeout,
                            shared.config.run_memory,
                        )),
                    };
                    let members = batch.iter().map(|j| j.control.clone()).collect();
                    let id = st.watch(control.clone(), members);
                    break (batch, id, control);
                }
                shared.cv.wait(&mut st);
            }
        };
        let key = batch[0].key;
        let started = Instant::now();
        execute(&shared, batch, &control);
        let waiting = shared.state.lock().end_run(key, run_id, started.elapsed());
        // A finished run frees a slot of its model: only queued jobs can use it. With an empty
        // queue, waking the other workers was a futex wake and a context switch per request.
        if waiting {
            shared.cv.notify_all();
        }
    }
}

/// Stops runs past their deadline, and batches all of whose callers have gone. A single job's
/// own handle stops it at once when dropped; this covers what no caller triggers.
fn watchdog(shared: Arc<Shared>) {
    const TICK: Duration = Duration::from_millis(50);
    loop {
        let mut st = shared.state.lock();
        if st.shutdown {
            return;
        }
        for (_, control, members) in &st.watched {
            if control.stopped().is_none()
                && members.len() > 1
                && members.iter().all(|m| m.stopped().is_some())
            {
                control.stop(StopReason::Abandoned);
            }
        }
        shared.watchdog_cv.wait_for(&mut st, TICK);
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
                && j.rows.is_some_and(|r| rows + r <= max)
                && !j.control.stop_raised();
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

/// One run of `model` on `inputs` under `control`, panics caught.
fn run_one(
    model: &Arc<dyn LoadedModel>,
    inputs: &TensorMap,
    control: &RunControl,
) -> Result<TensorMap, ExecError> {
    catch_panic(model.engine(), || model.run_controlled(inputs, control))
}

fn execute(shared: &Shared, batch: Vec<Job>, control: &Arc<RunControl>) {
    let stats = &shared.stats;
    stats.runs.fetch_add(1, Ordering::Relaxed);
    stats
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .max_batch_seen
        .fetch_max(batch.len() as u64, Ordering::Relaxed);
    let model = batch[0].model.clone();
    let count = |res: &Result<TensorMap, ExecError>| match res {
        Err(ExecError::Panicked { .. }) => {
            stats.panics.fetch_add(1, Ordering::Relaxed);
        }
        Err(ExecError::Abandoned | ExecError::TimedOut { .. }) => {
            stats.stopped.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    };
    if batch.len() == 1 {
        let job = batch.into_iter().next().expect("one job");
        let res = run_one(&model, &job.inputs, control);
        count(&res);
        let _ = job.reply.send(res.map(|outputs| RunOutput {
            outputs,
            profile: model.profile(),
        }));
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
        .and_then(|inputs| run_one(&model, &inputs, control))
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
        Err(e @ (ExecError::Abandoned | ExecError::TimedOut { .. })) => {
            stats
                .stopped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        Err(_) => {
            // One bad batch must not fail its neighbours: run each request alone instead.
            for job in batch {
                let res = run_one(&model, &job.inputs, &job.control);
                count(&res);
                let _ = job.reply.send(res.map(|outputs| RunOutput {
                    outputs,
                    profile: model.profile(),
                }));
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
        batching: Result<(), String>,
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
                batching: Ok(()),
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
        fn row_independence(&self) -> &Result<(), String> {
            &self.batching
        }
        fn run_controlled(
            &self,
            inputs: &TensorMap,
            _control: &RunControl,
        ) -> Result<TensorMap, ExecError> {
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
            ..Default::default()
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

    /// Echoes its input and records the name of the thread each run ran on.
    struct Echo {
        probe: Probe,
        threads: Mutex<Vec<String>>,
    }

    impl LoadedModel for Echo {
        fn engine(&self) -> crate::EngineKind {
            crate::EngineKind::OnnxRuntime
        }
        fn signature(&self) -> &ModelSignature {
            &self.probe.signature
        }
        fn row_independence(&self) -> &Result<(), String> {
            &self.probe.batching
        }
        fn run_controlled(
            &self,
            inputs: &TensorMap,
            _: &RunControl,
        ) -> Result<TensorMap, ExecError> {
            let name = std::thread::current().name().unwrap_or("").to_string();
            self.threads.lock().push(name);
            Ok(inputs.clone())
        }
        fn profile(&self) -> ExecProfile {
            self.probe.profile()
        }
        fn max_concurrency(&self) -> usize {
            1
        }
        fn memory_bytes(&self) -> usize {
            0
        }
    }

    fn ran_on(inline_fast_runs: bool, inputs: &[TensorMap]) -> (Vec<bool>, u64) {
        let exec = Executor::new(ExecutorConfig {
            inline_fast_runs,
            // The mechanism under test, not the machine's speed: any measured run counts as
            // fast (a loaded test machine can take more than 50 µs to echo a tensor).
            inline_max_run: Duration::from_secs(60),
            ..Default::default()
        });
        let echo = Arc::new(Echo {
            probe: Probe::new(1),
            threads: Mutex::new(Vec::new()),
        });
        let model: Arc<dyn LoadedModel> = echo.clone();
        let key = ModelDigest::of_model_bytes(b"echo");
        for x in inputs {
            let out = exec.run_blocking(key, model.clone(), x.clone()).unwrap();
            assert_eq!(&out.outputs, x);
            // The answer is sent before the worker records the run and frees its slot: wait
            // for that, so the next request sees the run's time and a free slot.
            while !exec.shared.state.lock().running.is_empty() {
                std::thread::yield_now();
            }
        }
        let on_worker = echo
            .threads
            .lock()
            .iter()
            .map(|t| t.starts_with("vouch-exec-"))
            .collect();
        (on_worker, exec.stats().inline.load(Ordering::Relaxed))
    }

    #[test]
    fn a_fast_model_runs_inline_once_its_speed_is_known() {
        let (on_worker, inline) = ran_on(true, &[input(1.0), input(2.0), input(3.0)]);
        // The first run has no estimate yet and goes to a worker; the next ones run here.
        assert_eq!(on_worker, [true, false, false]);
        assert_eq!(inline, 2);
    }

    #[test]
    fn a_large_input_or_inline_off_takes_the_queue() {
        let mut big = TensorMap::new();
        let n = INLINE_MAX_ELEMENTS + 1;
        big.insert(
            "x",
            Tensor::new(vec![n as u64, 1], TensorData::Float32(vec![0.5; n])).unwrap(),
        );
        let (on_worker, inline) = ran_on(true, &[input(1.0), big.clone(), input(2.0)]);
        assert_eq!(on_worker, [true, true, false]);
        assert_eq!(inline, 1);
        let (on_worker, inline) = ran_on(false, &[input(1.0), input(2.0)]);
        assert_eq!(on_worker, [true, true]);
        assert_eq!(inline, 0);
    }
}
