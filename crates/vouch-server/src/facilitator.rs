//! `vouch facilitator`: the built-in facilitator served on its own with the standard x402
//! facilitator API — `POST /verify`, `POST /settle` (body `{x402Version, paymentPayload,
//! paymentRequirements}`) and `GET /supported` — so other x402 servers can settle into this
//! node's ledger. A separate router from the node's: it shares the database, not the routes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::Value;
use vouch_core::ErrorCode;
use vouch_pay::facilitator::{serve_settle, serve_verify};
use vouch_pay::wire::FacilitatorRequest;
use vouch_pay::{Facilitator, FacilitatorError, LocalFacilitator, PayConfig};
use vouch_store::Store;
use vouch_store::pay_store::SqlitePayStore;

use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::BootError;

/// A facilitator request is ~2 KiB; anything near this is not one.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

type Shared = Arc<dyn Facilitator>;

/// The standard facilitator API over `facilitator`.
pub fn router(facilitator: Shared) -> Router {
    Router::new()
        .route("/verify", post(verify))
        .route("/settle", post(settle))
        .route("/supported", get(supported))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(facilitator)
}

fn request(body: Result<Bytes, BytesRejection>) -> Result<FacilitatorRequest, ApiError> {
    let body = body_or_error(body, MAX_REQUEST_BYTES, ErrorCode::PayloadTooLarge)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("expected {{x402Version, paymentPayload, paymentRequirements}}: {e}"),
        )
    })
}

fn failed(e: FacilitatorError) -> ApiError {
    ApiError::internal(e)
}

async fn verify(
    State(f): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = request(body)?;
    let answer = serve_verify(f.as_ref(), &req).await.map_err(failed)?;
    Ok(Json(serde_json::to_value(answer).unwrap_or(Value::Null)))
}

async fn settle(
    State(f): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = request(body)?;
    let answer = serve_settle(f.as_ref(), &req).await.map_err(failed)?;
    Ok(Json(serde_json::to_value(answer).unwrap_or(Value::Null)))
}

async fn supported(State(f): State<Shared>) -> Result<Json<Value>, ApiError> {
    let answer = f.supported().await.map_err(failed)?;
    Ok(Json(serde_json::to_value(answer).unwrap_or(Value::Null)))
}

/// A standalone built-in facilitator bound to its address.
pub struct FacilitatorServer {
    pub addr: SocketAddr,
    pub chain_id: u64,
    listener: tokio::net::TcpListener,
    app: Router,
}

impl FacilitatorServer {
    /// Opens the ledger in `data_dir` (the node's database) for `pay.network` and binds `listen`.
    pub async fn bind(
        pay: &PayConfig,
        data_dir: &std::path::Path,
        listen: SocketAddr,
    ) -> Result<FacilitatorServer, BootError> {
        let chain_id = vouch_pay::network::chain_id(&pay.network)
            .filter(|_| pay.network.starts_with("eip155:"))
            .ok_or_else(|| {
                BootError::Pay(format!(
                    "pay.network {:?} is not eip155:<chain id>",
                    pay.network
                ))
            })?;
        let store = Store::open(data_dir).await?;
        let ledger = Arc::new(
            SqlitePayStore::new(store.pool().clone())
                .await
                .map_err(|e| BootError::Pay(e.to_string()))?,
        );
        let f: Shared = Arc::new(LocalFacilitator::new(ledger, vec![chain_id]));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| BootError::Pay(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BootError::Pay(e.to_string()))?;
        Ok(FacilitatorServer {
            addr,
            chain_id,
            listener,
            app: router(f),
        })
    }

    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
