//! Prometheus metrics of the server: request counts and latencies per verb, resource and
//! code, and apistore's storage metrics, in one [`prometheus_client`] registry rendered as
//! OpenMetrics text at `/metrics`.

use std::time::Duration;

use apistore::kv::SpaceStatus;
use apistore::layers::StorageMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histogram.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `apiserver_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

/// Labels of `apiserver_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

/// Labels of the space gauges: the backend (its type, plus `#n` when several share it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    storage_cluster_id: String,
}

/// Labels of `apistore_storage_alarm`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabels {
    storage_cluster_id: String,
    alarm: String,
}

/// Each backend's space ([`apistore::KvBackend::space`]): db size (kube-apiserver's
/// `apiserver_storage_size_bytes`), bytes in use, quota and alarm state. Cheap to clone
/// (the families are shared), so a poller can own one.
#[derive(Clone, Debug, Default)]
pub struct SpaceGauges {
    size: Family<BackendLabels, Gauge>,
    in_use: Family<BackendLabels, Gauge>,
    quota: Family<BackendLabels, Gauge>,
    alarm: Family<AlarmLabels, Gauge>,
}

impl SpaceGauges {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "apiserver_storage_size_bytes",
            "Size of the storage database file physically allocated in bytes",
            self.size.clone(),
        );
        registry.register(
            "apistore_storage_db_size_in_use_bytes",
            "Bytes of the storage database holding retained data (what compaction plus defragmentation or a rewrite keeps)",
            self.in_use.clone(),
        );
        registry.register(
            "apistore_storage_quota_backend_bytes",
            "The backend's space quota in bytes (0 = none)",
            self.quota.clone(),
        );
        registry.register(
            "apistore_storage_alarm",
            "1 while the backend's alarm is raised (NOSPACE: writes that grow the store are refused)",
            self.alarm.clone(),
        );
    }

    /// Records `space` of backend `id`.
    pub fn record(&self, id: &str, space: &SpaceStatus) {
        let labels = BackendLabels { storage_cluster_id: id.to_owned() };
        let gauge = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        self.size.get_or_create(&labels).set(gauge(space.db_bytes));
        self.in_use.get_or_create(&labels).set(gauge(space.in_use_bytes));
        self.quota.get_or_create(&labels).set(gauge(space.quota_bytes));
        let alarm = AlarmLabels { storage_cluster_id: id.to_owned(), alarm: SpaceStatus::NOSPACE.to_owned() };
        self.alarm.get_or_create(&alarm).set(i64::from(space.nospace()));
    }

    /// Polls `space()` of every backend every `period` until the task is aborted.
    pub fn poll(
        &self,
        backends: Vec<(String, std::sync::Arc<dyn apistore::KvBackend>)>,
        period: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let gauges = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
            loop {
                ticker.tick().await;
                for (id, backend) in &backends {
                    match backend.space().await {
                        Ok(space) => gauges.record(id, &space),
                        Err(e) => tracing::debug!(error = %e, backend = %id, "space of the backend unknown"),
                    }
                }
            }
        })
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// Request counters and latency histograms, and the registry `/metrics` renders.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    space: SpaceGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let mut registry = Registry::default();
        // prometheus-client appends the counter suffix: `apiserver_request_total`.
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out by verb, resource and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb and resource",
            latency.clone(),
        );
        let space = SpaceGauges::default();
        space.register(&mut registry);
        Metrics { registry, requests, latency, space }
    }
}

impl Metrics {
    /// The HTTP request metrics and `storage`'s metric families in one registry.
    pub fn with_storage(storage: &StorageMetrics) -> Self {
        let mut metrics = Metrics::default();
        storage.register(&mut metrics.registry);
        metrics
    }

    /// The space gauges (clone them into a poller).
    pub fn space(&self) -> &SpaceGauges {
        &self.space
    }

    /// Records one request.
    pub fn record(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let labels = RequestLabels { verb: verb.to_owned(), resource: resource.to_owned(), code: code.to_string() };
        self.requests.get_or_create(&labels).inc();
        let labels = LatencyLabels { verb: verb.to_owned(), resource: resource.to_owned() };
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text exposition of every registered metric (ends in `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_registry_renders_request_and_storage_families() {
        use apistore::group_resource::GroupResource;
        use apistore::layer::{Layer, ResourceContext};
        use apistore::storage::{GetOptions, Storage};
        use std::sync::Arc;

        let storage = StorageMetrics::new();
        let metrics = Metrics::with_storage(&storage);
        let backend: Arc<dyn apistore::KvBackend> = Arc::new(apistore_memory::MemoryBackend::new());
        let config = apistore::StoreConfig::new("configmaps");
        let context = ResourceContext::for_store(GroupResource::core("configmaps"), &config).expect("context");
        let store: Arc<dyn Storage> = Arc::new(apistore::Store::new(backend, config).expect("store"));
        let metered = storage.layer().layer(&context, store).expect("metrics layer");
        assert!(metered.get("/configmaps/ns/a", GetOptions::default()).await.is_err(), "not found");
        metrics.record("LIST", "configmaps", 200, Duration::from_millis(3));
        metrics.record("LIST", "configmaps", 200, Duration::from_secs(10));
        let text = metrics.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",code=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "apiserver_request_duration_seconds_bucket{le=\"0.005\",verb=\"LIST\",resource=\"configmaps\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apiserver_request_duration_seconds_bucket{le=\"+Inf\",verb=\"LIST\",resource=\"configmaps\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"LIST\",resource=\"configmaps\"} 2\n"));
        assert!(text.contains("apistore_requests_total{operation=\"get\",resource=\"configmaps\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE apistore_request_duration_seconds histogram\n"), "{text}");
        let error = "apistore_request_errors_total{operation=\"get\",reason=\"NotFound\",resource=\"configmaps\"} 1\n";
        assert!(text.contains(error), "{text}");
        let space = SpaceStatus {
            db_bytes: 9_000,
            in_use_bytes: 4_000,
            quota_bytes: 8_000,
            alarms: vec![SpaceStatus::NOSPACE.to_owned()],
        };
        metrics.space().record("sled", &space);
        let text = metrics.render();
        assert!(text.contains("apiserver_storage_size_bytes{storage_cluster_id=\"sled\"} 9000\n"), "{text}");
        assert!(text.contains("apistore_storage_db_size_in_use_bytes{storage_cluster_id=\"sled\"} 4000\n"), "{text}");
        assert!(text.contains("apistore_storage_quota_backend_bytes{storage_cluster_id=\"sled\"} 8000\n"), "{text}");
        assert!(text.contains("apistore_storage_alarm{storage_cluster_id=\"sled\",alarm=\"NOSPACE\"} 1\n"), "{text}");
        metrics.space().record("sled", &SpaceStatus { alarms: Vec::new(), ..space });
        assert!(metrics.render().contains("apistore_storage_alarm{storage_cluster_id=\"sled\",alarm=\"NOSPACE\"} 0\n"));
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
