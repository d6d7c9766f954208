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
use serde::Deserialize;
use serde_json::{Value, json};
use vouch_core::ErrorCode;
use vouch_log::tiles::{TILE_WIDTH, Tile};
use vouch_log::{Hash, LogEntry};

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
#[utoipa::path(get, path = "/v1/log", responses((status = 200, description = "the log's identity and latest checkpoint")))]
pub async fn info(State(st): State<Arc<AppState>>) -> Json<Value> {
    let cp = st.node.log.log.latest_checkpoint();
    Json(json!({
        "origin": st.node.log.origin,
        "log_key": st.node.log.vkey,
        "size": st.node.log.log.size(),
        "checkpoint": cp.as_ref().map(|c| String::from_utf8_lossy(&c.signed_note()).into_owned()),
        "witnesses": st.node.config.log.witnesses.iter().map(|w| &w.vkey).collect::<Vec<_>>(),
    }))
}

/// The latest checkpoint with its cosignatures (C2SP signed note, `text/plain`).
#[utoipa::path(get, path = "/log/checkpoint", responses((status = 200, description = "signed checkpoint note")))]
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
#[utoipa::path(get, path = "/log/tile/{path}", params(("path" = String, Path, description = "tile path below tile/")),
    responses((status = 200, description = "tile bytes"), (status = 404, description = "no such tile (yet)")))]
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
#[utoipa::path(get, path = "/v1/log/entries/{index}", params(("index" = u64, Path, description = "leaf index")),
    responses((status = 200, description = "the entry"), (status = 404, description = "beyond the log")))]
pub async fn entry(
    State(st): State<Arc<AppState>>,
    Path(index): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let bytes = st.node.log.log.entry(index).await?;
    let decoded = LogEntry::decode(&bytes).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "index": index,
        "kind": decoded.kind().as_str(),
        "leaf_hash": vouch_log::merkle::leaf_hash(&bytes),
        "entry": String::from_utf8_lossy(&bytes),
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ProofParams {
    /// Tree size to prove inclusion in; default: the latest checkpoint's, as a tlog-proof.
    pub size: Option<u64>,
    /// Wait (bounded by the node's `max_proof_wait_ms`) for a checkpoint covering the entry.
    #[serde(default)]
    pub wait: bool,
}

/// Inclusion proof of entry `index`. Without `size`: the bundle evidence (`evidence.log`) with
/// a C2SP tlog-proof@v1 under the latest cosigned checkpoint. With `size`: the RFC 6962 proof
/// hashes for that tree size.
#[utoipa::path(get, path = "/v1/log/proof/{index}", params(("index" = u64, Path, description = "leaf index"), ProofParams),
    responses((status = 200, description = "the proof"), (status = 404, description = "not in the log or not yet checkpointed")))]
pub async fn proof(
    State(st): State<Arc<AppState>>,
    Path(index): Path<u64>,
    Query(p): Query<ProofParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(size) = p.size {
        let hashes = st.node.log.log.inclusion_proof(index, size).await?;
        return Ok(Json(
            json!({"index": index, "size": size, "hashes": hashes}),
        ));
    }
    let ev = if p.wait {
        vouch_node::transparency::wait_evidence(&st.node.log, index).await?
    } else {
        vouch_log::LogEvidence::new(&st.node.log.log.proof_for(index).await?)
    };
    Ok(Json(json!({"index": index, "evidence": ev.to_json()})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ConsistencyParams {
    pub old: u64,
    pub new: u64,
}

/// RFC 6962 consistency proof between two tree sizes (base64 hashes).
#[utoipa::path(get, path = "/v1/log/consistency", params(ConsistencyParams),
    responses((status = 200, description = "the proof"), (status = 400, description = "bad sizes")))]
pub async fn consistency(
    State(st): State<Arc<AppState>>,
    Query(p): Query<ConsistencyParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"old": p.old, "new": p.new, "hashes": hashes})))
}

/// Every logged change of what `name` (and each `name@version`) pointed at, oldest first.
#[utoipa::path(get, path = "/v1/log/history/{name}", params(("name" = String, Path, description = "model name")),
    responses((status = 200, description = "pointer changes")))]
pub async fn history(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    vouch_core::model::validate_name(&name)
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, format!("name {name:?}: {m}")))?;
    let changes = st.node.log.log.history(&name).await?;
    Ok(Json(json!({"name": name, "changes": changes})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CosignParams {
    /// Size of the checkpoint the cosignature is for.
    pub size: u64,
}

/// Adds a trusted witness's `cosignature/v1` line (the body) to the checkpoint of `size`; it is
/// verified first, then served with that checkpoint. Lines from unknown keys are refused.
#[utoipa::path(post, path = "/log/cosignature", params(CosignParams),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, description = "accepted"), (status = 400, description = "unknown witness or bad signature")))]
pub async fn cosignature(
    State(st): State<Arc<AppState>>,
    Query(p): Query<CosignParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_or_error(body, 1024, ErrorCode::PayloadTooLarge)?;
    let line = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, "the cosignature line is not UTF-8"))?;
    let by = st.node.log.log.add_cosignature(p.size, line).await?;
    Ok(Json(
        json!({"size": p.size, "witness": by.witness, "timestamp": by.timestamp}),
    ))
}
