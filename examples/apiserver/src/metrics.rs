//! Prometheus metrics of the server: request counts and latencies per verb, resource and
//! code, and apistore's storage metrics, in one [`prometheus_client`] registry rendered as
//! OpenMetrics text at `/metrics`.

use std::time::Duration;

use apistore::layers::StorageMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// Request counters and latency histograms, and the registry `/metrics` renders.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
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
        Metrics { registry, requests, latency }
    }
}

impl Metrics {
    /// The HTTP request metrics and `storage`'s metric families in one registry.
    pub fn with_storage(storage: &StorageMetrics) -> Self {
        let mut metrics = Metrics::default();
        storage.register(&mut metrics.registry);
        metrics
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
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
