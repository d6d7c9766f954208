//! `/explorer`: the web explorer, built from `web/explorer` (TypeScript, esbuild) into
//! `crates/vouch-server/explorer/` and embedded here, so the node serves it with no CDN and no
//! network. The page reads only this node's JSON API and checks what it shows in the browser
//! with its own verifier (`clients/ts`).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// One embedded file: its bytes, media type, and an ETag from its content (hashed once).
struct Asset {
    bytes: &'static [u8],
    media_type: &'static str,
    etag: OnceLock<String>,
}

static INDEX: Asset = Asset {
    bytes: include_bytes!("../../explorer/index.html"),
    media_type: "text/html; charset=utf-8",
    etag: OnceLock::new(),
};
static SCRIPT: Asset = Asset {
    bytes: include_bytes!("../../explorer/app.js"),
    media_type: "text/javascript; charset=utf-8",
    etag: OnceLock::new(),
};
static STYLE: Asset = Asset {
    bytes: include_bytes!("../../explorer/app.css"),
    media_type: "text/css; charset=utf-8",
    etag: OnceLock::new(),
};

/// Only this origin's script, style and API; no inline code, no frames, no forms elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = asset
        .etag
        .get_or_init(|| format!("\"{}\"", &vouch_core::Digest::of(asset.bytes).hex()[..32]));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.as_str()));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.bytes.into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Revalidated on every load: a node upgrade changes the page at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// The explorer's page (`/explorer` and `/explorer/`); its views are hash routes.
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

pub async fn script(headers: HeaderMap) -> Response {
    serve(&SCRIPT, &headers)
}

pub async fn style(headers: HeaderMap) -> Response {
    serve(&STYLE, &headers)
}
