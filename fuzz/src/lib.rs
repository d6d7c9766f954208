//! What the fuzz targets share: the fixed keys and time their seeds are made with, a sample
//! bundle as a node makes it (signed, simulated `tee`, log inclusion proof under a signed and
//! cosigned checkpoint), invariant checks used by more than one target, and the seed writer.
//!
//! Seeds: every target writes its own seeds when run with `VOUCH_FUZZ_WRITE_SEEDS=<dir>` (it
//! writes them there and exits before fuzzing); `docs/fuzzing.md` says how the committed corpora
//! were made.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use vouch_attest::NodeSigner;
use vouch_attest::tee::simulated::SimulatedProducer;
use vouch_core::{
    BUNDLE_FORMAT, Bundle, EngineInfo, ExecProfile, ModelDigest, PaymentRef, RECEIPT_VERSION,
    Receipt, Tensor, TensorMap, Tier,
};
use vouch_log::checkpoint::LogSigner;
use vouch_log::cosign::Cosigner;
use vouch_log::entry::receipt_entry_bytes;
use vouch_log::merkle::{Hash, leaf_hash, node_hash};
use vouch_log::{LogEvidence, TlogProof, TrustPolicy};

/// 2026-11-25T00:00:00Z: the verification time every time-bound check in the targets uses.
pub const AT_UNIX: u64 = 1_795_564_800;

pub fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(AT_UNIX)
}

pub const LOG_ORIGIN: &str = "fuzz.vouch.invalid/log";
pub const WITNESS_NAME: &str = "fuzz.vouch.invalid/witness";

pub fn node_signer() -> NodeSigner {
    NodeSigner::from_seed([0x4e; 32])
}

pub fn log_signer() -> LogSigner {
    LogSigner::from_signing_key(LOG_ORIGIN, SigningKey::from_bytes(&[0x4c; 32]))
        .expect("a valid origin")
}

pub fn cosigner() -> Cosigner {
    Cosigner::from_signing_key(WITNESS_NAME, SigningKey::from_bytes(&[0x57; 32]))
        .expect("a valid witness name")
}

/// The log key and the one witness the sample checkpoints are signed and cosigned by.
pub fn trust_policy() -> TrustPolicy {
    TrustPolicy {
        log: log_signer().key().clone(),
        witnesses: vec![cosigner().key().clone()],
        threshold: 1,
    }
}

/// A file of this repository (seed generation only: targets never read files while fuzzing).
pub fn repo_file(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// The models this repository ships (`models/*.onnx`), as seeds.
pub fn shipped_models() -> Vec<(String, Vec<u8>)> {
    ["mlp_small", "multi_io", "cnn", "mlp"]
        .iter()
        .map(|m| (format!("{m}.onnx"), repo_file(&format!("models/{m}.onnx"))))
        .collect()
}

/// Runs `make` and writes its seeds to `$VOUCH_FUZZ_WRITE_SEEDS`, then exits, if that is set;
/// otherwise returns at once. Called from each target's `init`.
pub fn write_seeds_if_asked(make: impl FnOnce() -> Vec<(String, Vec<u8>)>) {
    let Some(dir) = std::env::var_os("VOUCH_FUZZ_WRITE_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create the seed directory");
    let seeds = make();
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
    eprintln!("wrote {} seeds to {}", seeds.len(), dir.display());
    std::process::exit(0);
}

/// The sample model's inputs and outputs (`models/mlp_small.*`).
pub fn sample_tensors() -> (TensorMap, TensorMap) {
    let parse = |f: &str| serde_json::from_slice(&repo_file(f)).expect("a shipped tensor file");
    (
        parse("models/mlp_small.input.json"),
        parse("models/mlp_small.output.json"),
    )
}

pub fn sample_receipt(tiers: Vec<Tier>) -> Receipt {
    let (inputs, outputs) = sample_tensors();
    Receipt {
        version: RECEIPT_VERSION,
        request_id: "019ab1c2-0000-7000-8000-00000000f022".into(),
        model: ModelDigest::of_model_bytes(&repo_file("models/mlp_small.onnx")),
        model_ref: Some("mlp-small@1".into()),
        input_digest: inputs.digest(),
        output_digest: outputs.digest(),
        engine: EngineInfo {
            name: "tract".into(),
            version: "0.23.9".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        config_digest: None,
        tiers,
        node_key: node_signer().public_key(),
        issued_at: "2026-11-24T23:59:00.000Z".into(),
        payment: Some(PaymentRef {
            scheme: "exact".into(),
            network: "eip155:84532".into(),
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            amount: "10000".into(),
            payer: "0x857b06519E91e3A54538791bDbb0E22373e36b66".into(),
            settlement: "ledger:1".into(),
        }),
    }
}

/// A tree of three leaves whose last is `entry`: its checkpoint, signed by the log and cosigned
/// by the witness at [`AT_UNIX`], and the inclusion proof of index 2.
pub fn sample_proof(entry: &[u8]) -> TlogProof {
    let l0 = leaf_hash(b"vouch-log/v1 fuzz entry 0\n");
    let l1 = leaf_hash(b"vouch-log/v1 fuzz entry 1\n");
    let left = node_hash(l0, l1);
    let root = node_hash(left, leaf_hash(entry));
    TlogProof {
        extra: None,
        index: 2,
        hashes: vec![left],
        checkpoint: cosigned_checkpoint(3, root),
    }
}

/// The signed note of checkpoint `(size, root)` with the witness's cosignature appended.
pub fn cosigned_checkpoint(size: u64, root: Hash) -> Vec<u8> {
    let mut note = log_signer().sign(size, root);
    let text_len = note
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a signed note has a blank line")
        + 1;
    let cosig = cosigner()
        .cosign(&note[..text_len], AT_UNIX)
        .expect("a valid timestamp");
    note.extend_from_slice(cosig.to_line().as_bytes());
    note
}

/// A bundle as a node answers it: signed, with simulated `tee` evidence bound to the node key
/// and a log inclusion proof. `tiers` must include `signed` for the signature to count.
pub fn sample_bundle(tiers: Vec<Tier>) -> Bundle {
    let receipt = sample_receipt(tiers);
    let node = node_signer();
    let tee = SimulatedProducer::with_measurement([0x5a; 48])
        .attest_at(&node.public_key(), None, at() - Duration::from_secs(60))
        .expect("simulated evidence");
    let proof = sample_proof(&receipt_entry_bytes(&receipt));
    let mut evidence = std::collections::BTreeMap::new();
    evidence.insert("tee".to_string(), tee.to_json());
    evidence.insert("log".to_string(), LogEvidence::new(&proof).to_json());
    Bundle {
        format: BUNDLE_FORMAT.into(),
        signature: Some(node.sign_receipt(&receipt)),
        outputs: Some(sample_tensors().1),
        evidence,
        receipt,
    }
}

/// A tensor that parsed: its shape and data agree, and it survives the wire form (numbers or
/// base64, whichever it serialises to) with the same digest, dtype and shape.
pub fn check_tensor(t: &Tensor) {
    assert_eq!(
        vouch_core::tensor::element_count(t.shape()),
        t.len() as u128,
        "a parsed tensor's shape and data agree"
    );
    let wire = serde_json::to_vec(t).expect("a tensor serialises");
    let again: Tensor = serde_json::from_slice(&wire).expect("a serialised tensor parses");
    assert_eq!(again.dtype(), t.dtype());
    assert_eq!(again.shape(), t.shape());
    assert_eq!(again.digest(), t.digest(), "the wire form keeps the digest");
    assert_eq!(
        serde_json::to_vec(&again).expect("a tensor serialises"),
        wire,
        "serialisation is a fixed point"
    );
}

/// As [`check_tensor`] for a map, and the map's digest survives its own wire form.
pub fn check_tensor_map(m: &TensorMap) {
    for (_, t) in m.iter() {
        check_tensor(t);
    }
    let wire = serde_json::to_vec(m).expect("a tensor map serialises");
    let again: TensorMap = serde_json::from_slice(&wire).expect("a serialised map parses");
    assert_eq!(again.digest(), m.digest());
    assert_eq!(again.total_elements(), m.total_elements());
}

/// A receipt that parsed: its canonical bytes parse back to it, are a fixed point, and hash to
/// its hash.
pub fn check_receipt(r: &Receipt) {
    let c = r.canonical_bytes();
    let again: Receipt = serde_json::from_slice(&c).expect("canonical bytes parse");
    assert_eq!(&again, r, "canonical bytes keep every field");
    assert_eq!(
        again.canonical_bytes(),
        c,
        "canonical bytes are a fixed point"
    );
    assert_eq!(r.hash(), vouch_core::Digest::of(&c));
    let wire = serde_json::to_vec(r).expect("a receipt serialises");
    let again: Receipt = serde_json::from_slice(&wire).expect("a serialised receipt parses");
    assert_eq!(&again, r);
}
