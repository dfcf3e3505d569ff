//! `TracingLayer`: one `tracing` span per storage call (`storage` span with `resource`,
//! `operation` and `key` fields; failures are logged at debug level inside the span).

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use crate::error::Result;
use crate::layer::{Layer, ResourceContext};
use crate::object::Object;
use crate::storage::{
    DeleteOptions, GetOptions, ListOptions, ObjectList, Preconditions, Stats, Storage, UpdateFn, ValidateDeletion,
    WatchStream,
};

/// Wraps a storage so each call runs in a `storage` span carrying the context's resource.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingLayer;

impl Layer for TracingLayer {
    fn name(&self) -> &str {
        "tracing"
    }

    fn layer(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(TracedStorage { inner, resource: context.group_resource.to_string() }))
    }
}

struct TracedStorage {
    inner: Arc<dyn Storage>,
    resource: String,
}

impl TracedStorage {
    fn span(&self, operation: &'static str, key: &str) -> tracing::Span {
        tracing::info_span!("storage", resource = %self.resource, operation, key)
    }
}

fn logged<T>(result: Result<T>) -> Result<T> {
    if let Err(err) = &result {
        tracing::debug!(error = %err, reason = err.reason().as_str(), "storage call failed");
    }
    result
}

#[async_trait]
impl Storage for TracedStorage {
    async fn create(&self, key: &str, object: Object, ttl: u64) -> Result<Object> {
        async { logged(self.inner.create(key, object, ttl).await) }.instrument(self.span("create", key)).await
    }

    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate_deletion: ValidateDeletion<'_>,
        cached_existing: Option<Object>,
        options: DeleteOptions,
    ) -> Result<Object> {
        async { logged(self.inner.delete(key, preconditions, validate_deletion, cached_existing, options).await) }
            .instrument(self.span("delete", key))
            .await
    }

    async fn watch(&self, key: &str, options: ListOptions) -> Result<WatchStream> {
        async { logged(self.inner.watch(key, options).await) }.instrument(self.span("watch", key)).await
    }

    async fn get(&self, key: &str, options: GetOptions) -> Result<Option<Object>> {
        async { logged(self.inner.get(key, options).await) }.instrument(self.span("get", key)).await
    }

    async fn get_list(&self, key: &str, options: ListOptions) -> Result<ObjectList> {
        async { logged(self.inner.get_list(key, options).await) }.instrument(self.span("list", key)).await
    }

    async fn get_list_encoded(&self, key: &str, options: ListOptions) -> Result<crate::encoded::EncodedList> {
        async { logged(self.inner.get_list_encoded(key, options).await) }.instrument(self.span("list", key)).await
    }

    fn holds_encoded(&self) -> bool {
        self.inner.holds_encoded()
    }

    async fn get_encoded(&self, key: &str, options: GetOptions) -> Result<Option<crate::encoded::EncodedObject>> {
        async { logged(self.inner.get_encoded(key, options).await) }.instrument(self.span("get", key)).await
    }

    async fn guaranteed_update(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        try_update: UpdateFn<'_>,
        cached_existing: Option<Object>,
    ) -> Result<Object> {
        async {
            logged(
                self.inner.guaranteed_update(key, ignore_not_found, preconditions, try_update, cached_existing).await,
            )
        }
        .instrument(self.span("update", key))
        .await
    }

    async fn stats(&self) -> Result<Stats> {
        async { logged(self.inner.stats().await) }.instrument(self.span("stats", "")).await
    }

    async fn readiness_check(&self) -> Result<()> {
        async { logged(self.inner.readiness_check().await) }.instrument(self.span("readiness", "")).await
    }

    async fn current_resource_version(&self) -> Result<u64> {
        async { logged(self.inner.current_resource_version().await) }
            .instrument(self.span("currentResourceVersion", ""))
            .await
    }

    async fn compact_revision(&self) -> Result<u64> {
        async { logged(self.inner.compact_revision().await) }.instrument(self.span("compactRevision", "")).await
    }

    async fn request_watch_progress(&self) -> Result<bool> {
        async { logged(self.inner.request_watch_progress().await) }
            .instrument(self.span("requestWatchProgress", ""))
            .await
    }
}
