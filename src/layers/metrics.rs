//! `MetricsLayer`: Prometheus metrics of every storage call, knowing nothing of the backend.
//!
//! The metrics are [`prometheus_client`] metric families: [`StorageMetrics::register`] adds
//! them to a caller's [`Registry`] (a server renders them with its own metrics in one
//! exposition), and [`StorageMetrics::render`] renders them alone (OpenMetrics text).
//!
//! * `apistore_request_duration_seconds{operation,resource}` — histogram of call latency, with
//!   Kubernetes' `etcd_request_duration_seconds` buckets (5 ms … 60 s);
//! * `apistore_requests_total{operation,resource}` — calls;
//! * `apistore_request_errors_total{operation,resource,reason}` — failed calls by Kubernetes
//!   status reason;
//! * `apiserver_storage_objects{resource}` — object count, updated from each
//!   [`Storage::stats`] call through the layer (Kubernetes polls `stats` every
//!   `count_metric_poll_period`; see [`StorageMetrics::poll_object_counts`]);
//! * the watch caches' memory gauges ([`CacheMetrics`], [`StorageMetrics::cache`]): bytes and
//!   objects held, memory budget and bypassed state per resource, set by the caches of the
//!   [`production_chain`](crate::layers::production_chain).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cacher::CacheMetrics;
use crate::error::Result;
use crate::layer::{Layer, ResourceContext};
use crate::object::Object;
use crate::storage::{
    DeleteOptions, GetOptions, ListOptions, ObjectList, Preconditions, Stats, Storage, UpdateFn, ValidateDeletion,
    WatchStream,
};

/// Kubernetes' `etcd_request_duration_seconds` buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

/// Labels of one storage call series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    resource: String,
}

/// Labels of one failed-call series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: String,
    reason: String,
    resource: String,
}

/// Labels of one object-count series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

type HistogramFamily = Family<CallLabels, Histogram, fn() -> Histogram>;

/// The storage metric families shared by every [`MetricsLayer`]. Cheap to clone (shared
/// state): clones record into the same series.
#[derive(Clone, Debug)]
pub struct StorageMetrics {
    durations: HistogramFamily,
    requests: Family<CallLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    /// Errors per call, all reasons (not exported: backs [`StorageMetrics::error_count`]).
    errors_per_call: Family<CallLabels, Counter>,
    objects: Family<ResourceLabels, Gauge>,
    cache: CacheMetrics,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            requests: Family::default(),
            errors: Family::default(),
            errors_per_call: Family::default(),
            objects: Family::default(),
            cache: CacheMetrics::new(),
        }
    }
}

fn call(resource: &str, operation: &str) -> CallLabels {
    CallLabels { operation: operation.to_owned(), resource: resource.to_owned() }
}

impl StorageMetrics {
    /// Empty metric families, registered nowhere yet (see [`StorageMetrics::register`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the metric families into `registry`, so that encoding the registry renders
    /// them (with whatever else it holds). The registry records into the same series as
    /// `self` and its clones.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "apistore_request_duration_seconds",
            "Storage call latency in seconds for each operation and resource",
            self.durations.clone(),
        );
        // prometheus-client appends the counter suffix `_total`.
        registry.register("apistore_requests", "Storage calls for each operation and resource", self.requests.clone());
        registry.register(
            "apistore_request_errors",
            "Failed storage calls for each operation, resource and reason",
            self.errors.clone(),
        );
        registry.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            self.objects.clone(),
        );
        self.cache.register(registry);
    }

    /// The watch caches' memory gauges, registered with the other families (a
    /// [`WatchCacheLayer`](crate::layers::WatchCacheLayer) reports into them when given them).
    pub fn cache(&self) -> &CacheMetrics {
        &self.cache
    }

    /// A layer recording into these metrics, each storage under its resource (e.g.
    /// `deployments.apps`).
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer { metrics: self.clone() }
    }

    fn record<T>(&self, resource: &str, operation: &'static str, elapsed: Duration, result: &Result<T>) {
        let labels = call(resource, operation);
        self.durations.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
        if let Err(err) = result {
            let reason = err.reason().as_str().to_owned();
            let errors = ErrorLabels { operation: operation.to_owned(), reason, resource: resource.to_owned() };
            self.errors.get_or_create(&errors).inc();
            self.errors_per_call.get_or_create(&labels).inc();
        }
    }

    fn set_objects(&self, resource: &str, count: i64) {
        self.objects.get_or_create(&ResourceLabels { resource: resource.to_owned() }).set(count);
    }

    /// Calls recorded for `resource` and `operation` (for tests and dashboards).
    pub fn request_count(&self, resource: &str, operation: &str) -> u64 {
        self.requests.get(&call(resource, operation)).map(|c| c.get()).unwrap_or(0)
    }

    /// Errors recorded for `resource` and `operation`, all reasons.
    pub fn error_count(&self, resource: &str, operation: &str) -> u64 {
        self.errors_per_call.get(&call(resource, operation)).map(|c| c.get()).unwrap_or(0)
    }

    /// The last object count seen for `resource`.
    pub fn object_count(&self, resource: &str) -> Option<i64> {
        self.objects.get(&ResourceLabels { resource: resource.to_owned() }).map(|g| g.get())
    }

    /// Calls `stats()` on each `(resource, storage)` every `period` until the returned task
    /// is aborted (Kubernetes' count poller); each call updates `apiserver_storage_objects`
    /// when the storage is wrapped by this registry's layer.
    pub fn poll_object_counts(
        &self,
        storages: Vec<(String, Arc<dyn Storage>)>,
        period: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
            loop {
                ticker.tick().await;
                for (resource, storage) in &storages {
                    if let Ok(stats) = storage.stats().await {
                        metrics.set_objects(resource, stats.object_count);
                    }
                }
            }
        })
    }

    /// These metrics alone in the OpenMetrics text exposition (ending in `# EOF`); a server
    /// with more metrics registers them into its registry instead ([`StorageMetrics::register`]).
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Records every call of the storage it wraps in a [`StorageMetrics`], labelled with the
/// context's resource.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: StorageMetrics,
}

impl Layer for MetricsLayer {
    fn name(&self) -> &str {
        "metrics"
    }

    fn layer(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>> {
        let resource = context.group_resource.to_string();
        Ok(Arc::new(MeteredStorage { inner, metrics: self.metrics.clone(), resource }))
    }
}

/// A storage wrapped by [`MetricsLayer`].
struct MeteredStorage {
    inner: Arc<dyn Storage>,
    metrics: StorageMetrics,
    resource: String,
}

impl MeteredStorage {
    fn done<T>(&self, operation: &'static str, started: Instant, result: Result<T>) -> Result<T> {
        self.metrics.record(&self.resource, operation, started.elapsed(), &result);
        result
    }
}

#[async_trait]
impl Storage for MeteredStorage {
    async fn create(&self, key: &str, object: Object, ttl: u64) -> Result<Object> {
        let started = Instant::now();
        let result = self.inner.create(key, object, ttl).await;
        self.done("create", started, result)
    }

    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate_deletion: ValidateDeletion<'_>,
        cached_existing: Option<Object>,
        options: DeleteOptions,
    ) -> Result<Object> {
        let started = Instant::now();
        let result = self.inner.delete(key, preconditions, validate_deletion, cached_existing, options).await;
        self.done("delete", started, result)
    }

    async fn watch(&self, key: &str, options: ListOptions) -> Result<WatchStream> {
        let started = Instant::now();
        let result = self.inner.watch(key, options).await;
        self.done("watch", started, result)
    }

    async fn get(&self, key: &str, options: GetOptions) -> Result<Option<Object>> {
        let started = Instant::now();
        let result = self.inner.get(key, options).await;
        self.done("get", started, result)
    }

    async fn get_list(&self, key: &str, options: ListOptions) -> Result<ObjectList> {
        let started = Instant::now();
        let result = self.inner.get_list(key, options).await;
        self.done("list", started, result)
    }

    async fn get_list_encoded(&self, key: &str, options: ListOptions) -> Result<crate::encoded::EncodedList> {
        let started = Instant::now();
        let result = self.inner.get_list_encoded(key, options).await;
        self.done("list", started, result)
    }

    fn holds_encoded(&self) -> bool {
        self.inner.holds_encoded()
    }

    async fn get_encoded(&self, key: &str, options: GetOptions) -> Result<Option<crate::encoded::EncodedObject>> {
        let started = Instant::now();
        let result = self.inner.get_encoded(key, options).await;
        self.done("get", started, result)
    }

    async fn guaranteed_update(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        try_update: UpdateFn<'_>,
        cached_existing: Option<Object>,
    ) -> Result<Object> {
        let started = Instant::now();
        let result =
            self.inner.guaranteed_update(key, ignore_not_found, preconditions, try_update, cached_existing).await;
        self.done("update", started, result)
    }

    async fn stats(&self) -> Result<Stats> {
        let started = Instant::now();
        let result = self.inner.stats().await;
        if let Ok(stats) = &result {
            self.metrics.set_objects(&self.resource, stats.object_count);
        }
        self.done("stats", started, result)
    }

    async fn readiness_check(&self) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.readiness_check().await;
        self.done("readiness", started, result)
    }

    async fn current_resource_version(&self) -> Result<u64> {
        let started = Instant::now();
        let result = self.inner.current_resource_version().await;
        self.done("currentResourceVersion", started, result)
    }

    async fn compact_revision(&self) -> Result<u64> {
        let started = Instant::now();
        let result = self.inner.compact_revision().await;
        self.done("compactRevision", started, result)
    }

    async fn request_watch_progress(&self) -> Result<bool> {
        let started = Instant::now();
        let result = self.inner.request_watch_progress().await;
        self.done("requestWatchProgress", started, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let metrics = StorageMetrics::new();
        metrics.record::<()>("configmaps", "get", Duration::from_millis(1), &Ok(()));
        metrics.record::<()>("configmaps", "get", Duration::from_millis(30), &Ok(()));
        metrics.record::<()>("configmaps", "get", Duration::from_secs(100), &Err(Error::NotFound { key: "k".into() }));
        metrics.set_objects("configmaps", 3);
        let text = metrics.render();
        assert!(text.contains("# TYPE apistore_request_duration_seconds histogram"));
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{le=\"0.005\",operation=\"get\",resource=\"configmaps\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{le=\"0.05\",operation=\"get\",resource=\"configmaps\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{le=\"60.0\",operation=\"get\",resource=\"configmaps\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{le=\"+Inf\",operation=\"get\",resource=\"configmaps\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("apistore_request_duration_seconds_count{operation=\"get\",resource=\"configmaps\"} 3\n"));
        assert!(text.contains("apistore_requests_total{operation=\"get\",resource=\"configmaps\"} 3\n"));
        assert!(
            text.contains(
                "apistore_request_errors_total{operation=\"get\",reason=\"NotFound\",resource=\"configmaps\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("apiserver_storage_objects{resource=\"configmaps\"} 3\n"));
        assert_eq!(metrics.request_count("configmaps", "get"), 3);
        assert_eq!(metrics.error_count("configmaps", "get"), 1);
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut shared = String::new();
        prometheus_client::encoding::text::encode(&mut shared, &registry).expect("encode");
        assert_eq!(shared, text);
        metrics.set_objects("a\"b\\c\nd", 1);
        assert!(metrics.render().contains("apiserver_storage_objects{resource=\"a\\\"b\\\\c\\nd\"} 1\n"));
        assert_eq!(metrics.object_count("configmaps"), Some(3));
        assert_eq!(metrics.request_count("secrets", "get"), 0);
        assert!(!metrics.render().contains("secrets"), "reading counts creates no series");
    }
}
