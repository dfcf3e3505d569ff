//! Memory metrics of watch caches: bytes and objects held per resource
//! (`apistore_watch_cache_bytes{resource}`, `apistore_watch_cache_objects{resource}`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set of the cache gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

/// Gauges shared by the caches of every resource (cloning shares them). Each cache sets its
/// own resource's values whenever its contents change; a bypassed cache reports 0.
#[derive(Clone, Debug, Default)]
pub struct CacheMetrics {
    bytes: Family<ResourceLabel, Gauge>,
    objects: Family<ResourceLabel, Gauge>,
}

impl CacheMetrics {
    /// New gauges, not registered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the gauges (`apistore_watch_cache_bytes`, `apistore_watch_cache_objects`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "apistore_watch_cache_bytes",
            "Estimated bytes held by the watch cache per resource",
            self.bytes.clone(),
        );
        registry.register(
            "apistore_watch_cache_objects",
            "Objects held by the watch cache per resource",
            self.objects.clone(),
        );
    }

    /// Sets `resource`'s values.
    pub fn set(&self, resource: &str, bytes: usize, objects: usize) {
        let label = ResourceLabel { resource: resource.to_owned() };
        self.bytes.get_or_create(&label).set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.objects.get_or_create(&label).set(i64::try_from(objects).unwrap_or(i64::MAX));
    }

    /// `resource`'s (bytes, objects); (0, 0) when never set.
    pub fn get(&self, resource: &str) -> (i64, i64) {
        let label = ResourceLabel { resource: resource.to_owned() };
        (self.bytes.get_or_create(&label).get(), self.objects.get_or_create(&label).get())
    }
}
