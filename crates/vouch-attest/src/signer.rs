//! The node's receipt-signing key, kept as a PKCS#8 PEM file readable only by its owner.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::Sha512;
use std::path::Path;
use vouch_core::{BundleSignature, NodeKey, Receipt};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("cannot read node key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write node key {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("node key {path} is not an Ed25519 PKCS#8 PEM key: {reason}")]
    Parse { path: String, reason: String },
    #[error(
        "node key {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: String, mode: u32 },
}

/// Signs receipts on behalf of this node.
pub struct NodeSigner {
    key: SigningKey,
    /// `SHA-512(seed)` split into scalar and nonce prefix, computed once: `SigningKey::sign`
    /// re-derives it on every signature. Signatures are identical either way (RFC 8032).
    expanded: ExpandedSecretKey,
    public: VerifyingKey,
}

impl NodeSigner {
    fn new(key: SigningKey) -> Self {
        NodeSigner {
            expanded: ExpandedSecretKey::from(key.as_bytes()),
            public: key.verifying_key(),
            key,
        }
    }

    /// A fresh random key (tests, ephemeral nodes).
    pub fn generate() -> Self {
        Self::new(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from a 32-byte seed: deterministic, for test vectors.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::new(SigningKey::from_bytes(&seed))
    }

    /// Loads the key at `path`, creating it (mode 0600) if absent. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SignerError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                check_private(path)?;
                let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| SignerError::Parse {
                    path: shown,
                    reason: e.to_string(),
                })?;
                Ok((NodeSigner::new(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = Self::generate();
                let pem = signer.key.to_pkcs8_pem(Default::default()).map_err(|e| {
                    SignerError::Parse {
                        path: shown.clone(),
                        reason: e.to_string(),
                    }
                })?;
                write_private(path, pem.as_bytes()).map_err(|source| SignerError::Write {
                    path: shown,
                    source,
                })?;
                Ok((signer, true))
            }
            Err(source) => Err(SignerError::Read {
                path: shown,
                source,
            }),
        }
    }

    pub fn public_key(&self) -> NodeKey {
        NodeKey(self.public.to_bytes())
    }

    /// The `signed` tier: Ed25519 over the receipt's domain-separated hash.
    pub fn sign_receipt(&self, receipt: &Receipt) -> BundleSignature {
        self.sign_receipt_hash(&receipt.hash())
    }

    /// As [`sign_receipt`](Self::sign_receipt) for a receipt whose hash (SHA-256 of its
    /// canonical bytes) the caller already has: the server canonicalises each receipt once, for
    /// the signature and the log entry both.
    pub fn sign_receipt_hash(&self, receipt_hash: &vouch_core::Digest) -> BundleSignature {
        let sig = self.sign_raw(&vouch_core::receipt::signing_message_for(receipt_hash));
        BundleSignature {
            alg: "ed25519".into(),
            sig: B64.encode(sig),
        }
    }

    /// A chat receipt's signature: Ed25519 over its own domain-separated hash
    /// (`"vouch.chat-receipt.v1\0" ‖ hash`, `docs/receipt.md`).
    pub fn sign_chat_receipt(&self, receipt: &vouch_core::ChatReceipt) -> BundleSignature {
        let sig = self.sign_raw(&receipt.signing_message());
        BundleSignature {
            alg: "ed25519".into(),
            sig: B64.encode(sig),
        }
    }

    /// Raw Ed25519 over arbitrary bytes, for other formats that carry their own framing
    /// (signed notes of the transparency log).
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        raw_sign::<Sha512>(&self.expanded, msg, &self.public).to_bytes()
    }
}

/// Creates `path` with mode 0600 from the start, so the secret is never world-readable.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Refuses a key file others can read: a leaked node key forges every receipt.
fn check_private(path: &Path) -> Result<(), SignerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| SignerError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SignerError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

/// Writes any secret file (the admin token) the same way as the key: 0600 from creation.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_private(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_byte_identical_to_signing_key_sign() {
        use ed25519_dalek::Signer as _;
        for seed in [[0u8; 32], [7u8; 32], *b"vouch node key test vector seed!"] {
            let signer = NodeSigner::from_seed(seed);
            let reference = SigningKey::from_bytes(&seed);
            assert_eq!(signer.public_key().0, reference.verifying_key().to_bytes());
            for msg in [&b""[..], b"abc", &[0xffu8; 300][..]] {
                assert_eq!(signer.sign_raw(msg), reference.sign(msg).to_bytes());
            }
            let hash = vouch_core::Digest::of(b"a receipt");
            let sig = signer.sign_receipt_hash(&hash);
            let want = reference.sign(&vouch_core::receipt::signing_message_for(&hash));
            assert_eq!(sig.sig, B64.encode(want.to_bytes()));
        }
        let random = NodeSigner::generate();
        let reference = SigningKey::from_bytes(random.key.as_bytes());
        assert_eq!(random.sign_raw(b"x"), reference.sign(b"x").to_bytes());
    }

    #[test]
    fn key_file_is_created_private_and_reloads_to_the_same_key() {
        let dir = std::env::temp_dir().join(format!("vouch-attest-{}", std::process::id()));
        let path = dir.join("node.key");
        let _ = std::fs::remove_file(&path);
        let (a, created) = NodeSigner::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (b, created) = NodeSigner::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                NodeSigner::load_or_create(&path),
                Err(SignerError::Permissions { .. })
            ));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
