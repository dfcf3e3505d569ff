//! `RESTOptions` and `RESTOptionsGetter`: how an API server's registry gets the storage of a
//! resource (Kubernetes `pkg/registry/generic/options.go`, `storage_decorator.go` and
//! `StorageFactoryRestOptionsFactory` in `pkg/server/options/etcd.go`).
//!
//! ```text
//! get_rest_options(gr) ─► StorageFactory::new_config(gr) ─► RESTOptions { config, resource_prefix, decorator, layers }
//!                                                             │ create_storage()
//!                                                             ▼
//!                       decorator.decorate(config, prefix)  (UndecoratedStorage: registry::open + Store)
//!                                                             ▼
//!                       layers (metrics, tracing, ...) ─► Arc<dyn Storage>
//! ```
//!
//! The decorator is [`UndecoratedStorage`] unless the watch cache is enabled and the
//! resource's size is not 0 (Kubernetes `--watch-cache`, `--watch-cache-sizes`); then it is
//! the caching decorator: by default [`CacherDecorator`] (the watch cache,
//! [`crate::cacher`]: the undecorated storage underneath, a [`Cacher`](crate::cacher::Cacher)
//! on top), or whatever [`StorageFactoryRestOptionsFactory::with_cacher`] registered.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::cacher::CacherDecorator;
use crate::error::{Error, Result};
use crate::factory::{ResourceStorageConfig, StorageFactory, StorageFactoryConfig, WatchCacheSettings};
use crate::group_resource::GroupResource;
use crate::layer::{apply_layers, StorageLayer};
use crate::registry;
use crate::storage::Storage;
use crate::store::Store;

/// Kubernetes `StorageDecorator`: turns a resource's storage config into its storage. The
/// undecorated one opens the backend; a watch cache is another.
#[async_trait]
pub trait StorageDecorator: Send + Sync + fmt::Debug {
    /// A short name (`"undecorated"`, `"cacher"`), for logs and tests.
    fn name(&self) -> &str;

    /// Creates the storage of one resource whose keys live under `/<resource_prefix>/`.
    ///
    /// Errors: backend errors (unknown type, unavailable), an invalid resource prefix.
    async fn decorate(&self, config: &ResourceStorageConfig, resource_prefix: &str) -> Result<Arc<dyn Storage>>;
}

/// Shared handle to a decorator.
pub type DynStorageDecorator = Arc<dyn StorageDecorator>;

/// Kubernetes `UndecoratedStorage`: opens the backend through the (pooled) registry and
/// builds a [`Store`] with the config's prefix, codec and transformer.
#[derive(Clone, Copy, Debug, Default)]
pub struct UndecoratedStorage;

#[async_trait]
impl StorageDecorator for UndecoratedStorage {
    fn name(&self) -> &str {
        "undecorated"
    }

    async fn decorate(&self, config: &ResourceStorageConfig, resource_prefix: &str) -> Result<Arc<dyn Storage>> {
        let backend = registry::open(&config.backend).await?;
        let store = Store::new(backend, config.store_config(resource_prefix))?;
        Ok(Arc::new(store))
    }
}

/// Something that gives each resource its own layer (e.g. metrics labelled with the
/// resource).
pub trait LayerFactory: Send + Sync {
    /// The layer for `gr`.
    fn layer_for(&self, gr: &GroupResource) -> Arc<dyn StorageLayer>;
}

/// Kubernetes `RESTOptions`: what a registry needs to create a resource's storage.
#[derive(Clone)]
pub struct RESTOptions {
    /// The resource's storage config.
    pub storage_config: ResourceStorageConfig,
    /// Creates the storage (undecorated or caching).
    pub decorator: DynStorageDecorator,
    /// Keys live under `/<resource_prefix>/` (e.g. `deployments`).
    pub resource_prefix: String,
    /// Workers of a DeleteCollection call.
    pub delete_collection_workers: usize,
    /// Garbage collection on.
    pub enable_garbage_collection: bool,
    /// How often object counts are polled for metrics (zero: never).
    pub count_metric_poll_period: Duration,
    /// Layers applied over the decorated storage, first = innermost.
    pub layers: Vec<Arc<dyn StorageLayer>>,
}

impl fmt::Debug for RESTOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RESTOptions")
            .field("storage_config", &self.storage_config)
            .field("decorator", &self.decorator.name())
            .field("resource_prefix", &self.resource_prefix)
            .field("delete_collection_workers", &self.delete_collection_workers)
            .field("enable_garbage_collection", &self.enable_garbage_collection)
            .field("count_metric_poll_period", &self.count_metric_poll_period)
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl RESTOptions {
    /// Options for `storage_config` under `resource_prefix`, undecorated, no layers.
    pub fn new(storage_config: ResourceStorageConfig, resource_prefix: &str) -> Self {
        RESTOptions {
            storage_config,
            decorator: Arc::new(UndecoratedStorage),
            resource_prefix: resource_prefix.to_owned(),
            delete_collection_workers: 1,
            enable_garbage_collection: true,
            count_metric_poll_period: Duration::from_secs(60),
            layers: Vec::new(),
        }
    }

    /// Adds a layer (outermost so far) and returns the options.
    pub fn with_layer(mut self, layer: Arc<dyn StorageLayer>) -> Self {
        self.layers.push(layer);
        self
    }

    /// Creates the resource's storage: the decorator, then the layers.
    ///
    /// Errors: [`Error::Invalid`] for an empty or `/` resource prefix (Kubernetes
    /// `CompleteWithOptions`), the decorator's errors.
    pub async fn create_storage(&self) -> Result<Arc<dyn Storage>> {
        if self.resource_prefix.trim_matches('/').is_empty() {
            return Err(Error::invalid(
                "resourcePrefix",
                &self.resource_prefix,
                format!("the resource prefix of {} must not be empty or '/'", self.storage_config.group_resource),
            ));
        }
        let storage = self.decorator.decorate(&self.storage_config, &self.resource_prefix).await?;
        Ok(apply_layers(storage, &self.layers))
    }
}

/// Kubernetes `RESTOptionsGetter`.
pub trait RESTOptionsGetter: Send + Sync {
    /// The options of `gr`.
    ///
    /// Errors: the factory could not produce a storage config for `gr`.
    fn get_rest_options(&self, gr: &GroupResource) -> Result<RESTOptions>;
}

/// `RESTOptions` is its own getter (for tests): every resource gets these options.
impl RESTOptionsGetter for RESTOptions {
    fn get_rest_options(&self, _gr: &GroupResource) -> Result<RESTOptions> {
        Ok(self.clone())
    }
}

/// Kubernetes `StorageFactoryRestOptionsFactory`: RESTOptions from a [`StorageFactory`].
#[derive(Clone)]
pub struct StorageFactoryRestOptionsFactory {
    factory: Arc<dyn StorageFactory>,
    watch_cache: WatchCacheSettings,
    cacher: DynStorageDecorator,
    delete_collection_workers: usize,
    enable_garbage_collection: bool,
    count_metric_poll_period: Duration,
    layers: Vec<Arc<dyn LayerFactory>>,
}

impl fmt::Debug for StorageFactoryRestOptionsFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageFactoryRestOptionsFactory")
            .field("factory", &self.factory)
            .field("watch_cache", &self.watch_cache)
            .field("cacher", &self.cacher.name())
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl StorageFactoryRestOptionsFactory {
    /// A getter over `factory` with `watch_cache` settings; cached resources get the watch
    /// cache ([`CacherDecorator`] with Kubernetes' defaults); no layers.
    pub fn new(factory: Arc<dyn StorageFactory>, watch_cache: WatchCacheSettings) -> Self {
        StorageFactoryRestOptionsFactory {
            factory,
            watch_cache,
            cacher: Arc::new(CacherDecorator::default()),
            delete_collection_workers: 1,
            enable_garbage_collection: true,
            count_metric_poll_period: Duration::from_secs(60),
            layers: Vec::new(),
        }
    }

    /// The getter of a completed config: its [`DefaultStorageFactory`](crate::factory::DefaultStorageFactory),
    /// watch cache settings and worker options.
    pub fn from_config(config: &StorageFactoryConfig) -> Self {
        let mut getter = Self::new(Arc::new(config.build()), config.watch_cache.clone());
        getter.delete_collection_workers = config.delete_collection_workers;
        getter.enable_garbage_collection = config.enable_garbage_collection;
        getter.count_metric_poll_period = config.count_metric_poll_period;
        getter
    }

    /// Replaces the caching decorator used for resources with a watch cache (default:
    /// [`CacherDecorator`]).
    pub fn with_cacher(mut self, cacher: DynStorageDecorator) -> Self {
        self.cacher = cacher;
        self
    }

    /// Adds a per-resource layer (applied in the order added, first = innermost).
    pub fn with_layer(mut self, layer: Arc<dyn LayerFactory>) -> Self {
        self.layers.push(layer);
        self
    }

    /// The factory.
    pub fn factory(&self) -> &Arc<dyn StorageFactory> {
        &self.factory
    }
}

impl RESTOptionsGetter for StorageFactoryRestOptionsFactory {
    fn get_rest_options(&self, gr: &GroupResource) -> Result<RESTOptions> {
        let storage_config = self.factory.new_config(gr).map_err(|e| match e {
            Error::Invalid { field, value, message } => Error::Invalid {
                field,
                value,
                message: format!("unable to find storage destination for {gr}, due to {message}"),
            },
            other => Error::internal(format!("unable to find storage destination for {gr}, due to {other}")),
        })?;
        let wants_cache =
            storage_config.watch_cache.unwrap_or_else(|| self.watch_cache.wants_cache(gr)) && self.watch_cache.enabled;
        let decorator: DynStorageDecorator =
            if wants_cache { self.cacher.clone() } else { Arc::new(UndecoratedStorage) };
        Ok(RESTOptions {
            resource_prefix: self.factory.resource_prefix(gr),
            storage_config,
            decorator,
            delete_collection_workers: self.delete_collection_workers,
            enable_garbage_collection: self.enable_garbage_collection,
            count_metric_poll_period: self.count_metric_poll_period,
            layers: self.layers.iter().map(|factory| factory.layer_for(gr)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::DefaultStorageFactory;
    use crate::registry::BackendConfig;

    fn getter(factory: DefaultStorageFactory) -> StorageFactoryRestOptionsFactory {
        let settings = WatchCacheSettings { enabled: true, sizes: [(GroupResource::core("events"), 0)].into() };
        StorageFactoryRestOptionsFactory::new(Arc::new(factory), settings)
    }

    #[test]
    fn options_carry_the_factory_answers() {
        let mut factory = DefaultStorageFactory::new(BackendConfig::new("sled"), "/registry", "application/json");
        factory.set_resource_prefix(&GroupResource::core("configmaps"), "cm");
        let options = getter(factory).get_rest_options(&GroupResource::core("configmaps")).expect("options");
        assert_eq!(options.resource_prefix, "cm");
        assert_eq!(options.storage_config.prefix, "/registry");
        assert_eq!(options.decorator.name(), "cacher", "the watch cache is on by default");
        assert_eq!(options.delete_collection_workers, 1);
        let printed = format!("{options:?}");
        assert!(printed.contains("cacher") && printed.contains("cm"), "{printed}");
        let events = getter(DefaultStorageFactory::new(BackendConfig::new("sled"), "/registry", "application/json"))
            .get_rest_options(&GroupResource::core("events"))
            .expect("events");
        assert_eq!(events.decorator.name(), "undecorated", "size 0 turns the cache off");
    }

    #[test]
    fn a_factory_error_names_the_resource() {
        let mut factory = DefaultStorageFactory::new(BackendConfig::new("sled"), "/registry", "application/json");
        factory.set_media_type(&GroupResource::core("configmaps"), "application/vnd.kubernetes.protobuf");
        let err = getter(factory).get_rest_options(&GroupResource::core("configmaps")).expect_err("no codec");
        assert!(matches!(&err, Error::Invalid { field, .. } if field == "media_type"), "{err}");
        assert!(err.to_string().contains("unable to find storage destination for configmaps"), "{err}");
    }
}
