//! OpenAPI schemas (feature `utoipa`) for the wire types whose serde is written by hand: each
//! says what the hand-written `Serialize` emits. Derived schemas are on the types themselves.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};

use crate::digest::{Digest, ModelDigest};
use crate::model::Dim;
use crate::receipt::NodeKey;
use crate::tensor::{DType, Tensor, TensorMap};

fn string(description: &str, pattern: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .into()
}

/// Implements `ToSchema` (named component) on top of a `PartialSchema`.
macro_rules! named {
    ($t:ty, $name:literal) => {
        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

const DIGEST_PATTERN: &str = "^sha256:[0-9a-f]{64}$";

impl PartialSchema for Digest {
    fn schema() -> RefOr<Schema> {
        string("SHA-256, `sha256:<64 lowercase hex>`", Some(DIGEST_PATTERN))
    }
}
named!(Digest, "Digest");

impl PartialSchema for ModelDigest {
    fn schema() -> RefOr<Schema> {
        string(
            "SHA-256 of the model file, `sha256:<64 lowercase hex>`",
            Some(DIGEST_PATTERN),
        )
    }
}
named!(ModelDigest, "ModelDigest");

impl PartialSchema for NodeKey {
    fn schema() -> RefOr<Schema> {
        string(
            "Ed25519 public key, `ed25519:<64 hex>`",
            Some("^ed25519:[0-9a-fA-F]{64}$"),
        )
    }
}
named!(NodeKey, "NodeKey");

impl PartialSchema for DType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Element type"))
            .enum_values(Some(DType::ALL.iter().map(|d| d.name())))
            .into()
    }
}
named!(DType, "DType");

impl PartialSchema for Dim {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "A declared dimension: a number when fixed, its symbol (or `?`) when free",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String))
            .into()
    }
}
named!(Dim, "Dim");

impl PartialSchema for Tensor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "A tensor: `data` (row-major numbers, or booleans) when JSON carries them \
                 exactly, else `b64` (little-endian bytes, standard base64)",
            ))
            .property("dtype", DType::schema())
            .required("dtype")
            .property(
                "shape",
                ArrayBuilder::new().items(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Int64,
                        )))
                        .minimum(Some(0)),
                ),
            )
            .required("shape")
            .property(
                "data",
                ArrayBuilder::new().items(ObjectBuilder::new().schema_type(SchemaType::AnyValue)),
            )
            .property("b64", ObjectBuilder::new().schema_type(Type::String))
            .into()
    }
}
named!(Tensor, "Tensor");

impl PartialSchema for TensorMap {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("Tensors by name"))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::Ref(
                utoipa::openapi::Ref::from_schema_name(Tensor::name()),
            ))))
            .into()
    }
}
impl ToSchema for TensorMap {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TensorMap")
    }

    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((Tensor::name().into(), Tensor::schema()));
    }
}
