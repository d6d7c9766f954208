//! `vouch witness`: a C2SP tlog-witness over HTTP (`POST /add-checkpoint`), so that anyone can
//! run an independent witness for Vouch logs (or any C2SP log with an Ed25519 key) and a node
//! can be tested against a real one. The protocol logic is `vouch_log::witness::Witness`; this
//! module adds the key file, the durable state and the HTTP endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use vouch_log::checkpoint::LogKey;
use vouch_log::witness::{TLOG_SIZE_CONTENT_TYPE, Witness, WitnessedTree};
use vouch_log::{Cosigner, WitnessKey};

/// Largest `add-checkpoint` body: 63 proof lines and a checkpoint with cosignatures fit easily.
const MAX_BODY: usize = 64 << 10;

pub struct WitnessConfig {
    pub listen: SocketAddr,
    /// Holds `witness.key` (32-byte Ed25519 seed, hex, 0600) and `witness-state.json`.
    pub dir: PathBuf,
    /// The witness's name (its key name), e.g. `witness.example/w1`.
    pub name: String,
    /// Verifier keys of the logs it follows.
    pub logs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("log key {key:?}: {reason}")]
    LogKey { key: String, reason: String },
    #[error("witness state {path}: {reason}")]
    State { path: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct WitnessState {
    witness: tokio::sync::Mutex<Witness>,
    state_path: PathBuf,
}

/// A bound witness, ready to run.
pub struct WitnessServer {
    pub addr: SocketAddr,
    pub key: WitnessKey,
    listener: tokio::net::TcpListener,
    state: Arc<WitnessState>,
}

impl WitnessServer {
    pub async fn bind(cfg: WitnessConfig) -> Result<Self, WitnessError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| WitnessError::State {
            path: cfg.dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let seed = load_or_create_seed(&cfg.dir.join("witness.key"))?;
        let cosigner =
            Cosigner::from_signing_key(&cfg.name, ed25519_dalek::SigningKey::from_bytes(&seed))
                .map_err(|e| WitnessError::Key {
                    path: cfg.name.clone(),
                    reason: e.to_string(),
                })?;
        let logs = cfg
            .logs
            .iter()
            .map(|k| {
                LogKey::parse(k).map_err(|e| WitnessError::LogKey {
                    key: k.chars().take(80).collect(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = cosigner.key().clone();
        let mut witness = Witness::new(cosigner, logs);
        let state_path = cfg.dir.join("witness-state.json");
        match std::fs::read(&state_path) {
            Ok(b) => {
                let s: BTreeMap<String, WitnessedTree> =
                    serde_json::from_slice(&b).map_err(|e| WitnessError::State {
                        path: state_path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                witness.restore(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(WitnessError::State {
                    path: state_path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| WitnessError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| WitnessError::Listen {
                addr: cfg.listen,
                source,
            })?;
        Ok(WitnessServer {
            addr,
            key,
            listener,
            state: Arc::new(WitnessState {
                witness: tokio::sync::Mutex::new(witness),
                state_path,
            }),
        })
    }

    pub async fn run(self) -> std::io::Result<()> {
        let app = Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.state);
        crate::serve::serve(
            self.listener,
            app,
            crate::serve::ConnLimits::default(),
            std::future::pending(),
        )
        .await
    }
}

fn load_or_create_seed(path: &Path) -> Result<[u8; 32], WitnessError> {
    let err = |reason: String| WitnessError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(t) => hex::decode(t.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| err("expected 64 hex digits (an Ed25519 seed)".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
            vouch_attest::signer::write_secret_file(
                path,
                format!("{}\n", hex::encode(seed)).as_bytes(),
            )
            .map_err(|e| err(e.to_string()))?;
            Ok(seed)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// `POST /add-checkpoint`: the state is saved before the cosignature is returned, as the spec
/// requires (a witness must never cosign two incompatible trees, even across a crash).
async fn add_checkpoint(State(st): State<Arc<WitnessState>>, body: Bytes) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut w = st.witness.lock().await;
    let before = w.state().clone();
    match w.add_checkpoint(&body, now) {
        Ok(line) => {
            if let Err(e) = save_state(&st.state_path, w.state()) {
                w.restore(before);
                tracing::error!("witness: cannot save state: {e}");
                return (StatusCode::INTERNAL_SERVER_ERROR, "cannot save state\n").into_response();
            }
            (StatusCode::OK, line).into_response()
        }
        Err(refusal) => {
            let status =
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (status, refusal.body()).into_response();
            if refusal.size.is_some() {
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(TLOG_SIZE_CONTENT_TYPE),
                );
            }
            r
        }
    }
}

/// Write-then-rename with fsync, so a crash leaves the old state or the new, never a torn file.
fn save_state(path: &Path, state: &BTreeMap<String, WitnessedTree>) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
