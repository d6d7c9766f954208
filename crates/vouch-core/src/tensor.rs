//! Tensors as callers send them, and their canonical digest.
//!
//! Wire form (JSON): `{"dtype": "float32", "shape": [1, 4], "data": [..row-major..]}` or, for
//! large or non-finite data, `{"dtype": .., "shape": .., "b64": "<standard base64 of the
//! little-endian element bytes>"}`. Both decode to the same [`Tensor`] and the same digest.
//!
//! Canonical digest (see `docs/receipt.md`):
//! `SHA-256("vouch.tensor.v1\0" ‖ dtype code (u8) ‖ rank (u32 LE) ‖ dims (u64 LE each) ‖ data)`
//! where data is the elements, row-major, little-endian (bool: one byte, 0 or 1).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

const TENSOR_DOMAIN: &[u8] = b"vouch.tensor.v1\0";
const TENSOR_MAP_DOMAIN: &[u8] = b"vouch.tensors.v1\0";

/// Element types Vouch accepts. The numeric `code` is part of the canonical digest: never reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    Float32,
    Float64,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Bool,
}

impl DType {
    pub const ALL: [DType; 11] = [
        DType::Float32,
        DType::Float64,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::Uint8,
        DType::Uint16,
        DType::Uint32,
        DType::Uint64,
        DType::Bool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::Uint8 => "uint8",
            DType::Uint16 => "uint16",
            DType::Uint32 => "uint32",
            DType::Uint64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// Stable code used in the canonical tensor digest (matches ONNX `TensorProto.DataType`).
    pub fn code(self) -> u8 {
        match self {
            DType::Float32 => 1,
            DType::Uint8 => 2,
            DType::Int8 => 3,
            DType::Uint16 => 4,
            DType::Int16 => 5,
            DType::Int32 => 6,
            DType::Int64 => 7,
            DType::Bool => 9,
            DType::Float64 => 11,
            DType::Uint32 => 12,
            DType::Uint64 => 13,
        }
    }

    pub fn size_of(self) -> usize {
        match self {
            DType::Int8 | DType::Uint8 | DType::Bool => 1,
            DType::Int16 | DType::Uint16 => 2,
            DType::Float32 | DType::Int32 | DType::Uint32 => 4,
            DType::Float64 | DType::Int64 | DType::Uint64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = TensorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Accept the common aliases people type ("f32", "float", "int"), answer with the canonical name.
        let d = match s.to_ascii_lowercase().as_str() {
            "float32" | "f32" | "float" => DType::Float32,
            "float64" | "f64" | "double" => DType::Float64,
            "int8" | "i8" => DType::Int8,
            "int16" | "i16" => DType::Int16,
            "int32" | "i32" => DType::Int32,
            "int64" | "i64" | "int" => DType::Int64,
            "uint8" | "u8" => DType::Uint8,
            "uint16" | "u16" => DType::Uint16,
            "uint32" | "u32" => DType::Uint32,
            "uint64" | "u64" => DType::Uint64,
            "bool" | "boolean" => DType::Bool,
            _ => {
                return Err(TensorError::UnknownDType(s.chars().take(32).collect()));
            }
        };
        Ok(d)
    }
}

impl Serialize for DType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for DType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Typed element storage, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the inner `Vec` of every numeric variant (not `Bool`).
macro_rules! with_numeric {
    ($data:expr, $v:ident => $body:expr, bool $b:ident => $bool_body:expr) => {
        match $data {
            TensorData::Float32($v) => $body,
            TensorData::Float64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Bool($b) => $bool_body,
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::Float32(_) => DType::Float32,
            TensorData::Float64(_) => DType::Float64,
            TensorData::Int8(_) => DType::Int8,
            TensorData::Int16(_) => DType::Int16,
            TensorData::Int32(_) => DType::Int32,
            TensorData::Int64(_) => DType::Int64,
            TensorData::Uint8(_) => DType::Uint8,
            TensorData::Uint16(_) => DType::Uint16,
            TensorData::Uint32(_) => DType::Uint32,
            TensorData::Uint64(_) => DType::Uint64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_numeric!(self, v => v.len(), bool b => b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements as little-endian bytes: the canonical data form.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.dtype().size_of());
        with_numeric!(self,
            v => for x in v { out.extend_from_slice(&x.to_le_bytes()) },
            bool b => out.extend(b.iter().map(|&x| x as u8)));
        out
    }

    /// Decodes little-endian bytes; the length must be a whole number of elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Result<Self, TensorError> {
        let size = dtype.size_of();
        if !bytes.len().is_multiple_of(size) {
            return Err(TensorError::BadByteLength {
                dtype,
                len: bytes.len(),
            });
        }
        macro_rules! decode {
            ($t:ty, $variant:ident) => {
                TensorData::$variant(
                    bytes
                        .chunks_exact(size)
                        .map(|c| {
                            let mut a = [0u8; std::mem::size_of::<$t>()];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            };
        }
        Ok(match dtype {
            DType::Float32 => decode!(f32, Float32),
            DType::Float64 => decode!(f64, Float64),
            DType::Int8 => decode!(i8, Int8),
            DType::Int16 => decode!(i16, Int16),
            DType::Int32 => decode!(i32, Int32),
            DType::Int64 => decode!(i64, Int64),
            DType::Uint8 => decode!(u8, Uint8),
            DType::Uint16 => decode!(u16, Uint16),
            DType::Uint32 => decode!(u32, Uint32),
            DType::Uint64 => decode!(u64, Uint64),
            DType::Bool => {
                let mut v = Vec::with_capacity(bytes.len());
                for &b in bytes {
                    match b {
                        0 => v.push(false),
                        1 => v.push(true),
                        other => return Err(TensorError::BadBool(other)),
                    }
                }
                TensorData::Bool(v)
            }
        })
    }

    /// Whether JSON numbers can carry every element exactly (no NaN or infinity).
    fn json_safe(&self) -> bool {
        match self {
            TensorData::Float32(v) => v.iter().all(|x| x.is_finite()),
            TensorData::Float64(v) => v.iter().all(|x| x.is_finite()),
            _ => true,
        }
    }

    /// Elements as f64, for tolerance comparisons and display (lossy for big 64-bit integers).
    #[allow(clippy::unnecessary_cast)] // the macro casts every variant, f64 included
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_numeric!(self, v => v.iter().map(|&x| x as f64).collect(),
            bool b => b.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect())
    }

    /// An empty vector of `dtype`'s elements with room for `n`.
    fn with_capacity(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::Float32 => TensorData::Float32(Vec::with_capacity(n)),
            DType::Float64 => TensorData::Float64(Vec::with_capacity(n)),
            DType::Int8 => TensorData::Int8(Vec::with_capacity(n)),
            DType::Int16 => TensorData::Int16(Vec::with_capacity(n)),
            DType::Int32 => TensorData::Int32(Vec::with_capacity(n)),
            DType::Int64 => TensorData::Int64(Vec::with_capacity(n)),
            DType::Uint8 => TensorData::Uint8(Vec::with_capacity(n)),
            DType::Uint16 => TensorData::Uint16(Vec::with_capacity(n)),
            DType::Uint32 => TensorData::Uint32(Vec::with_capacity(n)),
            DType::Uint64 => TensorData::Uint64(Vec::with_capacity(n)),
            DType::Bool => TensorData::Bool(Vec::with_capacity(n)),
        }
    }

    /// Appends JSON element `index` (the same acceptance rules as `serde_json::Value`'s
    /// `as_f64`/`as_i64`/`as_u64`: integers for integer types, any number for floats, `true`,
    /// `false`, 0 or 1 for bool).
    fn push_json(&mut self, index: usize, x: JsonElem) -> Result<(), TensorError> {
        let dtype = self.dtype();
        let bad = |x: &JsonElem| TensorError::BadElement {
            index,
            dtype,
            value: x.shown(),
        };
        macro_rules! int {
            ($v:expr, $t:ty) => {{
                let n = match x {
                    JsonElem::U(u) => <$t>::try_from(u).ok(),
                    JsonElem::I(i) => <$t>::try_from(i).ok(),
                    _ => None,
                };
                $v.push(n.ok_or_else(|| bad(&x))?)
            }};
        }
        match self {
            TensorData::Float32(v) => {
                let f = x.as_f64().ok_or_else(|| bad(&x))? as f32;
                // A JSON number is finite; one beyond float32's range would silently become
                // infinity (b64 carries infinities deliberately).
                if f.is_infinite() {
                    return Err(TensorError::OutOfRange {
                        index,
                        dtype,
                        value: x.shown(),
                    });
                }
                v.push(f)
            }
            TensorData::Float64(v) => v.push(x.as_f64().ok_or_else(|| bad(&x))?),
            TensorData::Int8(v) => int!(v, i8),
            TensorData::Int16(v) => int!(v, i16),
            TensorData::Int32(v) => int!(v, i32),
            TensorData::Int64(v) => int!(v, i64),
            TensorData::Uint8(v) => int!(v, u8),
            TensorData::Uint16(v) => int!(v, u16),
            TensorData::Uint32(v) => int!(v, u32),
            TensorData::Uint64(v) => int!(v, u64),
            TensorData::Bool(v) => v.push(match x {
                JsonElem::B(b) => b,
                JsonElem::U(0) => false,
                JsonElem::U(1) => true,
                _ => return Err(bad(&x)),
            }),
        }
        Ok(())
    }

    fn to_json(&self) -> serde_json::Value {
        with_numeric!(self, v => serde_json::json!(v), bool b => serde_json::json!(b))
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TensorError {
    #[error(
        "unknown dtype {0:?}: expected one of float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool"
    )]
    UnknownDType(String),
    #[error("tensor data must be a JSON array of numbers (or use \"b64\" for little-endian bytes)")]
    DataNotArray,
    #[error("give exactly one of \"data\" (JSON array) or \"b64\" (base64 little-endian bytes)")]
    DataAndB64,
    #[error("element {index} ({value}) is not a valid {dtype}")]
    BadElement {
        index: usize,
        dtype: DType,
        value: String,
    },
    #[error(
        "element {index} ({value}) is out of range for {dtype}: its magnitude is above the largest finite {dtype}"
    )]
    OutOfRange {
        index: usize,
        dtype: DType,
        value: String,
    },
    #[error("duplicate tensor name {0:?}: each name may appear once")]
    DuplicateName(String),
    #[error("{len} bytes is not a whole number of {dtype} elements")]
    BadByteLength { dtype: DType, len: usize },
    #[error("bool bytes must be 0 or 1, found {0}")]
    BadBool(u8),
    #[error("\"b64\" is not valid standard base64")]
    BadBase64,
    #[error("shape {shape:?} holds {expected} elements but {actual} were given")]
    ShapeMismatch {
        shape: Vec<u64>,
        expected: u128,
        actual: usize,
    },
    #[error("dtype {declared} does not match the data's type {actual}")]
    DTypeMismatch { declared: DType, actual: DType },
}

/// A dense tensor. Construction checks that the shape and data agree.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<u64>,
    data: TensorData,
}

impl Tensor {
    pub fn new(shape: Vec<u64>, data: TensorData) -> Result<Self, TensorError> {
        let expected = element_count(&shape);
        if expected != data.len() as u128 {
            return Err(TensorError::ShapeMismatch {
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn into_parts(self) -> (Vec<u64>, TensorData) {
        (self.shape, self.data)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The canonical digest: dtype, shape and little-endian data, domain-separated.
    pub fn digest(&self) -> Digest {
        let mut header = Vec::with_capacity(TENSOR_DOMAIN.len() + 5 + 8 * self.shape.len());
        header.extend_from_slice(TENSOR_DOMAIN);
        header.push(self.dtype().code());
        header.extend_from_slice(&(self.shape.len() as u32).to_le_bytes());
        for d in &self.shape {
            header.extend_from_slice(&d.to_le_bytes());
        }
        let data = self.data.to_le_bytes();
        Digest::of_parts([header.as_slice(), data.as_slice()])
    }
}

/// Product of the dims, in u128 so that hostile shapes cannot overflow.
pub fn element_count(shape: &[u64]) -> u128 {
    shape
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128))
}

#[derive(Serialize)]
struct TensorWire {
    dtype: DType,
    shape: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
}

impl Serialize for Tensor {
    /// Numbers when JSON can carry them exactly, base64 otherwise (NaN, infinity).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (data, b64) = if self.data.json_safe() {
            (Some(self.data.to_json()), None)
        } else {
            (None, Some(B64.encode(self.data.to_le_bytes())))
        };
        TensorWire {
            dtype: self.dtype(),
            shape: self.shape.clone(),
            data,
            b64,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tensor {
    /// Straight from the parser into typed vectors when `dtype` comes before `data` (the usual
    /// order); otherwise `data` is held as parsed scalars until `dtype` is known. No JSON tree.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("TensorWire", WIRE_FIELDS, TensorVisitor)
    }
}

const WIRE_FIELDS: &[&str] = &["dtype", "shape", "data", "b64"];

enum WireField {
    DType,
    Shape,
    Data,
    B64,
}

impl<'de> Deserialize<'de> for WireField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = WireField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WireField, E> {
                match v {
                    "dtype" => Ok(WireField::DType),
                    "shape" => Ok(WireField::Shape),
                    "data" => Ok(WireField::Data),
                    "b64" => Ok(WireField::B64),
                    other => Err(E::unknown_field(other, WIRE_FIELDS)),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `data` as far as it could be decoded when it was read.
enum WireData {
    Typed(TensorData),
    /// `dtype` had not been seen yet.
    Pending(Vec<JsonElem>),
    NotArray,
}

struct TensorVisitor;

impl<'de> serde::de::Visitor<'de> for TensorVisitor {
    type Value = Tensor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct TensorWire")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Tensor, A::Error> {
        use serde::de::Error;
        let mut dtype: Option<DType> = None;
        let mut shape: Option<Vec<u64>> = None;
        // Outer `Some`: the field was present (a `null` reads as absent, as before).
        let mut data: Option<Option<WireData>> = None;
        let mut b64: Option<Option<String>> = None;
        while let Some(field) = map.next_key::<WireField>()? {
            match field {
                WireField::DType => {
                    if dtype.is_some() {
                        return Err(A::Error::duplicate_field("dtype"));
                    }
                    dtype = Some(map.next_value()?);
                }
                WireField::Shape => {
                    if shape.is_some() {
                        return Err(A::Error::duplicate_field("shape"));
                    }
                    shape = Some(map.next_value()?);
                }
                WireField::Data => {
                    if data.is_some() {
                        return Err(A::Error::duplicate_field("data"));
                    }
                    data = Some(map.next_value_seed(DataSeed(dtype))?);
                }
                WireField::B64 => {
                    if b64.is_some() {
                        return Err(A::Error::duplicate_field("b64"));
                    }
                    b64 = Some(map.next_value()?);
                }
            }
        }
        let dtype = dtype.ok_or_else(|| A::Error::missing_field("dtype"))?;
        let shape = shape.ok_or_else(|| A::Error::missing_field("shape"))?;
        let data = match (data.flatten(), b64.flatten()) {
            (Some(WireData::Typed(d)), None) => Ok(d),
            (Some(WireData::Pending(elems)), None) => {
                let mut d = TensorData::with_capacity(dtype, elems.len());
                elems
                    .into_iter()
                    .enumerate()
                    .try_for_each(|(i, x)| d.push_json(i, x))
                    .map(|()| d)
            }
            (Some(WireData::NotArray), None) => Err(TensorError::DataNotArray),
            (None, Some(b)) => B64
                .decode(b)
                .map_err(|_| TensorError::BadBase64)
                .and_then(|bytes| TensorData::from_le_bytes(dtype, &bytes)),
            _ => Err(TensorError::DataAndB64),
        }
        .map_err(A::Error::custom)?;
        Tensor::new(shape, data).map_err(A::Error::custom)
    }
}

/// Reads `data` (or `null`), typed when the dtype is already known.
struct DataSeed(Option<DType>);

impl<'de> serde::de::DeserializeSeed<'de> for DataSeed {
    type Value = Option<WireData>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DataSeed {
    type Value = Option<WireData>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of numbers")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Capacity from the parser's hint, capped: the hint is caller-controlled.
        let cap = seq.size_hint().unwrap_or(0).min(1 << 16);
        match self.0 {
            Some(dtype) => {
                let mut d = TensorData::with_capacity(dtype, cap);
                let mut i = 0;
                while let Some(x) = seq.next_element::<JsonElem>()? {
                    d.push_json(i, x).map_err(serde::de::Error::custom)?;
                    i += 1;
                }
                Ok(Some(WireData::Typed(d)))
            }
            None => {
                let mut v = Vec::with_capacity(cap);
                while let Some(x) = seq.next_element::<JsonElem>()? {
                    v.push(x);
                }
                Ok(Some(WireData::Pending(v)))
            }
        }
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    // Anything else present but not an array: consumed, then refused with DataNotArray.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(WireData::NotArray))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(WireData::NotArray))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(WireData::NotArray))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(WireData::NotArray))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(WireData::NotArray))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        serde::de::IgnoredAny::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Some(WireData::NotArray))
    }
}

/// One element of a `data` array as the parser gave it. Numbers are kept the way
/// `serde_json::Number` keeps them (non-negative integers unsigned), so acceptance is exactly
/// that of the former `serde_json::Value` path.
enum JsonElem {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    /// Not a scalar: kept only to be named in the error.
    Other(Box<serde_json::Value>),
}

impl JsonElem {
    fn as_f64(&self) -> Option<f64> {
        match *self {
            JsonElem::U(u) => Some(u as f64),
            JsonElem::I(i) => Some(i as f64),
            JsonElem::F(f) => Some(f),
            _ => None,
        }
    }

    /// As the error shows it: the element's JSON text, at most 40 characters.
    fn shown(&self) -> String {
        let v = match self {
            JsonElem::U(u) => serde_json::Value::from(*u),
            JsonElem::I(i) => serde_json::Value::from(*i),
            JsonElem::F(f) => serde_json::Value::from(*f),
            JsonElem::B(b) => serde_json::Value::from(*b),
            JsonElem::Other(v) => (**v).clone(),
        };
        v.to_string().chars().take(40).collect()
    }
}

impl<'de> Deserialize<'de> for JsonElem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonElem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<JsonElem, E> {
                Ok(JsonElem::B(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<JsonElem, E> {
                Ok(match u64::try_from(i) {
                    Ok(u) => JsonElem::U(u),
                    Err(_) => JsonElem::I(i),
                })
            }
            fn visit_u64<E>(self, u: u64) -> Result<JsonElem, E> {
                Ok(JsonElem::U(u))
            }
            fn visit_f64<E>(self, f: f64) -> Result<JsonElem, E> {
                Ok(JsonElem::F(f))
            }
            fn visit_str<E>(self, s: &str) -> Result<JsonElem, E> {
                Ok(JsonElem::Other(Box::new(serde_json::Value::from(s))))
            }
            fn visit_unit<E>(self) -> Result<JsonElem, E> {
                Ok(JsonElem::Other(Box::new(serde_json::Value::Null)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<JsonElem, A::Error> {
                let v = serde_json::Value::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(JsonElem::Other(Box::new(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<JsonElem, A::Error> {
                let v = serde_json::Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(JsonElem::Other(Box::new(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Named tensors, ordered by name so that iteration (and the map digest) is canonical. A name
/// given twice is refused when parsing: "last one wins" would let a reader that keeps the first
/// see other tensors than the digest covers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct TensorMap(pub BTreeMap<String, Tensor>);

impl<'de> Deserialize<'de> for TensorMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TensorMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of tensor names to tensors")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TensorMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if out.contains_key(&name) {
                        return Err(serde::de::Error::custom(TensorError::DuplicateName(
                            name.chars().take(64).collect(),
                        )));
                    }
                    let t = map.next_value()?;
                    out.insert(name, t);
                }
                Ok(TensorMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl TensorMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.0.insert(name.into(), t);
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn total_elements(&self) -> usize {
        self.0.values().map(Tensor::len).sum()
    }

    /// `SHA-256("vouch.tensors.v1\0" ‖ count (u32 LE) ‖ for each name in byte order:
    /// name length (u32 LE) ‖ name (UTF-8) ‖ tensor digest (32 bytes))`.
    pub fn digest(&self) -> Digest {
        let mut buf = Vec::with_capacity(TENSOR_MAP_DOMAIN.len() + 4 + self.0.len() * 48);
        buf.extend_from_slice(TENSOR_MAP_DOMAIN);
        buf.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        for (name, t) in &self.0 {
            buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(t.digest().as_bytes());
        }
        Digest::of(&buf)
    }
}

impl FromIterator<(String, Tensor)> for TensorMap {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        TensorMap(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(json: &str) -> Result<Tensor, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn json_numbers_and_base64_give_the_same_tensor_and_digest() {
        let a = t(r#"{"dtype":"float32","shape":[2],"data":[1.5,-2]}"#).unwrap();
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b = t(&format!(
            r#"{{"dtype":"float32","shape":[2],"b64":"{}"}}"#,
            B64.encode(bytes)
        ))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
    }

    /// Doubles whose shortest decimal the default serde_json parser reads back one ulp off.
    #[test]
    fn float64_data_reads_back_bit_for_bit() {
        let data = vec![
            1.0715660391465826e-75,
            -1.81996730402717e-179,
            -1.603964615428183e143,
        ];
        let t = Tensor::new(vec![3], TensorData::Float64(data.clone())).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert!(
            json.contains("\"data\""),
            "finite data travels as numbers: {json}"
        );
        let back: Tensor = serde_json::from_str(&json).unwrap();
        let TensorData::Float64(got) = back.data() else {
            panic!("dtype changed")
        };
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got), bits(&data));
        assert_eq!(back.digest(), t.digest());
    }

    #[test]
    fn digest_depends_on_dtype_shape_and_every_element() {
        let base = t(r#"{"dtype":"float32","shape":[2,2],"data":[1,2,3,4]}"#).unwrap();
        let reshaped = t(r#"{"dtype":"float32","shape":[4],"data":[1,2,3,4]}"#).unwrap();
        let retyped = t(r#"{"dtype":"int32","shape":[2,2],"data":[1,2,3,4]}"#).unwrap();
        let changed = t(r#"{"dtype":"float32","shape":[2,2],"data":[1,2,3,4.0001]}"#).unwrap();
        let d = base.digest();
        assert_ne!(d, reshaped.digest());
        assert_ne!(d, retyped.digest());
        assert_ne!(d, changed.digest());
    }

    #[test]
    fn bad_tensors_are_rejected_with_reasons() {
        let e = t(r#"{"dtype":"float32","shape":[3],"data":[1,2]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds 3 elements but 2"), "{e}");
        let e = t(r#"{"dtype":"int8","shape":[1],"data":[300]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid int8"), "{e}");
        let e = t(r#"{"dtype":"float128","shape":[1],"data":[1]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown dtype"), "{e}");
        let e = t(r#"{"dtype":"float32","shape":[1],"data":[1],"b64":"AAAAAA=="}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one"), "{e}");
        let e = t(r#"{"dtype":"float32","shape":[1],"b64":"AAA="}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number"), "{e}");
        let e = t(r#"{"dtype":"float32","shape":[4294967296,4294967296,4294967296],"data":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("elements but 0"), "{e}");
    }

    #[test]
    fn data_before_dtype_decodes_the_same_and_elements_follow_json_number_rules() {
        let cases = [
            (r#""dtype":"float32","shape":[3]"#, "[1, -2, 0.5]"),
            (
                r#""dtype":"float64","shape":[2]"#,
                "[18446744073709551615, -1e300]",
            ),
            (r#""dtype":"int8","shape":[2]"#, "[-128, 127]"),
            (r#""dtype":"uint64","shape":[1]"#, "[18446744073709551615]"),
            (
                r#""dtype":"int64","shape":[2]"#,
                "[-9223372036854775808, 9223372036854775807]",
            ),
            (r#""dtype":"bool","shape":[4]"#, "[true, false, 1, 0]"),
        ];
        for (head, data) in cases {
            let a = t(&format!(r#"{{{head},"data":{data}}}"#)).unwrap();
            let b = t(&format!(r#"{{"data":{data},{head}}}"#)).unwrap();
            assert_eq!(a, b, "{head}");
        }
        assert_eq!(
            t(r#"{"dtype":"int64","shape":[2],"data":[-3,4]}"#)
                .unwrap()
                .data(),
            &TensorData::Int64(vec![-3, 4])
        );
        for order in [
            r#"{"dtype":"uint8","shape":[2],"data":[1,-1]}"#,
            r#"{"data":[1,-1],"shape":[2],"dtype":"uint8"}"#,
        ] {
            let e = t(order).unwrap_err().to_string();
            assert!(e.contains("element 1 (-1) is not a valid uint8"), "{e}");
        }
        for (json, shown) in [
            (r#"{"dtype":"int32","shape":[1],"data":[1.0]}"#, "(1.0)"),
            (r#"{"dtype":"bool","shape":[1],"data":[2]}"#, "(2)"),
            (r#"{"dtype":"bool","shape":[1],"data":[0.0]}"#, "(0.0)"),
            (
                r#"{"dtype":"float32","shape":[1],"data":["1"]}"#,
                r#"("1")"#,
            ),
            (r#"{"dtype":"float32","shape":[1],"data":[null]}"#, "(null)"),
            (r#"{"dtype":"float32","shape":[1],"data":[[1]]}"#, "([1])"),
            (
                r#"{"shape":[1],"data":[{"a":1}],"dtype":"int8"}"#,
                r#"({"a":1})"#,
            ),
        ] {
            let e = t(json).unwrap_err().to_string();
            assert!(
                e.contains(&format!("element 0 {shown} is not a valid")),
                "{e}"
            );
        }
        for json in [
            r#"{"dtype":"float32","shape":[1],"data":5}"#,
            r#"{"data":{"x":[1]},"dtype":"float32","shape":[1]}"#,
        ] {
            let e = t(json).unwrap_err().to_string();
            assert!(e.contains("must be a JSON array"), "{e}");
        }
        // `null` reads as absent, as does a missing field.
        let x = t(r#"{"dtype":"float32","shape":[1],"data":null,"b64":"AACAPw=="}"#).unwrap();
        assert_eq!(x.data(), &TensorData::Float32(vec![1.0]));
        let e = t(r#"{"dtype":"float32","shape":[1],"data":null}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one"), "{e}");
        let e = t(r#"{"dtype":"float32","shape":[1],"data":[1],"extra":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = t(r#"{"dtype":"float32","shape":[1],"data":[1],"data":[2]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate field `data`"), "{e}");
        let e = t(r#"{"shape":[1],"data":[1]}"#).unwrap_err().to_string();
        assert!(e.contains("missing field `dtype`"), "{e}");
    }

    #[test]
    fn non_finite_floats_serialise_losslessly_as_base64() {
        let x = Tensor::new(
            vec![3],
            TensorData::Float32(vec![f32::NAN, f32::INFINITY, 1.0]),
        )
        .unwrap();
        let json = serde_json::to_string(&x).unwrap();
        assert!(json.contains("\"b64\""), "{json}");
        let back: Tensor = serde_json::from_str(&json).unwrap();
        assert_eq!(back.digest(), x.digest());
    }

    #[test]
    fn float32_beyond_its_range_is_refused_not_made_infinite() {
        for big in ["1e300", "-1e39", "3.5e38"] {
            let e = t(&format!(
                r#"{{"dtype":"float32","shape":[2],"data":[1,{big}]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("element 1") && e.contains("out of range for float32"),
                "{e}"
            );
            // Also when `data` comes before `dtype`.
            let e = t(&format!(
                r#"{{"data":[1,{big}],"dtype":"float32","shape":[2]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("out of range for float32"), "{e}");
        }
        // The extremes that fit, tiny values (rounded toward zero) and float64 are fine.
        let x = t(r#"{"dtype":"float32","shape":[3],"data":[3.4028235e38,-3.4028235e38,1e-50]}"#)
            .unwrap();
        assert_eq!(
            x.data(),
            &TensorData::Float32(vec![f32::MAX, f32::MIN, 0.0])
        );
        assert!(t(r#"{"dtype":"float64","shape":[1],"data":[1e300]}"#).is_ok());
        // Infinity on purpose still travels as base64.
        let inf = B64.encode(f32::INFINITY.to_le_bytes());
        let x = t(&format!(
            r#"{{"dtype":"float32","shape":[1],"b64":"{inf}"}}"#
        ))
        .unwrap();
        assert_eq!(x.data(), &TensorData::Float32(vec![f32::INFINITY]));
    }

    #[test]
    fn a_tensor_name_given_twice_is_refused() {
        let one = r#"{"dtype":"int64","shape":[1],"data":[1]}"#;
        let e = serde_json::from_str::<TensorMap>(&format!(r#"{{"x":{one},"y":{one},"x":{one}}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate tensor name \"x\""), "{e}");
        // The same name spelt with an escape is the same name.
        let e = serde_json::from_str::<TensorMap>(&format!(r#"{{"x":{one},"\u0078":{one}}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate tensor name"), "{e}");
        let m: TensorMap = serde_json::from_str(&format!(r#"{{"x":{one},"y":{one}}}"#)).unwrap();
        assert_eq!(m.len(), 2);
        // And what a map serialises to parses back to the same map.
        let back: TensorMap = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn map_digest_is_independent_of_insertion_order() {
        let one = t(r#"{"dtype":"int64","shape":[1],"data":[1]}"#).unwrap();
        let two = t(r#"{"dtype":"int64","shape":[1],"data":[2]}"#).unwrap();
        let mut a = TensorMap::new();
        a.insert("a", one.clone());
        a.insert("b", two.clone());
        let mut b = TensorMap::new();
        b.insert("b", two.clone());
        b.insert("a", one.clone());
        assert_eq!(a.digest(), b.digest());
        let mut swapped = TensorMap::new();
        swapped.insert("a", two);
        swapped.insert("b", one);
        assert_ne!(a.digest(), swapped.digest());
    }
}
