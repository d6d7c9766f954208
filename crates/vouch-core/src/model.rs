//! What a model accepts and returns, and how callers name a model.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::digest::ModelDigest;
use crate::tensor::{DType, Tensor};

/// One dimension of a declared shape: fixed, or free (batch, sequence length) with its symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(u64),
    Free(Option<String>),
}

impl Serialize for Dim {
    /// Fixed dims are numbers; free dims their symbol (or `"?"`), as ONNX tools print them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Fixed(n) => s.serialize_u64(*n),
            Dim::Free(Some(sym)) => s.serialize_str(sym),
            Dim::Free(None) => s.serialize_str("?"),
        }
    }
}

impl<'de> Deserialize<'de> for Dim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::N(n) => Dim::Fixed(n),
            Raw::S(s) if s == "?" => Dim::Free(None),
            Raw::S(s) => Dim::Free(Some(s)),
        })
    }
}

/// A named input or output as the model declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// Whether `t` fits this spec; the error says what was expected.
    pub fn check(&self, t: &Tensor) -> Result<(), String> {
        if t.dtype() != self.dtype {
            return Err(format!(
                "input {:?} has dtype {} but the model expects {}",
                self.name,
                t.dtype(),
                self.dtype
            ));
        }
        let fits = t.shape().len() == self.shape.len()
            && t.shape().iter().zip(&self.shape).all(|(&n, d)| match d {
                Dim::Fixed(m) => n == *m,
                Dim::Free(_) => true,
            });
        if !fits {
            return Err(format!(
                "input {:?} has shape {:?} but the model expects {}",
                self.name,
                t.shape(),
                self.shape_string()
            ));
        }
        Ok(())
    }

    /// `[N, 1, 28, 28]`-style rendering for messages and listings.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Free(Some(s)) => s.clone(),
                Dim::Free(None) => "?".into(),
            })
            .collect();
        format!("[{}]", dims.join(", "))
    }

    /// Whether the first dimension is free, i.e. requests can be stacked into one batch.
    pub fn has_batch_dim(&self) -> bool {
        matches!(self.shape.first(), Some(Dim::Free(_)))
    }
}

/// The model's interface, extracted by the engine at registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ModelSignature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl ModelSignature {
    /// Whether every input and output has a free leading dim, so requests can be batched.
    pub fn batchable(&self) -> bool {
        !self.inputs.is_empty()
            && self.inputs.iter().all(TensorSpec::has_batch_dim)
            && self.outputs.iter().all(TensorSpec::has_batch_dim)
    }
}

/// How a caller names a model: by digest (immutable) or by `name[@version]` (a mutable pointer;
/// no version means the latest registered one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRef {
    Digest(ModelDigest),
    Name {
        name: String,
        version: Option<String>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid model reference {input:?}: {reason}")]
pub struct ModelRefError {
    pub input: String,
    pub reason: &'static str,
}

/// Names are what people type and what logs show: keep them to a safe, readable alphabet.
pub fn validate_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 128 {
        return Err("names are 1 to 128 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("names use only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

impl FromStr for ModelRef {
    type Err = ModelRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ModelRefError {
            input: s.chars().take(140).collect(),
            reason,
        };
        if s.starts_with("sha256:") {
            return s
                .parse()
                .map(ModelRef::Digest)
                .map_err(|_| err("a digest is sha256: followed by 64 hex characters"));
        }
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        validate_name(name).map_err(err)?;
        if let Some(v) = version {
            validate_name(v).map_err(err)?;
        }
        Ok(ModelRef::Name {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Digest(d) => write!(f, "{d}"),
            ModelRef::Name {
                name,
                version: Some(v),
            } => write!(f, "{name}@{v}"),
            ModelRef::Name {
                name,
                version: None,
            } => write!(f, "{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    #[test]
    fn model_refs_parse() {
        assert_eq!(
            "mnist@2".parse::<ModelRef>().unwrap(),
            ModelRef::Name {
                name: "mnist".into(),
                version: Some("2".into())
            }
        );
        assert!(matches!(
            "mnist".parse::<ModelRef>().unwrap(),
            ModelRef::Name { version: None, .. }
        ));
        let d = format!("sha256:{}", "ab".repeat(32));
        assert!(matches!(
            d.parse::<ModelRef>().unwrap(),
            ModelRef::Digest(_)
        ));
        assert!("sha256:12".parse::<ModelRef>().is_err());
        assert!("a b".parse::<ModelRef>().is_err());
        assert!("x@".parse::<ModelRef>().is_err());
        assert!("../etc".parse::<ModelRef>().is_err());
    }

    #[test]
    fn spec_check_names_tensor_and_expected_shape() {
        let spec = TensorSpec {
            name: "x".into(),
            dtype: DType::Float32,
            shape: vec![Dim::Free(Some("N".into())), Dim::Fixed(4)],
        };
        let ok = Tensor::new(vec![3, 4], TensorData::Float32(vec![0.0; 12])).unwrap();
        assert!(spec.check(&ok).is_ok());
        let bad = Tensor::new(vec![3, 5], TensorData::Float32(vec![0.0; 15])).unwrap();
        let msg = spec.check(&bad).unwrap_err();
        assert!(msg.contains("\"x\"") && msg.contains("[N, 4]"), "{msg}");
        let wrong_type = Tensor::new(vec![1, 4], TensorData::Int64(vec![0; 4])).unwrap();
        assert!(spec.check(&wrong_type).unwrap_err().contains("dtype int64"));
    }
}
