//! Batched decoding: the sequences running on one loaded model advance together.
//!
//! A [`Batcher`] is one scheduler thread per model and profile with a bounded queue. A
//! sequence is submitted with its prompt, token budget and sampling parameters; the thread
//! prefills each newly queued sequence as a step of its own, then runs one decode step for
//! every active sequence at once — one pass over the weights for all of them (the matrix
//! products take every sequence's row), attention per sequence on its own KV cache — samples
//! each sequence's next token with that sequence's own seeded sampler, and sends it to the
//! sequence's channel.
//!
//! Replay: the kernels compute each row by the same float operations whatever the batch
//! (`kernels`), and a sequence's sampler sees only its own logits, so a request regenerates
//! the same tokens alone or among others (tested in `tests/llm_batch.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::error::LlmError;
use crate::sampler::{Sampler, SamplingParams};
use crate::transformer::{KvCache, Step, Transformer};

/// Sequences waiting for their prefill, beyond which [`Batcher::submit`] answers
/// [`LlmError::Busy`] (the node admits fewer than this).
pub const QUEUE_CAPACITY: usize = 64;

/// What a sequence's channel carries: its tokens in order; the channel closes when the
/// sequence ends (budget, end token, stop).
pub(crate) type TokenResult = Result<u32, LlmError>;

struct Job {
    prompt: Vec<u32>,
    budget: usize,
    sampling: SamplingParams,
    stop: Arc<AtomicBool>,
    tokens: Sender<TokenResult>,
    batch: Arc<AtomicUsize>,
}

struct Active {
    cache: KvCache,
    sampler: Sampler,
    last: u32,
    produced: usize,
    budget: usize,
    stop: Arc<AtomicBool>,
    tokens: Sender<TokenResult>,
    /// The most sequences any step of this one carried (itself included).
    batch: Arc<AtomicUsize>,
}

/// The scheduler of one model (see the module doc). Dropping it ends the thread once its
/// running sequences are done.
pub struct Batcher {
    queue: Mutex<Option<SyncSender<Job>>>,
    threads: usize,
    largest_batch: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// A submitted sequence: its tokens arrive on `tokens`. Dropping it stops the sequence.
pub struct Submitted {
    pub(crate) tokens: Receiver<TokenResult>,
    stop: Arc<AtomicBool>,
    batch: Arc<AtomicUsize>,
}

impl Submitted {
    /// The most sequences one step of this sequence carried so far (1: it ran alone).
    pub fn largest_batch(&self) -> usize {
        self.batch.load(Ordering::Relaxed).max(1)
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Batcher {
    /// Starts the scheduler thread; its kernels run on a pool of `threads` threads.
    pub(crate) fn start(
        weights: Arc<Transformer>,
        end_of_generation: Vec<u32>,
        threads: usize,
    ) -> Result<Self, LlmError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("vouch-llm-kernel-{i}"))
            .build()
            .map_err(|e| LlmError::Engine(format!("thread pool: {e}")))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_CAPACITY);
        let largest_batch = Arc::new(AtomicUsize::new(0));
        let largest = Arc::clone(&largest_batch);
        std::thread::Builder::new()
            .name("vouch-llm-batcher".into())
            .spawn(move || run(&pool, &weights, &end_of_generation, &rx, &largest))
            .map_err(|e| LlmError::Engine(format!("batcher thread: {e}")))?;
        Ok(Self {
            queue: Mutex::new(Some(tx)),
            threads: threads.max(1),
            largest_batch,
        })
    }

    /// Threads the kernels run on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The most sequences one decode step has carried so far.
    pub fn largest_batch(&self) -> usize {
        self.largest_batch.load(Ordering::Relaxed)
    }

    /// Queues a sequence: `prompt` (checked by the caller against the context and the
    /// vocabulary), at most `budget` new tokens.
    pub(crate) fn submit(
        &self,
        prompt: Vec<u32>,
        budget: usize,
        sampling: SamplingParams,
    ) -> Result<Submitted, LlmError> {
        // Unbounded (at most `budget` tokens): the scheduler never waits on a slow reader.
        let (tokens, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let batch = Arc::new(AtomicUsize::new(0));
        let job = Job {
            prompt,
            budget,
            sampling,
            stop: Arc::clone(&stop),
            tokens,
            batch: Arc::clone(&batch),
        };
        let queue = self
            .queue
            .lock()
            .map_err(|_| LlmError::Engine("batcher queue poisoned".into()))?;
        match queue.as_ref().map(|q| q.try_send(job)) {
            Some(Ok(())) => Ok(Submitted {
                tokens: rx,
                stop,
                batch,
            }),
            Some(Err(TrySendError::Full(_))) => Err(LlmError::Busy),
            Some(Err(TrySendError::Disconnected(_))) | None => {
                Err(LlmError::Engine("the batcher thread has stopped".into()))
            }
        }
    }
}

/// Sends `token`; false when the sequence should end (its reader is gone or asked to stop).
fn deliver(seq: &Active, token: TokenResult) -> bool {
    !seq.stop.load(Ordering::Relaxed) && seq.tokens.send(token).is_ok()
}

fn run(
    pool: &rayon::ThreadPool,
    weights: &Transformer,
    end_of_generation: &[u32],
    queue: &Receiver<Job>,
    largest: &AtomicUsize,
) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        // Wait for work when idle; otherwise take whatever has queued meanwhile.
        let mut new = Vec::new();
        if active.is_empty() {
            match queue.recv() {
                Ok(job) => new.push(job),
                Err(_) => return,
            }
        }
        while let Ok(job) = queue.try_recv() {
            new.push(job);
        }
        for job in new {
            if job.stop.load(Ordering::Relaxed) {
                continue;
            }
            let sampler = match Sampler::new(job.sampling) {
                Ok(s) => s,
                Err(e) => {
                    let _ = job.tokens.send(Err(e));
                    continue;
                }
            };
            let mut seq = Active {
                cache: KvCache::default(),
                sampler,
                last: 0,
                produced: 0,
                budget: job.budget,
                stop: job.stop,
                tokens: job.tokens,
                batch: job.batch,
            };
            seq.batch.fetch_max(1, Ordering::Relaxed);
            // Prefill: a step of its own.
            let logits = pool.install(|| {
                weights.forward(&mut [Step {
                    cache: &mut seq.cache,
                    tokens: &job.prompt,
                }])
            });
            if let Some(logits) = logits.first()
                && advance(&mut seq, logits, end_of_generation)
            {
                active.push(seq);
            }
        }
        active.retain(|s| !s.stop.load(Ordering::Relaxed));
        if active.is_empty() {
            continue;
        }
        largest.fetch_max(active.len(), Ordering::Relaxed);
        for seq in &active {
            seq.batch.fetch_max(active.len(), Ordering::Relaxed);
        }
        let lasts: Vec<[u32; 1]> = active.iter().map(|s| [s.last]).collect();
        let logits = {
            let mut steps: Vec<Step<'_>> = active
                .iter_mut()
                .zip(&lasts)
                .map(|(s, t)| Step {
                    cache: &mut s.cache,
                    tokens: t,
                })
                .collect();
            pool.install(|| weights.forward(&mut steps))
        };
        // Each sequence samples from its own logits with its own sampler: in parallel, and
        // the same as in any order.
        let going: Vec<bool> = pool.install(|| {
            active
                .par_iter_mut()
                .zip(logits.par_iter())
                .map(|(seq, logits)| advance(seq, logits, end_of_generation))
                .collect()
        });
        active = active
            .into_iter()
            .zip(going)
            .filter_map(|(seq, going)| going.then_some(seq))
            .collect();
    }
}

/// Samples and sends the next token; true while the sequence goes on.
fn advance(seq: &mut Active, logits: &[f32], end_of_generation: &[u32]) -> bool {
    let id = seq.sampler.sample(logits);
    seq.last = id;
    seq.produced += 1;
    deliver(seq, Ok(id)) && seq.produced < seq.budget && !end_of_generation.contains(&id)
}
