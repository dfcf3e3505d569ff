//! The one layer contract: a [`Layer`] is handed a resource's [`ResourceContext`] and the
//! `Arc<dyn Storage>` below it, and returns the storage above it (OpenDAL's `Layer` with its
//! `apply_context`, Kubernetes' `StorageDecorator`).
//!
//! ```text
//!   RESTOptions { context, layers: LayerChain [cache, metrics] }
//!       create_storage():  UndecoratedStorage (Store over the backend)
//!                            └─ layers[0].layer(ctx, store)      (watch cache)
//!                                 └─ layers[1].layer(ctx, ..)    (metrics)  ─► Arc<dyn Storage>
//! ```
//!
//! A chain is ordered innermost first and is the same for every resource; what differs per
//! resource (its name, prefixes, codec, whether it wants a watch cache) is in the context, so
//! a layer may also decline a resource by returning `inner` unchanged. The layers apistore
//! ships (watch cache, metrics, tracing) live in [`crate::layers`] and [`crate::cacher`];
//! the conformance suite (`testing::run_chain`) runs the Storage behaviours over any chain.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::codec::DynCodec;
use crate::error::{Error, Result};
use crate::group_resource::GroupResource;
use crate::kv::Revision;
use crate::storage::Storage;
use crate::store::StoreConfig;

/// What a layer knows of the resource whose storage it decorates.
#[derive(Clone)]
pub struct ResourceContext {
    /// The resource (`pods`, `deployments.apps`).
    pub group_resource: GroupResource,
    /// The backend key prefix (`/registry`).
    pub key_prefix: String,
    /// The resource prefix: the storage's keys live under `/<resource_prefix>/` (`pods`).
    pub resource_prefix: String,
    /// The codec objects are stored with.
    pub codec: DynCodec,
    /// `apiVersion` of the resource's objects (bookmarks carry it; empty when unknown).
    pub api_version: String,
    /// `kind` of the resource's objects (empty when unknown).
    pub kind: String,
    /// The config wants a watch cache for this resource (`--watch-cache`, size not 0).
    pub watch_cache: bool,
    /// The config's memory budget in bytes for this resource's watch cache
    /// (`watch_cache.memory_budget_bytes` / `watch_cache.memory_budgets`); None = the cache
    /// layer's own setting.
    pub watch_cache_memory_budget: Option<usize>,
    /// The runtime background tasks of a layer (a cache's reflector) run on.
    pub runtime: tokio::runtime::Handle,
    /// Where layers that keep their own history register it (see [`History`]); `None`
    /// outside the conformance suite.
    pub histories: Option<Histories>,
}

impl fmt::Debug for ResourceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceContext")
            .field("group_resource", &self.group_resource.to_string())
            .field("key_prefix", &self.key_prefix)
            .field("resource_prefix", &self.resource_prefix)
            .field("codec", &self.codec.media_type())
            .field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .field("watch_cache", &self.watch_cache)
            .field("watch_cache_memory_budget", &self.watch_cache_memory_budget)
            .finish_non_exhaustive()
    }
}

impl ResourceContext {
    /// The context of `group_resource` stored as `config` describes (prefixes, codec, type),
    /// wanting a watch cache, on the current tokio runtime.
    ///
    /// Errors: [`Error::Internal`] outside a tokio runtime.
    pub fn for_store(group_resource: GroupResource, config: &StoreConfig) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::internal(format!("storage layers need a tokio runtime: {e}")))?;
        Ok(ResourceContext {
            group_resource,
            key_prefix: config.prefix.clone(),
            resource_prefix: config.resource_prefix.clone(),
            codec: config.codec.clone(),
            api_version: config.api_version.clone(),
            kind: config.kind.clone(),
            watch_cache: true,
            watch_cache_memory_budget: None,
            runtime,
            histories: None,
        })
    }
}

/// Decorates one resource's storage.
pub trait Layer: Send + Sync + fmt::Debug {
    /// A short name (`"watch-cache"`, `"metrics"`), for logs and tests.
    fn name(&self) -> &str;

    /// The storage of `context`'s resource over `inner` (or `inner` itself when the layer does
    /// not apply to the resource).
    ///
    /// Errors: the layer cannot be built for the resource (e.g. an invalid resource prefix).
    fn layer(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>>;
}

/// An ordered list of layers, innermost first. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct LayerChain {
    layers: Vec<Arc<dyn Layer>>,
}

impl LayerChain {
    /// The empty chain (the storage as it is).
    pub fn new() -> Self {
        Self::default()
    }

    /// This chain with `layer` on top (outermost so far).
    pub fn with(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// This chain with a shared `layer` on top.
    pub fn with_shared(mut self, layer: Arc<dyn Layer>) -> Self {
        self.layers.push(layer);
        self
    }

    /// The names of the layers, innermost first.
    pub fn names(&self) -> Vec<&str> {
        self.layers.iter().map(|layer| layer.name()).collect()
    }

    /// Applies the layers in order over `inner`: the first wraps `inner`, the last is outermost.
    ///
    /// Errors: the first layer's error; nothing built so far is kept.
    pub fn apply(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>> {
        self.layers.iter().try_fold(inner, |storage, layer| layer.layer(context, storage))
    }
}

/// What a layer keeping its own history (a watch cache) shows the conformance suite, which
/// compacts it together with the backend (as Kubernetes' cacher tests compact the watch cache).
#[async_trait]
pub trait History: Send + Sync {
    /// The revision up to which the layer has applied every change.
    fn revision(&self) -> Revision;

    /// Forgets history at or below `revision`: later reads from older revisions get 410.
    fn compact(&self, revision: Revision);

    /// Waits (at most `timeout`) until the layer has tried to load its initial state.
    async fn wait_loaded(&self, timeout: Duration);

    /// The watches the layer serves now (a watch its consumer dropped is not counted).
    fn watcher_count(&self) -> usize;
}

/// The histories registered while a chain was applied. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Histories {
    registered: Arc<Mutex<Vec<Arc<dyn History>>>>,
}

impl fmt::Debug for Histories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histories").field("registered", &self.all().len()).finish()
    }
}

impl Histories {
    /// Registers `history`.
    pub fn register(&self, history: Arc<dyn History>) {
        self.registered.lock().unwrap_or_else(|e| e.into_inner()).push(history);
    }

    /// Every registered history, in registration order.
    pub fn all(&self) -> Vec<Arc<dyn History>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
