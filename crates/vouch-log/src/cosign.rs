//! Witness cosignatures, C2SP `tlog-cosignature` version `cosignature/v1` (Ed25519).
//!
//! A cosignature is a note signature line on a checkpoint whose key ID uses type byte 0x04 and
//! whose signature bytes are `timestamp (u64 big-endian) ‖ Ed25519 signature` over
//!
//! ```text
//! cosignature/v1\ntime <timestamp>\n<checkpoint note text>
//! ```
//!
//! It states that, at `timestamp`, the witness had verified this checkpoint to be consistent
//! with everything it had seen of the log before.

use ed25519_dalek::{Signature, SigningKey};
use std::sync::Arc;

use crate::checkpoint::{NoteError, NoteKey, NoteSignature, RawSigner, SignedNote};

/// Signature type byte of Ed25519 cosignature/v1 keys.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Timestamps above 2^63 − 1 are invalid (C2SP tlog-cosignature).
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// A witness's public key for cosignature/v1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey(pub(crate) NoteKey);

impl WitnessKey {
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        NoteKey::new(name, ALG_COSIGNATURE_V1, public_key).map(WitnessKey)
    }

    /// Parses `name+keyid+base64(0x04 ‖ key)`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        NoteKey::parse_with_alg(
            vkey.trim(),
            ALG_COSIGNATURE_V1,
            "not a cosignature/v1 key (type byte 0x04)",
        )
        .map(WitnessKey)
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    pub fn key_id(&self) -> u32 {
        self.0.key_id()
    }

    pub fn to_vkey(&self) -> String {
        self.0.to_vkey()
    }

    /// Whether a signature line claims to be by this witness (name and key ID match).
    pub fn claims(&self, sig: &NoteSignature) -> bool {
        self.0.matches(sig)
    }

    /// Verifies `sig` as this witness's cosignature on the checkpoint note text `text`.
    pub fn verify(&self, text: &[u8], sig: &NoteSignature) -> Result<Cosignature, CosignError> {
        let c = Cosignature::from_note_signature(sig)?;
        if !self.claims(sig) {
            return Err(CosignError::WrongKey {
                witness: self.name().to_string(),
            });
        }
        let msg = cosigned_message(c.timestamp, text);
        self.0
            .verifying_key()
            .verify_strict(&msg, &Signature::from_bytes(&c.signature))
            .map_err(|_| CosignError::BadSignature {
                witness: self.name().to_string(),
            })?;
        Ok(c)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignError {
    #[error("cosignature line is malformed: {0}")]
    Malformed(&'static str),
    #[error("cosignature by witness {witness} does not verify (forged, or for another checkpoint)")]
    BadSignature { witness: String },
    #[error("signature line is not by witness {witness}")]
    WrongKey { witness: String },
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A parsed (not yet verified) cosignature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    pub witness: String,
    pub key_id: u32,
    /// POSIX seconds at which the witness signed.
    pub timestamp: u64,
    pub signature: [u8; 64],
}

impl Cosignature {
    pub fn from_note_signature(sig: &NoteSignature) -> Result<Self, CosignError> {
        if sig.sig.len() != 8 + 64 {
            return Err(CosignError::Malformed(
                "cosignature/v1 signatures are 72 bytes (timestamp, Ed25519)",
            ));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&sig.sig[..8]);
        let timestamp = u64::from_be_bytes(ts);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignError::Malformed("timestamp above 2^63-1"));
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&sig.sig[8..]);
        Ok(Cosignature {
            witness: sig.name.clone(),
            key_id: sig.key_id,
            timestamp,
            signature,
        })
    }

    pub fn parse_line(line: &str) -> Result<Self, CosignError> {
        Self::from_note_signature(&NoteSignature::parse_line(line)?)
    }

    pub fn to_note_signature(&self) -> NoteSignature {
        let mut sig = self.timestamp.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.signature);
        NoteSignature {
            name: self.witness.clone(),
            key_id: self.key_id,
            sig,
        }
    }

    /// The note signature line, ending in a newline.
    pub fn to_line(&self) -> String {
        self.to_note_signature().to_line()
    }
}

/// The exact bytes a cosignature/v1 signs.
pub fn cosigned_message(timestamp: u64, checkpoint_text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(checkpoint_text);
    m
}

/// Produces cosignatures (a witness, or a log that cosigns its own checkpoints for tests).
#[derive(Clone)]
pub struct Cosigner {
    key: WitnessKey,
    signer: Arc<dyn RawSigner>,
}

impl Cosigner {
    pub fn new(name: &str, signer: Arc<dyn RawSigner>) -> Result<Self, NoteError> {
        Ok(Cosigner {
            key: WitnessKey::new(name, signer.public_key())?,
            signer,
        })
    }

    pub fn from_signing_key(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        Self::new(name, Arc::new(key))
    }

    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Cosigns the checkpoint note text at `timestamp` (POSIX seconds).
    pub fn cosign(
        &self,
        checkpoint_text: &[u8],
        timestamp: u64,
    ) -> Result<Cosignature, CosignError> {
        if timestamp > MAX_TIMESTAMP || timestamp == 0 {
            return Err(CosignError::Malformed("timestamp must be in 1..2^63"));
        }
        let signature = self
            .signer
            .sign(&cosigned_message(timestamp, checkpoint_text));
        Ok(Cosignature {
            witness: self.key.name().to_string(),
            key_id: self.key.key_id(),
            timestamp,
            signature,
        })
    }
}

/// A cosignature that verified under a trusted witness key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WitnessedBy {
    pub witness: String,
    pub timestamp: u64,
}

/// Verifies the cosignatures of `trusted` witnesses on a signed checkpoint note. Signatures by
/// unknown keys are ignored (as signed-note requires); a line that claims a trusted witness's
/// name and key ID but does not verify is an error, never silently skipped.
pub fn verify_cosignatures(
    note: &SignedNote,
    trusted: &[WitnessKey],
) -> Result<Vec<WitnessedBy>, CosignError> {
    let mut out: Vec<WitnessedBy> = Vec::new();
    for w in trusted {
        for sig in note.signatures.iter().filter(|s| w.claims(s)) {
            let c = w.verify(&note.text, sig)?;
            if !out.iter().any(|o| o.witness == w.name()) {
                out.push(WitnessedBy {
                    witness: w.name().to_string(),
                    timestamp: c.timestamp,
                });
            }
        }
    }
    Ok(out)
}
