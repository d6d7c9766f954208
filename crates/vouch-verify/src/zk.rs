//! The zk tier's part of bundle verification: the proof in `evidence.zk`, checked against the
//! receipt with the verifying key recomputed from the model file, or why it is not proven yet.

use vouch_core::Bundle;
use vouch_zk::{VerifyKey, VerifyOptions, ZkEvidence};

use crate::{Evidence, VerifyError};

pub(crate) const TRUST: &str = "the soundness of Spartan2 (Hyrax commitments on Pallas, discrete log); transparent setup: no trusted party or ceremony";

/// The tensor system's assumption, and what it adds when the model key comes from the bundle.
pub(crate) const TENSOR_TRUST: &str = "the soundness of sumcheck, logUp-GKR and Hyrax commitments on Pallas (discrete log); transparent setup: no trusted party or ceremony";
pub(crate) const TENSOR_KEY_TRUST: &str = "; without the model file, that the model key whose digest you pinned (the registry's) commits to this model's weights";

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
    let tensor = zk.system == vouch_zk::tensor::system::SYSTEM;
    let key = match (ev.model_bytes, tensor, ev.zk_vk_digest) {
        (Some(model), _, _) => VerifyKey::Model(model),
        // The tensor system's evidence carries its model key; the pinned registry digest is
        // what ties that key to the model.
        (None, true, Some(_)) => VerifyKey::Evidence,
        (None, true, None) => {
            return Ok(Outcome::NotProven(format!(
                "zk: a proof is attached (model key {}) but nothing ties its key to the model: pass --zk-vk-digest with the registry's key digest (`vouch models show`), or --model with the model file",
                zk.vk_digest
            )));
        }
        (None, false, _) => {
            return Ok(Outcome::NotProven(format!(
                "zk: a proof is attached (verifying key {}) but not checked: pass --model with the model file to recompute the key and check it",
                zk.vk_digest
            )));
        }
    };
    let opts = VerifyOptions {
        expected_vk_digest: ev.zk_vk_digest,
        output_tolerance: None,
    };
    let verified = vouch_zk::verify(
        &zk,
        key,
        &bundle.receipt,
        bundle.outputs.as_ref(),
        ev.inputs,
        &opts,
    )
    .map_err(|e| VerifyError::Zk(e.to_string()))?;
    Ok(Outcome::Proven(Box::new(verified)))
}

/// The trust assumption of a proven zk tier: the proof system's, and for a tensor proof checked
/// without the model file, the pinned key.
pub(crate) fn trust(v: &vouch_zk::Verified, with_model: bool) -> String {
    if v.system == vouch_zk::tensor::system::SYSTEM {
        if with_model {
            TENSOR_TRUST.to_string()
        } else {
            format!("{TENSOR_TRUST}{TENSOR_KEY_TRUST}")
        }
    } else {
        TRUST.to_string()
    }
}
