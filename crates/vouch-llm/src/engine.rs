//! The engine's identity, recorded with every run: a replay must run the same engine version
//! to expect the same tokens.

use serde::{Deserialize, Serialize};

/// The candle version this crate is built against (it reads the GGUF and dequantizes the types
/// without a kernel here). `candle-core` is pinned with `=` in Cargo.toml; a unit test checks
/// this constant against Cargo.lock.
pub const CANDLE_VERSION: &str = "0.11.1";

/// Name and versions of the engine that ran a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineId {
    /// `candle`.
    pub name: String,
    /// candle-core's version.
    pub version: String,
    /// This crate's version (generation loop, sampler, tokenizer and template rules).
    pub vouch_llm_version: String,
    /// The matrix kernels: `vouch avx2` or `vouch scalar`, chosen at run time
    /// (`crate::kernels`). Both compute every value by the same float operations, so they
    /// give the same bits; the field says which ran.
    pub quantized_kernels: String,
    /// CPU features present (x86_64: `avx2`, `fma`, `avx512f`): the elementwise functions
    /// (`exp`, `cos`, …) come from the platform's libm, so a replay expects the same tokens on
    /// the same build and platform.
    pub cpu_features: Vec<String>,
}

impl EngineId {
    pub fn current() -> Self {
        Self {
            name: "candle".into(),
            version: CANDLE_VERSION.into(),
            vouch_llm_version: env!("CARGO_PKG_VERSION").into(),
            quantized_kernels: format!("vouch {}", crate::kernels::simd()),
            cpu_features: cpu_features(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_features() -> Vec<String> {
    let mut features = Vec::new();
    if std::arch::is_x86_feature_detected!("avx2") {
        features.push("avx2".to_string());
    }
    if std::arch::is_x86_feature_detected!("fma") {
        features.push("fma".to_string());
    }
    if std::arch::is_x86_feature_detected!("avx512f") {
        features.push("avx512f".to_string());
    }
    features
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_features() -> Vec<String> {
    Vec::new()
}

impl EngineId {
    /// One line for logs and receipts: `candle 0.11.1 (vouch-llm 0.1.0, kernels vouch avx2, cpu avx2+fma)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (vouch-llm {}, kernels {}, cpu {})",
            self.name,
            self.version,
            self.vouch_llm_version,
            self.quantized_kernels,
            if self.cpu_features.is_empty() {
                "baseline".to_string()
            } else {
                self.cpu_features.join("+")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_names_candle_and_its_kernels() {
        let id = EngineId::current();
        assert_eq!(
            (id.name.as_str(), id.version.as_str()),
            ("candle", CANDLE_VERSION)
        );
        assert!(
            id.describe().starts_with("candle 0.11.1 (vouch-llm "),
            "{}",
            id.describe()
        );
    }

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
