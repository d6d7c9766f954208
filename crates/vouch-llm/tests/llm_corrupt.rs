//! Corrupt and unsupported GGUFs are refused with a typed reason: no panic, no allocation
//! sized by a number read from the file. Built here from a small valid file (no setup needed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use vouch_llm::{GgufError, GgufFile, LlmError, LoadedLlm, inspect};

const VOCAB: usize = 6;
const EMBD: usize = 8;

struct Spec {
    architecture: &'static str,
    vocab_in_header: Option<u32>,
    tokens: usize,
    extra: Vec<(&'static str, Value)>,
    duplicate_tensor: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            architecture: "llama",
            vocab_in_header: None,
            tokens: VOCAB,
            extra: vec![],
            duplicate_tensor: false,
        }
    }
}

/// A small llama GGUF: a header that passes the checks, and only the tensors they look at.
fn build(spec: Spec) -> Vec<u8> {
    let arch = spec.architecture;
    let tokens: Vec<Value> = ["<s>", "</s>", "a", "b", "ab", "Ġ", "x", "y"][..spec.tokens]
        .iter()
        .map(|t| Value::String(t.to_string()))
        .collect();
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (format!("{arch}.context_length"), Value::U32(32)),
        (format!("{arch}.embedding_length"), Value::U32(EMBD as u32)),
        (format!("{arch}.block_count"), Value::U32(1)),
        (format!("{arch}.attention.head_count"), Value::U32(2)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(1)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(vec![Value::String("a b".into())]),
        ),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(1)),
    ];
    if let Some(v) = spec.vocab_in_header {
        metadata.push((format!("{arch}.vocab_size"), Value::U32(v)));
    }
    for (k, v) in spec.extra {
        metadata.push((k.into(), v));
    }
    let t = |rows: &[usize]| {
        let n: usize = rows.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        QTensor::quantize(
            &Tensor::from_vec(data, rows, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let mut tensors = vec![
        ("token_embd.weight", t(&[VOCAB, EMBD])),
        ("output_norm.weight", t(&[EMBD])),
        ("blk.0.attn_norm.weight", t(&[EMBD])),
    ];
    if spec.duplicate_tensor {
        tensors.push(("output_norm.weight", t(&[EMBD])));
    }
    let mut out = Cursor::new(Vec::new());
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut out, &md, &ts).unwrap();
    out.into_inner()
}

fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::parse(&mut Cursor::new(bytes))
}

/// Offset of the first occurrence of `needle` in `bytes`.
fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Held while RSS is measured, and by the test that makes candle fail inside a model
/// constructor: with `RUST_BACKTRACE` set, candle captures and symbolises a backtrace for
/// each error, which costs ~160 MB of RSS once, and tests run in parallel in one process.
static RSS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` and checks it did not grow the RSS by more than 64 MB (a length read from the
/// file was not trusted for an allocation).
fn bounded<T>(f: impl FnOnce() -> T) -> T {
    let _rss = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = common::rss_bytes();
    let out = f();
    let grown = common::rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
    out
}

#[test]
fn the_base_file_passes() {
    let facts = parse(&build(Spec::default())).unwrap().facts;
    assert_eq!(
        (facts.vocab_size, facts.embedding_length, facts.head_dim),
        (6, 8, 4)
    );
    assert_eq!(facts.quantization, "F32");
}

#[test]
fn a_truncated_file_is_refused() {
    let bytes = build(Spec::default());
    // Inside the tensor data: the last tensor's range runs past the end.
    let err = parse(&bytes[..bytes.len() - 4]).unwrap_err();
    assert!(
        matches!(&err, GgufError::BadTensor { why, .. } if why.contains("file has")),
        "{err}"
    );
    // Inside the header.
    for cut in [0, 3, 10, 30, 200] {
        let err = parse(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, GgufError::Truncated { .. } | GgufError::NotGguf),
            "cut {cut}: {err}"
        );
    }
}

#[test]
fn a_tensor_offset_past_the_end_is_refused() {
    let mut bytes = build(Spec::default());
    // The last tensor's info: name, n_dims (u32), one dim (u64), dtype (u32), offset (u64).
    let name = b"blk.0.attn_norm.weight";
    let offset_at = find(&bytes, name) + name.len() + 4 + 8 + 4;
    put_u64(&mut bytes, offset_at, 1 << 40);
    let err = bounded(|| parse(&bytes).unwrap_err());
    assert!(
        matches!(&err, GgufError::BadTensor { name, why } if name == "blk.0.attn_norm.weight" && why.contains("file has")),
        "{err}"
    );
    // An offset that makes start + size overflow u64.
    put_u64(&mut bytes, offset_at, u64::MAX - 3);
    let err = parse(&bytes).unwrap_err();
    assert!(matches!(err, GgufError::BadTensor { .. }), "{err}");
}

#[test]
fn a_header_vocab_size_that_disagrees_is_refused() {
    // The header's vocab_size against the token list.
    let err = parse(&build(Spec {
        vocab_in_header: Some(7),
        ..Spec::default()
    }))
    .unwrap_err();
    assert!(
        matches!(&err, GgufError::BadValue { key, .. } if key == "llama.vocab_size"),
        "{err}"
    );
    // The token list against the embedding tensor.
    let err = parse(&build(Spec {
        tokens: 8,
        ..Spec::default()
    }))
    .unwrap_err();
    assert!(
        matches!(&err, GgufError::BadTensor { name, why } if name == "token_embd.weight" && why.contains("[8, 8]")),
        "{err}"
    );
}

#[test]
fn an_absurd_metadata_array_or_string_length_is_refused_without_allocating_it() {
    let base = build(Spec::default());
    // tokenizer.ggml.tokens: key, value type (u32 = 9), element type (u32 = 8), length (u64).
    let key = b"tokenizer.ggml.tokens";
    let len_at = find(&base, key) + key.len() + 4 + 4;
    for absurd in [1u64 << 60, u64::MAX, 5_000_000] {
        let mut bytes = base.clone();
        put_u64(&mut bytes, len_at, absurd);
        let err = bounded(|| parse(&bytes).unwrap_err());
        assert!(matches!(err, GgufError::TooLarge { .. }), "{absurd}: {err}");
    }
    // Within the limit but more than the file holds.
    let mut bytes = base.clone();
    put_u64(&mut bytes, len_at, 1_000_000);
    let err = bounded(|| parse(&bytes).unwrap_err());
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    // general.architecture's string length (key, value type u32, then the length).
    let key = b"general.architecture";
    let len_at = find(&base, key) + key.len() + 4;
    let mut bytes = base.clone();
    put_u64(&mut bytes, len_at, 1 << 62);
    let err = bounded(|| parse(&bytes).unwrap_err());
    assert!(matches!(err, GgufError::TooLarge { .. }), "{err}");
    // A tensor with 1000 dimensions.
    let name = b"output_norm.weight";
    let mut bytes = base;
    let at = find(&bytes, name) + name.len();
    bytes[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    let err = bounded(|| parse(&bytes).unwrap_err());
    assert!(matches!(err, GgufError::BadTensor { .. }), "{err}");
}

#[test]
fn a_tensor_named_twice_is_refused() {
    let err = parse(&build(Spec {
        duplicate_tensor: true,
        ..Spec::default()
    }))
    .unwrap_err();
    assert_eq!(err, GgufError::Duplicate);
}

#[test]
fn an_unknown_architecture_is_refused() {
    let err = parse(&build(Spec {
        architecture: "mamba",
        ..Spec::default()
    }))
    .unwrap_err();
    assert_eq!(err, GgufError::UnsupportedArchitecture("mamba".into()));
}

#[test]
fn bad_magic_version_alignment_and_value_types_are_refused() {
    assert_eq!(parse(b"GGML\x03\0\0\0").unwrap_err(), GgufError::NotGguf);
    let mut bytes = build(Spec::default());
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(parse(&bytes).unwrap_err(), GgufError::UnsupportedVersion(1));
    // An alignment of 0 would divide by zero in candle's reader.
    let err = parse(&build(Spec {
        extra: vec![("general.alignment", Value::U32(0))],
        ..Spec::default()
    }))
    .unwrap_err();
    assert!(
        matches!(&err, GgufError::BadValue { key, .. } if key == "general.alignment"),
        "{err}"
    );
    // An undefined value type.
    let mut bytes = build(Spec::default());
    let key = b"general.architecture";
    let at = find(&bytes, key) + key.len();
    bytes[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::BadValueType { value_type: 77, .. }
    ));
    // A tensor type candle does not know (checked before candle's reader sees it).
    let mut bytes = build(Spec::default());
    let name = b"output_norm.weight";
    let at = find(&bytes, name) + name.len() + 4 + 8;
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = parse(&bytes).unwrap_err();
    assert!(
        matches!(&err, GgufError::BadTensor { why, .. } if why.contains("type 99")),
        "{err}"
    );
    // A bool that is neither 0 nor 1.
    let mut bytes = build(Spec {
        extra: vec![("tokenizer.ggml.add_bos_token", Value::Bool(true))],
        ..Spec::default()
    });
    let key = b"tokenizer.ggml.add_bos_token";
    let at = find(&bytes, key) + key.len() + 4;
    bytes[at] = 2;
    let err = parse(&bytes).unwrap_err();
    assert!(
        matches!(&err, GgufError::BadValue { key, .. } if key == "tokenizer.ggml.add_bos_token"),
        "{err}"
    );
}

#[test]
fn registration_and_load_refuse_with_an_invalid_model_error() {
    let mut bytes = build(Spec::default());
    let key = b"tokenizer.ggml.tokens";
    let len_at = find(&bytes, key) + key.len() + 4 + 4;
    put_u64(&mut bytes, len_at, 1 << 60);
    let err = inspect(&mut Cursor::new(&bytes)).unwrap_err();
    assert!(err.is_invalid_model(), "{err}");
    let err = LoadedLlm::from_reader(&mut Cursor::new(&bytes)).unwrap_err();
    assert!(err.is_invalid_model(), "{err}");
    // The small file passes the header checks but lacks the tensors a llama model needs:
    // candle's constructor refuses it, and that is the file's fault too.
    let err = {
        let _rss = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        LoadedLlm::from_reader(&mut Cursor::new(build(Spec::default()))).unwrap_err()
    };
    // candle's backtrace is not part of the reason.
    assert!(!err.to_string().contains('\n'), "{err}");
    assert!(matches!(err, LlmError::Gguf(GgufError::Candle(_))), "{err}");
    assert!(err.is_invalid_model());
    // Registration builds the tokenizer too: an unknown pre-tokenizer is refused.
    let err = inspect(&mut Cursor::new(build(Spec {
        extra: vec![("tokenizer.ggml.pre", Value::String("no-such-pre".into()))],
        ..Spec::default()
    })))
    .unwrap_err();
    assert!(
        matches!(err, LlmError::Tokenizer(_)) && err.is_invalid_model(),
        "{err}"
    );
}

/// Random corruptions of the small file (a deterministic stream of them): every one is
/// either accepted or refused with an error — never a panic, never a large allocation.
#[test]
fn random_corruptions_never_panic() {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};
    let base = build(Spec::default());
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let mut refused = 0;
    bounded(|| {
        for case in 0..3000 {
            let mut bytes = base.clone();
            let edits = 1 + rng.next_u32() % 4;
            for _ in 0..edits {
                let at = rng.next_u32() as usize % bytes.len();
                match rng.next_u32() % 3 {
                    0 => bytes[at] = rng.next_u32() as u8,
                    1 => bytes[at] ^= 1 << (rng.next_u32() % 8),
                    _ => bytes.truncate(at.max(1)),
                }
            }
            let outcome = std::panic::catch_unwind(|| inspect(&mut Cursor::new(&bytes)).is_err());
            match outcome {
                Ok(true) => refused += 1,
                Ok(false) => {}
                Err(_) => panic!("case {case} panicked; bytes: {bytes:?}"),
            }
        }
    });
    assert!(refused > 1000, "only {refused} of 3000 corruptions refused");
}
