//! Entry encodings and the worked example of `docs/log.md`: these are the published test
//! vectors of Vouch's own formats, so a second implementation can check itself against them.
//! If one of these changes, every logged leaf changes: treat it as a format version bump.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use vouch_core::{
    Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, RECEIPT_VERSION, Receipt, Tier,
};
use vouch_log::checkpoint::{LogSigner, verify_checkpoint};
use vouch_log::cosign::{Cosigner, verify_cosignatures};
use vouch_log::entry::{
    ConfigChanged, EntryError, LogEntry, ModelRegistered, PointerMoved, PolicyChanged,
};
use vouch_log::merkle::{Frontier, Hash, inclusion_plan, verify_inclusion};

const AT: &str = "2026-11-25T12:00:00.000Z";

fn d(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn sample_receipt() -> Receipt {
    Receipt {
        version: RECEIPT_VERSION,
        request_id: "018f6b6e-0000-7000-8000-000000000001".into(),
        model: ModelDigest(d("model bytes")),
        model_ref: Some("mnist-cnn@1".into()),
        input_digest: d("in"),
        output_digest: d("out"),
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
        tiers: vec![Tier::Signed],
        node_key: NodeKey([7u8; 32]),
        issued_at: AT.into(),
        payment: None,
    }
}

fn examples() -> Vec<LogEntry> {
    vec![
        LogEntry::Receipt(Box::new(sample_receipt())),
        LogEntry::ModelRegistered(ModelRegistered {
            model: ModelDigest(d("model bytes")),
            size: 1234,
            format: "onnx".into(),
            at: AT.into(),
        }),
        LogEntry::PointerMoved(PointerMoved {
            name: "mnist-cnn".into(),
            version: Some("2".into()),
            from: Some(ModelDigest(d("model bytes"))),
            to: Some(ModelDigest(d("model bytes v2"))),
            at: AT.into(),
        }),
        LogEntry::PolicyChanged(PolicyChanged {
            model: ModelDigest(d("model bytes")),
            policy: serde_json::json!({"min_tiers": ["signed"], "price": {"asset": "USDC", "amount": "1000"}}),
            at: AT.into(),
        }),
        LogEntry::ConfigChanged(ConfigChanged {
            model: ModelDigest(d("model bytes")),
            config_digest: d("You are a helpful assistant."),
            config: None,
            at: AT.into(),
        }),
    ]
}

/// Leaf hashes (hex) of `examples()`, in order, as in docs/log.md. Cross-checked outside Rust:
/// Python `hashlib.sha256(b"\x00" + entry)` over the entry bytes gives the same values.
const LEAVES: [&str; 5] = [
    "0ced615aa9146ca08e6d0be8daf2ae3e930b4a088685f41ddd335ba37bb86c00",
    "12a792da9a27df534d9341fedf4af2c14b4b1c5340f3688b92a397bbb32ee37b",
    "06f920241a9fb8b3184a3369559541aa0ff25e88b88c395bb1958bdf1aab39a8",
    "bd367dc00616ee91fcec4e76af7224e8fd66411174e3fa3f5240b04a38294d30",
    "67c9b3353b2463ec8c9625a577f14c7bee4474a21cae60f6f339e9c388d65bf3",
];

// The worked example (docs/log.md), reproduced independently with Python's hashlib (RFC 6962
// MTH and PATH written from the RFC) and pyca/cryptography Ed25519 (seeds 0x01.., 0x02..).
const ROOT: &str = "JwS/dTpDsHNVcFhM8DNMQymNKybXsD1/9vLi67ATrDc=";
const PROOF_2: [&str; 3] = [
    "vTZ9wAYW7pH87E52r3Ik6P1mQRF04/o/UkCwSjgpTTA=",
    "L/+os5uX0jRsZQXQHtNtzvabTYQOH3Z6ZU/hzGuci9s=",
    "Z8mzNTskY+yMliWld/FMe+5EdKIcrmD28znpw4jWW/M=",
];
const LOG_VKEY: &str = "vouch.example/log+7c173ca3+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";
const NOTE: &str = "vouch.example/log\n5\nJwS/dTpDsHNVcFhM8DNMQymNKybXsD1/9vLi67ATrDc=\n\n\
— vouch.example/log fBc8o76GTMxZ8xghFHRzoBIkUxC66KV0QTO+dw01Va0igsAKc5a6b4t7lq5B5mt7FnKCus/qqMRsKbyU/pEAvaJflAc=\n";
const WITNESS_VKEY: &str =
    "witness.example/w1+df1c0a35+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU";
const COSIG: &str = "— witness.example/w1 3xwKNQAAAABpJZpAIo3wn5+g3sXm/Pbin8IiG/gj5Z/Y6j/sl/PPfvr8P1sMNCffjV1lQ7AglRniiYLYbrouE0WT/5qwjr5u2+6RCA==\n";

#[test]
fn example_entries_have_the_documented_bytes_and_leaves() {
    let ex = examples();
    let text: Vec<String> = ex
        .iter()
        .map(|e| String::from_utf8(e.encode().unwrap()).unwrap())
        .collect();
    assert_eq!(
        text[1],
        format!(
            "vouch-log/v1 model-registered\n{{\"at\":\"{AT}\",\"format\":\"onnx\",\"model\":\"{}\",\"size\":1234}}",
            d("model bytes")
        )
    );
    assert!(text[0].starts_with("vouch-log/v1 receipt\n{\"engine\":{\"name\":\"tract\""));
    assert_eq!(
        text[0].as_bytes()[21..],
        sample_receipt().canonical_bytes()[..]
    );
    assert!(text[3].contains(
        "\"policy\":{\"min_tiers\":[\"signed\"],\"price\":{\"amount\":\"1000\",\"asset\":\"USDC\"}}"
    ));
    for (e, want) in ex.iter().zip(LEAVES) {
        assert_eq!(hex::encode(e.leaf_hash().unwrap().0), want);
        // Decoding is the exact inverse.
        assert_eq!(&LogEntry::decode(&e.encode().unwrap()).unwrap(), e);
    }
}

#[test]
fn worked_example_tree_checkpoint_and_cosignature() {
    let leaves: Vec<Hash> = examples().iter().map(|e| e.leaf_hash().unwrap()).collect();
    let mut f = Frontier::new();
    let mut stored = Vec::new();
    for l in &leaves {
        stored.extend(f.push(*l));
    }
    let root = f.root();
    assert_eq!(root.to_string(), ROOT);
    let plan = inclusion_plan(2, 5).unwrap();
    let proof = plan
        .assemble(
            &plan
                .indexes
                .iter()
                .map(|&i| stored[i as usize])
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert_eq!(
        proof.iter().map(Hash::to_string).collect::<Vec<_>>(),
        PROOF_2
    );
    verify_inclusion(leaves[2], 2, 5, &proof, root).unwrap();

    let log =
        LogSigner::from_signing_key("vouch.example/log", SigningKey::from_bytes(&[1; 32])).unwrap();
    assert_eq!(log.key().to_vkey(), LOG_VKEY);
    let note = log.sign(5, root);
    assert_eq!(String::from_utf8(note.clone()).unwrap(), NOTE);
    let w =
        Cosigner::from_signing_key("witness.example/w1", SigningKey::from_bytes(&[2; 32])).unwrap();
    assert_eq!(w.key().to_vkey(), WITNESS_VKEY);
    let cp = verify_checkpoint(&note, log.key()).unwrap();
    let cosig = w.cosign(&cp.note.text, 1_764_072_000).unwrap();
    assert_eq!(cosig.to_line(), COSIG);
    let mut full = note.clone();
    full.extend_from_slice(cosig.to_line().as_bytes());
    let cp = verify_checkpoint(&full, log.key()).unwrap();
    assert_eq!(
        verify_cosignatures(&cp.note, &[w.key().clone()])
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn malformed_entries_are_refused_with_reasons() {
    let good = examples()[1].encode().unwrap();
    let s = String::from_utf8(good.clone()).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            s.replace("vouch-log/v1", "vouch-log/v2").into_bytes(),
            "does not start",
        ),
        (
            s.replace("model-registered", "model-deleted").into_bytes(),
            "unknown log entry kind",
        ),
        (
            s.replace("{\"at\"", "{ \"at\"").into_bytes(),
            "not in canonical",
        ),
        (format!("{s}\n").into_bytes(), "not in canonical"),
        (
            s.replace("\"size\":1234", "\"size\":1234,\"zzz\":1")
                .into_bytes(),
            "invalid payload",
        ),
        (
            s.replace("\"size\":1234", "\"size\":-1").into_bytes(),
            "invalid payload",
        ),
        (
            s.replace(AT, "2026-11-25 12:00:00").into_bytes(),
            "invalid time",
        ),
        (b"vouch-log/v1 receipt".to_vec(), "does not start"),
        (vec![0xff; 10], "does not start"),
        (vec![b'a'; 70_000], "at most 65535 bytes"),
    ];
    for (bytes, want) in cases {
        let err = LogEntry::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should mention {want:?}");
    }
    let bad_name = LogEntry::PointerMoved(PointerMoved {
        name: "../etc".into(),
        version: None,
        from: None,
        to: Some(ModelDigest(d("x"))),
        at: AT.into(),
    });
    assert!(matches!(bad_name.encode(), Err(EntryError::BadName { .. })));
    let nothing = LogEntry::PointerMoved(PointerMoved {
        name: "a".into(),
        version: None,
        from: None,
        to: None,
        at: AT.into(),
    });
    assert!(matches!(
        nothing.encode(),
        Err(EntryError::BadPayload { .. })
    ));
    for t in [
        "2026-13-01T00:00:00.000Z",
        "2026-11-25T24:00:00.000Z",
        "2026-11-25T12:00:00Z",
        "2026-11-25T12:00:00.000+01:00",
    ] {
        assert!(vouch_log::entry::check_time(t).is_err(), "{t}");
    }
}

#[test]
fn a_chat_receipt_is_an_entry_of_its_own_kind() {
    use vouch_log::entry::chat_receipt_entry_bytes;
    // The published chat vector (docs/receipt.md).
    let canonical =
        include_str!("../../vouch-verify/tests/vectors/chat1.canonical.json").trim_end();
    let r: vouch_core::ChatReceipt = serde_json::from_str(canonical).unwrap();
    let entry = LogEntry::ChatReceipt(Box::new(r.clone()));
    let bytes = entry.encode().unwrap();
    assert_eq!(
        bytes,
        format!("vouch-log/v1 chat-receipt\n{canonical}").into_bytes()
    );
    assert_eq!(bytes, chat_receipt_entry_bytes(&r));
    assert_eq!(LogEntry::decode(&bytes).unwrap(), entry);
    assert_eq!(entry.kind().as_str(), "chat-receipt");
    // Neither kind's payload passes as the other's.
    let as_receipt = format!("vouch-log/v1 receipt\n{canonical}");
    assert!(LogEntry::decode(as_receipt.as_bytes()).is_err());
    let onnx = examples()[0].encode().unwrap();
    let onnx_payload = &onnx[b"vouch-log/v1 receipt\n".len()..];
    let mut as_chat = b"vouch-log/v1 chat-receipt\n".to_vec();
    as_chat.extend_from_slice(onnx_payload);
    assert!(LogEntry::decode(&as_chat).is_err());
}
