//! What the handlers share: the node, and the HTTP layer's own admission of large bodies.

use std::sync::Arc;

use vouch_node::{BootError, Node, NodeConfig};

pub struct AppState {
    pub node: Arc<Node>,
    /// Slots for inference requests with a large body (`[limits] max_large_bodies`).
    pub bodies: crate::admission::BodyGate,
}

impl AppState {
    pub async fn boot(config: NodeConfig) -> Result<Arc<AppState>, BootError> {
        let bodies = crate::admission::BodyGate::from_limits(&config.limits);
        Ok(Arc::new(AppState {
            node: Node::boot(config).await?,
            bodies,
        }))
    }
}
