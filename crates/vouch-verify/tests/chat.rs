//! Chat bundles and streamed answers: the published test vectors are stable, honest answers
//! verify, and every way of tampering fails with its own code and the place named.
//!
//! `VOUCH_BLESS=1 cargo test -p vouch-verify --test chat` rewrites the vector files (a format
//! break: `docs/receipt.md` publishes them).

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

use vouch_attest::NodeSigner;
use vouch_core::chat::{completion_digest, request_digest, tokens_digest};
use vouch_core::*;
use vouch_verify::{
    ChainError, Evidence, FailureCode, StreamVerifier, VerifyError, bundle_in_response,
    verify_chat_bundle,
};

const WEIGHTS: &[u8] = b"pretend these are GGUF bytes";
const REQUEST_ID_1: &str = "0193a1b2-0000-7000-8000-000000000c01";
const REQUEST_ID_2: &str = "0193a1b2-0000-7000-8000-000000000c02";
const REQUEST_1: &[u8] = include_bytes!("vectors/chat1.request.json");
const REQUEST_2: &[u8] = include_bytes!("vectors/chat2.request.json");
const PROMPT: [u32; 12] = [
    1, 32010, 887, 526, 1935, 346, 29889, 32007, 32010, 14891, 22172, 29889,
];
const COMPLETION: [u32; 3] = [15043, 29991, 2];
const TEXT: &str = "Hello!";

fn signer() -> NodeSigner {
    NodeSigner::from_seed([42u8; 32])
}

fn digest_of_request(body: &[u8]) -> Digest {
    request_digest(&serde_json::from_slice(body).unwrap()).unwrap()
}

/// The receipt of `docs/receipt.md`'s first chat vector (not streamed).
fn receipt1() -> ChatReceipt {
    ChatReceipt {
        kind: chat::ChatKind,
        version: CHAT_RECEIPT_VERSION,
        request_id: REQUEST_ID_1.into(),
        request_digest: digest_of_request(REQUEST_1),
        model: ModelDigest::of_model_bytes(WEIGHTS),
        model_ref: Some("tiny-llama@1".into()),
        config_digest: None,
        executed_by: None,
        sampling: Sampling {
            temperature: FiniteF64::new(0.7).unwrap(),
            top_p: FiniteF64::new(1.0).unwrap(),
            max_tokens: 64,
            stop: vec![],
            seed: Some(Seed(42)),
        },
        prompt_tokens_digest: Some(tokens_digest(&PROMPT).unwrap()),
        completion_tokens_digest: Some(tokens_digest(&COMPLETION).unwrap()),
        completion_digest: completion_digest(TEXT),
        finish_reason: FinishReason::Stop,
        usage: Usage {
            prompt_tokens: 12,
            completion_tokens: 3,
            total_tokens: 15,
        },
        stream: None,
        engine: EngineInfo {
            name: "candle".into(),
            version: "0.9.1".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        tiers: vec![Tier::Signed],
        node_key: signer().public_key(),
        issued_at: "2026-12-07T12:00:00.000Z".into(),
        payment: None,
    }
}

fn bundle_of(r: ChatReceipt) -> ChatBundle {
    ChatBundle {
        format: CHAT_BUNDLE_FORMAT.into(),
        signature: Some(signer().sign_chat_receipt(&r)),
        receipt: r,
        prompt_tokens: Some(PROMPT.to_vec()),
        completion_tokens: Some(COMPLETION.to_vec()),
        evidence: Default::default(),
    }
}

/// The non-streamed completion object, with the bundle in `vouch`, as the node answers.
fn response1(bundle: &ChatBundle) -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-{id}","object":"chat.completion","created":1796644800,"model":"tiny-llama@1","#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello!","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}},"system_fingerprint":"vouch","vouch":{bundle}}}"#
        ),
        id = REQUEST_ID_1,
        bundle = serde_json::to_string(bundle).unwrap()
    )
}

/// The chunks of the streamed vector (role, two content deltas, finish, usage), each carrying
/// its chain link, and the receipt committing to them.
fn stream2() -> (Vec<String>, ChatReceipt) {
    let request_digest = digest_of_request(REQUEST_2);
    let mut chain = StreamChain::new(&request_digest, REQUEST_ID_2);
    let mut chunks = Vec::new();
    let parts = [
        (
            r#"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]"#,
            "null",
        ),
        (
            r#"[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]"#,
            "null",
        ),
        (
            r#"[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null}]"#,
            "null",
        ),
        (
            r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#,
            "null",
        ),
        (
            "[]",
            r#"{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}"#,
        ),
    ];
    for (choices, usage) in parts {
        let link = chain.next();
        let data = format!(
            concat!(
                r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":1796644800,"model":"tiny-llama@1","#,
                r#""choices":{choices},"usage":{usage},"vouch":{{"index":{index},"prev":"{prev}"}}}}"#
            ),
            id = REQUEST_ID_2,
            choices = choices,
            usage = usage,
            index = link.index,
            prev = link.prev,
        );
        chain.append(data.as_bytes()).unwrap();
        chunks.push(data);
    }
    let mut r = receipt1();
    r.request_id = REQUEST_ID_2.into();
    r.request_digest = request_digest;
    r.sampling.top_p = FiniteF64::new(0.95).unwrap();
    r.sampling.stop = vec!["\n\n".into()];
    r.stream = chain.commitment();
    (chunks, r)
}

/// The whole SSE body as sent: the chunks, the receipt event, `[DONE]`.
fn sse2(chunks: &[String], bundle: &ChatBundle) -> String {
    let mut out = String::new();
    for c in chunks {
        out.push_str(&format!("data: {c}\n\n"));
    }
    out.push_str(&format!(
        "data: {{\"object\":\"vouch.receipt\",\"vouch\":{}}}\n\n",
        serde_json::to_string(bundle).unwrap()
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

fn vector(name: &str, actual: &str) {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("VOUCH_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap();
    assert_eq!(published, actual, "{name} changed: a format break");
}

#[test]
fn chat_test_vectors_are_stable() {
    let s = signer();
    let r = receipt1();
    vector(
        "chat1.canonical.json",
        &(String::from_utf8(r.canonical_bytes()).unwrap() + "\n"),
    );
    vector("chat1.hash", &format!("{}\n", r.hash()));
    vector("chat1.sig", &format!("{}\n", s.sign_chat_receipt(&r).sig));
    let b = bundle_of(r);
    vector("chat1.response.json", &(response1(&b) + "\n"));

    let (chunks, r2) = stream2();
    vector(
        "chat2.canonical.json",
        &(String::from_utf8(r2.canonical_bytes()).unwrap() + "\n"),
    );
    vector("chat2.hash", &format!("{}\n", r2.hash()));
    vector("chat2.sig", &format!("{}\n", s.sign_chat_receipt(&r2).sig));
    vector("chat2.sse", &sse2(&chunks, &bundle_of(r2)));
}

#[test]
fn honest_answer_verifies_with_everything_given() {
    let b = bundle_of(receipt1());
    let response: serde_json::Value = serde_json::from_str(&response1(&b)).unwrap();
    assert_eq!(bundle_in_response(&response).unwrap(), b);
    let ev = Evidence {
        trusted_key: Some(signer().public_key()),
        model_bytes: Some(WEIGHTS),
        ..Default::default()
    };
    let report = verify_chat_bundle(&b, Some(REQUEST_1), Some(&response), &ev).unwrap();
    let checks: Vec<&str> = report.proven.iter().map(|f| f.check).collect();
    assert_eq!(
        checks,
        [
            "signature",
            "request file",
            "prompt token ids",
            "completion token ids",
            "model file",
            "choices[0].message.content",
            "choices[0].finish_reason",
            "usage",
            "model",
        ]
    );
    assert_eq!(report.summary, "signature only: trusts the node");
    assert!(
        report
            .not_proven
            .iter()
            .any(|n| n.contains("really produced this text")),
        "{:?}",
        report.not_proven
    );
    // Any JSON formatting of the same request body gives the same digest.
    let reformatted =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(REQUEST_1).unwrap())
            .unwrap();
    verify_chat_bundle(&b, Some(&reformatted), Some(&response), &ev).unwrap();
}

fn code(r: Result<vouch_verify::Report, VerifyError>) -> FailureCode {
    r.unwrap_err().code()
}

#[test]
fn every_mismatch_has_its_code() {
    let b = bundle_of(receipt1());
    let ev = Evidence::default();
    let response: serde_json::Value = serde_json::from_str(&response1(&b)).unwrap();

    let other_request = String::from_utf8(REQUEST_1.to_vec())
        .unwrap()
        .replace("alice", "mallory");
    assert_eq!(
        code(verify_chat_bundle(
            &b,
            Some(other_request.as_bytes()),
            None,
            &ev
        )),
        FailureCode::RequestMismatch
    );
    for bad in [&b"not json"[..], br#"{"seed": 9007199254740993}"#] {
        assert_eq!(
            code(verify_chat_bundle(&b, Some(bad), None, &ev)),
            FailureCode::RequestInvalid
        );
    }

    let edits: [(&str, serde_json::Value, FailureCode); 5] = [
        (
            "/choices/0/message/content",
            "Hello?".into(),
            FailureCode::CompletionMismatch,
        ),
        (
            "/choices/0/finish_reason",
            "length".into(),
            FailureCode::FinishReasonMismatch,
        ),
        (
            "/usage/completion_tokens",
            2.into(),
            FailureCode::UsageMismatch,
        ),
        (
            "/model",
            "gpt-4o".into(),
            FailureCode::ResponseModelMismatch,
        ),
        (
            "/object",
            "chat.completion.chunk".into(),
            FailureCode::ResponseInvalid,
        ),
    ];
    for (at, value, want) in edits {
        let mut resp = response.clone();
        *resp.pointer_mut(at).unwrap() = value;
        assert_eq!(
            code(verify_chat_bundle(&b, None, Some(&resp), &ev)),
            want,
            "{at}"
        );
    }

    let mut t = b.clone();
    t.completion_tokens.as_mut().unwrap()[0] += 1;
    assert_eq!(
        code(verify_chat_bundle(&t, None, None, &ev)),
        FailureCode::TokensMismatch
    );
    let mut t = b.clone();
    t.prompt_tokens.as_mut().unwrap().pop();
    assert_eq!(
        code(verify_chat_bundle(&t, None, None, &ev)),
        FailureCode::TokensMismatch
    );

    let mut t = b.clone();
    t.format = BUNDLE_FORMAT.into();
    assert_eq!(
        code(verify_chat_bundle(&t, None, None, &ev)),
        FailureCode::NotAChatBundle
    );

    let e = Evidence {
        model_bytes: Some(b"other weights"),
        ..Default::default()
    };
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &e)),
        FailureCode::ModelMismatch
    );
    let e = Evidence {
        trusted_key: Some(NodeSigner::from_seed([1u8; 32]).public_key()),
        ..Default::default()
    };
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &e)),
        FailureCode::SignerUntrusted
    );

    // A receipt whose own fields disagree is refused before anything is believed.
    let mut r = receipt1();
    r.usage.total_tokens = 16;
    assert_eq!(
        code(verify_chat_bundle(&bundle_of(r), None, None, &ev)),
        FailureCode::ChatReceiptInvalid
    );
}

#[test]
fn any_changed_receipt_field_breaks_the_signature() {
    let mutations: Vec<fn(&mut ChatReceipt)> = vec![
        |r| r.request_digest = Digest::of(b"x"),
        |r| r.completion_digest = completion_digest("Hello?"),
        |r| r.sampling.temperature = FiniteF64::new(0.7000000000000001 + 1e-16).unwrap(),
        |r| r.sampling.seed = Some(Seed(43)),
        |r| r.sampling.stop.push("x".into()),
        |r| r.finish_reason = FinishReason::Length,
        |r| r.executed_by = Some("upstream https://example.com/v1".into()),
        |r| r.model_ref = None,
        |r| r.issued_at = "2026-12-07T12:00:00.001Z".into(),
    ];
    for (i, m) in mutations.iter().enumerate() {
        let mut b = bundle_of(receipt1());
        m(&mut b.receipt);
        assert_eq!(
            code(verify_chat_bundle(&b, None, None, &Evidence::default())),
            FailureCode::SignatureInvalid,
            "mutation {i}"
        );
    }
    // An ONNX-domain signature over the same hash is not a chat receipt's signature.
    let mut b = bundle_of(receipt1());
    b.signature = Some(signer().sign_receipt_hash(&b.receipt.hash()));
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &Evidence::default())),
        FailureCode::SignatureInvalid
    );
}

#[test]
fn gateway_receipts_say_the_model_is_not_proven() {
    let mut r = receipt1();
    r.executed_by = Some("upstream https://api.example.com/v1".into());
    r.prompt_tokens_digest = None;
    r.completion_tokens_digest = None;
    r.engine.name = "openai-compatible".into();
    let mut b = bundle_of(r);
    b.prompt_tokens = None;
    b.completion_tokens = None;
    let response: serde_json::Value = serde_json::from_str(&response1(&b)).unwrap();
    let report =
        verify_chat_bundle(&b, Some(REQUEST_1), Some(&response), &Evidence::default()).unwrap();
    assert!(report.summary.contains("NOT proven"), "{}", report.summary);
    assert!(
        report
            .not_proven
            .iter()
            .any(|n| n.contains("https://api.example.com/v1") && n.contains("gateway's word")),
        "{:?}",
        report.not_proven
    );
    assert!(report.tiers[0].trust_assumption.contains("gateway"));
    // No weights file can be compared with a model the node did not run.
    let ev = Evidence {
        model_bytes: Some(WEIGHTS),
        ..Default::default()
    };
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &ev)),
        FailureCode::InvalidArgument
    );
    // Token ids without a commitment are refused rather than ignored.
    b.completion_tokens = Some(COMPLETION.to_vec());
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &Evidence::default())),
        FailureCode::ChatReceiptInvalid
    );
}

/// The streamed vector's SSE body, split as a client reads it: the chunk data lines, then
/// the bundle of the receipt event.
fn received() -> (Vec<Vec<u8>>, ChatBundle) {
    let (chunks, r) = stream2();
    let sse = sse2(&chunks, &bundle_of(r));
    let mut data: Vec<Vec<u8>> = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| d.as_bytes().to_vec())
        .collect();
    let event: serde_json::Value = serde_json::from_slice(&data.pop().unwrap()).unwrap();
    assert_eq!(event["object"], "vouch.receipt");
    (data, bundle_in_response(&event).unwrap())
}

fn run(chunks: &[Vec<u8>], bundle: &ChatBundle) -> Result<vouch_verify::Report, VerifyError> {
    let mut v = StreamVerifier::new();
    for c in chunks {
        v.push(c)?;
    }
    v.finish(bundle, Some(REQUEST_2), &Evidence::default())
}

#[test]
fn honest_stream_verifies() {
    let (chunks, b) = received();
    let report = run(&chunks, &b).unwrap();
    let checks: Vec<&str> = report.proven.iter().map(|f| f.check).collect();
    assert!(checks.contains(&"stream"), "{checks:?}");
    for c in [
        "choices[0].message.content",
        "choices[0].finish_reason",
        "model",
        "usage",
    ] {
        assert!(checks.contains(&c), "{c}: {checks:?}");
    }
    assert!(
        !report
            .not_proven
            .iter()
            .any(|n| n.starts_with("the streamed chunks"))
    );
    // Knowing the request up front checks chunk 0 at once.
    let mut v = StreamVerifier::for_request(&digest_of_request(REQUEST_2), REQUEST_ID_2);
    for c in &chunks {
        v.push(c).unwrap();
    }
    v.finish(&b, None, &Evidence::default()).unwrap();
}

fn chain_err(r: Result<vouch_verify::Report, VerifyError>) -> ChainError {
    match r.unwrap_err() {
        VerifyError::Chain(e) => e,
        other => panic!("not a chain error: {other}"),
    }
}

#[test]
fn a_dropped_chunk_is_named() {
    let (mut chunks, b) = received();
    chunks.remove(2);
    let e = chain_err(run(&chunks, &b));
    assert_eq!(
        e,
        ChainError::Gap {
            expected: 2,
            found: 3
        }
    );
    assert_eq!(e.index(), Some(2));
    assert_eq!(VerifyError::from(e).code(), FailureCode::StreamChunkMissing);
}

#[test]
fn reordered_chunks_are_named() {
    let (mut chunks, b) = received();
    chunks.swap(1, 2);
    let e = chain_err(run(&chunks, &b));
    assert_eq!(
        e,
        ChainError::Gap {
            expected: 1,
            found: 2
        }
    );
    // Replayed: a chunk sent twice.
    let (chunks, _) = received();
    let mut twice = chunks.clone();
    twice.insert(2, chunks[1].clone());
    let e = chain_err(run(&twice, &b));
    assert_eq!(
        e,
        ChainError::Behind {
            expected: 2,
            found: 1
        }
    );
    assert_eq!(
        VerifyError::from(e).code(),
        FailureCode::StreamChunkOutOfOrder
    );
    // Reordered with the indices rewritten to look sequential: the chain breaks.
    let (chunks, _) = received();
    let mut forged = chunks.clone();
    forged[1] = String::from_utf8(chunks[2].clone())
        .unwrap()
        .replace("\"index\":2,", "\"index\":1,")
        .into_bytes();
    let e = chain_err(run(&forged, &b));
    assert_eq!(e, ChainError::Broken { index: 0 });
}

#[test]
fn an_altered_chunk_is_named() {
    let (chunks, b) = received();
    let mut altered = chunks.clone();
    altered[1] = String::from_utf8(chunks[1].clone())
        .unwrap()
        .replace("Hello", "Howdy")
        .into_bytes();
    let e = chain_err(run(&altered, &b));
    // Chunk 2's link shows chunk 1 is not what the node sent.
    assert_eq!(e, ChainError::Broken { index: 1 });
    assert_eq!(e.index(), Some(1));
    assert_eq!(VerifyError::from(e).code(), FailureCode::StreamChainBroken);
    // The last chunk has no successor: the head in the signed receipt catches it.
    let mut last = chunks.clone();
    let n = last.len();
    last[n - 1] = String::from_utf8(chunks[n - 1].clone())
        .unwrap()
        .replace("\"total_tokens\":15", "\"total_tokens\":16")
        .into_bytes();
    assert_eq!(
        chain_err(run(&last, &b)),
        ChainError::HeadMismatch { index: 4 }
    );
    // Not JSON at all.
    let mut garbled = chunks.clone();
    garbled[3] = b"{\"object\":".to_vec();
    let e = chain_err(run(&garbled, &b));
    assert!(matches!(e, ChainError::Malformed { index: 3, .. }), "{e}");
    assert_eq!(
        VerifyError::from(e).code(),
        FailureCode::StreamChunkMalformed
    );
}

#[test]
fn a_truncated_or_extended_stream_is_named() {
    let (chunks, b) = received();
    let e = chain_err(run(&chunks[..3], &b));
    assert_eq!(
        e,
        ChainError::Truncated {
            received: 3,
            committed: 5
        }
    );
    assert_eq!(e.index(), Some(3));
    assert_eq!(VerifyError::from(e).code(), FailureCode::StreamTruncated);
    assert_eq!(
        chain_err(run(&[], &b)),
        ChainError::Truncated {
            received: 0,
            committed: 5
        }
    );
    // A receipt committing to fewer chunks than arrived (a chunk appended after the fact
    // would need a link the node never made, so this is the receipt of a shorter stream).
    let (chunks, mut b2) = received();
    let mut r = b2.receipt.clone();
    let mut chain = StreamChain::new(&r.request_digest, &r.request_id);
    for c in &chunks[..4] {
        chain.append(c).unwrap();
    }
    r.stream = chain.commitment();
    b2 = bundle_of(r);
    assert_eq!(
        chain_err(run(&chunks, &b2)),
        ChainError::TooLong {
            received: 5,
            committed: 4
        }
    );
}

#[test]
fn a_stream_of_another_request_is_named() {
    let (chunks, b) = received();
    let mut v = StreamVerifier::for_request(&digest_of_request(REQUEST_1), REQUEST_ID_2);
    assert_eq!(v.push(&chunks[0]), Err(ChainError::StartMismatch));
    // Learned from chunk 0, then checked against the receipt: same verdict at finish.
    let mut r = b.receipt.clone();
    r.request_id = REQUEST_ID_1.into();
    let other = bundle_of(r);
    let e = chain_err(run(&chunks, &other));
    assert_eq!(e, ChainError::StartMismatch);
    assert_eq!(
        VerifyError::from(e).code(),
        FailureCode::StreamStartMismatch
    );
    // Chunks checked against a receipt that commits to no stream.
    let mut r = b.receipt.clone();
    r.stream = None;
    let e = chain_err(run(&chunks, &bundle_of(r)));
    assert_eq!(e, ChainError::NotStreamed);
    assert_eq!(VerifyError::from(e).code(), FailureCode::StreamNotCommitted);
    // The receipt event itself is not a chunk.
    let mut v = StreamVerifier::new();
    let e = v
        .push(br#"{"object":"vouch.receipt","vouch":{}}"#)
        .unwrap_err();
    assert!(e.to_string().contains("pass it to finish"), "{e}");
}

#[test]
fn a_stream_whose_content_differs_from_the_receipt_is_named() {
    // A node that signs one text and streams another: the chain holds, the text does not.
    let (chunks, b) = received();
    let mut r = b.receipt.clone();
    r.completion_digest = completion_digest("Hello?");
    assert_eq!(
        code(run(&chunks, &bundle_of(r))),
        FailureCode::CompletionMismatch
    );
}

#[test]
fn tee_evidence_binds_the_chat_receipts_signer() {
    use vouch_attest::tee::EvidenceProducer;
    use vouch_attest::tee::simulated::SimulatedProducer;
    let producer = SimulatedProducer::with_measurement([3u8; 48]);
    let mut r = receipt1();
    r.tiers = vec![Tier::Signed, Tier::Tee];
    let mut b = bundle_of(r);
    let env = producer.attest(&signer().public_key(), None).unwrap();
    b.evidence.insert("tee".into(), env.to_json());
    let ev = Evidence {
        allow_simulated: true,
        at_time: Some(std::time::SystemTime::now()),
        ..Default::default()
    };
    let report = verify_chat_bundle(&b, None, None, &ev).unwrap();
    assert!(
        report.summary.starts_with("tee: simulated"),
        "{}",
        report.summary
    );
    assert!(
        report
            .tiers
            .iter()
            .any(|t| t.tier == Tier::Tee && t.simulated)
    );
    // Evidence for another key does not vouch for this signer.
    let other = producer
        .attest(&NodeSigner::from_seed([1u8; 32]).public_key(), None)
        .unwrap();
    b.evidence.insert("tee".into(), other.to_json());
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &ev)),
        FailureCode::TeeKeyMismatch
    );
    // Simulated evidence is refused unless allowed.
    let strict = Evidence {
        at_time: Some(std::time::SystemTime::now()),
        ..Default::default()
    };
    b.evidence.insert("tee".into(), env.to_json());
    assert_eq!(
        code(verify_chat_bundle(&b, None, None, &strict)),
        FailureCode::TeeSimulatedNotAllowed
    );
}

#[test]
fn legacy_completions_answers_verify_too() {
    // `/v1/completions`: the same receipt kind, content in `choices[0].text`.
    let b = bundle_of(receipt1());
    let mut resp: serde_json::Value = serde_json::from_str(&response1(&b)).unwrap();
    resp["object"] = "text_completion".into();
    resp["choices"][0] = serde_json::json!({"text": "Hello!", "index": 0, "logprobs": null, "finish_reason": "stop"});
    verify_chat_bundle(&b, None, Some(&resp), &Evidence::default()).unwrap();
    resp["choices"][0]["text"] = "Hello?".into();
    assert_eq!(
        code(verify_chat_bundle(
            &b,
            None,
            Some(&resp),
            &Evidence::default()
        )),
        FailureCode::CompletionMismatch
    );
    // Streamed legacy events chain and hash the same way.
    let (_, r) = stream2();
    let mut chain = StreamChain::new(&r.request_digest, &r.request_id);
    let mut chunks = Vec::new();
    for (text, finish) in [("Hello", "null"), ("!", "\"stop\"")] {
        let link = chain.next();
        let data = format!(
            r#"{{"id":"cmpl-1","object":"text_completion","created":1,"model":"tiny-llama@1","choices":[{{"text":"{text}","index":0,"logprobs":null,"finish_reason":{finish}}}],"vouch":{{"index":{},"prev":"{}"}}}}"#,
            link.index, link.prev
        );
        chain.append(data.as_bytes()).unwrap();
        chunks.push(data.into_bytes());
    }
    let mut r = r;
    r.stream = chain.commitment();
    let b = bundle_of(r);
    let report = run(&chunks, &b).unwrap();
    assert!(report.proven.iter().any(|f| f.check == "stream"));
}
