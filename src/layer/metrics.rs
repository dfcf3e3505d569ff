//! `MetricsLayer`: Prometheus metrics of every storage call, knowing nothing of the backend.
//!
//! Metrics (text exposition rendered by [`StorageMetrics::render`]):
//!
//! * `apistore_request_duration_seconds{operation,resource}` — histogram of call latency, with
//!   Kubernetes' `etcd_request_duration_seconds` buckets (5 ms … 60 s);
//! * `apistore_requests_total{operation,resource}` — calls;
//! * `apistore_request_errors_total{operation,resource,reason}` — failed calls by Kubernetes
//!   status reason;
//! * `apiserver_storage_objects{resource}` — object count, updated from each
//!   [`Storage::stats`] call through the layer (Kubernetes polls `stats` every
//!   `count_metric_poll_period`; see [`StorageMetrics::poll_object_counts`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;
use crate::group_resource::GroupResource;
use crate::layer::StorageLayer;
use crate::object::Object;
use crate::rest_options::LayerFactory;
use crate::storage::{
    DeleteOptions, GetOptions, ListOptions, ObjectList, Preconditions, Stats, Storage, UpdateFn, ValidateDeletion,
    WatchStream,
};

/// Kubernetes' `etcd_request_duration_seconds` buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

type Series = (String, &'static str);

#[derive(Debug, Default)]
struct State {
    requests: BTreeMap<Series, Histogram>,
    errors: BTreeMap<(String, &'static str, &'static str), u64>,
    objects: BTreeMap<String, i64>,
}

/// The metrics registry shared by every [`MetricsLayer`]. Cheap to clone (shared state).
#[derive(Clone, Debug, Default)]
pub struct StorageMetrics {
    state: Arc<Mutex<State>>,
}

impl StorageMetrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer recording under `resource` (e.g. `deployments.apps`).
    pub fn layer(&self, resource: &str) -> MetricsLayer {
        MetricsLayer { metrics: self.clone(), resource: resource.to_owned() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record<T>(&self, resource: &str, operation: &'static str, elapsed: Duration, result: &Result<T>) {
        let mut state = self.lock();
        state.requests.entry((resource.to_owned(), operation)).or_default().observe(elapsed.as_secs_f64());
        if let Err(err) = result {
            *state.errors.entry((resource.to_owned(), operation, err.reason().as_str())).or_default() += 1;
        }
    }

    fn set_objects(&self, resource: &str, count: i64) {
        self.lock().objects.insert(resource.to_owned(), count);
    }

    /// Calls recorded for `resource` and `operation` (for tests and dashboards).
    pub fn request_count(&self, resource: &str, operation: &str) -> u64 {
        self.lock().requests.iter().filter(|((r, o), _)| r == resource && *o == operation).map(|(_, h)| h.count).sum()
    }

    /// Errors recorded for `resource` and `operation`, all reasons.
    pub fn error_count(&self, resource: &str, operation: &str) -> u64 {
        self.lock().errors.iter().filter(|((r, o, _), _)| r == resource && *o == operation).map(|(_, n)| n).sum()
    }

    /// The last object count seen for `resource`.
    pub fn object_count(&self, resource: &str) -> Option<i64> {
        self.lock().objects.get(resource).copied()
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

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let state = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP apistore_request_duration_seconds Storage call latency in seconds for each operation and resource."
        );
        let _ = writeln!(out, "# TYPE apistore_request_duration_seconds histogram");
        for ((resource, operation), histogram) in &state.requests {
            let labels = format!("operation=\"{}\",resource=\"{}\"", escape(operation), escape(resource));
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.buckets.iter()) {
                cumulative += count;
                let _ =
                    writeln!(out, "apistore_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ =
                writeln!(out, "apistore_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", histogram.count);
            let _ = writeln!(out, "apistore_request_duration_seconds_sum{{{labels}}} {}", histogram.sum);
            let _ = writeln!(out, "apistore_request_duration_seconds_count{{{labels}}} {}", histogram.count);
        }
        let _ = writeln!(out, "# HELP apistore_requests_total Storage calls for each operation and resource.");
        let _ = writeln!(out, "# TYPE apistore_requests_total counter");
        for ((resource, operation), histogram) in &state.requests {
            let _ = writeln!(
                out,
                "apistore_requests_total{{operation=\"{}\",resource=\"{}\"}} {}",
                escape(operation),
                escape(resource),
                histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP apistore_request_errors_total Failed storage calls for each operation, resource and reason."
        );
        let _ = writeln!(out, "# TYPE apistore_request_errors_total counter");
        for ((resource, operation, reason), count) in &state.errors {
            let _ = writeln!(
                out,
                "apistore_request_errors_total{{operation=\"{}\",reason=\"{}\",resource=\"{}\"}} {count}",
                escape(operation),
                escape(reason),
                escape(resource)
            );
        }
        let _ = writeln!(
            out,
            "# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind."
        );
        let _ = writeln!(out, "# TYPE apiserver_storage_objects gauge");
        for (resource, count) in &state.objects {
            let _ = writeln!(out, "apiserver_storage_objects{{resource=\"{}\"}} {count}", escape(resource));
        }
        out
    }
}

/// Prometheus label value escaping: `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl LayerFactory for StorageMetrics {
    fn layer_for(&self, gr: &GroupResource) -> Arc<dyn StorageLayer> {
        Arc::new(self.layer(&gr.to_string()))
    }
}

/// Records every call of the storage it wraps in a [`StorageMetrics`] under one resource.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: StorageMetrics,
    resource: String,
}

impl StorageLayer for MetricsLayer {
    fn layer(&self, inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
        Arc::new(MeteredStorage { inner, metrics: self.metrics.clone(), resource: self.resource.clone() })
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
                "apistore_request_duration_seconds_bucket{operation=\"get\",resource=\"configmaps\",le=\"0.005\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{operation=\"get\",resource=\"configmaps\",le=\"0.05\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{operation=\"get\",resource=\"configmaps\",le=\"60\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apistore_request_duration_seconds_bucket{operation=\"get\",resource=\"configmaps\",le=\"+Inf\"} 3\n"
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
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
