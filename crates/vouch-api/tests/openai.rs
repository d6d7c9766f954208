//! The OpenAI-compatible types read what the SDKs send (unknown fields included), name the
//! field when a known one is wrong, and read back exactly what the chat vectors publish.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;
use vouch_api::openai::*;

const REQUEST_1: &str = include_str!("../../vouch-verify/tests/vectors/chat1.request.json");
const REQUEST_2: &str = include_str!("../../vouch-verify/tests/vectors/chat2.request.json");
const RESPONSE_1: &str = include_str!("../../vouch-verify/tests/vectors/chat1.response.json");
const SSE_2: &str = include_str!("../../vouch-verify/tests/vectors/chat2.sse");

fn parse(v: serde_json::Value) -> Result<ChatCompletionRequest, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn sdk_requests_parse_unknown_fields_included() {
    let r: ChatCompletionRequest = serde_json::from_str(REQUEST_1).unwrap();
    assert_eq!(r.user.as_deref(), Some("alice"));
    assert_eq!(r.max_tokens(), Some(64));
    let r: ChatCompletionRequest = serde_json::from_str(REQUEST_2).unwrap();
    assert!(r.is_stream());
    assert_eq!(r.stop.unwrap().to_vec(), ["\n\n"]);
    assert_eq!(r.stream_options.unwrap().include_usage, Some(true));

    let r = parse(json!({
        "model": "tiny-llama@1",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is "},
                {"type": "text", "text": "this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}}
            ], "name": "bob"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ],
        "stop": null,
        "seed": -7,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}, "strict": true}},
        "frequency_penalty": -1.5,
        "service_tier": "auto",
        "reasoning_effort": "low",
        "prediction": {"type": "content", "content": "x"},
        "a_field_openai_adds_next_year": {"nested": [1, 2]}
    }))
    .unwrap();
    let ChatMessage::User { content, .. } = &r.messages[1] else {
        panic!("{:?}", r.messages[1])
    };
    assert_eq!(content.text(), "What is this?");
    assert_eq!(r.stop, None);
    assert_eq!(r.seed, Some(-7));
    for choice in ["none", "auto", "required"] {
        let mut v = serde_json::from_str::<serde_json::Value>(REQUEST_1).unwrap();
        v["tool_choice"] = choice.into();
        assert_eq!(
            parse(v).unwrap().tool_choice,
            Some(ToolChoice::Mode(choice.into()))
        );
    }
}

#[test]
fn bad_values_of_known_fields_name_the_field() {
    let base = serde_json::from_str::<serde_json::Value>(REQUEST_1).unwrap();
    for (field, value, says) in [
        (
            "temperature",
            json!(3),
            "temperature: must be a number from 0 to 2, got 3",
        ),
        (
            "temperature",
            json!("hot"),
            "temperature: must be a number from 0 to 2",
        ),
        ("top_p", json!(1.5), "top_p: must be a number from 0 to 1"),
        (
            "presence_penalty",
            json!(-3),
            "presence_penalty: must be a number from -2 to 2",
        ),
        (
            "frequency_penalty",
            json!(9),
            "frequency_penalty: must be a number from -2 to 2",
        ),
        ("max_tokens", json!(-1), "max_tokens:"),
        (
            "max_completion_tokens",
            json!("64"),
            "max_completion_tokens:",
        ),
        ("seed", json!(1.5), "seed:"),
        (
            "stop",
            json!(["a", 1]),
            "stop: must be a string or an array of strings",
        ),
        ("stream", json!("yes"), "stream:"),
        ("n", json!(0.5), "n:"),
        ("tool_choice", json!("sometimes"), "tool_choice: must be"),
        (
            "response_format",
            json!({"type": "yaml"}),
            "response_format:",
        ),
        (
            "messages",
            json!([{"role": "wizard", "content": "x"}]),
            "messages:",
        ),
        (
            "messages",
            json!([{"role": "user", "content": 5}]),
            "content: must be a string or an array",
        ),
        (
            "messages",
            json!([{"role": "user", "content": [{"type": "video"}]}]),
            "messages:",
        ),
        ("model", json!(5), "model:"),
    ] {
        let mut v = base.clone();
        v[field] = value;
        let e = parse(v).unwrap_err();
        assert!(e.contains(says), "{field}: {e}");
    }
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove("messages");
    assert!(parse(v).unwrap_err().contains("messages"));
}

#[test]
fn answers_read_back_exactly_as_published() {
    let c: ChatCompletion = serde_json::from_str(RESPONSE_1).unwrap();
    assert_eq!(c.object, ChatCompletion::OBJECT);
    assert_eq!(c.choices[0].message.content.as_deref(), Some("Hello!"));
    assert_eq!(c.choices[0].finish_reason, WireFinishReason::Stop);
    assert_eq!(serde_json::to_string(&c).unwrap(), RESPONSE_1.trim_end());
    assert!(c.vouch.is_some());

    let events: Vec<&str> = SSE_2
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let (receipt, chunks) = events[..events.len() - 1].split_last().unwrap();
    for (i, data) in chunks.iter().enumerate() {
        let chunk: ChatCompletionChunk = serde_json::from_str(data).unwrap();
        assert_eq!(chunk.vouch.index as usize, i);
        assert_eq!(serde_json::to_string(&chunk).unwrap(), *data, "chunk {i}");
    }
    let last: ChatCompletionChunk = serde_json::from_str(chunks[chunks.len() - 1]).unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.unwrap().unwrap().total_tokens, 15);
    let event: ChatReceiptEvent = serde_json::from_str(receipt).unwrap();
    assert_eq!(event.object, "vouch.receipt");
    assert_eq!(serde_json::to_string(&event).unwrap(), *receipt);
}

#[test]
fn legacy_completions_models_embeddings_and_errors() {
    let r: CompletionRequest = serde_json::from_value(json!({
        "model": "m", "prompt": [[1, 2], [3]], "max_tokens": 16, "echo": false, "logprobs": 2, "suffix": null
    }))
    .unwrap();
    assert_eq!(r.prompt, Prompt::TokenLists(vec![vec![1, 2], vec![3]]));
    for (prompt, want) in [
        (json!("hi"), Prompt::Text("hi".into())),
        (
            json!(["a", "b"]),
            Prompt::Texts(vec!["a".into(), "b".into()]),
        ),
        (json!([1, 2]), Prompt::Tokens(vec![1, 2])),
    ] {
        let r: CompletionRequest =
            serde_json::from_value(json!({"model": "m", "prompt": prompt})).unwrap();
        assert_eq!(r.prompt, want);
    }
    for bad in [json!([]), json!([1, "a"]), json!({"x": 1}), json!([-1])] {
        let e = serde_json::from_value::<CompletionRequest>(json!({"model": "m", "prompt": bad}))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("prompt: must be"), "{e}");
    }

    let e: EmbeddingRequest = serde_json::from_value(json!({
        "model": "minilm@1", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 384
    }))
    .unwrap();
    assert_eq!(e.encoding_format, Some(EncodingFormat::Base64));
    let err = serde_json::from_value::<EmbeddingRequest>(
        json!({"model": "m", "input": "a", "encoding_format": "int8"}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("encoding_format:"), "{err}");
    let answer = json!({
        "object": "list",
        "data": [{"object": "embedding", "embedding": [0.25, -1.0], "index": 0},
                 {"object": "embedding", "embedding": "AACAPg==", "index": 1}],
        "model": "minilm@1",
        "usage": {"prompt_tokens": 2, "total_tokens": 2}
    });
    let a: EmbeddingResponse = serde_json::from_value(answer.clone()).unwrap();
    assert_eq!(
        a.data[1].embedding,
        EmbeddingVector::Base64("AACAPg==".into())
    );
    assert_eq!(serde_json::to_value(&a).unwrap(), answer);

    let models = json!({"object": "list", "data": [
        {"id": "tiny-llama@1", "object": "model", "created": 1796644800, "owned_by": "vouch"}
    ]});
    let m: OpenAiModelList = serde_json::from_value(models.clone()).unwrap();
    assert_eq!(serde_json::to_value(&m).unwrap(), models);

    let e = OpenAiError::invalid_request(
        "temperature: must be a number from 0 to 2, got 3",
        Some("temperature"),
    );
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"error": {"message": "temperature: must be a number from 0 to 2, got 3",
                         "type": "invalid_request_error", "param": "temperature", "code": null}})
    );
}

#[test]
fn a_whole_error_message_reads_well() {
    let e = serde_json::from_str::<ChatCompletionRequest>(
        r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "messages: unknown variant `wizard`, expected one of `system`, `developer`, `user`, \
         `assistant`, `tool` at line 1 column 41"
    );
}
