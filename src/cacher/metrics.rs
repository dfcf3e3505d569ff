//! Memory metrics of watch caches, per resource: bytes and objects held, the memory budget and
//! whether the cache is bypassed (`apistore_watch_cache_bytes{resource}`,
//! `apistore_watch_cache_objects{resource}`, `apistore_watch_cache_memory_budget_bytes{resource}`,
//! `apistore_watch_cache_bypassed{resource}`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set of the cache gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

/// What one resource's cache holds now (the values [`CacheMetrics::set`] records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheMemory {
    /// Estimated bytes held (0 while bypassed).
    pub bytes: usize,
    /// Objects held (0 while bypassed).
    pub objects: usize,
    /// The memory budget in bytes (None = no limit).
    pub budget: Option<usize>,
    /// Over its budget: the cache holds nothing and requests are served from storage.
    pub bypassed: bool,
}

/// Gauges shared by the caches of every resource (cloning shares them). Each cache sets its
/// own resource's values whenever its contents change.
#[derive(Clone, Debug, Default)]
pub struct CacheMetrics {
    bytes: Family<ResourceLabel, Gauge>,
    objects: Family<ResourceLabel, Gauge>,
    budget: Family<ResourceLabel, Gauge>,
    bypassed: Family<ResourceLabel, Gauge>,
}

fn gauge(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl CacheMetrics {
    /// New gauges, not registered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the gauges (`apistore_watch_cache_bytes`, `apistore_watch_cache_objects`,
    /// `apistore_watch_cache_memory_budget_bytes`, `apistore_watch_cache_bypassed`).
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
        registry.register(
            "apistore_watch_cache_memory_budget_bytes",
            "The watch cache's memory budget per resource in bytes (absent: no limit)",
            self.budget.clone(),
        );
        registry.register(
            "apistore_watch_cache_bypassed",
            "1 while the resource's watch cache is over its memory budget and requests are served from storage",
            self.bypassed.clone(),
        );
    }

    /// Sets `resource`'s values.
    pub fn set(&self, resource: &str, memory: CacheMemory) {
        let label = ResourceLabel { resource: resource.to_owned() };
        self.bytes.get_or_create(&label).set(gauge(memory.bytes));
        self.objects.get_or_create(&label).set(gauge(memory.objects));
        if let Some(budget) = memory.budget {
            self.budget.get_or_create(&label).set(gauge(budget));
        }
        self.bypassed.get_or_create(&label).set(i64::from(memory.bypassed));
    }

    /// `resource`'s bytes gauge (shared: setting it sets the one [`CacheMetrics::set`] sets).
    pub fn bytes_gauge(&self, resource: &str) -> Gauge {
        self.bytes.get_or_create(&ResourceLabel { resource: resource.to_owned() }).clone()
    }

    /// `resource`'s (bytes, objects); (0, 0) when never set.
    pub fn get(&self, resource: &str) -> (i64, i64) {
        let label = ResourceLabel { resource: resource.to_owned() };
        (self.bytes.get_or_create(&label).get(), self.objects.get_or_create(&label).get())
    }

    /// True while `resource`'s cache is bypassed (false when never set).
    pub fn bypassed(&self, resource: &str) -> bool {
        let label = ResourceLabel { resource: resource.to_owned() };
        self.bypassed.get_or_create(&label).get() != 0
    }
}
