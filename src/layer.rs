//! Layers: decorators over [`Storage`] that know nothing of what they wrap (tower's `Layer`).
//!
//! A layer takes an `Arc<dyn Storage>` and returns one. The undecorated storage is the
//! [`Store`](crate::store::Store) over a backend; a watch cache, metrics and tracing are
//! layers; they compose in any order.

use std::sync::Arc;

use crate::storage::Storage;

pub mod metrics;
pub mod trace;

pub use metrics::{MetricsLayer, StorageMetrics};
pub use trace::TracingLayer;

/// Wraps a storage in another.
pub trait StorageLayer: Send + Sync {
    /// Returns `inner` decorated by this layer.
    fn layer(&self, inner: Arc<dyn Storage>) -> Arc<dyn Storage>;
}

/// Applies `layers` in order: the first wraps `inner`, the last is outermost.
pub fn apply_layers(inner: Arc<dyn Storage>, layers: &[Arc<dyn StorageLayer>]) -> Arc<dyn Storage> {
    layers.iter().fold(inner, |storage, layer| layer.layer(storage))
}
