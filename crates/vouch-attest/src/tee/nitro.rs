//! AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) over a CBOR document, signed by
//! a leaf certificate that chains to the AWS Nitro root.
//!
//! The chain and signature are checked by `nitro_attest` at the document's own timestamp (leaf
//! certificates live about three hours; receipts are checked later). This module adds what
//! Vouch needs around it: the root pinned here by fingerprint as well, the ES384 header, debug
//! enclaves (all-zero PCRs) rejected, and the PCRs and `user_data` handed to policy and binding.

use coset::{CborSerializable, CoseSign1, RegisteredLabelWithPrivate, iana};
use nitro_attest::UnparsedAttestationDoc;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use super::{Platform, PlatformReport, TeeError, format_time};

/// SHA-256 of the DER of the AWS Nitro Enclaves root certificate (`aws.nitro-enclaves`, G1),
/// as AWS publishes it.
pub const AWS_NITRO_ROOT_SHA256: &str =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

fn auth(reason: impl Into<String>) -> TeeError {
    TeeError::Authenticity {
        platform: Platform::AwsNitro,
        reason: reason.into(),
    }
}

/// Verifies a Nitro attestation document (the raw COSE_Sign1 bytes) at its own timestamp, which
/// it returns as `evidence_time` for the caller to compare with the verification time.
pub fn verify_document(cose: &[u8]) -> Result<PlatformReport, TeeError> {
    let sign1 = CoseSign1::from_slice(cose)
        .map_err(|e| auth(format!("not a COSE_Sign1 structure: {e}")))?;
    match &sign1.protected.header.alg {
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES384)) => {}
        other => {
            return Err(auth(format!(
                "the COSE algorithm is {}; Nitro documents are signed with ES384",
                describe_alg(other.as_ref())
            )));
        }
    }
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| auth("the COSE_Sign1 has no payload"))?;
    let doc =
        aws_nitro_enclaves_nsm_api::api::AttestationDoc::from_binary(payload).map_err(|e| {
            auth(format!(
                "the payload is not a Nitro attestation document ({})",
                describe_nsm_error(&e)
            ))
        })?;

    let millis = i128::from(doc.timestamp);
    let doc_time = OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).map_err(|e| {
        auth(format!(
            "document timestamp {} ms is out of range: {e}",
            doc.timestamp
        ))
    })?;

    let root = doc
        .cabundle
        .first()
        .ok_or_else(|| auth("the document's CA bundle is empty"))?;
    let root_fp = hex::encode(Sha256::digest(root.as_slice()));
    if root_fp != AWS_NITRO_ROOT_SHA256 {
        return Err(auth(format!(
            "the chain's root certificate has SHA-256 {root_fp}, not the AWS Nitro root {AWS_NITRO_ROOT_SHA256}"
        )));
    }

    // Chain, validity (at the document's own second) and the COSE signature.
    let at_doc_second = OffsetDateTime::from_unix_timestamp(
        i64::try_from(doc.timestamp / 1000).map_err(|_| auth("document timestamp out of range"))?,
    )
    .map_err(|e| auth(format!("document timestamp out of range: {e}")))?;
    UnparsedAttestationDoc::from(cose)
        .parse_and_verify(at_doc_second)
        .map_err(|e| auth(describe(&e)))?;

    if let Some(reason) = debug_reason(doc.pcrs.get(&0).map(|v| v.as_slice())) {
        return Err(TeeError::Debug {
            platform: Platform::AwsNitro,
            reason,
        });
    }

    let measurements: BTreeMap<String, String> = doc
        .pcrs
        .iter()
        .filter(|(_, v)| v.iter().any(|b| *b != 0))
        .map(|(i, v)| (format!("PCR{i}"), hex::encode(v.as_slice())))
        .collect();
    let get = |k: &str| {
        measurements
            .get(k)
            .cloned()
            .unwrap_or_else(|| "absent".into())
    };
    let trust_assumption = format!(
        "AWS Nitro hardware + PCR0={} (PCR1={}, PCR2={}); chain to the AWS Nitro root \
         sha256:{AWS_NITRO_ROOT_SHA256}, document signed {}",
        get("PCR0"),
        get("PCR1"),
        get("PCR2"),
        format_time(doc_time)
    );
    let mut details = BTreeMap::new();
    details.insert("module_id".to_string(), doc.module_id.clone());
    details.insert(
        "pcr_digest".to_string(),
        match doc.digest {
            aws_nitro_enclaves_nsm_api::api::Digest::SHA256 => "SHA256",
            aws_nitro_enclaves_nsm_api::api::Digest::SHA384 => "SHA384",
            aws_nitro_enclaves_nsm_api::api::Digest::SHA512 => "SHA512",
        }
        .to_string(),
    );

    Ok(PlatformReport {
        platform: Platform::AwsNitro,
        measurements,
        report_data: doc.user_data.as_ref().map(|u| u.to_vec()),
        report_data_field: "user_data",
        evidence_time: Some(doc_time),
        trust_assumption,
        details,
        bound_public_key: doc.public_key.as_ref().map(|k| k.to_vec()),
        bound_nonce: doc.nonce.as_ref().map(|n| n.to_vec()),
    })
}

/// The protected header's algorithm, in words.
fn describe_alg(alg: Option<&coset::Algorithm>) -> String {
    match alg {
        None => "missing".into(),
        Some(RegisteredLabelWithPrivate::Assigned(a)) => format!("COSE algorithm {}", *a as i64),
        Some(RegisteredLabelWithPrivate::PrivateUse(n)) => format!("private-use algorithm {n}"),
        Some(RegisteredLabelWithPrivate::Text(t)) => {
            format!("\"{}\"", t.chars().take(32).collect::<String>())
        }
    }
}

/// The NSM library's decoding errors, in words.
fn describe_nsm_error(e: &aws_nitro_enclaves_nsm_api::api::Error) -> String {
    use aws_nitro_enclaves_nsm_api::api::Error as E;
    match e {
        E::Cbor(c) => format!("its CBOR does not decode: {c}"),
        E::Io(io) => format!("it cannot be read: {io}"),
    }
}

/// Debug-mode enclaves report all-zero PCRs (PCR0 among them).
fn debug_reason(pcr0: Option<&[u8]>) -> Option<String> {
    match pcr0 {
        None => Some("the document has no PCR0".into()),
        Some(p) if p.iter().all(|b| *b == 0) => Some(
            "PCR0 is all zeros: the enclave runs in debug mode, where its parent instance can read its memory"
                .into(),
        ),
        Some(_) => None,
    }
}

/// `nitro_attest`'s errors with the dates that explain them.
fn describe(e: &nitro_attest::Error) -> String {
    use nitro_attest::Error as E;
    match e {
        E::CertificateExpired { cn, idx, now, then } => format!(
            "certificate {idx} ({cn}) expired at {} before the document time {}",
            format_time(*then),
            format_time(*now)
        ),
        E::CertificateNotYetValid { cn, idx, now, then } => format!(
            "certificate {idx} ({cn}) is valid only from {}, after the document time {}",
            format_time(*then),
            format_time(*now)
        ),
        E::CertificateRootInvalid { have, want } => {
            format!("root certificate fingerprint {have} is not the AWS Nitro root {want}")
        }
        E::CoseSignatureVerificationFailed() => {
            "the COSE ES384 signature does not verify under the leaf certificate".into()
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            super::sentence(&s)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_or_missing_pcr0_is_debug() {
        assert!(debug_reason(Some(&[0; 48])).unwrap().contains("debug mode"));
        assert!(debug_reason(None).is_some());
        let mut p = [0u8; 48];
        p[47] = 1;
        assert_eq!(debug_reason(Some(&p)), None);
    }
}
