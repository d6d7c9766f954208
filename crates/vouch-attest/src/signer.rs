//! The node's receipt-signing key, kept as a PKCS#8 PEM file readable only by its owner.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer as _, SigningKey};
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
}

impl NodeSigner {
    /// A fresh random key (tests, ephemeral nodes).
    pub fn generate() -> Self {
        NodeSigner {
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// A key from a 32-byte seed: deterministic, for test vectors.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        NodeSigner {
            key: SigningKey::from_bytes(&seed),
        }
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
                Ok((NodeSigner { key }, false))
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
        NodeKey(self.key.verifying_key().to_bytes())
    }

    /// The `signed` tier: Ed25519 over the receipt's domain-separated hash.
    pub fn sign_receipt(&self, receipt: &Receipt) -> BundleSignature {
        self.sign_receipt_hash(&receipt.hash())
    }

    /// As [`sign_receipt`](Self::sign_receipt) for a receipt whose hash (SHA-256 of its
    /// canonical bytes) the caller already has: the server canonicalises each receipt once, for
    /// the signature and the log entry both.
    pub fn sign_receipt_hash(&self, receipt_hash: &vouch_core::Digest) -> BundleSignature {
        let sig = self
            .key
            .sign(&vouch_core::receipt::signing_message_for(receipt_hash));
        BundleSignature {
            alg: "ed25519".into(),
            sig: B64.encode(sig.to_bytes()),
        }
    }

    /// Raw Ed25519 over arbitrary bytes, for other formats that carry their own framing
    /// (signed notes of the transparency log).
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
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
