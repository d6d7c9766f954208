//! Client for a remote facilitator speaking the standard API (coinbase/x402
//! `specs/x402-specification-v2.md` §7): `POST /verify`, `POST /settle` with
//! `{x402Version, paymentPayload, paymentRequirements}`, and `GET /supported`.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use std::time::Duration;

use crate::facilitator::{Facilitator, FacilitatorError};
use crate::wire::{
    FacilitatorRequest, PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse,
    VerifyResponse,
};

/// Largest facilitator answer read (a real one is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct RemoteFacilitator {
    base: String,
    client: reqwest::Client,
    bearer: Option<String>,
}

impl RemoteFacilitator {
    /// A client for the facilitator at `base_url` (e.g. `https://facilitator.example/`); each call
    /// gives up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, FacilitatorError> {
        let client = crate::http::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("vouch-pay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FacilitatorError::Transport(e.to_string()))?;
        Ok(RemoteFacilitator {
            base: base_url.trim_end_matches('/').to_owned(),
            client,
            bearer: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` (facilitators that require an API key).
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    fn map_err(e: reqwest::Error) -> FacilitatorError {
        if e.is_timeout() {
            FacilitatorError::Timeout
        } else {
            FacilitatorError::Transport(e.to_string())
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, FacilitatorError> {
        let req = match &self.bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(Self::map_err)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(Self::map_err)?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(FacilitatorError::Protocol(format!(
                "answer of {} bytes is too large",
                body.len()
            )));
        }
        // Some facilitators answer an invalid payment with a 4xx carrying the normal JSON:
        // accept the JSON from a 2xx or 4xx, report anything else as the HTTP failure it is.
        let http = || FacilitatorError::Http {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        };
        if !(status.is_success() || status.is_client_error()) {
            return Err(http());
        }
        match serde_json::from_slice::<T>(&body) {
            Ok(v) => Ok(v),
            Err(e) if status.is_success() => Err(FacilitatorError::Protocol(e.to_string())),
            Err(_) => Err(http()),
        }
    }
}

#[async_trait]
impl Facilitator for RemoteFacilitator {
    async fn verify(
        &self,
        payment: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<VerifyResponse, FacilitatorError> {
        let body = FacilitatorRequest::new(payment, requirements);
        self.call(
            self.client
                .post(format!("{}/verify", self.base))
                .json(&body),
        )
        .await
    }

    async fn settle(
        &self,
        payment: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<SettleResponse, FacilitatorError> {
        let body = FacilitatorRequest::new(payment, requirements);
        self.call(
            self.client
                .post(format!("{}/settle", self.base))
                .json(&body),
        )
        .await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        self.call(self.client.get(format!("{}/supported", self.base)))
            .await
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}
