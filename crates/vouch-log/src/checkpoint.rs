//! Checkpoints (C2SP `tlog-checkpoint`) inside signed notes (C2SP `signed-note`), signed with
//! the log's Ed25519 key.
//!
//! Note parsing, key IDs and Ed25519 note signatures come from the `signed_note` crate (a port of
//! Go's `sumdb/note`); checkpoint body parsing is done here, strictly, so that an origin, size or
//! hash that any other implementation would read differently is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use std::sync::Arc;

use crate::merkle::Hash;

/// Signature type byte of plain Ed25519 note signatures (C2SP signed-note).
pub const ALG_ED25519: u8 = 0x01;

/// Largest signed note we parse (as Go's `sumdb/note`).
pub const MAX_NOTE_BYTES: usize = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("invalid verifier key {key:?}: {reason}")]
    BadKey { key: String, reason: &'static str },
    #[error("invalid key name {0:?}: names are non-empty and contain no spaces or '+'")]
    BadName(String),
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(String),
    #[error("checkpoint is for log {got:?}, expected {expected:?}")]
    WrongOrigin { expected: String, got: String },
    #[error("checkpoint has no signature by the trusted log key {key}")]
    NotSigned { key: String },
    #[error("signature by {key} on the checkpoint does not verify (forged or altered note)")]
    BadSignature { key: String },
    #[error("the signing function does not produce signatures for public key {0}")]
    SignerMismatch(String),
}

/// A signature produced by a key held elsewhere (the node's key file, an HSM).
pub trait RawSigner: Send + Sync {
    /// Ed25519 public key bytes.
    fn public_key(&self) -> [u8; 32];
    /// Ed25519 signature of `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

impl RawSigner for SigningKey {
    fn public_key(&self) -> [u8; 32] {
        self.verifying_key().to_bytes()
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        ed25519_dalek::Signer::sign(self, msg).to_bytes()
    }
}

/// Wraps a signing function such as `vouch_attest::NodeSigner::sign_raw`.
pub struct FnSigner<F> {
    public_key: [u8; 32],
    sign: F,
}

impl<F: Fn(&[u8]) -> [u8; 64] + Send + Sync> FnSigner<F> {
    /// Checks once that `sign` really signs for `public_key`, so a misconfigured key fails at
    /// startup instead of producing checkpoints nobody can verify.
    pub fn new(public_key: [u8; 32], sign: F) -> Result<Self, NoteError> {
        let shown = hex_key(&public_key);
        let vk = VerifyingKey::from_bytes(&public_key)
            .map_err(|_| NoteError::SignerMismatch(shown.clone()))?;
        let probe = b"vouch-log signer self-test\n";
        let sig = Signature::from_bytes(&sign(probe));
        vk.verify_strict(probe, &sig)
            .map_err(|_| NoteError::SignerMismatch(shown))?;
        Ok(FnSigner { public_key, sign })
    }
}

impl<F: Fn(&[u8]) -> [u8; 64] + Send + Sync> RawSigner for FnSigner<F> {
    fn public_key(&self) -> [u8; 32] {
        self.public_key
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        (self.sign)(msg)
    }
}

fn hex_key(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` may be a note key name (C2SP signed-note): non-empty, no spaces, no `+`.
pub fn valid_key_name(name: &str) -> bool {
    signed_note::is_key_name_valid(name)
}

/// A public note key: `name`, algorithm byte, key bytes, and the 32-bit key ID
/// `SHA-256(name ‖ "\n" ‖ alg ‖ key)[:4]`. Written as a C2SP verifier key, `name+id+base64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteKey {
    name: String,
    alg: u8,
    key: VerifyingKey,
    id: u32,
}

impl NoteKey {
    pub(crate) fn new(name: &str, alg: u8, public_key: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadName(name.chars().take(140).collect()));
        }
        let key = VerifyingKey::from_bytes(&public_key).map_err(|_| NoteError::BadKey {
            key: name.chars().take(140).collect(),
            reason: "not a valid Ed25519 public key",
        })?;
        let mut material = vec![alg];
        material.extend_from_slice(&public_key);
        Ok(NoteKey {
            name: name.to_string(),
            alg,
            key,
            id: signed_note::key_id(name, &material),
        })
    }

    /// Parses a verifier key `name+hex8+base64(alg ‖ key)` whose algorithm byte is `alg`.
    pub(crate) fn parse_with_alg(
        vkey: &str,
        alg: u8,
        what: &'static str,
    ) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::BadKey {
            key: vkey.chars().take(200).collect(),
            reason,
        };
        let (name, rest) = vkey
            .split_once('+')
            .ok_or_else(|| bad("expected name+keyid+base64"))?;
        let (id_hex, b64) = rest
            .split_once('+')
            .ok_or_else(|| bad("expected name+keyid+base64"))?;
        if id_hex.len() != 8 {
            return Err(bad("key ID must be 8 hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("key ID must be 8 hex digits"))?;
        let material = B64
            .decode(b64)
            .map_err(|_| bad("key material is not base64"))?;
        let (&got_alg, key) = material
            .split_first()
            .ok_or_else(|| bad("empty key material"))?;
        if got_alg != alg {
            return Err(bad(what));
        }
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| bad("Ed25519 keys are 32 bytes"))?;
        let k = NoteKey::new(name, alg, key)?;
        if k.id != id {
            return Err(bad(
                "key ID does not match name and key (wrong or altered key)",
            ));
        }
        Ok(k)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// C2SP verifier key text.
    pub fn to_vkey(&self) -> String {
        let mut material = vec![self.alg];
        material.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(material))
    }

    pub(crate) fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.id
    }
}

/// The log's public key: the name is the checkpoint origin, the algorithm plain Ed25519.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKey(pub(crate) NoteKey);

impl LogKey {
    pub fn new(origin: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        NoteKey::new(origin, ALG_ED25519, public_key).map(LogKey)
    }

    /// Parses `origin+keyid+base64(0x01 ‖ key)`, the form `vouch log key` prints.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        NoteKey::parse_with_alg(
            vkey.trim(),
            ALG_ED25519,
            "not an Ed25519 log key (type byte 0x01)",
        )
        .map(LogKey)
    }

    pub fn origin(&self) -> &str {
        self.0.name()
    }

    pub fn note_key(&self) -> &NoteKey {
        &self.0
    }

    pub fn to_vkey(&self) -> String {
        self.0.to_vkey()
    }
}

/// One parsed signature line of a note: `— name base64(keyid ‖ signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub sig: Vec<u8>,
}

impl NoteSignature {
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let s = signed_note::Signature::from_bytes(line.as_bytes())
            .map_err(|_| NoteError::Malformed("bad signature line"))?;
        Ok(NoteSignature {
            name: s.name().to_string(),
            key_id: s.id(),
            sig: s.signature().to_vec(),
        })
    }

    /// The line, ending in a newline.
    pub fn to_line(&self) -> String {
        let mut b = self.key_id.to_be_bytes().to_vec();
        b.extend_from_slice(&self.sig);
        format!("— {} {}\n", self.name, B64.encode(b))
    }
}

/// A signed note split into text and signature lines, without any verification yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    /// The text, ending in a newline.
    pub text: Vec<u8>,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses with `signed_note`'s rules (UTF-8, no control characters, at most 100 signatures).
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("note larger than 1 MB"));
        }
        let n = signed_note::Note::from_bytes(bytes).map_err(|_| {
            NoteError::Malformed("not a signed note (text, blank line, signature lines)")
        })?;
        // `Note` keeps its signatures private; re-read them from the encoded form, which
        // `from_bytes` has just validated line by line.
        let encoded = n.to_bytes();
        let text = n.text().to_vec();
        let sig_block = &encoded[text.len() + 1..];
        let sig_block = std::str::from_utf8(sig_block)
            .map_err(|_| NoteError::Malformed("signature block is not UTF-8"))?;
        let signatures = sig_block
            .lines()
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignedNote { text, signatures })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push(b'\n');
        for s in &self.signatures {
            out.extend_from_slice(s.to_line().as_bytes());
        }
        out
    }

    /// Verifies the Ed25519 note signature by `key`. Signatures by other keys are ignored, as
    /// the spec requires; a signature line that names `key` but does not verify is an error.
    pub fn verify_ed25519(&self, key: &NoteKey) -> Result<(), NoteError> {
        let mut found = false;
        for s in self.signatures.iter().filter(|s| key.matches(s)) {
            let sig: [u8; 64] = s
                .sig
                .as_slice()
                .try_into()
                .map_err(|_| NoteError::BadSignature { key: key.to_vkey() })?;
            key.verifying_key()
                .verify_strict(&self.text, &Signature::from_bytes(&sig))
                .map_err(|_| NoteError::BadSignature { key: key.to_vkey() })?;
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(NoteError::NotSigned { key: key.to_vkey() })
        }
    }
}

/// A checkpoint body: origin, tree size, root hash, optional extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Non-empty extension lines (without newlines); Vouch writes none.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn new(origin: &str, size: u64, root: Hash) -> Self {
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, self.root);
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a note text (ending in newline) strictly per C2SP tlog-checkpoint.
    pub fn parse_text(text: &[u8]) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::BadCheckpoint(m.to_string());
        let s = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        let body = s
            .strip_suffix('\n')
            .ok_or_else(|| bad("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("empty origin line"))?;
        let size_s = lines.next().ok_or_else(|| bad("missing tree size line"))?;
        let size: u64 = size_s
            .parse()
            .map_err(|_| bad("tree size is not a decimal number"))?;
        if size.to_string() != size_s {
            return Err(bad("tree size has leading zeroes or a sign"));
        }
        let root_s = lines.next().ok_or_else(|| bad("missing root hash line"))?;
        let root =
            Hash::from_base64(root_s).map_err(|_| bad("root hash is not base64 of 32 bytes"))?;
        if root.to_string() != root_s {
            return Err(bad("root hash is not in canonical base64"));
        }
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

/// A checkpoint whose log signature has been verified, with the note it came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: SignedNote,
}

/// Parses a signed checkpoint and verifies the log's signature on it.
pub fn verify_checkpoint(note_bytes: &[u8], log: &LogKey) -> Result<VerifiedCheckpoint, NoteError> {
    let note = SignedNote::parse(note_bytes)?;
    let checkpoint = Checkpoint::parse_text(&note.text)?;
    if checkpoint.origin != log.origin() {
        return Err(NoteError::WrongOrigin {
            expected: log.origin().to_string(),
            got: checkpoint.origin,
        });
    }
    note.verify_ed25519(log.note_key())?;
    Ok(VerifiedCheckpoint { checkpoint, note })
}

/// Signs checkpoints as the log.
#[derive(Clone)]
pub struct LogSigner {
    key: LogKey,
    signer: Arc<dyn RawSigner>,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner")
            .field("key", &self.key.to_vkey())
            .finish()
    }
}

impl LogSigner {
    /// `origin` names the log (e.g. `vouch.example.com/log`); it is the checkpoints' first line
    /// and the key name.
    pub fn new(origin: &str, signer: Arc<dyn RawSigner>) -> Result<Self, NoteError> {
        let key = LogKey::new(origin, signer.public_key())?;
        Ok(LogSigner { key, signer })
    }

    pub fn from_signing_key(origin: &str, key: SigningKey) -> Result<Self, NoteError> {
        Self::new(origin, Arc::new(key))
    }

    pub fn key(&self) -> &LogKey {
        &self.key
    }

    /// The signed note of the checkpoint `(size, root)`.
    pub fn sign(&self, size: u64, root: Hash) -> Vec<u8> {
        self.sign_text(
            Checkpoint::new(self.key.origin(), size, root)
                .to_text()
                .as_bytes(),
        )
    }

    /// A signed note of any text ending in a newline (Go `note.Sign` with one signer).
    pub fn sign_text(&self, text: &[u8]) -> Vec<u8> {
        let sig = self.signer.sign(text);
        let line = NoteSignature {
            name: self.key.origin().to_string(),
            key_id: self.key.0.id,
            sig: sig.to_vec(),
        };
        let mut out = text.to_vec();
        out.push(b'\n');
        out.extend_from_slice(line.to_line().as_bytes());
        out
    }
}

/// A fresh Ed25519 key in the Go `sumdb/note` private key text (`PRIVATE+KEY+name+id+base64`),
/// for operators who want a log key separate from the node key. Returns (private, verifier).
pub fn generate_log_key(origin: &str) -> Result<(String, String), NoteError> {
    if !valid_key_name(origin) {
        return Err(NoteError::BadName(origin.chars().take(140).collect()));
    }
    let sk = SigningKey::generate(&mut rand_core::OsRng);
    let lk = LogKey::new(origin, sk.verifying_key().to_bytes())?;
    let mut material = vec![ALG_ED25519];
    material.extend_from_slice(&sk.to_bytes());
    Ok((
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            origin,
            lk.0.id,
            B64.encode(material)
        ),
        lk.to_vkey(),
    ))
}

/// Reads a private key in Go `sumdb/note` text form; refuses one whose ID does not match.
pub fn parse_log_private_key(skey: &str) -> Result<LogSigner, NoteError> {
    let bad = |reason| NoteError::BadKey {
        key: "PRIVATE+KEY+…".into(),
        reason,
    };
    let rest = skey
        .trim()
        .strip_prefix("PRIVATE+KEY+")
        .ok_or_else(|| bad("expected PRIVATE+KEY+name+id+base64"))?;
    let (name, rest) = rest
        .split_once('+')
        .ok_or_else(|| bad("expected PRIVATE+KEY+name+id+base64"))?;
    let (id_hex, b64) = rest
        .split_once('+')
        .ok_or_else(|| bad("expected PRIVATE+KEY+name+id+base64"))?;
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("key ID must be 8 hex digits"))?;
    let material = B64
        .decode(b64)
        .map_err(|_| bad("key material is not base64"))?;
    let (&alg, seed) = material
        .split_first()
        .ok_or_else(|| bad("empty key material"))?;
    if alg != ALG_ED25519 {
        return Err(bad("not an Ed25519 key (type byte 0x01)"));
    }
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| bad("Ed25519 private keys are 32 bytes"))?;
    let signer = LogSigner::from_signing_key(name, SigningKey::from_bytes(&seed))?;
    if signer.key.0.id != id || id_hex.len() != 8 {
        return Err(bad("key ID does not match the key"));
    }
    Ok(signer)
}
