//! The layers apistore ships, and the production chain built from them.
//!
//! Each is a [`Layer`](crate::layer::Layer): the watch cache
//! ([`WatchCacheLayer`], in [`crate::cacher`]), Prometheus metrics ([`MetricsLayer`]) and
//! `tracing` spans ([`TracingLayer`]). They know nothing of the backend underneath and
//! compose in any order.

pub mod metrics;
pub mod trace;

pub use crate::cacher::WatchCacheLayer;
pub use metrics::{MetricsLayer, StorageMetrics};
pub use trace::TracingLayer;

use crate::layer::LayerChain;

/// The chain an API server runs (innermost first): the watch cache over the store (for the
/// resources whose config wants one), then `metrics` over every storage — i.e.
/// metrics → cache → store as a request sees it. The caches report their memory gauges into
/// [`StorageMetrics::cache`] unless `cache` was given gauges of its own.
pub fn production_chain(cache: WatchCacheLayer, metrics: &StorageMetrics) -> LayerChain {
    let cache = match cache.template().metrics {
        Some(_) => cache,
        None => cache.with_metrics(metrics.cache().clone()),
    };
    LayerChain::new().with(cache).with(metrics.layer())
}
