//! The engine's identity, recorded with every run: a replay must run the same engine version
//! to expect the same tokens.

use serde::{Deserialize, Serialize};

/// The candle version this crate is built against. `candle-core` is pinned with `=` in
/// Cargo.toml; a unit test checks this constant against Cargo.lock.
pub const CANDLE_VERSION: &str = "0.10.2";

/// Name and versions of the engine that ran a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineId {
    /// `candle`.
    pub name: String,
    /// candle-core's version.
    pub version: String,
    /// This crate's version (generation loop, sampler, tokenizer and template rules).
    pub vouch_llm_version: String,
}

impl EngineId {
    pub fn current() -> Self {
        Self {
            name: "candle".into(),
            version: CANDLE_VERSION.into(),
            vouch_llm_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_version_matches_the_lock_file() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .unwrap();
        let entry = format!("name = \"candle-core\"\nversion = \"{CANDLE_VERSION}\"");
        assert!(lock.contains(&entry), "Cargo.lock has no {entry}");
        assert_eq!(
            lock.matches("name = \"candle-core\"").count(),
            1,
            "one candle-core in the lock file"
        );
    }
}
