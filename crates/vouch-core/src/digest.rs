//! SHA-256 digests as they appear on the wire: `sha256:<64 lowercase hex>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest. Printed and serialised as `sha256:<hex>` so the algorithm is never implicit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// SHA-256 over several byte strings, fed in order (no separators: callers frame their data).
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Digest(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bare 64-character lowercase hex, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        Hex32::new(&self.0).as_str().to_string()
    }
}

/// Lowercase hex of 32 bytes, on the stack: digests and keys are printed on every request
/// (receipts, log entries), so no `String` per print.
pub(crate) struct Hex32([u8; 64]);

impl Hex32 {
    pub(crate) fn new(bytes: &[u8; 32]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        Hex32(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: expected `sha256:` followed by 64 hex characters")]
pub struct DigestParseError {
    pub input: String,
}

impl FromStr for Digest {
    type Err = DigestParseError;

    /// Accepts `sha256:<hex>` and, for convenience on the command line, bare hex.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DigestParseError {
            input: s.chars().take(80).collect(),
        };
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        if hex_part.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part.to_ascii_lowercase(), &mut out).map_err(|_| err())?;
        Ok(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        f.write_str(Hex32::new(&self.0).as_str())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The identity of a model: SHA-256 over the exact bytes stored. Names and versions are only
/// pointers to one of these.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelDigest(pub Digest);

impl ModelDigest {
    pub fn of_model_bytes(bytes: &[u8]) -> Self {
        ModelDigest(Digest::of(bytes))
    }
}

impl fmt::Display for ModelDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ModelDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for ModelDigest {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(ModelDigest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_string_digest_matches_fips_180_vector() {
        // FIPS 180-2 / NIST: SHA-256("") and SHA-256("abc").
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Digest::of(b"abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stack_hex_matches_the_hex_crate() {
        for d in [Digest([0u8; 32]), Digest([0xffu8; 32]), Digest::of(b"abc")] {
            assert_eq!(d.hex(), hex::encode(d.0));
            assert_eq!(d.to_string(), format!("sha256:{}", hex::encode(d.0)));
        }
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(d.hex().parse::<Digest>().unwrap(), d);
        assert!("sha256:zz".parse::<Digest>().is_err());
        assert!("sha256:".parse::<Digest>().is_err());
        assert!(format!("sha256:{}0", d.hex()).parse::<Digest>().is_err());
        assert!(format!("sha512:{}", d.hex()).parse::<Digest>().is_err());
    }
}
