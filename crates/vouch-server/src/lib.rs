//! The Vouch node over HTTP: routes, limits, authentication, the OpenAPI document, and the
//! accept loop.
//!
//! This is the only crate that knows HTTP. Handlers translate requests into calls on
//! `vouch-node` and its answers back into responses; they decide nothing themselves.

pub mod admission;
pub mod auth;
pub mod error;
pub mod facilitator;
pub mod json;
pub mod logging;
pub mod routes;
pub mod serve;
pub mod state;
pub mod witness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use state::AppState;
pub use vouch_node::{BootError, NodeConfig as ServerConfig};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vouch",
        description = "Verifiable AI inference: every answer comes with a receipt anyone can check offline."
    ),
    paths(
        routes::node::health,
        routes::node::node,
        routes::models::register,
        routes::models::list,
        routes::models::by_name,
        routes::models::by_digest,
        routes::infer::infer,
        routes::chat::chat_completions,
        routes::chat::completions,
        routes::embeddings::embeddings,
        routes::proofs::get,
        routes::proofs::cancel,
        routes::attestation::attestation,
        routes::attestation::by_digest,
        routes::policy::put_policy,
        routes::policy::get_policy,
        routes::policy::assurance,
        routes::status::metrics,
        routes::status::status,
        routes::status::analytics,
        routes::config::put_config,
        routes::config::get_config,
        routes::config::config_history,
        routes::policy::list_policies,
        routes::log::info,
        routes::log::checkpoint,
        routes::log::tile,
        routes::log::entry,
        routes::log::entries,
        routes::log::receipt,
        routes::log::proof,
        routes::log::consistency,
        routes::log::history,
        routes::log::cosignature,
        routes::pay::pricing,
        routes::pay::credit,
        routes::pay::balance,
    ),
    // Every type the routes name is collected from them; these are the ones a caller meets
    // only inside a JSON value (a bundle's `evidence`) or on the facilitator's own listener.
    components(schemas(
        vouch_api::ErrorBody,
        vouch_api::ZkJobRef,
        vouch_api::LogEvidence,
        vouch_api::openai::ChatCompletionChunk,
        vouch_api::openai::ChatReceiptEvent,
        vouch_api::facilitator::FacilitatorRequest,
        vouch_api::facilitator::VerifyResponse,
        vouch_api::facilitator::SettleResponse,
        vouch_api::facilitator::SupportedResponse,
    ))
)]
pub struct ApiDoc;

/// The application's routes with their limits.
///
/// The `tee` tier (when `[tee]` names a producer) adds `GET /v1/attestation[?nonce=hex]` and
/// `GET /v1/attestation/{digest}`; assurance policies live at `/v1/models/{reference}/policy`
/// and the advisor at `/v1/models/{reference}/assurance`; analytics at `/metrics` and `/status`;
/// prices at `/v1/pricing`, the built-in ledger at `/v1/pay/*` (`crate::payment`).
/// zk proof jobs at `/v1/proofs/{id}` (`crate::proofs`).
pub fn router(state: Arc<AppState>) -> Router {
    let limits = &state.node.config.limits;
    let models = Router::new()
        .route(
            "/v1/models",
            post(routes::models::register).get(routes::models::list),
        )
        .layer(DefaultBodyLimit::max(limits.max_model_bytes));
    let api = Router::new()
        .route("/health", get(routes::node::health))
        .route("/explorer", get(routes::explorer::index))
        .route("/explorer/", get(routes::explorer::index))
        .route("/explorer/app.js", get(routes::explorer::script))
        .route("/explorer/app.css", get(routes::explorer::style))
        .route("/v1/node", get(routes::node::node))
        .route(
            "/v1/models/by-digest/{digest}",
            get(routes::models::by_digest),
        )
        .route("/v1/models/{reference}", get(routes::models::by_name))
        .route(
            "/v1/models/{reference}/policy",
            put(routes::policy::put_policy).get(routes::policy::get_policy),
        )
        .route(
            "/v1/models/{reference}/config",
            put(routes::config::put_config).get(routes::config::get_config),
        )
        .route(
            "/v1/models/{reference}/config/history",
            get(routes::config::config_history),
        )
        .route("/v1/policies", get(routes::policy::list_policies))
        .route(
            "/v1/models/{reference}/assurance",
            get(routes::policy::assurance),
        )
        .route("/v1/attestation", get(routes::attestation::attestation))
        .route(
            "/v1/attestation/{digest}",
            get(routes::attestation::by_digest),
        )
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/completions", post(routes::chat::completions))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/metrics", get(routes::status::metrics))
        .route("/status", get(routes::status::status))
        .route("/v1/analytics", get(routes::status::analytics))
        .route(
            "/v1/infer",
            post(routes::infer::infer).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                admission::large_bodies,
            )),
        )
        .route("/v1/log", get(routes::log::info))
        .route("/v1/log/entries", get(routes::log::entries))
        .route("/v1/log/entries/{index}", get(routes::log::entry))
        .route("/v1/log/receipts/{request_id}", get(routes::log::receipt))
        .route("/v1/log/proof/{index}", get(routes::log::proof))
        .route("/v1/log/consistency", get(routes::log::consistency))
        .route("/v1/log/history/{name}", get(routes::log::history))
        .route("/log/checkpoint", get(routes::log::checkpoint))
        .route("/log/tile/{*path}", get(routes::log::tile))
        .route("/log/cosignature", post(routes::log::cosignature))
        .route("/v1/pricing", get(routes::pay::pricing))
        .route("/v1/pay/credit", post(routes::pay::credit))
        .route("/v1/pay/balance/{address}", get(routes::pay::balance))
        .route(
            "/v1/proofs/{id}",
            get(routes::proofs::get).delete(routes::proofs::cancel),
        )
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    models
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(limits.request_timeout_secs),
            request_deadline,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Cuts a request off at the node's time limit with a JSON `timeout` error and `Retry-After`.
/// Dropping the handler's future drops its executor handle, which stops the run itself.
async fn request_deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::new(
            vouch_core::ErrorCode::Timeout,
            format!(
                "the request did not finish within this node's limit of {} s and its work was \
                 stopped; retry later or with a smaller input",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A server bound to its address, ready to run.
pub struct Server {
    pub state: Arc<AppState>,
    pub addr: SocketAddr,
    listener: tokio::net::TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Boot(#[from] BootError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Server {
    /// Boots the node (key, token, database, engines) and binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServeError> {
        let addr = config.listen;
        let state = AppState::boot(config).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener.local_addr()?;
        Ok(Server {
            state,
            addr,
            listener,
        })
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests (`crate::serve`:
    /// connection cap, header deadline).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let limits = serve::ConnLimits::from_limits(&self.state.node.config.limits);
        let app = router(self.state);
        serve::serve(self.listener, app, limits, shutdown).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the document names itself and its answer: a JSON answer is a named
    /// schema, so generated clients get a type for it, not a bare object.
    #[test]
    fn every_operation_has_an_id_and_a_typed_answer() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        let mut ids = std::collections::BTreeSet::new();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                operations += 1;
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_string()), "{method} {path}: {id} twice");
                let answers = op["responses"].as_object().expect("responses");
                let ok: Vec<_> = answers.iter().filter(|(s, _)| s.starts_with('2')).collect();
                assert!(!ok.is_empty(), "{method} {path}: no 2xx answer");
                for (status, r) in ok {
                    let content = r["content"].as_object().expect("content");
                    assert!(!content.is_empty(), "{method} {path} {status}: no content");
                    if let Some(json) = content.get("application/json") {
                        let schema = &json["schema"];
                        assert!(
                            schema.get("$ref").is_some() || schema.get("oneOf").is_some(),
                            "{method} {path} {status}: JSON answer without a named type: {schema}"
                        );
                    }
                }
            }
        }
        // The routes `router` serves, both listeners of `/v1/models…`, the two chat routes and
        // embeddings included; the explorer's page and assets (`/explorer…`) are not API.
        assert_eq!(operations, 37, "{ids:?}");
    }
}
