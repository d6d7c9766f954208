//! HTTP handlers, one module per resource.

pub mod attestation;
pub mod chat;
pub mod config;
pub mod embeddings;
pub mod infer;
pub mod log;
pub mod models;
pub mod node;
pub mod pay;
pub mod policy;
pub mod proofs;
pub mod status;

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use bytes::Bytes;
use vouch_core::ErrorCode;

use crate::error::ApiError;

/// A body, or the reason it was refused: an over-limit body is a 413 with our JSON error.
pub fn body_or_error(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
    code: ErrorCode,
) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                code,
                format!("request body is larger than this node's limit of {limit} bytes"),
            )
        } else {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("cannot read the request body: {r}"),
            )
        }
    })
}
