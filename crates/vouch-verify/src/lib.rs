//! Offline verification of receipt bundles: the library `vouch verify` runs and other programs
//! can embed.
//!
//! It checks what a bundle claims against what the verifier holds (a trusted node key, the
//! model file, the inputs, the outputs) and reports exactly what was proven and what was not.
//! It must stay light: no async runtime, no network, no database, no inference engine — only
//! `vouch-core` and the verifier halves of the evidence crates. Re-execution (`vouch replay`)
//! is deliberately elsewhere, because it needs an engine. It has no clock either: checking
//! `tee` evidence needs the caller to pass the verification time.
//!
//! Chat bundles (`vouch.chat-bundle.v1`) have their own entry points in `chat.rs`:
//! [`verify_chat_bundle`] for an answer held whole, [`StreamVerifier`] for a streamed one,
//! checked chunk by chunk as it arrives.
//!
//! Each tier a receipt claims is checked and reported separately ([`TierReport`]): what it
//! proved and under which trust assumption; a tier this verifier cannot check fails the whole
//! bundle rather than being reported as verified.

use std::time::SystemTime;

use serde::Serialize;
use vouch_attest::tee::{TeeError, TeeEvidence, TeeOptions, TeePolicy, verify_bundle_tee};
use vouch_attest::{SignatureError, verify_receipt_signature};
use vouch_core::{BUNDLE_FORMAT, Bundle, Digest, NodeKey, RECEIPT_VERSION, TensorMap, Tier};

mod chat;
mod code;
mod zk;

pub use chat::{ChainError, ResponseField, StreamVerifier, bundle_in_response, verify_chat_bundle};
pub use code::FailureCode;

/// The names `DigestMismatch::what` takes for the caller's files (their codes differ).
const MODEL_FILE: &str = "model file";
const INPUT_FILE: &str = "input file";
const CONFIGURATION: &str = "configuration";

/// What the verifier holds besides the bundle. Everything is optional; each item given adds a
/// check, and each missing one is named in the report as not proven.
#[derive(Default)]
pub struct Evidence<'a> {
    /// The node key the verifier trusts; without it, a valid signature proves only that *some*
    /// key signed.
    pub trusted_key: Option<NodeKey>,
    pub model_bytes: Option<&'a [u8]>,
    pub inputs: Option<&'a TensorMap>,
    pub outputs: Option<&'a TensorMap>,
    /// Evidence envelopes for receipts that reference their `tee` evidence by digest.
    pub tee_supplied: &'a [TeeEvidence],
    /// Expected measurements, accepted platforms and TCB levels for `tee` evidence.
    pub tee_policy: TeePolicy,
    /// Accept simulated TEE evidence (development only; it proves nothing about hardware).
    pub allow_simulated: bool,
    /// When to judge time-bound evidence (certificates, collateral); needed for `tee`.
    pub at_time: Option<SystemTime>,
    /// The transparency log (and witnesses) the verifier trusts. Given, the bundle must carry
    /// an inclusion proof of its receipt under a checkpoint that policy accepts.
    pub log_trust: Option<vouch_log::TrustPolicy>,
    /// The model configuration (system prompt, generation settings) the verifier expects.
    pub config: Option<&'a serde_json::Value>,
    /// The verifying-key digest the model's registry entry shows (`GET /v1/models/...`, `zk`):
    /// when given, a zk proof must use exactly that key.
    pub zk_vk_digest: Option<Digest>,
    /// Tiers the caller demands: the bundle fails unless each was checked and holds (a pending
    /// zk proof, or one not checked for lack of the model file, does not count).
    pub require: Vec<Tier>,
}

/// What one tier of the receipt established.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TierReport {
    pub tier: Tier,
    /// What was proven, in words.
    pub proven: String,
    /// What a reader must trust for that to hold.
    pub trust_assumption: String,
    /// True for development-only evidence (simulated TEE).
    pub simulated: bool,
}

/// One passed check, in words.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub detail: String,
}

/// A bundle that passed every check it could be given, with what that establishes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per tier the receipt claims, what it proved and under which trust assumption.
    pub tiers: Vec<TierReport>,
    pub proven: Vec<Finding>,
    pub not_proven: Vec<String>,
    /// One line: the strongest statement the checks support.
    pub summary: String,
}

/// Why a bundle failed; [`VerifyError::code`] gives its stable machine code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a Vouch bundle: format is {0:?}, expected \"vouch.bundle.v1\"")]
    Format(String),
    #[error("not a Vouch chat bundle: format is {0:?}, expected \"vouch.chat-bundle.v1\"")]
    ChatFormat(String),
    #[error("the chat receipt contradicts itself: {0}")]
    ChatReceiptInvalid(String),
    #[error("{0} does not apply to a chat bundle")]
    NotForChat(&'static str),
    #[error("the request file has no request digest: {0}")]
    RequestInvalid(String),
    #[error("the response is not a chat completion this verifier can read: {0}")]
    ResponseInvalid(String),
    #[error(
        "the response's {field} does not match the receipt: receipt says {receipt}, response has {response}"
    )]
    ResponseMismatch {
        field: ResponseField,
        receipt: String,
        response: String,
    },
    #[error("the bundle carries {ids} {what} but the receipt's usage counts {usage}")]
    TokenCount {
        what: &'static str,
        ids: usize,
        usage: u32,
    },
    /// A streamed answer's chunks are not the chain the receipt commits to (names the chunk).
    #[error("{0}")]
    Chain(#[from] ChainError),
    #[error("receipt version {0} is not supported by this verifier (it knows version 1)")]
    ReceiptVersion(u32),
    #[error("the receipt lists the signed tier but the bundle carries no signature")]
    MissingSignature,
    #[error("signature check failed: {0}")]
    Signature(#[from] SignatureError),
    #[error(
        "the receipt lists the {0} tier, whose evidence this verifier cannot check yet: refusing to report it as verified"
    )]
    UncheckedTier(Tier),
    #[error("tee tier: {0}")]
    Tee(#[from] TeeError),
    #[error("checking tee evidence needs a verification time (Evidence::at_time)")]
    NoTime,
    #[error(
        "a configuration was given but the receipt names none: the node ran the model unconfigured"
    )]
    NoConfig,
    #[error("the configuration given has no canonical JSON form: {0}")]
    BadConfig(String),
    #[error("transparency log: {0}")]
    Log(#[from] vouch_log::evidence::OfflineError),
    #[error(
        "the receipt lists the zk tier but the bundle carries neither a proof (evidence.zk) nor a proof job (evidence.zk_job)"
    )]
    MissingZkEvidence,
    /// A zk proof that does not check out (the message starts with "zk:").
    #[error("{0}")]
    Zk(String),
    #[error("the {tier} tier is required but not proven: {why}")]
    Required { tier: Tier, why: String },
    #[error(
        "{what} does not match the receipt: receipt says {expected}, {what} hashes to {actual}"
    )]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
}

/// Checks `bundle`, failing at the first discrepancy with a precise reason.
pub fn verify_bundle(bundle: &Bundle, ev: &Evidence<'_>) -> Result<Report, VerifyError> {
    let r = &bundle.receipt;
    if bundle.format != BUNDLE_FORMAT {
        return Err(VerifyError::Format(
            bundle.format.chars().take(64).collect(),
        ));
    }
    if r.version != RECEIPT_VERSION {
        return Err(VerifyError::ReceiptVersion(r.version));
    }
    let claims_zk = r.tiers.contains(&Tier::Zk);
    if claims_zk && !bundle.evidence.contains_key("zk") && !bundle.evidence.contains_key("zk_job") {
        return Err(VerifyError::MissingZkEvidence);
    }
    let mut proven = Vec::new();
    let mut not_proven = Vec::new();
    let mut tiers = Vec::new();
    let claims_tee = r.tiers.contains(&Tier::Tee);

    match (&bundle.signature, r.tiers.contains(&Tier::Signed)) {
        (None, true) => return Err(VerifyError::MissingSignature),
        (None, false) => {
            not_proven.push("who produced this receipt: it is unsigned (tiers [])".to_string())
        }
        (Some(sig), _) => {
            verify_receipt_signature(r, sig, ev.trusted_key.as_ref())?;
            let trust = if ev.trusted_key.is_some() {
                "the key you trust"
            } else {
                "a key you did not pin (pass --trust-key)"
            };
            proven.push(Finding {
                check: "signature",
                detail: format!("node {} signed this receipt ({trust})", r.node_key),
            });
            if r.tiers.contains(&Tier::Signed) {
                tiers.push(TierReport {
                    tier: Tier::Signed,
                    proven: format!("node key {} signed this receipt ({trust})", r.node_key),
                    trust_assumption: "the node's operator: whoever holds that key".into(),
                    simulated: false,
                });
            }
        }
    }

    let mut tee_summary = None;
    if claims_tee {
        let at_time = ev.at_time.ok_or(VerifyError::NoTime)?;
        let options = TeeOptions {
            at_time,
            allow_simulated: ev.allow_simulated,
            expected_nonce: None,
        };
        let verdict = verify_bundle_tee(bundle, ev.tee_supplied, &ev.tee_policy, &options)?;
        let (finding, tier) = tee_findings(&verdict, "receipt");
        proven.push(finding);
        tiers.push(tier);
        tee_summary = Some(verdict.summary());
    }

    log_check(bundle, ev, &mut proven, &mut not_proven)?;

    let mut digest_check = |what: &'static str,
                            expected: Digest,
                            actual: Option<Digest>,
                            missing: &str| {
        match actual {
            Some(a) if a == expected => {
                proven.push(Finding {
                    check: what,
                    detail: format!("{what} hashes to the receipt's {expected}"),
                });
                Ok(())
            }
            Some(a) => Err(VerifyError::DigestMismatch {
                what,
                expected,
                actual: a,
            }),
            None => {
                not_proven.push(missing.to_string());
                Ok(())
            }
        }
    };
    digest_check(
        "bundled outputs",
        r.output_digest,
        bundle.outputs.as_ref().map(TensorMap::digest),
        "the outputs' values: the bundle does not carry them",
    )?;
    digest_check(
        MODEL_FILE,
        r.model.0,
        ev.model_bytes.map(Digest::of),
        "which model file this is: pass --model to compare it with the receipt's model digest",
    )?;
    digest_check(
        INPUT_FILE,
        r.input_digest,
        ev.inputs.map(TensorMap::digest),
        "which inputs were used: pass --inputs to compare them with the receipt's input digest",
    )?;
    digest_check(
        "output file",
        r.output_digest,
        ev.outputs.map(TensorMap::digest),
        "your copy of the outputs: pass --outputs to compare it",
    )?;
    match (r.config_digest, ev.config) {
        (None, Some(_)) => return Err(VerifyError::NoConfig),
        (Some(expected), Some(c)) => {
            let actual = vouch_core::config_digest(c).map_err(VerifyError::BadConfig)?;
            digest_check(CONFIGURATION, expected, Some(actual), "")?;
        }
        (Some(d), None) => not_proven.push(format!(
            "which configuration (system prompt, settings) was in force: the receipt names {d}; pass --config (GET /v1/models/{{model}}/config, or the log's config-changed entry)"
        )),
        (None, None) => {}
    }
    // After the digest checks, so a wrong model file or input is named as such first.
    let zk_outcome = if claims_zk {
        zk::check(bundle, ev)?
    } else {
        zk::Outcome::NotClaimed
    };
    match &zk_outcome {
        zk::Outcome::Proven(v) => {
            proven.push(Finding {
                check: "zk",
                detail: format!(
                    "zk proof checked with verifying key {} {}{}",
                    v.vk_digest,
                    if ev.model_bytes.is_some() {
                        "recomputed from the model file"
                    } else {
                        "carried by the bundle"
                    },
                    if ev.zk_vk_digest.is_some() {
                        " (the registry's key, as you pinned it)"
                    } else {
                        ""
                    }
                ),
            });
            tiers.push(TierReport {
                tier: Tier::Zk,
                proven: v.statement.clone(),
                trust_assumption: zk::trust(v, ev.model_bytes.is_some()),
                simulated: false,
            });
        }
        zk::Outcome::NotProven(why) => not_proven.push(why.clone()),
        zk::Outcome::NotClaimed => {}
    }
    for t in &ev.require {
        if tiers.iter().any(|r| r.tier == *t) {
            continue;
        }
        let why = match (&zk_outcome, t) {
            (zk::Outcome::NotProven(w), Tier::Zk) => w.clone(),
            _ => format!("the receipt does not carry the {t} tier"),
        };
        return Err(VerifyError::Required { tier: *t, why });
    }
    if let zk::Outcome::Proven(_) = &zk_outcome {
        not_proven.push(
            "that the float engine's output is bit-exact: the proof covers the fixed-point model, and the bundle's outputs lie within the stated tolerance of it".into(),
        );
    } else {
        not_proven.push(if claims_tee {
        "that the model really produced these outputs: the tee tier vouches for the measured code's word; check by re-execution with `vouch replay`".into()
    } else {
        "that the model really produced these outputs: a signature only vouches for the node's word; check by re-execution with `vouch replay`".into()
    });
    }

    let summary = if let zk::Outcome::Proven(_) = &zk_outcome {
        "zk: proven that the registered model (in fixed point) maps the committed input to these outputs".to_string()
    } else if let Some(s) = tee_summary {
        s
    } else if bundle.signature.is_some() {
        "signature only: trusts the node".to_string()
    } else {
        "unsigned: integrity of the given files only".to_string()
    };
    Ok(Report {
        tiers,
        proven,
        not_proven,
        summary,
    })
}

/// The receipt is in the transparency log: checked against the trusted log key (and witnesses)
/// when the verifier gives them, otherwise named as not proven.
fn log_check(
    bundle: &Bundle,
    ev: &Evidence<'_>,
    proven: &mut Vec<Finding>,
    not_proven: &mut Vec<String>,
) -> Result<(), VerifyError> {
    let Some(policy) = &ev.log_trust else {
        not_proven.push(match bundle.evidence.get(vouch_log::evidence::BUNDLE_EVIDENCE_KEY) {
            Some(_) => "that the receipt is in the public log: pass --log-key (and --witness) to check its inclusion proof".into(),
            None => "that the receipt is in a transparency log: the bundle carries no log evidence".into(),
        });
        return Ok(());
    };
    let v = vouch_log::verify_bundle_log(bundle, policy)?;
    proven.push(log_finding(&v));
    Ok(())
}

/// What verified `tee` evidence establishes, for either receipt kind (`what` names it).
fn tee_findings(verdict: &vouch_attest::tee::TeeVerdict, what: &str) -> (Finding, TierReport) {
    (
        Finding {
            check: "tee",
            detail: format!(
                "{} evidence binds node key {} to measured code",
                verdict.platform, verdict.node_key
            ),
        },
        TierReport {
            tier: Tier::Tee,
            proven: format!(
                "code measured as {} holds node key {}, which signed this {what}",
                verdict
                    .measurements
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                verdict.node_key
            ),
            trust_assumption: verdict.trust_assumption.clone(),
            simulated: verdict.is_simulated(),
        },
    )
}

/// What a verified inclusion proof establishes.
fn log_finding(v: &vouch_log::InclusionVerified) -> Finding {
    let witnessed = if v.witnesses.is_empty() {
        String::new()
    } else {
        format!(
            ", cosigned by {}",
            v.witnesses
                .iter()
                .map(|w| w.witness.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Finding {
        check: "log",
        detail: format!(
            "the receipt is entry {} of log {} under its signed checkpoint of size {}{witnessed}: \
             anyone auditing that log sees it",
            v.index, v.origin, v.tree_size
        ),
    }
}
