//! The transparency log over HTTP.
//!
//! `/log/checkpoint` and `/log/tile/...` are the C2SP tlog-tiles read API, byte for byte, so
//! standard tile clients and witnesses can mirror the log with `/log` as its prefix. The
//! `/v1/log/...` routes are Vouch's JSON conveniences: proofs, entries, history.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use vouch_api::{ConsistencyParams, CosignParams, EntryPageParams, ProofParams};
use vouch_core::ErrorCode;
use vouch_log::Hash;
use vouch_log::tiles::{TILE_WIDTH, Tile};

use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

fn text(body: Vec<u8>, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// What this log is: origin, verifier key (pass it to `vouch verify --log-key`), size, and the
/// latest checkpoint.
#[utoipa::path(get, path = "/v1/log", operation_id = "log_info", tag = "log", responses((status = 200, description = "the log's identity and latest checkpoint", body = vouch_api::LogInfo)))]
pub async fn info(State(st): State<Arc<AppState>>) -> Json<vouch_api::LogInfo> {
    let cp = st.node.log.log.latest_checkpoint();
    Json(vouch_api::LogInfo {
        origin: st.node.log.origin.clone(),
        log_key: st.node.log.vkey.clone(),
        size: st.node.log.log.size(),
        checkpoint: cp
            .as_ref()
            .map(|c| String::from_utf8_lossy(&c.signed_note()).into_owned()),
        witnesses: st
            .node
            .config
            .log
            .witnesses
            .iter()
            .map(|w| w.vkey.clone())
            .collect(),
    })
}

/// The latest checkpoint with its cosignatures (C2SP signed note, `text/plain`).
#[utoipa::path(get, path = "/log/checkpoint", operation_id = "log_checkpoint", tag = "log",
    responses((status = 200, description = "signed checkpoint note", body = String, content_type = "text/plain"),
        (status = 404, description = "no checkpoint yet", body = vouch_api::ErrorBody)))]
pub async fn checkpoint(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let cp = st
        .node
        .log
        .log
        .latest_checkpoint()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no checkpoint published yet"))?;
    Ok(text(cp.signed_note(), "no-store"))
}

/// A C2SP tlog-tiles resource: `tile/<L>/<N>[.p/<W>]` (hashes) or `tile/entries/<N>[.p/<W>]`
/// (entry bundle). Full tiles never change and are served as immutable.
#[utoipa::path(get, path = "/log/tile/{path}", operation_id = "log_tile", tag = "log", params(("path" = String, Path, description = "tile path below tile/")),
    responses((status = 200, description = "tile bytes", body = Vec<u8>, content_type = "application/octet-stream"), (status = 404, description = "no such tile (yet)", body = vouch_api::ErrorBody)))]
pub async fn tile(
    State(st): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let tile = Tile::parse_path(&format!("tile/{path}"))
        .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
    let body = st.node.log.log.tile(tile).await?;
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let full = u64::from(tile.width) == TILE_WIDTH;
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if full {
            "public, max-age=31536000, immutable"
        } else {
            "no-store"
        }),
    );
    Ok(r)
}

/// One entry: its canonical bytes (as text), kind and leaf hash.
#[utoipa::path(get, path = "/v1/log/entries/{index}", operation_id = "log_entry", tag = "log", params(("index" = u64, Path, description = "leaf index")),
    responses((status = 200, description = "the entry", body = vouch_api::LogEntry), (status = 404, description = "beyond the log", body = vouch_api::ErrorBody)))]
pub async fn entry(
    State(st): State<Arc<AppState>>,
    Path(index): Path<u64>,
) -> Result<Json<vouch_api::LogEntry>, ApiError> {
    Ok(Json(st.node.log.entry(index).await?))
}

/// A page of entries in log order (default: the latest 20).
#[utoipa::path(get, path = "/v1/log/entries", operation_id = "log_entries", tag = "log", params(EntryPageParams),
    responses((status = 200, description = "the page", body = vouch_api::LogEntryPage), (status = 400, description = "limit out of range", body = vouch_api::ErrorBody)))]
pub async fn entries(
    State(st): State<Arc<AppState>>,
    Query(p): Query<EntryPageParams>,
) -> Result<Json<vouch_api::LogEntryPage>, ApiError> {
    Ok(Json(st.node.log.entries(p.start, p.limit).await?))
}

/// The log entry of the receipt (or chat receipt) with this request id.
#[utoipa::path(get, path = "/v1/log/receipts/{request_id}", operation_id = "log_receipt", tag = "log", params(("request_id" = String, Path, description = "the receipt's request id")),
    responses((status = 200, description = "the receipt's entry", body = vouch_api::LogEntry), (status = 404, description = "no such receipt in this log", body = vouch_api::ErrorBody)))]
pub async fn receipt(
    State(st): State<Arc<AppState>>,
    Path(request_id): Path<String>,
) -> Result<Json<vouch_api::LogEntry>, ApiError> {
    Ok(Json(st.node.log.receipt(&request_id).await?))
}

/// Inclusion proof of entry `index`. Without `size`: the bundle evidence (`evidence.log`) with
/// a C2SP tlog-proof@v1 under the latest cosigned checkpoint. With `size`: the RFC 6962 proof
/// hashes for that tree size.
#[utoipa::path(get, path = "/v1/log/proof/{index}", operation_id = "log_inclusion_proof", tag = "log", params(("index" = u64, Path, description = "leaf index"), ProofParams),
    responses((status = 200, description = "the proof", body = vouch_api::InclusionProof), (status = 404, description = "not in the log or not yet checkpointed", body = vouch_api::ErrorBody)))]
pub async fn proof(
    State(st): State<Arc<AppState>>,
    Path(index): Path<u64>,
    Query(p): Query<ProofParams>,
) -> Result<Json<vouch_api::InclusionProof>, ApiError> {
    if let Some(size) = p.size {
        let hashes = st.node.log.log.inclusion_proof(index, size).await?;
        return Ok(Json(vouch_api::InclusionProof::Hashes {
            index,
            size,
            hashes: hashes.iter().map(ToString::to_string).collect(),
        }));
    }
    let ev = if p.wait {
        vouch_node::transparency::wait_evidence(&st.node.log, index).await?
    } else {
        vouch_log::LogEvidence::new(&st.node.log.log.proof_for(index).await?)
    };
    Ok(Json(vouch_api::InclusionProof::Evidence {
        index,
        evidence: vouch_node::wire::log_evidence(&ev),
    }))
}

/// RFC 6962 consistency proof between two tree sizes (base64 hashes).
#[utoipa::path(get, path = "/v1/log/consistency", operation_id = "log_consistency_proof", tag = "log", params(ConsistencyParams),
    responses((status = 200, description = "the proof", body = vouch_api::ConsistencyProof), (status = 400, description = "bad sizes", body = vouch_api::ErrorBody)))]
pub async fn consistency(
    State(st): State<Arc<AppState>>,
    Query(p): Query<ConsistencyParams>,
) -> Result<Json<vouch_api::ConsistencyProof>, ApiError> {
    let committed = st.node.log.log.size();
    if p.new > committed {
        return Err(vouch_log::LogError::BeyondLog {
            size: p.new,
            committed,
        }
        .into());
    }
    let hashes: Vec<Hash> = if p.old == p.new {
        Vec::new()
    } else {
        st.node.log.log.consistency_proof(p.old, p.new).await?
    };
    Ok(Json(vouch_api::ConsistencyProof {
        old: p.old,
        new: p.new,
        hashes: hashes.iter().map(ToString::to_string).collect(),
    }))
}

/// Every logged change of what `name` (and each `name@version`) pointed at, oldest first.
#[utoipa::path(get, path = "/v1/log/history/{name}", operation_id = "log_name_history", tag = "log", params(("name" = String, Path, description = "model name")),
    responses((status = 200, description = "pointer changes", body = vouch_api::NameHistory)))]
pub async fn history(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<vouch_api::NameHistory>, ApiError> {
    vouch_core::model::validate_name(&name)
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, format!("name {name:?}: {m}")))?;
    let changes = st.node.log.log.history(&name).await?;
    Ok(Json(vouch_api::NameHistory {
        name,
        changes: changes
            .into_iter()
            .map(vouch_node::wire::pointer_change)
            .collect(),
    }))
}

/// Adds a trusted witness's `cosignature/v1` line (the body) to the checkpoint of `size`; it is
/// verified first, then served with that checkpoint. Lines from unknown keys are refused.
#[utoipa::path(post, path = "/log/cosignature", operation_id = "log_add_cosignature", tag = "log", params(CosignParams),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, description = "accepted", body = vouch_api::CosignatureAccepted), (status = 400, description = "unknown witness or bad signature", body = vouch_api::ErrorBody)))]
pub async fn cosignature(
    State(st): State<Arc<AppState>>,
    Query(p): Query<CosignParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::CosignatureAccepted>, ApiError> {
    let body = body_or_error(body, 1024, ErrorCode::PayloadTooLarge)?;
    let line = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, "the cosignature line is not UTF-8"))?;
    let by = st.node.log.log.add_cosignature(p.size, line).await?;
    Ok(Json(vouch_api::CosignatureAccepted {
        size: p.size,
        witness: by.witness,
        timestamp: by.timestamp,
    }))
}
