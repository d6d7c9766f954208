//! The zk tier's part of bundle verification: the proof in `evidence.zk`, checked against the
//! receipt with the verifying key recomputed from the model file, or why it is not proven yet.

use vouch_core::Bundle;
use vouch_zk::{VerifyKey, VerifyOptions, ZkEvidence};

use crate::{Evidence, VerifyError};

pub(crate) const TRUST: &str = "the soundness of Spartan2 (Hyrax commitments on Pallas, discrete log); transparent setup: no trusted party or ceremony";

pub(crate) enum Outcome {
    NotClaimed,
    Proven(Box<vouch_zk::Verified>),
    /// Claimed but not established here: the proof is pending, or the model file is missing.
    NotProven(String),
}

pub(crate) fn check(bundle: &Bundle, ev: &Evidence<'_>) -> Result<Outcome, VerifyError> {
    let Some(raw) = bundle.evidence.get("zk") else {
        let id = bundle
            .evidence
            .get("zk_job")
            .and_then(|j| j["id"].as_str())
            .unwrap_or("?");
        return Ok(Outcome::NotProven(format!(
            "zk: pending (job {id}), not proven: complete the bundle with `vouch proofs wait {id} --bundle <this file>`"
        )));
    };
    let zk = ZkEvidence::from_json(raw).map_err(|e| VerifyError::Zk(e.to_string()))?;
    let Some(model) = ev.model_bytes else {
        return Ok(Outcome::NotProven(format!(
            "zk: a proof is attached (verifying key {}) but not checked: pass --model with the model file to recompute the key and check it",
            zk.vk_digest
        )));
    };
    let opts = VerifyOptions {
        expected_vk_digest: ev.zk_vk_digest,
        output_tolerance: None,
    };
    let verified = vouch_zk::verify(
        &zk,
        VerifyKey::Model(model),
        &bundle.receipt,
        bundle.outputs.as_ref(),
        ev.inputs,
        &opts,
    )
    .map_err(|e| VerifyError::Zk(e.to_string()))?;
    Ok(Outcome::Proven(Box::new(verified)))
}
