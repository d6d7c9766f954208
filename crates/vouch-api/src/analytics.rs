//! `GET /v1/analytics`: traffic, latency and revenue per tier set over time (the explorer's
//! charts). Figures are this node's, in memory since it started.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::pay::Amount;

/// Query of `GET /v1/analytics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// The window in minutes, 1–1440 (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
}

/// `GET /v1/analytics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierAnalytics {
    pub bucket_seconds: u64,
    /// Where the first bucket starts (RFC 3339).
    pub since: String,
    /// The unit revenue is counted in.
    pub asset: String,
    /// One series per tier set seen in the window (`none`, `signed`, `signed+tee`, …).
    pub series: Vec<TierSeries>,
    /// The window's totals per tier set.
    pub totals: Vec<TierTotal>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierSeries {
    pub tiers: String,
    /// One per `bucket_seconds`, oldest first, empty ones included.
    pub buckets: Vec<TierBucket>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierBucket {
    pub start: String,
    pub requests: u64,
    pub errors: u64,
    /// Latency of successful requests, within 19 % (log-scale bins).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Sum of settled prices, in `asset`'s smallest unit.
    pub revenue: Amount,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierTotal {
    pub tiers: String,
    pub requests: u64,
    pub errors: u64,
    /// This tier set's part of all requests in the window, 0–1.
    pub share: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub revenue: Amount,
}
