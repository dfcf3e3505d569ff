//! [`WatchCacheLayer`]: the watch cache as a [`Layer`] (Kubernetes `StorageWithCacher`: the
//! storage below, a [`Cacher`] on top).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::kv::Revision;
use crate::layer::{History, Layer, ResourceContext};
use crate::storage::Storage;

use super::{CacheMetrics, Cacher, CacherConfig};

/// Puts a [`Cacher`] over the storage of every resource whose context wants a watch cache
/// ([`ResourceContext::watch_cache`]); other resources pass through unchanged. The resource
/// prefix, the resource's name in metrics, `apiVersion`, `kind` and the memory budget (when
/// the context has one: [`ResourceContext::watch_cache_memory_budget`]) come from the context;
/// every other setting from the template config.
#[derive(Clone, Debug)]
pub struct WatchCacheLayer {
    template: CacherConfig,
}

impl Default for WatchCacheLayer {
    fn default() -> Self {
        WatchCacheLayer { template: CacherConfig::new("unset") }
    }
}

impl WatchCacheLayer {
    /// A layer whose caches use `template`'s settings.
    pub fn new(template: CacherConfig) -> Self {
        WatchCacheLayer { template }
    }

    /// This layer with every cache reporting into `metrics` (see [`CacheMetrics`]).
    pub fn with_metrics(mut self, metrics: CacheMetrics) -> Self {
        self.template.metrics = Some(metrics);
        self
    }

    /// The template config of every cache.
    pub fn template(&self) -> &CacherConfig {
        &self.template
    }

    /// The cache of `context`'s resource over `inner`, started on the context's runtime.
    ///
    /// Errors: [`Error::Invalid`](crate::Error::Invalid) for an empty resource prefix.
    pub fn cacher(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> Result<Arc<Cacher>> {
        let mut config = self.template.clone();
        config.resource_prefix.clone_from(&context.resource_prefix);
        config.resource = context.group_resource.to_string();
        if context.watch_cache_memory_budget.is_some() {
            config.memory_budget = context.watch_cache_memory_budget;
        }
        config.api_version.clone_from(&context.api_version);
        config.kind.clone_from(&context.kind);
        let _entered = context.runtime.enter();
        Ok(Arc::new(Cacher::new(inner, config)?))
    }
}

impl Layer for WatchCacheLayer {
    fn name(&self) -> &str {
        "watch-cache"
    }

    fn layer(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>> {
        if !context.watch_cache {
            return Ok(inner);
        }
        let cacher = self.cacher(context, inner)?;
        if let Some(histories) = &context.histories {
            histories.register(cacher.clone());
        }
        Ok(cacher)
    }
}

#[async_trait]
impl History for Cacher {
    fn revision(&self) -> Revision {
        self.resource_version()
    }

    fn compact(&self, revision: Revision) {
        self.compact_history(revision);
    }

    async fn wait_loaded(&self, timeout: Duration) {
        // A failed first list (unreadable data) is the behaviour's to observe.
        let _ = self.wait_until_ready(timeout).await;
    }

    fn watcher_count(&self) -> usize {
        Cacher::watcher_count(self)
    }
}
