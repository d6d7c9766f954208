//! The report-data binding: the 64 bytes every platform's attestation carries on the node's
//! behalf, committing to the node's receipt-signing key and, when a verifier asked for one, a
//! freshness nonce.
//!
//! ```text
//! report_data = SHA-512( "vouch.tee.binding.v1\0" ‖ node_key[32] ‖ nonce_frame )
//! nonce_frame = 0x00                      (no nonce)
//!             | 0x01 ‖ len[1] ‖ nonce     (1 ≤ len ≤ 64)
//! ```
//!
//! SHA-512 because 64 bytes is exactly the report-data field of Intel TDX/SGX and AMD SEV-SNP;
//! Nitro documents carry it as `user_data`. The length-prefixed frame keeps "no nonce" and every
//! nonce distinct, and the domain string keeps these bytes from meaning anything in another
//! protocol. Specified with test vectors in `docs/tee.md`.

use sha2::{Digest as _, Sha512};
use vouch_core::NodeKey;

use super::TeeError;

/// Domain separator of binding version 1 (NUL-terminated).
pub const BINDING_DOMAIN: &[u8] = b"vouch.tee.binding.v1\0";
/// The scheme name carried in evidence envelopes.
pub const BINDING_SCHEME: &str = "vouch.tee.binding.v1";
/// Longest accepted nonce, in bytes: long enough for any random challenge, short enough that a
/// query string stays small.
pub const MAX_NONCE_LEN: usize = 64;

/// The 64 report-data bytes that commit to `node_key` and `nonce`.
pub fn report_data(node_key: &NodeKey, nonce: Option<&[u8]>) -> Result<[u8; 64], TeeError> {
    let mut h = Sha512::new();
    h.update(BINDING_DOMAIN);
    h.update(node_key.0);
    match nonce {
        None => h.update([0u8]),
        Some(n) => {
            check_nonce(n)?;
            // The length fits one byte: check_nonce bounds it by 64.
            h.update([1u8, n.len() as u8]);
            h.update(n);
        }
    }
    Ok(h.finalize().into())
}

/// The node key as a DER SubjectPublicKeyInfo (RFC 8410), the form Nitro's `public_key` field
/// takes.
pub fn ed25519_spki_der(node_key: &NodeKey) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(&node_key.0);
    der
}

/// Rejects empty and over-long nonces: an empty one would be indistinguishable in intent from
/// "no nonce", and a long one could not be carried by every platform.
pub fn check_nonce(nonce: &[u8]) -> Result<(), TeeError> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(TeeError::Malformed(format!(
            "nonce must be 1 to {MAX_NONCE_LEN} bytes, got {}",
            nonce.len()
        )));
    }
    Ok(())
}

/// Parses a nonce given as hex (how `GET /v1/attestation?nonce=` and the CLI take it).
pub fn parse_nonce_hex(s: &str) -> Result<Vec<u8>, TeeError> {
    let bytes = hex::decode(s).map_err(|_| {
        TeeError::Malformed(format!(
            "nonce {:?} is not hex",
            s.chars().take(2 * MAX_NONCE_LEN + 2).collect::<String>()
        ))
    })?;
    check_nonce(&bytes)?;
    Ok(bytes)
}

/// Checks that `found` (the platform's report data) is the binding of `node_key` and `nonce`.
/// `field` names where the platform keeps it, for the error message.
pub fn check(
    found: Option<&[u8]>,
    field: &str,
    node_key: &NodeKey,
    nonce: Option<&[u8]>,
) -> Result<(), TeeError> {
    let expected = report_data(node_key, nonce)?;
    let nonce_text = match nonce {
        Some(n) => format!(" and nonce {}", hex::encode(n)),
        None => String::new(),
    };
    match found {
        None => Err(TeeError::Binding(format!(
            "the evidence has no {field}, so it does not commit to node key {node_key}{nonce_text}"
        ))),
        Some(f) if f.len() != expected.len() => Err(TeeError::Binding(format!(
            "{field} is {} bytes, a Vouch binding is 64: the evidence does not commit to node key \
             {node_key}{nonce_text}",
            f.len()
        ))),
        Some(f) if f != expected.as_slice() => Err(TeeError::Binding(format!(
            "{field} is {}, but the binding of node key {node_key}{nonce_text} is {}: the evidence \
             was made for another key or nonce",
            hex::encode(f),
            hex::encode(expected)
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn binding_matches_its_definition() {
        // Recomputed here from the spec in docs/tee.md, independently of `report_data`.
        let key = NodeKey([0x11; 32]);
        let mut m = b"vouch.tee.binding.v1\0".to_vec();
        m.extend_from_slice(&[0x11; 32]);
        m.push(0);
        let want: [u8; 64] = Sha512::digest(&m).into();
        assert_eq!(report_data(&key, None).unwrap(), want);

        let mut m = b"vouch.tee.binding.v1\0".to_vec();
        m.extend_from_slice(&[0x11; 32]);
        m.extend_from_slice(&[1, 3, 0xaa, 0xbb, 0xcc]);
        let want: [u8; 64] = Sha512::digest(&m).into();
        assert_eq!(report_data(&key, Some(&[0xaa, 0xbb, 0xcc])).unwrap(), want);
    }

    #[test]
    fn binding_matches_the_vectors_in_docs_tee_md() {
        // Computed with Python's hashlib, independently of this crate.
        let key = NodeKey([0x11; 32]);
        assert_eq!(
            hex::encode(report_data(&key, None).unwrap()),
            "255645aea61c84e2a047c3b9516390451b12a5a93f6146ffb9018447bd115108\
             b6917237cdc2fe6889311f153c30214f0da616e6bbeb13c63e005322d47418a5"
        );
        assert_eq!(
            hex::encode(report_data(&key, Some(&[0xaa, 0xbb, 0xcc])).unwrap()),
            "6fee84804445075a716f66f1f3e29a4fb0048a2a9071e3f269182c141b3e3ed1\
             4b3e25342356925e9cd8e183398432c89ce6ca87cb62075b631f1c3c8f42182f"
        );
    }

    #[test]
    fn key_and_nonce_each_change_the_binding() {
        let a = report_data(&NodeKey([1; 32]), None).unwrap();
        assert_ne!(a, report_data(&NodeKey([2; 32]), None).unwrap());
        assert_ne!(a, report_data(&NodeKey([1; 32]), Some(&[0])).unwrap());
        assert_ne!(
            report_data(&NodeKey([1; 32]), Some(&[0])).unwrap(),
            report_data(&NodeKey([1; 32]), Some(&[0, 0])).unwrap()
        );
    }

    #[test]
    fn spki_is_the_rfc8410_encoding() {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let vk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
        let want = vk.to_public_key_der().unwrap();
        assert_eq!(ed25519_spki_der(&NodeKey(vk.to_bytes())), want.as_bytes());
    }

    #[test]
    fn nonce_limits_are_enforced() {
        assert!(report_data(&NodeKey([1; 32]), Some(&[])).is_err());
        assert!(report_data(&NodeKey([1; 32]), Some(&[7; 64])).is_ok());
        assert!(report_data(&NodeKey([1; 32]), Some(&[7; 65])).is_err());
        assert_eq!(parse_nonce_hex("00ff").unwrap(), vec![0, 255]);
        assert!(parse_nonce_hex("xyz").is_err());
        assert!(parse_nonce_hex("").is_err());
    }

    #[test]
    fn check_reports_what_differs() {
        let key = NodeKey([3; 32]);
        let good = report_data(&key, None).unwrap();
        assert!(check(Some(&good), "REPORTDATA", &key, None).is_ok());
        let e = check(None, "user_data", &key, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no user_data"), "{e}");
        let e = check(Some(&[0; 32]), "REPORTDATA", &key, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is 32 bytes"), "{e}");
        let e = check(Some(&good), "REPORTDATA", &NodeKey([4; 32]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another key or nonce"), "{e}");
        let e = check(Some(&good), "REPORTDATA", &key, Some(&[1]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nonce 01"), "{e}");
    }
}
