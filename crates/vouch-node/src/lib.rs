//! The Vouch node without a transport, as rust-analyzer's `ide` is to its LSP server: the
//! services (catalog, policy, prices, payments, transparency log, zk proofs, analytics) and
//! the request pipelines that compose them. `vouch-server` translates HTTP to these typed calls
//! and back; tests drive them in process, without a socket.

pub mod analytics;
pub mod attestation;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod configs;
pub mod embeddings;
pub mod error;
pub mod gateway;
pub mod infer;
pub mod llm;
pub mod models;
pub mod node;
pub mod payments;
pub mod policy;
pub mod prices;
pub mod proofs;
pub mod supervise;
pub mod transparency;
pub mod wire;

pub use chat::{ChatAnswer, ChatCall, CompletionCall};
pub use config::NodeConfig;
pub use error::{NodeError, ProtocolAnswer};
pub use infer::{InferCall, Inferred};
pub use node::{BootError, Node};
