//! The inference pipeline: resolve → policy and tiers → zk admission → payment admit → execute
//! → settle → receipt → evidence → log (with signature and durable settlement) → answer.
//! Transport-free: `vouch-server` turns HTTP into an [`InferCall`] and an [`Inferred`] back.
//!
//! Money moves through two guards (`crate::payments`): an admitted payment is abandoned if the
//! work fails or the call is dropped, and a settled one is refunded unless the answer is
//! delivered — so no step after settlement can keep money without an answer.

use std::collections::BTreeMap;
use std::time::Instant;

use vouch_core::{
    BUNDLE_FORMAT, Bundle, EngineInfo, ErrorCode, ModelDigest, ModelRef, RECEIPT_VERSION, Receipt,
    TensorMap, Tier,
};

use crate::Node;
use crate::analytics::Outcome;
use crate::catalog::ModelMeta;
use crate::error::NodeError;
use crate::payments::{PaymentHeaders, Settled};

/// One inference request, parsed.
pub struct InferCall {
    pub model: ModelRef,
    pub inputs: TensorMap,
    /// Asked-for tiers, canonical (see [`parse_tiers`]).
    pub tiers: Vec<Tier>,
    /// Add the tier the model's policy requires (at its price) instead of refusing.
    pub allow_upgrade: bool,
    /// Wait for the checkpoint covering the receipt and put its inclusion proof in the bundle.
    pub log_proof: bool,
    pub payment: PaymentHeaders,
}

/// A served inference: the bundle and what the transport tells the caller beside it.
pub struct Inferred {
    pub bundle: Bundle,
    /// The request's price (sum of its tiers' prices) in [`Inferred::asset`] units.
    pub price: vouch_pay::Amount,
    pub asset: String,
    /// The tiers asked for, when the model's policy upgraded the request.
    pub upgraded_from: Option<Vec<Tier>>,
    pub log_index: u64,
    /// The token that cancels the zk proof job, when `zk` was asked for.
    pub zk_cancel_token: Option<String>,
    /// x402 settlement headers (`PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`) of a paid request.
    pub payment_headers: Vec<(&'static str, String)>,
}

/// Known tier names, canonical; whether this node can give them for the model is decided per
/// request by [`crate::policy::decide`], still before any work is done.
pub fn parse_tiers(raw: &[String]) -> Result<Vec<Tier>, NodeError> {
    let tiers = raw
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|m: String| NodeError::new(ErrorCode::BadRequest, m))
        })
        .collect::<Result<Vec<Tier>, _>>()?;
    Ok(Tier::canonical_set(&tiers))
}

/// The pipeline's steps after settlement, where a test may make it fail (feature
/// `fault-injection`; without it [`Node::fault`] compiles to nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Right after the payment settled, before the receipt is made.
    Settled,
    /// The receipt's log append.
    Log,
    /// Making the settlement durable.
    Durable,
    /// Attaching `tee` evidence.
    Evidence,
    /// Submitting the zk proof job.
    ZkSubmit,
    /// Never finishes (the caller's deadline drops the call) once the receipt is logged.
    Stall,
}

impl Node {
    /// Runs one inference end to end and records it in the analytics.
    pub async fn infer(&self, call: InferCall) -> Result<Inferred, NodeError> {
        self.check_input_limits(&call.inputs)?;
        // Only registered models are figured in `/metrics` and `/status`: a request naming an
        // unknown model leaves no label behind, only a count in one series.
        let known = async {
            let digest = self.catalog.resolve(&call.model).await?;
            Ok::<_, NodeError>((digest, self.catalog.meta(&digest).await?))
        };
        let (digest, meta) = known.await.inspect_err(|e| {
            if e.code == ErrorCode::ModelNotFound {
                metrics::counter!("vouch_unknown_model_requests_total").increment(1);
            }
        })?;
        let started = Instant::now();
        let label = match &call.model {
            ModelRef::Name { name, .. } => name.clone(),
            ModelRef::Digest(d) => d.to_string(),
        };
        let asked = call.tiers.clone();
        let result = self.run(digest, &meta, call).await;
        let (tiers, price) = match &result {
            Ok(done) => (
                done.bundle.receipt.tiers.clone(),
                crate::prices::as_u64(done.price),
            ),
            Err(_) => (asked, 0),
        };
        self.analytics.record(&Outcome {
            model: digest,
            label: &label,
            tiers: &tiers,
            ok: result.is_ok(),
            latency: started.elapsed(),
            price,
        });
        result
    }

    /// Every caller-controlled size of the inputs, bounded before any lookup.
    fn check_input_limits(&self, inputs: &TensorMap) -> Result<(), NodeError> {
        let limits = &self.config.limits;
        if inputs.total_elements() > limits.max_input_elements {
            return Err(NodeError::new(
                ErrorCode::BadInput,
                format!(
                    "inputs hold {} elements; this node's limit is {}",
                    inputs.total_elements(),
                    limits.max_input_elements
                ),
            ));
        }
        if let Some((name, t)) = inputs.iter().find(|(_, t)| {
            t.shape()
                .first()
                .is_some_and(|&r| r > limits.max_request_batch)
        }) {
            return Err(NodeError::new(
                ErrorCode::BadInput,
                format!(
                    "input {name:?} has {} rows; this node's limit per request is {}",
                    t.shape()[0],
                    limits.max_request_batch
                ),
            ));
        }
        Ok(())
    }

    async fn run(
        &self,
        digest: ModelDigest,
        meta: &ModelMeta,
        call: InferCall,
    ) -> Result<Inferred, NodeError> {
        let InferCall {
            model: model_ref,
            inputs,
            tiers,
            allow_upgrade,
            log_proof,
            payment,
        } = call;
        let decision = crate::policy::decide(self, &digest, tiers, allow_upgrade).await?;
        let tiers = decision.tiers;
        vouch_exec::engine::check_inputs(&meta.signature, &inputs)?;
        // zk admission before any work or charge: a refused proof costs the caller nothing.
        let zk = match tiers.contains(&Tier::Zk) {
            true => Some((self.zk.admit(&digest, &inputs)?, inputs.clone())),
            false => None,
        };
        let engine = self.catalog.engines.get(meta.engine)?;
        let config = self.catalog.config_facts(&digest).await?;
        let request_id = uuid::Uuid::now_v7().to_string();
        let admitted = match &self.pay {
            Some(pay) => {
                pay.admit(
                    &payment,
                    self.config.listen,
                    &digest,
                    &tiers,
                    &decision.quote,
                    &request_id,
                )
                .await?
            }
            None => None,
        };
        let input_digest = inputs.digest();
        // A failure here drops `admitted`, which abandons the payment: nothing is charged.
        let run = self.execute(digest, meta, inputs, config.batching).await?;
        // Settled before the receipt is made, so the signed receipt names the payment. From here
        // on `settled` refunds unless the answer is delivered.
        let settled = match admitted {
            Some(a) => a.settle().await?,
            None => Settled::free(),
        };
        self.fault(Step::Settled).await?;

        let receipt = Receipt {
            version: RECEIPT_VERSION,
            request_id,
            model: digest,
            model_ref: match &model_ref {
                ModelRef::Digest(_) => None,
                named => Some(named.to_string()),
            },
            input_digest,
            output_digest: run.outputs.digest(),
            engine: EngineInfo {
                name: meta.engine.as_str().into(),
                version: engine.version(),
                profile: run.profile,
            },
            config_digest: config.digest,
            tiers: tiers.clone(),
            node_key: self.signer.public_key(),
            issued_at: vouch_store::now_rfc3339(),
            payment: settled.payment().cloned(),
        };
        // Canonicalised once: the signature and the log entry cover the same bytes.
        let canonical = receipt.canonical_bytes();
        let mut evidence = BTreeMap::new();
        if tiers.contains(&Tier::Tee) {
            self.fault(Step::Evidence).await?;
            evidence.insert("tee".to_string(), self.tee_evidence()?);
        }
        // The answer waits for the durable log entry: an acknowledged receipt is always in the
        // log. A settlement in the built-in ledger is made durable by a sync running at the same
        // time. The signature covers the same bytes as the log entry, so it is made while the
        // log commit runs (the log future is polled first and hands its entry to the appender).
        let (logged, synced, signature) = tokio::join!(
            async {
                self.fault(Step::Log).await?;
                crate::transparency::log_receipt(
                    &self.log,
                    &canonical,
                    &receipt.request_id,
                    log_proof,
                )
                .await
            },
            async {
                self.fault(Step::Durable).await?;
                settled.make_durable().await
            },
            async {
                // Let the log's appender task (woken by the entry, queued behind this task) hand
                // the batch to the committer first; then sign during the commit.
                tokio::task::yield_now().await;
                crate::policy::signs(&tiers).then(|| {
                    self.signer
                        .sign_receipt_hash(&vouch_core::Digest::of(&canonical))
                })
            },
        );
        let log_evidence = match logged.and_then(|e| synced.map(|()| e)) {
            Ok(e) => e,
            Err(e) => {
                // No output without a logged receipt and a durable settlement.
                settled.refund(&e.message).await;
                return Err(e);
            }
        };
        evidence.insert(
            vouch_log::evidence::BUNDLE_EVIDENCE_KEY.to_string(),
            log_evidence.to_json(),
        );
        let mut zk_cancel_token = None;
        if let Some((ticket, zk_inputs)) = zk {
            self.fault(Step::ZkSubmit).await?;
            let job = ticket.submit(&receipt, &zk_inputs).await?;
            // A struct of strings and numbers: serialising it cannot fail.
            let reference = serde_json::to_value(&job.reference).map_err(NodeError::internal)?;
            evidence.insert(vouch_api::ZkJobRef::EVIDENCE_KEY.to_string(), reference);
            zk_cancel_token = Some(job.cancel_token);
        }
        self.fault(Step::Stall).await?;
        Ok(Inferred {
            bundle: Bundle {
                format: BUNDLE_FORMAT.into(),
                receipt,
                signature,
                outputs: Some(run.outputs),
                evidence,
            },
            price: decision.quote.total,
            asset: self.prices.unit(),
            upgraded_from: decision.upgraded_from,
            log_index: log_evidence.index,
            zk_cancel_token,
            payment_headers: settled.delivered(),
        })
    }

    /// Loads the model and runs it on the worker pool.
    async fn execute(
        &self,
        digest: ModelDigest,
        meta: &ModelMeta,
        inputs: TensorMap,
        batching: bool,
    ) -> Result<vouch_exec::RunOutput, NodeError> {
        let model = self.catalog.loaded(digest, meta).await?;
        // Dropping the handle (the request timed out, the client left) stops the run.
        let run = self.executor.submit_with(digest, model, inputs, batching)?;
        run.await
            .map_err(|_| NodeError::internal("the executor dropped the request"))?
            .map_err(NodeError::from)
    }

    /// Fails (or, for [`Step::Stall`], never finishes) when a test armed `step`.
    #[cfg(feature = "fault-injection")]
    async fn fault(&self, step: Step) -> Result<(), NodeError> {
        let armed = self
            .faults
            .lock()
            .map(|f| *f == Some(step))
            .unwrap_or(false);
        match (armed, step) {
            (false, _) => Ok(()),
            (true, Step::Stall) => std::future::pending().await,
            (true, _) => Err(NodeError::internal(format!("injected failure at {step:?}"))),
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    async fn fault(&self, _step: Step) -> Result<(), NodeError> {
        Ok(())
    }

    /// Arms a failure at `step` for every following request (`None` disarms).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, step: Option<Step>) {
        if let Ok(mut f) = self.faults.lock() {
            *f = step;
        }
    }
}
