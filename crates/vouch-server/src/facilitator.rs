//! `vouch facilitator`: the built-in facilitator served on its own with the standard x402
//! facilitator API — `POST /verify`, `POST /settle` (body `{x402Version, paymentPayload,
//! paymentRequirements}`) and `GET /supported` — so other x402 servers can settle into this
//! node's ledger. A separate router from the node's: it shares the database, not the routes.
//! Standalone, it also takes the operator's top-ups at `POST /v1/pay/credit` (admin token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use bytes::Bytes;
use vouch_core::ErrorCode;
use vouch_pay::facilitator::{serve_settle, serve_verify};
use vouch_pay::wire::FacilitatorRequest;
use vouch_pay::{Facilitator, FacilitatorError, LocalFacilitator, PayConfig};
use vouch_store::Store;
use vouch_store::pay_store::SqlitePayStore;

use crate::error::ApiError;
use crate::routes::body_or_error;
use vouch_node::BootError;

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

/// What the operator's top-up route needs: the ledger, which token it holds, the admin token.
#[derive(Clone)]
struct Topup {
    ledger: Arc<SqlitePayStore>,
    chain_id: u64,
    asset: vouch_pay::Address,
    admin_token: String,
}

/// `POST /v1/pay/credit` (admin token), the same route and body as the node's, so
/// `vouch pay credit --server <facilitator>` works against a standalone facilitator too.
async fn credit(
    State(t): State<Topup>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::CreditResponse>, ApiError> {
    use subtle::ConstantTimeEq;
    use vouch_pay::store::Ledger;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(given.trim().as_bytes().ct_eq(t.admin_token.as_bytes())) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "this endpoint needs the admin token (admin.token in the facilitator's data dir)",
        ));
    }
    let body = body_or_error(body, 4096, ErrorCode::PayloadTooLarge)?;
    let req: vouch_api::CreditRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid credit JSON: {e}")))?;
    let owner = vouch_pay::verify::parse_address(req.address.trim()).ok_or_else(|| {
        ApiError::new(ErrorCode::BadRequest, "address is not 0x and 40 hex digits")
    })?;
    let amount = vouch_pay::parse_amount(req.amount.trim())
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let account = vouch_pay::store::Account {
        chain_id: t.chain_id,
        asset: t.asset,
        owner,
    };
    let memo: String = req
        .memo
        .unwrap_or_else(|| "admin credit".into())
        .chars()
        .take(200)
        .collect();
    let balance = t
        .ledger
        .credit(&account, amount, &memo)
        .await
        .map_err(ApiError::internal)?;
    // No prices on a standalone facilitator, so no `display`.
    Ok(Json(vouch_api::CreditResponse {
        address: owner.to_string(),
        credited: vouch_node::wire::amount(vouch_pay::Amount(amount))?,
        balance: vouch_node::wire::amount(vouch_pay::Amount(balance))?,
        display: None,
    }))
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
) -> Result<Json<vouch_api::facilitator::VerifyResponse>, ApiError> {
    let req = request(body)?;
    let answer = serve_verify(f.as_ref(), &req).await.map_err(failed)?;
    Ok(Json(vouch_node::wire::verify_response(answer)))
}

async fn settle(
    State(f): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::facilitator::SettleResponse>, ApiError> {
    let req = request(body)?;
    let answer = serve_settle(f.as_ref(), &req).await.map_err(failed)?;
    Ok(Json(vouch_node::wire::settle_response(answer)))
}

async fn supported(
    State(f): State<Shared>,
) -> Result<Json<vouch_api::facilitator::SupportedResponse>, ApiError> {
    let answer = f.supported().await.map_err(failed)?;
    Ok(Json(vouch_node::wire::supported_response(answer)))
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
            // `Store::open` is the SQLite default: its pool is always there.
            SqlitePayStore::new(
                store
                    .pool()
                    .cloned()
                    .ok_or_else(|| BootError::Pay("no SQLite ledger".into()))?,
            )
            .await
            .map_err(|e| BootError::Pay(e.to_string()))?,
        );
        let asset = vouch_pay::verify::parse_address(&pay.asset).ok_or_else(|| {
            BootError::Pay(format!("pay.asset {:?} is not an address", pay.asset))
        })?;
        let (admin_token, _) =
            vouch_node::node::load_or_create_token(&data_dir.join("admin.token"))?;
        let topup = Router::new()
            .route("/v1/pay/credit", post(credit))
            .layer(axum::extract::DefaultBodyLimit::max(4096))
            .with_state(Topup {
                ledger: ledger.clone(),
                chain_id,
                asset,
                admin_token,
            });
        // `upto`: the address payers bind in their witness, `pay.facilitator_address`, else
        // `pay.pay_to` (as a node with the built-in ledger offers it); neither set: no upto.
        let mut local = LocalFacilitator::new(ledger, vec![chain_id]);
        if let Some(a) = pay.facilitator_address.as_ref().or(pay.pay_to.as_ref()) {
            let a = vouch_pay::verify::parse_address(a).ok_or_else(|| {
                BootError::Pay(format!("{a:?} is not an address (pay.facilitator_address)"))
            })?;
            local = local.with_upto_facilitator(a);
        }
        let f: Shared = Arc::new(local);
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
            app: router(f).merge(topup),
        })
    }

    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::serve::serve(
            self.listener,
            self.app,
            crate::serve::ConnLimits::default(),
            shutdown,
        )
        .await
    }
}
