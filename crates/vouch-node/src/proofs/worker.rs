//! The prover pool: plain threads that take job ids from the queue, prove, and record the
//! outcome. A job's row moves queued → running → done | failed | cancelled; each move is a
//! conditional update, so a cancel racing a finishing prover has exactly one winner.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use vouch_core::{Receipt, TensorMap};
use vouch_zk::{Progress, ZkProof};

use super::{JobError, ZkState, lock, on_job_failed};

pub(super) fn spawn(zk: &Arc<ZkState>, workers: usize) {
    for i in 0..workers {
        let zk = zk.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("vouch-zk-{i}"))
            .spawn(move || run(zk));
        if let Err(e) = spawned {
            tracing::error!("zk: cannot start prover thread {i}: {e}");
        }
    }
}

fn run(zk: Arc<ZkState>) {
    loop {
        let id = {
            let mut jobs = lock(&zk.jobs);
            loop {
                if let Some(id) = jobs.pending.pop_front() {
                    jobs.running += 1;
                    break id;
                }
                jobs = zk.wake.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        };
        prove_one(&zk, &id);
        {
            let mut jobs = lock(&zk.jobs);
            jobs.running = jobs.running.saturating_sub(1);
            jobs.live.remove(&id);
        }
        zk.changed.notify_waiters();
    }
}

fn prove_one(zk: &ZkState, id: &str) {
    let rt = &zk.rt;
    match rt.block_on(zk.store.start_zk_job(id)) {
        Ok(true) => {}
        Ok(false) => return, // cancelled while queued
        Err(e) => {
            tracing::error!("zk job {id}: cannot start: {e}");
            return;
        }
    }
    zk.changed.notify_waiters();
    let cancel = lock(&zk.jobs)
        .live
        .get(id)
        .map(|l| l.cancel.clone())
        .unwrap_or_default();
    let row = match rt.block_on(zk.store.zk_job(id)) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!("zk job {id}: cannot read: {e}");
            return;
        }
    };
    let outcome = (|| -> Result<ZkProof, JobError> {
        let receipt: Receipt = serde_json::from_str(&row.receipt).map_err(JobError::internal)?;
        let inputs: TensorMap = serde_json::from_str(&row.inputs).map_err(JobError::internal)?;
        let hash = receipt.hash();
        if hash != row.receipt_hash {
            return Err(JobError::internal(
                "the stored receipt no longer hashes to the job's",
            ));
        }
        let keys = zk.keys_for(&row.model)?;
        let mut on_progress = |p: Progress| -> bool {
            if let Some(l) = lock(&zk.jobs).live.get_mut(id) {
                l.stage = p.stage.to_string();
                l.progress = p.fraction;
            }
            if let Err(e) = rt.block_on(zk.store.zk_job_progress(id, p.stage, p.fraction)) {
                tracing::warn!("zk job {id}: cannot record progress: {e}");
            }
            zk.changed.notify_waiters();
            cancel.load(Ordering::SeqCst)
        };
        vouch_zk::prove(&keys, &inputs, &hash, &mut on_progress).map_err(JobError::from)
    })();
    let finished = match outcome {
        Ok(proof) => {
            let evidence = proof.evidence.to_json().to_string();
            rt.block_on(zk.store.finish_zk_job(id, &evidence, proof.prove_ms))
                .map(|_| ())
        }
        // Whoever cancelled has already ended the row (and called the failure hook).
        Err(_) if cancel.load(Ordering::SeqCst) => Ok(()),
        Err(e) => {
            let code = e.code.as_str();
            match rt.block_on(zk.store.end_zk_job(id, "failed", code, &e.message)) {
                Ok(true) => {
                    on_job_failed(zk, &row, &e.message);
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        }
    };
    if let Err(e) = finished {
        tracing::error!("zk job {id}: cannot record its outcome: {e}");
    }
}
