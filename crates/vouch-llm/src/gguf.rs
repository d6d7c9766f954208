//! Reading and checking a GGUF before any engine sees it.
//!
//! candle's reader (`candle_core::quantized::gguf_file::Content::read`) trusts the lengths it
//! reads: a string or array length of 2^60 becomes one allocation of that size, and an
//! alignment of 0 divides by zero. So [`GgufFile::parse`] first walks the header itself with
//! every length checked against the bytes that remain (and against fixed limits), then lets
//! candle read the now-known-bounded header, then checks that every tensor's data lies inside
//! the file and that the shapes agree with the header (vocabulary, embedding width, block
//! count). Only a file that passed all of this is handed to a model constructor.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use serde::{Deserialize, Serialize};

use crate::error::GgufError;

/// Most elements one metadata array may declare. Real vocabularies are at most a few hundred
/// thousand tokens (gemma3: 262,144; merges lists about as many); candle keeps each element
/// as a 32-byte `Value`, so this caps one array at 128 MiB of memory.
pub const MAX_ARRAY_LEN: u64 = 4 << 20;
/// Longest metadata string (chat templates are the long ones: tens of KiB).
pub const MAX_STRING_LEN: u64 = 1 << 20;
/// Most metadata entries and tensors (real files: tens of entries, at most a few thousand tensors).
pub const MAX_ENTRIES: u64 = 1 << 16;
/// GGML_MAX_DIMS.
pub const MAX_DIMS: u32 = 4;

/// The architectures this engine runs (the GGUF's `general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Llama,
    Qwen2,
    Qwen3,
    Phi3,
    Gemma3,
}

impl Architecture {
    pub fn from_name(name: &str) -> Result<Self, GgufError> {
        match name {
            "llama" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            "qwen3" => Ok(Self::Qwen3),
            "phi3" => Ok(Self::Phi3),
            "gemma3" => Ok(Self::Gemma3),
            other => Err(GgufError::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// The metadata key prefix and `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Phi3 => "phi3",
            Self::Gemma3 => "gemma3",
        }
    }
}

/// What registration shows about a GGUF: extracted from the header, checked against the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufFacts {
    pub gguf_version: u32,
    pub architecture: Architecture,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// The file type (`general.file_type`, e.g. `Q4_1`); without one, the tensor type holding
    /// the most bytes.
    pub quantization: String,
    /// Bytes of tensor data per tensor type (`F32`, `Q4_1`, …).
    pub tensor_bytes_by_type: BTreeMap<String, u64>,
    pub context_length: u64,
    pub vocab_size: u64,
    pub embedding_length: u64,
    pub block_count: u64,
    pub head_count: u64,
    pub head_count_kv: u64,
    /// Per-head width of keys and values (what one cached position costs per layer).
    pub head_dim: u64,
    pub parameter_count: u64,
    pub tensor_count: u64,
    pub file_size: u64,
    /// `tokenizer.ggml.model` (`gpt2`, `llama`, …) and `tokenizer.ggml.pre`.
    pub tokenizer_model: String,
    pub tokenizer_pre: Option<String>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// `tokenizer.chat_template`: the Jinja template the model was trained with.
    pub chat_template: Option<String>,
}

/// A GGUF whose header passed every check: its facts and candle's parsed header, ready for a
/// model constructor (candle's types stay inside this crate).
pub struct GgufFile {
    pub facts: GgufFacts,
    pub(crate) content: Content,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Reads and checks the header of the GGUF in `reader` (which must start at the file's
    /// first byte and hold the whole file). Reads the header only, never the tensor data.
    pub fn parse<R: Read + Seek>(reader: &mut R) -> Result<Self, GgufError> {
        let file_size = reader.seek(SeekFrom::End(0)).map_err(io_truncated)?;
        reader.seek(SeekFrom::Start(0)).map_err(io_truncated)?;
        let declared = {
            let mut bounded = std::io::BufReader::new(&mut *reader);
            prescan(&mut bounded, file_size)?
        };
        reader.seek(SeekFrom::Start(0)).map_err(io_truncated)?;
        let content = {
            let mut buffered = std::io::BufReader::new(&mut *reader);
            Content::read(&mut buffered).map_err(|e| GgufError::Candle(candle_reason(&e)))?
        };
        // candle keeps the last of two entries with one name: a file that names a tensor or a
        // key twice means two things at once, and is refused.
        if content.tensor_infos.len() as u64 != declared.tensor_count
            || content.metadata.len() as u64 != declared.kv_count
        {
            return Err(GgufError::Duplicate);
        }
        let facts = check(&content, declared.version, file_size)?;
        Ok(Self { facts, content })
    }
}

fn io_truncated(e: std::io::Error) -> GgufError {
    GgufError::Candle(format!("reading the file: {e}"))
}

/// A reader that knows how many bytes of the file remain, so every declared length can be
/// checked before anything is allocated for it.
struct Bounded<'a, R> {
    inner: &'a mut R,
    pos: u64,
    len: u64,
}

impl<R: Read> Bounded<'_, R> {
    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                at: self.pos,
                len: self.len,
            });
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| GgufError::Truncated {
                what: what.to_string(),
                at: self.pos,
                len: self.len,
            })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes::<4>(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes::<8>(what)?))
    }

    /// Skips `n` bytes that must exist.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        let copied =
            std::io::copy(&mut (&mut *self.inner).take(n), &mut std::io::sink()).map_err(|_| {
                GgufError::Truncated {
                    what: what.to_string(),
                    at: self.pos,
                    len: self.len,
                }
            })?;
        if copied != n {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                at: self.pos + copied,
                len: self.len,
            });
        }
        self.pos += n;
        Ok(())
    }

    /// Reads a string of at most `limit` bytes (keys, tensor names, short values).
    fn string(&mut self, what: &str, limit: u64) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        if n > limit {
            return Err(GgufError::TooLarge {
                what: format!("{what} length"),
                declared: n,
                limit,
            });
        }
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| GgufError::Truncated {
                what: what.to_string(),
                at: self.pos,
                len: self.len,
            })?;
        self.pos += n;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Skips a string value after checking its length.
    fn skip_string(&mut self, what: &str) -> Result<(), GgufError> {
        let n = self.u64(what)?;
        if n > MAX_STRING_LEN {
            return Err(GgufError::TooLarge {
                what: format!("{what} length"),
                declared: n,
                limit: MAX_STRING_LEN,
            });
        }
        self.skip(n, what)
    }
}

/// Size in the file of one fixed-size GGUF value type; `None` for strings and arrays.
fn scalar_size(value_type: u32) -> Option<u64> {
    match value_type {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),     // u16, i16
        4..=6 => Some(4),     // u32, i32, f32
        10..=12 => Some(8),   // u64, i64, f64
        _ => None,
    }
}

const TYPE_BOOL: u32 = 7;
const TYPE_STRING: u32 = 8;
/// The ggml tensor types candle 0.11.1 reads (`GgmlDType::from_u32`): F32, F16, Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, Q8_1, Q2_K…Q8_K, BF16. Checked here so candle's reader never fails on one
/// (its errors capture a backtrace when `RUST_BACKTRACE` is set: costly on hostile input).
const CANDLE_TENSOR_TYPES: [u32; 15] = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30];
const TYPE_ARRAY: u32 = 9;

/// What the header declares, as walked.
struct Declared {
    version: u32,
    tensor_count: u64,
    kv_count: u64,
}

/// Walks the whole header with bounded reads. After it succeeds,
/// candle's reader allocates nothing larger than the file (arrays: at most [`MAX_ARRAY_LEN`]
/// elements), and the alignment it divides by is a nonzero power of two.
fn prescan<R: Read>(reader: &mut R, file_size: u64) -> Result<Declared, GgufError> {
    let mut r = Bounded {
        inner: reader,
        pos: 0,
        len: file_size,
    };
    if &r.bytes::<4>("magic")? != b"GGUF" {
        return Err(GgufError::NotGguf);
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let tensor_count = r.u64("tensor count")?;
    let kv_count = r.u64("metadata count")?;
    for (what, n) in [("tensor count", tensor_count), ("metadata count", kv_count)] {
        if n > MAX_ENTRIES {
            return Err(GgufError::TooLarge {
                what: what.to_string(),
                declared: n,
                limit: MAX_ENTRIES,
            });
        }
    }
    for _ in 0..kv_count {
        let key = r.string("metadata key", MAX_STRING_LEN)?;
        let value_type = r.u32("metadata value type")?;
        if key == "general.alignment" {
            let alignment = match value_type {
                4 => u64::from(r.u32("alignment")?),
                _ => {
                    return Err(GgufError::WrongType {
                        key,
                        expected: "u32",
                    });
                }
            };
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(GgufError::BadValue {
                    key,
                    value: alignment.to_string(),
                    why: "not a power of two",
                });
            }
            continue;
        }
        skip_value(&mut r, &key, value_type)?;
    }
    for _ in 0..tensor_count {
        let name = r.string("tensor name", 1 << 16)?;
        let n_dims = r.u32("tensor dimension count")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::BadTensor {
                name,
                why: format!("has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
            });
        }
        r.skip(8 * u64::from(n_dims), "tensor dimensions")?;
        let dtype = r.u32("tensor type")?;
        if !CANDLE_TENSOR_TYPES.contains(&dtype) {
            return Err(GgufError::BadTensor {
                name,
                why: format!("has tensor type {dtype}, which candle does not support"),
            });
        }
        r.skip(8, "tensor offset")?;
    }
    Ok(Declared {
        version,
        tensor_count,
        kv_count,
    })
}

fn skip_value<R: Read>(
    r: &mut Bounded<'_, R>,
    key: &str,
    value_type: u32,
) -> Result<(), GgufError> {
    if value_type == TYPE_BOOL {
        return check_bool(r, key);
    }
    if let Some(size) = scalar_size(value_type) {
        return r.skip(size, "metadata value");
    }
    match value_type {
        TYPE_STRING => r.skip_string("metadata string"),
        TYPE_ARRAY => {
            let element_type = r.u32("array element type")?;
            let len = r.u64("array length")?;
            if len > MAX_ARRAY_LEN {
                return Err(GgufError::TooLarge {
                    what: format!("metadata array `{key}`"),
                    declared: len,
                    limit: MAX_ARRAY_LEN,
                });
            }
            if element_type == TYPE_BOOL {
                r.need(len, "metadata bool array")?;
                for _ in 0..len {
                    check_bool(r, key)?;
                }
                return Ok(());
            }
            if let Some(size) = scalar_size(element_type) {
                // len ≤ 2^22 and size ≤ 8: no overflow.
                return r.skip(len * size, "metadata array");
            }
            match element_type {
                TYPE_STRING => {
                    // Each string takes at least its 8-byte length: a declared count the file
                    // cannot hold fails here, before the loop.
                    r.need(len * 8, "metadata string array")?;
                    for _ in 0..len {
                        r.skip_string("metadata string array element")?;
                    }
                    Ok(())
                }
                TYPE_ARRAY => Err(GgufError::NestedArray {
                    key: key.to_string(),
                }),
                other => Err(GgufError::BadValueType {
                    key: key.to_string(),
                    value_type: other,
                }),
            }
        }
        other => Err(GgufError::BadValueType {
            key: key.to_string(),
            value_type: other,
        }),
    }
}

/// A GGUF bool is one byte, 0 or 1 (candle refuses anything else).
fn check_bool<R: Read>(r: &mut Bounded<'_, R>, key: &str) -> Result<(), GgufError> {
    let [b] = r.bytes::<1>("metadata bool")?;
    if b > 1 {
        return Err(GgufError::BadValue {
            key: key.to_string(),
            value: b.to_string(),
            why: "not a bool (0 or 1)",
        });
    }
    Ok(())
}

/// candle's error text, without the backtrace it appends when `RUST_BACKTRACE` is set.
pub(crate) fn candle_reason(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// Metadata accessors that name the key in their errors.
pub(crate) struct Meta<'a>(pub &'a HashMap<String, Value>);

impl Meta<'_> {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>, GgufError> {
        let wrong = || GgufError::WrongType {
            key: key.to_string(),
            expected: "a non-negative integer",
        };
        Ok(match self.0.get(key) {
            None => None,
            Some(Value::U8(v)) => Some(u64::from(*v)),
            Some(Value::U16(v)) => Some(u64::from(*v)),
            Some(Value::U32(v)) => Some(u64::from(*v)),
            Some(Value::U64(v)) => Some(*v),
            Some(Value::I8(v)) => Some(u64::try_from(*v).map_err(|_| wrong())?),
            Some(Value::I16(v)) => Some(u64::try_from(*v).map_err(|_| wrong())?),
            Some(Value::I32(v)) => Some(u64::try_from(*v).map_err(|_| wrong())?),
            Some(Value::I64(v)) => Some(u64::try_from(*v).map_err(|_| wrong())?),
            Some(_) => return Err(wrong()),
        })
    }

    pub fn required_uint(&self, key: &str) -> Result<u64, GgufError> {
        self.uint(key)?.ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    pub fn string(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(GgufError::WrongType {
                key: key.to_string(),
                expected: "a string",
            }),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&[Value]>, GgufError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Array(v)) => Ok(Some(v)),
            Some(_) => Err(GgufError::WrongType {
                key: key.to_string(),
                expected: "an array",
            }),
        }
    }

    pub fn token_id(&self, key: &str) -> Result<Option<u32>, GgufError> {
        match self.uint(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v).map(Some).map_err(|_| GgufError::BadValue {
                key: key.to_string(),
                value: v.to_string(),
                why: "not a token id",
            }),
        }
    }
}

/// The name llama.cpp gives a `general.file_type` (`LLAMA_FTYPE_*`), for the common ones.
fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

pub(crate) fn dtype_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// Bytes of one tensor's data, or why its shape cannot be stored in its type.
fn tensor_bytes(name: &str, info: &TensorInfo) -> Result<(u64, u64), GgufError> {
    let dims = info.shape.dims();
    let mut elements: u64 = 1;
    for &d in dims {
        elements = elements
            .checked_mul(d as u64)
            .ok_or_else(|| GgufError::BadTensor {
                name: name.to_string(),
                why: format!("has a shape {dims:?} whose element count overflows"),
            })?;
    }
    let block = info.ggml_dtype.block_size() as u64;
    // ggml quantizes along rows: the innermost dimension must be whole blocks.
    let row = dims.last().copied().unwrap_or(1) as u64;
    if block == 0 || !row.is_multiple_of(block) {
        return Err(GgufError::BadTensor {
            name: name.to_string(),
            why: format!(
                "has rows of {row} elements, not a multiple of the {}-element blocks of {}",
                block,
                dtype_name(info.ggml_dtype)
            ),
        });
    }
    let bytes = (elements / block)
        .checked_mul(info.ggml_dtype.type_size() as u64)
        .ok_or_else(|| GgufError::BadTensor {
            name: name.to_string(),
            why: "has a byte size that overflows".to_string(),
        })?;
    Ok((elements, bytes))
}

fn shape_is(content: &Content, name: &str, want: &[u64]) -> Result<(), GgufError> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| GgufError::MissingTensor {
            name: name.to_string(),
        })?;
    let got: Vec<u64> = info.shape.dims().iter().map(|&d| d as u64).collect();
    if got != want {
        return Err(GgufError::BadTensor {
            name: name.to_string(),
            why: format!("has shape {got:?}, but the header implies {want:?}"),
        });
    }
    Ok(())
}

/// Checks the tensors against the file and the header; returns the facts.
fn check(content: &Content, gguf_version: u32, file_size: u64) -> Result<GgufFacts, GgufError> {
    let meta = Meta(&content.metadata);
    let arch_name = meta
        .string("general.architecture")?
        .ok_or_else(|| GgufError::MissingKey {
            key: "general.architecture".into(),
        })?;
    let architecture = Architecture::from_name(arch_name)?;
    let arch = architecture.name();

    // Every tensor's data lies inside the file, without overlapping another's.
    let mut tensor_bytes_by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut parameter_count: u64 = 0;
    let mut ranges: Vec<(u64, u64, &str)> = Vec::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let (elements, bytes) = tensor_bytes(name, info)?;
        let start = content
            .tensor_data_offset
            .checked_add(info.offset)
            .ok_or_else(|| GgufError::BadTensor {
                name: name.clone(),
                why: "has an offset that overflows".into(),
            })?;
        let end = start
            .checked_add(bytes)
            .filter(|&e| e <= file_size)
            .ok_or_else(|| GgufError::BadTensor {
                name: name.clone(),
                why: format!(
                    "has data at bytes {start}..{} but the file has {file_size} bytes",
                    start.saturating_add(bytes)
                ),
            })?;
        ranges.push((start, end, name));
        parameter_count = parameter_count.saturating_add(elements);
        *tensor_bytes_by_type
            .entry(dtype_name(info.ggml_dtype).to_string())
            .or_default() += bytes;
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(GgufError::BadTensor {
                name: pair[1].2.to_string(),
                why: format!("overlaps the data of `{}`", pair[0].2),
            });
        }
    }

    let key = |k: &str| format!("{arch}.{k}");
    let context_length = meta.required_uint(&key("context_length"))?;
    let embedding_length = meta.required_uint(&key("embedding_length"))?;
    let block_count = meta.required_uint(&key("block_count"))?;
    let head_count = meta.required_uint(&key("attention.head_count"))?;
    let head_count_kv = meta
        .uint(&key("attention.head_count_kv"))?
        .unwrap_or(head_count);
    for (k, v) in [
        ("context_length", context_length),
        ("embedding_length", embedding_length),
        ("block_count", block_count),
        ("attention.head_count", head_count),
        ("attention.head_count_kv", head_count_kv),
    ] {
        if v == 0 || v > u64::from(u32::MAX) {
            return Err(GgufError::BadValue {
                key: key(k),
                value: v.to_string(),
                why: "out of range",
            });
        }
    }
    if !head_count.is_multiple_of(head_count_kv) {
        return Err(GgufError::BadValue {
            key: key("attention.head_count_kv"),
            value: head_count_kv.to_string(),
            why: "does not divide the head count",
        });
    }
    let head_dim = match meta.uint(&key("attention.key_length"))? {
        Some(k) if k > 0 => k,
        Some(k) => {
            return Err(GgufError::BadValue {
                key: key("attention.key_length"),
                value: k.to_string(),
                why: "out of range",
            });
        }
        None => {
            if !embedding_length.is_multiple_of(head_count) {
                return Err(GgufError::BadValue {
                    key: key("embedding_length"),
                    value: embedding_length.to_string(),
                    why: "not a multiple of the head count",
                });
            }
            embedding_length / head_count
        }
    };

    let tokens = meta
        .array("tokenizer.ggml.tokens")?
        .ok_or_else(|| GgufError::MissingKey {
            key: "tokenizer.ggml.tokens".into(),
        })?;
    let vocab_size = tokens.len() as u64;
    if let Some(declared) = meta.uint(&key("vocab_size"))?
        && declared != vocab_size
    {
        return Err(GgufError::BadValue {
            key: key("vocab_size"),
            value: declared.to_string(),
            why: "differs from the number of tokens in tokenizer.ggml.tokens",
        });
    }
    shape_is(
        content,
        "token_embd.weight",
        &[vocab_size, embedding_length],
    )?;
    if content.tensor_infos.contains_key("output.weight") {
        shape_is(content, "output.weight", &[vocab_size, embedding_length])?;
    }
    shape_is(content, "output_norm.weight", &[embedding_length])?;
    for i in 0..block_count {
        shape_is(
            content,
            &format!("blk.{i}.attn_norm.weight"),
            &[embedding_length],
        )?;
    }
    for name in content.tensor_infos.keys() {
        if let Some(rest) = name.strip_prefix("blk.") {
            let index = rest.split('.').next().and_then(|s| s.parse::<u64>().ok());
            if index.is_none_or(|i| i >= block_count) {
                return Err(GgufError::BadTensor {
                    name: name.clone(),
                    why: format!("is outside the {block_count} blocks the header declares"),
                });
            }
        }
    }

    let quantization = meta
        .uint("general.file_type")?
        .and_then(file_type_name)
        .map(str::to_string)
        .or_else(|| {
            tensor_bytes_by_type
                .iter()
                .max_by_key(|(_, bytes)| **bytes)
                .map(|(t, _)| t.clone())
        })
        .unwrap_or_else(|| "none".to_string());
    let tokenizer_model = meta
        .string("tokenizer.ggml.model")?
        .ok_or_else(|| GgufError::MissingKey {
            key: "tokenizer.ggml.model".into(),
        })?
        .to_string();

    let bos_token_id = meta.token_id("tokenizer.ggml.bos_token_id")?;
    let eos_token_id = meta.token_id("tokenizer.ggml.eos_token_id")?;
    for (k, id) in [
        ("tokenizer.ggml.bos_token_id", bos_token_id),
        ("tokenizer.ggml.eos_token_id", eos_token_id),
    ] {
        if let Some(id) = id
            && u64::from(id) >= vocab_size
        {
            return Err(GgufError::BadValue {
                key: k.to_string(),
                value: id.to_string(),
                why: "outside the vocabulary",
            });
        }
    }

    Ok(GgufFacts {
        gguf_version,
        architecture,
        name: meta.string("general.name")?.map(str::to_string),
        quantization,
        tensor_bytes_by_type,
        context_length,
        vocab_size,
        embedding_length,
        block_count,
        head_count,
        head_count_kv,
        head_dim,
        parameter_count,
        tensor_count: content.tensor_infos.len() as u64,
        file_size,
        tokenizer_model,
        tokenizer_pre: meta.string("tokenizer.ggml.pre")?.map(str::to_string),
        bos_token_id,
        eos_token_id,
        chat_template: meta.string("tokenizer.chat_template")?.map(str::to_string),
    })
}
