//! Admin authentication: `Authorization: Bearer <token>`, compared in constant time.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;
use vouch_core::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Present in a handler's arguments means the caller holds the admin token.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let given = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "this endpoint needs the admin token: send `Authorization: Bearer <token>` (the token is in the node's data dir, admin.token)",
                )
            })?;
        if bool::from(
            given
                .trim()
                .as_bytes()
                .ct_eq(state.node.admin_token.as_bytes()),
        ) {
            Ok(Admin)
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the admin token is wrong",
            ))
        }
    }
}
