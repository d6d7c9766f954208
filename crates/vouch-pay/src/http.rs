//! The process's TLS crypto provider for outgoing HTTPS (remote facilitators, witnesses, the
//! CLI's node client).
//!
//! reqwest's own `rustls` feature brings aws-lc, a C library whose build script was one of the
//! slowest units of a fresh release build (BENCHMARKS.md, "Build time"); `ring` is already
//! compiled for attestation (dcap-qvl), so every client here runs rustls on `ring` instead.
//! reqwest (feature `rustls-no-provider`) refuses to build a client until a provider is
//! installed, so every client is made after [`install_tls_provider`].

use std::sync::Once;

/// Installs `ring` as the process-wide rustls provider; idempotent and cheap after the first
/// call. A provider some other code installed first is kept.
pub fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `reqwest::Client::builder()` with the TLS provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_build_on_ring() {
        // reqwest panics while building a client when no provider is installed.
        super::client_builder().build().expect("client");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
