//! `vouch.toml` plus `VOUCH_*` overrides (`VOUCH_LISTEN`, `VOUCH_DATA_DIR`,
//! `VOUCH_EXEC__ENGINE`, `VOUCH_LIMITS__MAX_BODY_BYTES`, `VOUCH_PAY__ENABLED`, `VOUCH_LLM__MAX_CONCURRENT`, `VOUCH_STORE__DATABASE`: a double underscore descends a table).

use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use vouch_server::ServerConfig;

/// The server settings: defaults, then the file (if present), then the environment.
pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
    let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
    if path.exists() {
        fig = fig.merge(Toml::file(path));
    }
    // Only server keys: VOUCH_SERVER and VOUCH_ADMIN_TOKEN belong to the client side.
    let env = Env::prefixed("VOUCH_")
        .filter(|k| {
            // `log__`, `zk__` (not `log`, `zk`): VOUCH_LOG is the tracing filter and
            // VOUCH_ZK_CANCEL_TOKEN the client's.
            [
                "listen", "data_dir", "limits", "exec", "tee", "pay", "log__", "zk__", "llm__",
                "store__",
            ]
            .iter()
            .any(|p| k.as_str().to_ascii_lowercase().starts_with(p))
        })
        .split("__");
    fig.merge(env).extract().with_context(|| {
        format!(
            "invalid configuration (file {}, VOUCH_* environment)",
            path.display()
        )
    })
}
