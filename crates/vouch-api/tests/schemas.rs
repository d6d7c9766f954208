//! Every answer type's schema is complete: each `$ref` in a document listing them resolves.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(components(schemas(
    vouch_api::ErrorBody,
    vouch_api::Health,
    vouch_api::NodeInfo,
    vouch_api::RegisterResponse,
    vouch_api::ModelList,
    vouch_api::ModelView,
    vouch_api::InferRequest,
    vouch_core::Bundle,
    vouch_api::ZkJobRef,
    vouch_api::ProofJob,
    vouch_api::CancelResponse,
    vouch_api::TeeEvidence,
    vouch_api::PolicyRequest,
    vouch_api::PolicyView,
    vouch_api::PolicyUpdate,
    vouch_api::Assurance,
    vouch_api::ConfigUpdate,
    vouch_api::ConfigView,
    vouch_api::LogInfo,
    vouch_api::LogEntry,
    vouch_api::InclusionProof,
    vouch_api::ConsistencyProof,
    vouch_api::NameHistory,
    vouch_api::CosignatureAccepted,
    vouch_api::Pricing,
    vouch_api::CreditRequest,
    vouch_api::CreditResponse,
    vouch_api::Balance,
    vouch_api::facilitator::FacilitatorRequest,
    vouch_api::facilitator::VerifyResponse,
    vouch_api::facilitator::SettleResponse,
    vouch_api::facilitator::SupportedResponse,
    vouch_api::openai::ChatCompletionRequest,
    vouch_api::openai::ChatCompletion,
    vouch_api::openai::ChatCompletionChunk,
    vouch_api::openai::ChatReceiptEvent,
    vouch_api::openai::CompletionRequest,
    vouch_api::openai::Completion,
    vouch_api::openai::OpenAiModelList,
    vouch_api::openai::EmbeddingRequest,
    vouch_api::openai::EmbeddingResponse,
    vouch_api::openai::OpenAiError,
    vouch_core::ChatBundle,
)))]
struct All;

fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| refs(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_in_the_schemas_resolves() {
    let doc = serde_json::to_value(All::openapi()).unwrap();
    if let Ok(path) = std::env::var("VOUCH_API_SCHEMAS_OUT") {
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "{r} is not in the document");
    }
    for name in [
        "Receipt",
        "Tensor",
        "Digest",
        "ModelZk",
        "JobStatus",
        "Amount",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
}
