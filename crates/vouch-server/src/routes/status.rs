//! `/metrics` (Prometheus text format) and `/status`: a small server-rendered page with
//! requests, latency and revenue per tier and per model, and each tier's share of traffic as an
//! inline SVG chart. No scripts, so it renders anywhere and can be saved as a file.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};

use crate::state::AppState;
use vouch_node::analytics::{LEVELS, Stats};

/// Prometheus metrics: `vouch_requests_total`, `vouch_request_duration_seconds`,
/// `vouch_revenue_total` (labels model, tiers, level, status).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "status", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    st.node.prometheus.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.node.prometheus.render(),
    )
}

/// Requests, latency and revenue per tier set over the last minutes (this node, since it
/// started), one bucket a minute: the explorer's charts.
#[utoipa::path(get, path = "/v1/analytics", operation_id = "analytics", tag = "status", params(vouch_api::AnalyticsParams),
    responses((status = 200, description = "per tier set over time", body = vouch_api::TierAnalytics),
        (status = 400, description = "minutes out of range", body = vouch_api::ErrorBody)))]
pub async fn analytics(
    State(st): State<Arc<AppState>>,
    axum::extract::Query(p): axum::extract::Query<vouch_api::AnalyticsParams>,
) -> Result<axum::Json<vouch_api::TierAnalytics>, crate::error::ApiError> {
    Ok(axum::Json(st.node.tier_analytics(p.minutes)?))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms(s: &Stats, p: f64) -> String {
    s.percentile(p)
        .map(|v| format!("{:.2}", v * 1e3))
        .unwrap_or_else(|| "–".into())
}

const COLORS: [(&str, &str); 4] = [
    ("none", "#9aa0a6"),
    ("signed", "#1a73e8"),
    ("tee", "#188038"),
    ("zk", "#a142f4"),
];

fn color(level: &str) -> &'static str {
    COLORS
        .iter()
        .find(|(l, _)| *l == level)
        .map(|(_, c)| *c)
        .unwrap_or("#5f6368")
}

/// Horizontal bars, one per level: `value` drawn against the largest, labelled with `text`.
fn bar_chart(title: &str, rows: &[(&str, f64, String)]) -> String {
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let (w, row_h, label_w) = (460.0, 28.0, 70.0);
    let h = 30.0 + row_h * rows.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{t}"><text x="0" y="16" font-size="14" font-weight="bold">{t}</text>"#,
        t = esc(title)
    );
    for (i, (level, v, text)) in rows.iter().enumerate() {
        let y = 26.0 + row_h * i as f64;
        let bw = if max > 0.0 {
            (w - label_w - 110.0) * v / max
        } else {
            0.0
        };
        let _ = write!(
            svg,
            r#"<text x="0" y="{ty}" font-size="13">{level}</text><rect class="bar bar-{level}" x="{label_w}" y="{y}" width="{bw:.1}" height="{bh}" fill="{c}"/><text x="{tx:.1}" y="{ty}" font-size="12">{text}</text>"#,
            ty = y + 15.0,
            bh = row_h - 8.0,
            c = color(level),
            tx = label_w + bw + 6.0,
            text = esc(text),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The status page.
#[utoipa::path(get, path = "/status", operation_id = "status_page", tag = "status", responses((status = 200, description = "HTML status page", body = String, content_type = "text/html")))]
pub async fn status(State(st): State<Arc<AppState>>) -> Html<String> {
    let snap = st.node.analytics.snapshot();
    let total = snap.total_requests();
    let asset = esc(&st.node.prices.unit());
    let empty = Stats::default();
    let level_stats: Vec<(&str, &Stats)> = LEVELS
        .iter()
        .map(|l| (*l, snap.by_level.get(l).unwrap_or(&empty)))
        .collect();

    let share_rows: Vec<(&str, f64, String)> = level_stats
        .iter()
        .map(|(l, s)| {
            let pct = if total > 0 {
                100.0 * s.requests as f64 / total as f64
            } else {
                0.0
            };
            (*l, pct, format!("{pct:.1} % ({} req)", s.requests))
        })
        .collect();
    let latency_rows: Vec<(&str, f64, String)> = level_stats
        .iter()
        .map(|(l, s)| {
            let p50 = s.percentile(0.5).unwrap_or(0.0) * 1e3;
            (*l, p50, format!("{} ms", ms(s, 0.5)))
        })
        .collect();

    let tee_line = match &st.node.tee {
        Some(t) => format!(
            "<b>{}</b>: {}",
            esc(t.verdict.platform.as_str()),
            esc(&t.verdict.trust_assumption)
        ),
        None => "not offered (tee.producer = \"none\")".into(),
    };

    let revenue_line = match &st.node.pay {
        Some(p) => format!(
            "Revenue: prices of answered requests, settled through x402 ({}), in {asset} units.",
            esc(&p.facilitator)
        ),
        None => format!(
            "Revenue: quoted prices of answered requests in {asset} units; payments are off, so nothing was charged."
        ),
    };
    let mut html = String::with_capacity(8192);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Vouch node status</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#202124}}table{{border-collapse:collapse;margin:8px 0 20px}}
th,td{{border-bottom:1px solid #dadce0;padding:4px 10px;text-align:right}}th:first-child,td:first-child{{text-align:left}}
.charts{{display:flex;gap:32px;flex-wrap:wrap}}code{{font-size:12px;word-break:break-all}}</style></head><body>
<h1>Vouch node status</h1>
<p>Node key <code>{key}</code><br>TEE: {tee_line}<br>{total} requests since start. {revenue_line}</p>
<div class="charts">{share}{latency}</div>
<h2>Per tier</h2><table id="per-tier"><tr><th>tier</th><th>requests</th><th>errors</th><th>share</th><th>p50 ms</th><th>p95 ms</th><th>revenue ({asset})</th></tr>"#,
        key = st.node.signer.public_key(),
        share = bar_chart("Share of traffic by tier", &share_rows),
        latency = bar_chart("p50 latency by tier", &latency_rows),
    );
    for ((l, s), (_, pct, _)) in level_stats.iter().zip(&share_rows) {
        let _ = write!(
            html,
            "<tr><td>{l}</td><td>{}</td><td>{}</td><td>{pct:.1} %</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.requests,
            s.errors,
            ms(s, 0.5),
            ms(s, 0.95),
            s.revenue
        );
    }
    let _ = write!(
        html,
        r#"</table><h2>Per model</h2><table id="per-model"><tr><th>model</th><th>tier</th><th>requests</th><th>errors</th><th>p50 ms</th><th>p95 ms</th><th>revenue ({asset})</th></tr>"#
    );
    if snap.by_model.is_empty() {
        html.push_str(r#"<tr><td colspan="7">no requests yet</td></tr>"#);
    }
    for ((label, digest, l), s) in &snap.by_model {
        let _ = write!(
            html,
            r#"<tr><td title="{d}">{label}</td><td>{l}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            s.requests,
            s.errors,
            ms(s, 0.5),
            ms(s, 0.95),
            s.revenue,
            d = esc(digest),
            label = esc(label),
        );
    }
    html.push_str(
        "</table><p>Machine-readable: <a href=\"/metrics\">/metrics</a> (Prometheus).</p></body></html>",
    );
    Html(html)
}
