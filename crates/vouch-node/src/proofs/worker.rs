//! The prover pool: plain threads that claim jobs from the store, prove, and record the
//! outcome. A job's row moves queued → running → done | failed | cancelled; each move is a
//! conditional update, so a cancel racing a finishing prover has exactly one winner. Jobs are
//! claimed under a lease (`[zk] lease_ms`) that every progress report renews: on PostgreSQL
//! the queue is shared by every node and `vouch worker`, and a job whose prover died is claimed
//! again once its lease runs out; a prover whose lease was lost or whose job was cancelled on
//! any node stops at its next report.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vouch_core::{Receipt, TensorMap};
use vouch_store::proof_store::ZkJobRow;
use vouch_zk::{Progress, ZkProof};

use super::{JobError, Live, ZkState, lock};

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
    let poll = Duration::from_millis(zk.settings.poll_ms.max(10));
    loop {
        let claimed = zk.rt.block_on(zk.store.claim_zk_job(
            &zk.worker_id,
            zk.lease(),
            zk.settings.max_attempts.max(1),
        ));
        let row = match claimed {
            Ok(Some(row)) => row,
            Ok(None) => {
                // Nothing to prove: wait for a job submitted here, or poll for other nodes'.
                let jobs = lock(&zk.jobs);
                drop(zk.wake.wait_timeout(jobs, poll));
                continue;
            }
            Err(e) => {
                tracing::error!("zk: cannot claim a proof job: {e}");
                std::thread::sleep(poll);
                continue;
            }
        };
        let id = row.id.clone();
        {
            let mut jobs = lock(&zk.jobs);
            jobs.pending.retain(|p| *p != id);
            jobs.running += 1;
            jobs.live
                .entry(id.clone())
                .or_insert_with(|| Live::queued(row.estimate_ms));
        }
        zk.changed.notify_waiters();
        prove_one(&zk, &row);
        {
            let mut jobs = lock(&zk.jobs);
            jobs.running = jobs.running.saturating_sub(1);
            jobs.live.remove(&id);
        }
        zk.changed.notify_waiters();
    }
}

fn prove_one(zk: &ZkState, row: &ZkJobRow) {
    let (rt, id) = (&zk.rt, row.id.as_str());
    let cancel = lock(&zk.jobs)
        .live
        .get(id)
        .map(|l| l.cancel.clone())
        .unwrap_or_default();
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
            match rt.block_on(zk.store.renew_zk_job(
                id,
                &zk.worker_id,
                p.stage,
                p.fraction,
                zk.lease(),
            )) {
                // Cancelled on some node, or the lease was lost to another prover: stop.
                Ok(false) => cancel.store(true, Ordering::SeqCst),
                Ok(true) => {}
                Err(e) => tracing::warn!("zk job {id}: cannot record progress: {e}"),
            }
            zk.changed.notify_waiters();
            cancel.load(Ordering::SeqCst)
        };
        vouch_zk::prove(&keys, &inputs, &hash, &mut on_progress).map_err(JobError::from)
    })();
    let finished = match outcome {
        Ok(proof) => {
            let evidence = proof.evidence.to_json().to_string();
            rt.block_on(
                zk.store
                    .finish_zk_job(id, &zk.worker_id, &evidence, proof.prove_ms),
            )
            .map(|_| ())
        }
        // Whoever cancelled has already ended the row (and handed it to the failure hook).
        Err(_) if cancel.load(Ordering::SeqCst) => Ok(()),
        Err(e) => {
            let code = e.code.as_str();
            match rt.block_on(zk.store.end_zk_job(
                id,
                "failed",
                code,
                &e.message,
                Some(&zk.worker_id),
            )) {
                Ok(true) => {
                    rt.block_on(zk.hand_over_failures(Some(id)));
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
