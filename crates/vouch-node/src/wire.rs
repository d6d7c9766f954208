//! The node's records as `vouch-api` answer types. Field by field and in one place, so a field
//! added on either side shows up here at compile time instead of drifting on the wire.

use vouch_api as api;

use crate::error::NodeError;

/// A token amount; its decimal form is what `api::Amount` holds.
pub fn amount(a: vouch_pay::Amount) -> Result<api::Amount, NodeError> {
    a.to_string().parse().map_err(NodeError::internal)
}

/// The stored facts of an LLM, as shown (`None` if the row does not parse: it was written by
/// this node from `GgufFacts`, so that would be a bug, logged).
fn llm_facts(json: &str) -> Option<api::LlmFacts> {
    let f: vouch_llm::GgufFacts = serde_json::from_str(json)
        .inspect_err(|e| tracing::error!("stored LLM facts do not parse: {e}"))
        .ok()?;
    Some(api::LlmFacts {
        architecture: f.architecture.name().into(),
        name: f.name,
        quantization: f.quantization,
        context_length: f.context_length,
        vocab_size: f.vocab_size,
        embedding_length: f.embedding_length,
        block_count: f.block_count,
        parameter_count: f.parameter_count,
        tensor_count: f.tensor_count,
        tokenizer_model: f.tokenizer_model,
        chat_template: f.chat_template,
    })
}

/// A gateway model's stored descriptor, as shown.
fn upstream_facts(json: &str) -> Option<api::UpstreamFacts> {
    let d: crate::gateway::UpstreamDescriptor = serde_json::from_str(json)
        .inspect_err(|e| tracing::error!("a stored upstream descriptor does not parse: {e}"))
        .ok()?;
    Some(api::UpstreamFacts {
        url: d.url,
        model: d.model,
        api_key: d.api_key,
    })
}

pub fn model_record(r: vouch_store::ModelRecord) -> api::ModelRecord {
    let upstream = r.engine == crate::gateway::UPSTREAM_ENGINE;
    let facts = r.llm_facts.as_deref();
    api::ModelRecord {
        digest: r.digest,
        size_bytes: r.size_bytes,
        llm: facts.filter(|_| !upstream).and_then(llm_facts),
        upstream: facts.filter(|_| upstream).and_then(upstream_facts),
        engine: r.engine,
        signature: r.signature,
        created_at: r.created_at,
        names: r
            .names
            .into_iter()
            .map(|n| api::NamePointer {
                name: n.name,
                version: n.version,
                digest: n.digest,
                updated_at: n.updated_at,
            })
            .collect(),
    }
}

pub fn policy(p: vouch_store::policy::ModelPolicy) -> api::ModelPolicy {
    api::ModelPolicy {
        subject: p.subject,
        min_tier: p.min_tier,
        updated_at: p.updated_at,
    }
}

pub fn policy_change(c: vouch_store::policy::PolicyChange) -> api::PolicyChange {
    api::PolicyChange {
        seq: c.seq,
        subject: c.subject,
        min_tier: c.min_tier,
        previous: c.previous,
        changed_at: c.changed_at,
        log_index: c.log_index,
    }
}

pub fn pricing_config(c: &vouch_pay::PricingConfig) -> Result<api::PricingConfig, NodeError> {
    let d = &c.default;
    let opt = |a: Option<vouch_pay::Amount>| a.map(amount).transpose();
    Ok(api::PricingConfig {
        default: api::TierPrices {
            signed: amount(d.signed)?,
            tee: amount(d.tee)?,
            zk_base: amount(d.zk_base)?,
            zk_per_step: amount(d.zk_per_step)?,
            zk_step_units: d.zk_step_units,
            prompt: opt(d.prompt)?,
            completion: opt(d.completion)?,
        },
        models: c
            .models
            .iter()
            .map(|(name, p)| {
                Ok((
                    name.clone(),
                    api::ModelPrices {
                        signed: opt(p.signed)?,
                        tee: opt(p.tee)?,
                        zk_base: opt(p.zk_base)?,
                        zk_per_step: opt(p.zk_per_step)?,
                        zk_step_units: p.zk_step_units,
                        prompt: opt(p.prompt)?,
                        completion: opt(p.completion)?,
                    },
                ))
            })
            .collect::<Result<_, NodeError>>()?,
    })
}

pub fn limits(l: &crate::config::Limits) -> api::Limits {
    api::Limits {
        max_body_bytes: l.max_body_bytes as u64,
        max_model_bytes: l.max_model_bytes as u64,
        max_input_elements: l.max_input_elements as u64,
        max_request_batch: l.max_request_batch,
        request_timeout_secs: l.request_timeout_secs,
        attest_per_sec: l.attest_per_sec,
        max_connections: l.max_connections as u64,
        header_timeout_ms: l.header_timeout_ms,
        max_large_bodies: l.max_large_bodies as u64,
        max_large_body_waiting: l.max_large_body_waiting as u64,
        large_body_wait_ms: l.large_body_wait_ms,
    }
}

pub fn platform(p: vouch_attest::tee::Platform) -> api::Platform {
    use vouch_attest::tee::Platform as P;
    match p {
        P::AwsNitro => api::Platform::AwsNitro,
        P::IntelTdx => api::Platform::IntelTdx,
        P::IntelSgx => api::Platform::IntelSgx,
        P::AmdSevSnp => api::Platform::AmdSevSnp,
        P::Simulated => api::Platform::Simulated,
    }
}

/// An evidence envelope (a `vouch-attest` format, mirrored by `api::TeeEvidence`).
pub fn tee_evidence(e: &vouch_attest::tee::TeeEvidence) -> Result<api::TeeEvidence, NodeError> {
    Ok(api::TeeEvidence {
        format: e.format.clone(),
        platform: platform(e.platform),
        evidence: e.evidence.clone(),
        collateral: e.collateral.clone(),
        collateral_time: e.collateral_time.clone(),
        certs: e
            .certs
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(NodeError::internal)?,
        binding: api::Binding {
            scheme: e.binding.scheme.clone(),
            node_key: e.binding.node_key,
            nonce: e.binding.nonce.clone(),
        },
        produced_at: e.produced_at.clone(),
    })
}

pub fn circuit_estimate(e: &vouch_zk::CircuitEstimate) -> api::CircuitEstimate {
    api::CircuitEstimate {
        nodes: e.nodes,
        constraints: e.constraints,
        precommitted: e.precommitted,
        rest: e.rest,
        public: e.public,
        lookups: e.lookups,
        table_entries: e.table_entries,
        nnz: e.nnz,
        table_bits: e.table_bits,
        values: e.values,
        largest_tensor: e.largest_tensor,
    }
}

pub fn circuit_stats(s: &vouch_zk::Stats) -> api::CircuitStats {
    api::CircuitStats {
        constraints: s.constraints as u64,
        precommitted: s.precommitted as u64,
        rest: s.rest as u64,
        public: s.public as u64,
        lookups: s.lookups as u64,
        table_entries: s.table_entries as u64,
        nnz: s.nnz as u64,
        range_widths: s
            .range_widths
            .iter()
            .map(|(w, n)| (w.to_string(), *n as u64))
            .collect(),
    }
}

pub fn proof_estimate(e: &vouch_zk::Estimate) -> api::ProofEstimate {
    api::ProofEstimate {
        prove_ms: e.prove_ms,
        peak_bytes: e.peak_bytes,
        verify_ms: e.verify_ms,
        vk_bytes: e.vk_bytes,
    }
}

pub fn pointer_change(c: vouch_log::history::PointerChange) -> api::PointerChange {
    api::PointerChange {
        index: c.index,
        name: c.name,
        version: c.version,
        from: c.from,
        to: c.to,
        at: c.at,
        unlogged_move_before: c.unlogged_move_before,
    }
}

/// A stored configuration, which was an object when it was set.
pub fn model_config(
    c: vouch_store::model_config::ModelConfig,
) -> Result<api::ModelConfig, NodeError> {
    Ok(api::ModelConfig {
        model: c.model,
        config: config_object(c.config)?,
        config_digest: c.config_digest,
        updated_at: c.updated_at,
    })
}

pub fn config_change(
    c: vouch_store::model_config::ConfigChange,
) -> Result<api::ConfigChange, NodeError> {
    Ok(api::ConfigChange {
        seq: c.seq,
        config_digest: c.config_digest,
        config: config_object(c.config)?,
        changed_at: c.changed_at,
        log_index: c.log_index,
    })
}

pub fn config_object(v: serde_json::Value) -> Result<api::config::Config, NodeError> {
    match v {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(NodeError::internal(
            "a stored model configuration is not an object",
        )),
    }
}

pub fn log_evidence(e: &vouch_log::LogEvidence) -> api::LogEvidence {
    api::LogEvidence {
        format: e.format.clone(),
        index: e.index,
        proof: e.proof.clone(),
    }
}

pub fn entry_kind(k: vouch_log::EntryKind) -> api::EntryKind {
    use vouch_log::EntryKind as K;
    match k {
        K::Receipt => api::EntryKind::Receipt,
        K::ChatReceipt => api::EntryKind::ChatReceipt,
        K::ModelRegistered => api::EntryKind::ModelRegistered,
        K::PointerMoved => api::EntryKind::PointerMoved,
        K::PolicyChanged => api::EntryKind::PolicyChanged,
        K::ConfigChanged => api::EntryKind::ConfigChanged,
    }
}

pub fn verify_response(v: vouch_pay::wire::VerifyResponse) -> api::facilitator::VerifyResponse {
    api::facilitator::VerifyResponse {
        is_valid: v.is_valid,
        invalid_reason: v.invalid_reason,
        invalid_message: v.invalid_message,
        payer: v.payer,
    }
}

pub fn settle_response(s: vouch_pay::wire::SettleResponse) -> api::facilitator::SettleResponse {
    api::facilitator::SettleResponse {
        success: s.success,
        error_reason: s.error_reason,
        error_message: s.error_message,
        payer: s.payer,
        transaction: s.transaction,
        network: s.network,
        amount: s.amount,
    }
}

pub fn supported_response(
    s: vouch_pay::wire::SupportedResponse,
) -> api::facilitator::SupportedResponse {
    api::facilitator::SupportedResponse {
        kinds: s
            .kinds
            .into_iter()
            .map(|k| api::facilitator::SupportedKind {
                x402_version: k.x402_version,
                scheme: k.scheme,
                network: k.network,
                extra: k.extra,
            })
            .collect(),
        extensions: s.extensions,
        signers: s.signers,
    }
}
