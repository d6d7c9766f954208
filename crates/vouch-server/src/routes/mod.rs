//! HTTP handlers, one module per resource.

pub mod attestation;
pub mod chat;
pub mod config;
pub mod embeddings;
pub mod explorer;
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

/// The x402 headers of a request, as the node reads them.
pub(crate) fn payment_headers(
    request_headers: &axum::http::HeaderMap,
) -> vouch_node::payments::PaymentHeaders {
    let header = |name: &str| {
        request_headers
            .get(name)
            // A header that is not visible ASCII cannot be base64: let the decoder say so.
            .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
    };
    vouch_node::payments::PaymentHeaders {
        signature: header(vouch_pay::wire::PAYMENT_SIGNATURE_HEADER),
        x_payment: header(vouch_pay::wire::X_PAYMENT_HEADER),
        host: header(axum::http::header::HOST.as_str()),
    }
}
