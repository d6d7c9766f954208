//! Stable machine codes for every way a bundle fails verification: `code` in the output of
//! `vouch verify --json`, and what programs embedding this crate match on instead of message
//! text. A code, once published, keeps its meaning; new failure kinds get new codes.

use serde::{Deserialize, Serialize};
use vouch_attest::SignatureError;
use vouch_attest::tee::TeeError;
use vouch_log::evidence::OfflineError;

use crate::{ChainError, ResponseField, VerifyError};

/// Why a bundle failed. Serialised as the snake_case name (`tee_not_authentic`).
///
/// The `tee_*` codes are the `vouch-attest` `TeeError::code()` names. They split in two: the
/// evidence is **not authentic** (`tee_not_authentic`, `tee_type_mismatch`, `tee_malformed`: a
/// forged signature, altered bytes, a broken chain, another root) or it is **genuine but below
/// policy** (`tee_expired`, `tee_tcb_status`, `tee_debug_mode`, `tee_measurement_mismatch`,
/// `tee_measurement_unknown`, `tee_platform_not_allowed`, `tee_simulated_not_allowed`,
/// `tee_too_old`); [`FailureCode::is_below_policy`] tells which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCode {
    /// The file is not a Vouch bundle (its `format` is not `vouch.bundle.v1`).
    NotABundle,
    /// The receipt's version is one this verifier does not know.
    UnsupportedReceiptVersion,
    /// The receipt claims the signed tier but the bundle has no signature.
    SignatureMissing,
    /// The signature uses an algorithm other than Ed25519.
    SignatureAlgorithmUnsupported,
    /// The signature is not 64 bytes of standard base64.
    SignatureMalformed,
    /// The receipt's node key is not a valid Ed25519 public key.
    NodeKeyInvalid,
    /// The signature does not verify: the receipt or the signature was altered.
    SignatureInvalid,
    /// The signature verifies, but under another key than the one the caller trusts.
    SignerUntrusted,
    /// The receipt claims a tier this verifier cannot check.
    TierUncheckable,
    /// A tier the caller required (`--require`) was not proven.
    TierNotProven,
    /// The bundled outputs, or the caller's output file, are not the ones the receipt commits to.
    OutputsMismatch,
    /// The model file is not the model the receipt names.
    ModelMismatch,
    /// The input file is not the input the receipt commits to.
    InputsMismatch,
    /// The configuration given is not the one the receipt names.
    ConfigMismatch,
    /// A configuration was given but the receipt names none.
    ConfigNotInReceipt,
    /// The configuration given has no canonical JSON form.
    ConfigInvalid,
    /// The receipt claims the zk tier but the bundle has neither a proof nor a proof job.
    ZkEvidenceMissing,
    /// The zk proof is malformed or does not check out against the receipt and model.
    ZkProofInvalid,
    /// The caller trusts a log, but the bundle carries no inclusion proof.
    LogProofMissing,
    /// The log inclusion proof or its signed checkpoint does not verify.
    LogProofInvalid,
    /// Too few trusted witnesses cosigned the log checkpoint.
    LogWitnessesInsufficient,
    /// TEE evidence was needed but no verification time was given (library callers).
    VerificationTimeMissing,
    TeeMalformed,
    /// The receipt references its TEE evidence by digest: supply the envelope.
    TeeEvidenceReferenced,
    TeeReferenceMismatch,
    TeeSimulatedNotAllowed,
    TeePlatformNotAllowed,
    TeeTypeMismatch,
    /// Forged or altered TEE evidence: a signature, chain or root does not check out.
    TeeNotAuthentic,
    /// Genuine TEE evidence whose certificates or collateral are not valid at the verification time.
    TeeExpired,
    TeeDebugMode,
    TeeMeasurementMismatch,
    TeeMeasurementUnknown,
    /// Genuine Intel evidence whose TCB level the policy does not accept.
    TeeTcbStatus,
    TeeFromTheFuture,
    TeeTooOld,
    TeeKeyMismatch,
    TeeNonceMismatch,
    TeeBinding,
    TeeReceipt,
    /// The file is not a Vouch chat bundle (its `format` is not `vouch.chat-bundle.v1`).
    NotAChatBundle,
    /// The chat receipt's fields contradict each other (usage sums, tiers, token commitments,
    /// `executed_by`), or the bundle carries token ids the receipt does not commit to.
    ChatReceiptInvalid,
    /// The request file has no request digest: not JSON, or an integer beyond ±(2^53 − 1).
    RequestInvalid,
    /// The request file is not the request the receipt commits to.
    RequestMismatch,
    /// The response is not a chat completion object (or has no bundle in `vouch`).
    ResponseInvalid,
    /// The completion text (or the streamed deltas joined) is not the one the receipt commits to.
    CompletionMismatch,
    /// The response's finish reason is not the receipt's.
    FinishReasonMismatch,
    /// The response's usage is not the receipt's.
    UsageMismatch,
    /// The response's `model` is not the receipt's `model_ref` (or digest).
    ResponseModelMismatch,
    /// The bundle's token ids are not the ones the receipt commits to, or not as many as its usage counts.
    TokensMismatch,
    /// A streamed chunk is not a `chat.completion.chunk` with a `vouch` link.
    StreamChunkMalformed,
    /// A streamed chunk is missing (dropped, or a later one came first).
    StreamChunkMissing,
    /// A streamed chunk came again, or after a later one.
    StreamChunkOutOfOrder,
    /// A streamed chunk was altered: the chain breaks after it, or the head is not the receipt's.
    StreamChainBroken,
    /// The first chunk does not start the chain of the receipt's request.
    StreamStartMismatch,
    /// Fewer chunks arrived than the receipt commits to.
    StreamTruncated,
    /// More chunks arrived than the receipt commits to.
    StreamTooLong,
    /// Chunks were checked against a receipt that commits to no stream.
    StreamNotCommitted,
    /// The verifier's own inputs: a file that cannot be read or parsed, a malformed option
    /// (front ends such as `vouch verify` report these; `verify_bundle` never does).
    InvalidArgument,
    /// A failure verification should never meet (a producer's error); a bug to report.
    Internal,
}

impl FailureCode {
    /// The code as `--json` prints it.
    pub fn as_str(self) -> &'static str {
        use FailureCode as C;
        match self {
            C::NotABundle => "not_a_bundle",
            C::UnsupportedReceiptVersion => "unsupported_receipt_version",
            C::SignatureMissing => "signature_missing",
            C::SignatureAlgorithmUnsupported => "signature_algorithm_unsupported",
            C::SignatureMalformed => "signature_malformed",
            C::NodeKeyInvalid => "node_key_invalid",
            C::SignatureInvalid => "signature_invalid",
            C::SignerUntrusted => "signer_untrusted",
            C::TierUncheckable => "tier_uncheckable",
            C::TierNotProven => "tier_not_proven",
            C::OutputsMismatch => "outputs_mismatch",
            C::ModelMismatch => "model_mismatch",
            C::InputsMismatch => "inputs_mismatch",
            C::ConfigMismatch => "config_mismatch",
            C::ConfigNotInReceipt => "config_not_in_receipt",
            C::ConfigInvalid => "config_invalid",
            C::ZkEvidenceMissing => "zk_evidence_missing",
            C::ZkProofInvalid => "zk_proof_invalid",
            C::LogProofMissing => "log_proof_missing",
            C::LogProofInvalid => "log_proof_invalid",
            C::LogWitnessesInsufficient => "log_witnesses_insufficient",
            C::VerificationTimeMissing => "verification_time_missing",
            C::TeeMalformed => "tee_malformed",
            C::TeeEvidenceReferenced => "tee_evidence_referenced",
            C::TeeReferenceMismatch => "tee_reference_mismatch",
            C::TeeSimulatedNotAllowed => "tee_simulated_not_allowed",
            C::TeePlatformNotAllowed => "tee_platform_not_allowed",
            C::TeeTypeMismatch => "tee_type_mismatch",
            C::TeeNotAuthentic => "tee_not_authentic",
            C::TeeExpired => "tee_expired",
            C::TeeDebugMode => "tee_debug_mode",
            C::TeeMeasurementMismatch => "tee_measurement_mismatch",
            C::TeeMeasurementUnknown => "tee_measurement_unknown",
            C::TeeTcbStatus => "tee_tcb_status",
            C::TeeFromTheFuture => "tee_from_the_future",
            C::TeeTooOld => "tee_too_old",
            C::TeeKeyMismatch => "tee_key_mismatch",
            C::TeeNonceMismatch => "tee_nonce_mismatch",
            C::TeeBinding => "tee_binding",
            C::TeeReceipt => "tee_receipt",
            C::NotAChatBundle => "not_a_chat_bundle",
            C::ChatReceiptInvalid => "chat_receipt_invalid",
            C::RequestInvalid => "request_invalid",
            C::RequestMismatch => "request_mismatch",
            C::ResponseInvalid => "response_invalid",
            C::CompletionMismatch => "completion_mismatch",
            C::FinishReasonMismatch => "finish_reason_mismatch",
            C::UsageMismatch => "usage_mismatch",
            C::ResponseModelMismatch => "response_model_mismatch",
            C::TokensMismatch => "tokens_mismatch",
            C::StreamChunkMalformed => "stream_chunk_malformed",
            C::StreamChunkMissing => "stream_chunk_missing",
            C::StreamChunkOutOfOrder => "stream_chunk_out_of_order",
            C::StreamChainBroken => "stream_chain_broken",
            C::StreamStartMismatch => "stream_start_mismatch",
            C::StreamTruncated => "stream_truncated",
            C::StreamTooLong => "stream_too_long",
            C::StreamNotCommitted => "stream_not_committed",
            C::InvalidArgument => "invalid_argument",
            C::Internal => "internal",
        }
    }

    /// TEE evidence that is genuine but falls short of the policy or the verification time.
    pub fn is_below_policy(self) -> bool {
        use FailureCode as C;
        matches!(
            self,
            C::TeeExpired
                | C::TeeTcbStatus
                | C::TeeDebugMode
                | C::TeeMeasurementMismatch
                | C::TeeMeasurementUnknown
                | C::TeePlatformNotAllowed
                | C::TeeSimulatedNotAllowed
                | C::TeeTooOld
        )
    }

    fn of_tee(e: &TeeError) -> Self {
        use FailureCode as C;
        match e {
            TeeError::Malformed(_) => C::TeeMalformed,
            TeeError::Referenced(_) => C::TeeEvidenceReferenced,
            TeeError::ReferenceMismatch { .. } => C::TeeReferenceMismatch,
            TeeError::SimulatedNotAllowed => C::TeeSimulatedNotAllowed,
            TeeError::PlatformNotAllowed { .. } => C::TeePlatformNotAllowed,
            TeeError::TypeMismatch { .. } => C::TeeTypeMismatch,
            TeeError::Authenticity { .. } => C::TeeNotAuthentic,
            TeeError::Expired { .. } => C::TeeExpired,
            TeeError::Debug { .. } => C::TeeDebugMode,
            TeeError::MeasurementMismatch { .. } => C::TeeMeasurementMismatch,
            TeeError::MeasurementUnknown { .. } => C::TeeMeasurementUnknown,
            TeeError::TcbStatus { .. } => C::TeeTcbStatus,
            TeeError::FromTheFuture { .. } => C::TeeFromTheFuture,
            TeeError::TooOld { .. } => C::TeeTooOld,
            TeeError::KeyMismatch { .. } => C::TeeKeyMismatch,
            TeeError::NonceMismatch { .. } => C::TeeNonceMismatch,
            TeeError::Binding(_) => C::TeeBinding,
            TeeError::Receipt(_) => C::TeeReceipt,
            TeeError::Unavailable(_) | TeeError::Producer(_) => C::Internal,
        }
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VerifyError {
    /// The stable code of this failure.
    pub fn code(&self) -> FailureCode {
        use FailureCode as C;
        match self {
            VerifyError::Format(_) => C::NotABundle,
            VerifyError::ChatFormat(_) => C::NotAChatBundle,
            VerifyError::ChatReceiptInvalid(_) => C::ChatReceiptInvalid,
            VerifyError::NotForChat(_) => C::InvalidArgument,
            VerifyError::RequestInvalid(_) => C::RequestInvalid,
            VerifyError::ResponseInvalid(_) => C::ResponseInvalid,
            VerifyError::ResponseMismatch { field, .. } => match field {
                ResponseField::Completion => C::CompletionMismatch,
                ResponseField::FinishReason => C::FinishReasonMismatch,
                ResponseField::Usage => C::UsageMismatch,
                ResponseField::Model => C::ResponseModelMismatch,
            },
            VerifyError::TokenCount { .. } => C::TokensMismatch,
            VerifyError::Chain(e) => match e {
                ChainError::Malformed { .. } => C::StreamChunkMalformed,
                ChainError::Gap { .. } => C::StreamChunkMissing,
                ChainError::Behind { .. } => C::StreamChunkOutOfOrder,
                ChainError::Broken { .. } | ChainError::HeadMismatch { .. } => C::StreamChainBroken,
                ChainError::StartMismatch => C::StreamStartMismatch,
                ChainError::Truncated { .. } => C::StreamTruncated,
                ChainError::TooLong { .. } => C::StreamTooLong,
                ChainError::NotStreamed => C::StreamNotCommitted,
            },
            VerifyError::ReceiptVersion(_) => C::UnsupportedReceiptVersion,
            VerifyError::MissingSignature => C::SignatureMissing,
            VerifyError::Signature(s) => match s {
                SignatureError::UnsupportedAlg(_) => C::SignatureAlgorithmUnsupported,
                SignatureError::Malformed => C::SignatureMalformed,
                SignatureError::BadKey(_) => C::NodeKeyInvalid,
                SignatureError::Mismatch(_) => C::SignatureInvalid,
                SignatureError::Untrusted { .. } => C::SignerUntrusted,
            },
            VerifyError::UncheckedTier(_) => C::TierUncheckable,
            VerifyError::Tee(t) => FailureCode::of_tee(t),
            VerifyError::NoTime => C::VerificationTimeMissing,
            VerifyError::NoConfig => C::ConfigNotInReceipt,
            VerifyError::BadConfig(_) => C::ConfigInvalid,
            VerifyError::Log(l) => match l {
                OfflineError::Missing | OfflineError::NoProof { .. } => C::LogProofMissing,
                OfflineError::Threshold { .. } | OfflineError::ImpossibleThreshold { .. } => {
                    C::LogWitnessesInsufficient
                }
                _ => C::LogProofInvalid,
            },
            VerifyError::MissingZkEvidence => C::ZkEvidenceMissing,
            VerifyError::Zk(_) => C::ZkProofInvalid,
            VerifyError::Required { .. } => C::TierNotProven,
            VerifyError::DigestMismatch { what, .. } => match *what {
                crate::MODEL_FILE => C::ModelMismatch,
                crate::INPUT_FILE => C::InputsMismatch,
                crate::CONFIGURATION => C::ConfigMismatch,
                crate::chat::REQUEST_FILE => C::RequestMismatch,
                crate::chat::PROMPT_TOKENS | crate::chat::COMPLETION_TOKENS => C::TokensMismatch,
                _ => C::OutputsMismatch,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_names_are_the_documented_ones() {
        for c in [
            FailureCode::NotABundle,
            FailureCode::TeeNotAuthentic,
            FailureCode::TeeExpired,
            FailureCode::ModelMismatch,
            FailureCode::InvalidArgument,
        ] {
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::Value::String(c.as_str().into()))
            );
        }
    }

    #[test]
    fn chat_codes_are_serialised_as_documented() {
        let doc = include_str!("../../../docs/verify.md");
        use FailureCode as C;
        for c in [
            C::NotAChatBundle,
            C::ChatReceiptInvalid,
            C::RequestInvalid,
            C::RequestMismatch,
            C::ResponseInvalid,
            C::CompletionMismatch,
            C::FinishReasonMismatch,
            C::UsageMismatch,
            C::ResponseModelMismatch,
            C::TokensMismatch,
            C::StreamChunkMalformed,
            C::StreamChunkMissing,
            C::StreamChunkOutOfOrder,
            C::StreamChainBroken,
            C::StreamStartMismatch,
            C::StreamTruncated,
            C::StreamTooLong,
            C::StreamNotCommitted,
        ] {
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::Value::String(c.as_str().into()))
            );
            assert!(
                doc.contains(&format!("| `{c}` |")),
                "{c} is not in docs/verify.md"
            );
        }
    }

    #[test]
    fn tee_codes_are_vouch_attests_names() {
        use vouch_attest::tee::Platform;
        let p = Platform::AwsNitro;
        let s = String::new;
        for e in [
            TeeError::Malformed(s()),
            TeeError::SimulatedNotAllowed,
            TeeError::Authenticity {
                platform: p,
                reason: s(),
            },
            TeeError::Expired {
                platform: p,
                reason: s(),
            },
            TeeError::Debug {
                platform: p,
                reason: s(),
            },
            TeeError::TcbStatus {
                platform: p,
                status: s(),
                advisories: s(),
                accepted: s(),
            },
            TeeError::TooOld {
                evidence_time: s(),
                age_secs: 1,
                max_secs: 0,
            },
            TeeError::Binding(s()),
            TeeError::Receipt(s()),
        ] {
            let c = FailureCode::of_tee(&e);
            assert_eq!(c.as_str(), e.code(), "{e:?}");
            assert_eq!(c.is_below_policy(), e.is_below_policy(), "{e:?}");
        }
    }
}
