//! `RESTOptions` and `RESTOptionsGetter`: how an API server's registry gets the storage of a
//! resource (Kubernetes `pkg/registry/generic/options.go`, `storage_decorator.go` and
//! `StorageFactoryRestOptionsFactory` in `pkg/server/options/etcd.go`).
//!
//! ```text
//! get_rest_options(gr) ─► StorageFactory::new_config(gr) ─► RESTOptions { storage_config, resource_prefix, watch_cache, layers }
//!                                                             │ create_storage()
//!                                                             ▼
//!                       UndecoratedStorage::open (registry::open + Store)
//!                                                             ▼
//!                       layers.apply(context, store) (watch cache, metrics, ...) ─► Arc<dyn Storage>
//! ```
//!
//! The options hold one ordered [`LayerChain`], the same for every resource; the resource's
//! [`ResourceContext`] tells each layer what it decorates, including whether the config wants
//! a watch cache for it (Kubernetes `--watch-cache`, `--watch-cache-sizes`: on unless disabled
//! or sized 0). Which layers exist is the caller's choice (an API server passes
//! `layers::production_chain`); this module knows only the contract.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::factory::{ResourceStorageConfig, StorageFactory, StorageFactoryConfig, WatchCacheSettings};
use crate::group_resource::GroupResource;
use crate::layer::{LayerChain, ResourceContext};
use crate::registry;
use crate::storage::Storage;
use crate::store::{Store, StoreConfig};

/// Kubernetes `UndecoratedStorage`: the [`Store`] over the resource's backend, opened through
/// the (pooled) registry with the config's prefix, codec and transformer. Every chain starts
/// from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct UndecoratedStorage;

impl UndecoratedStorage {
    /// Opens `config`'s backend and builds the store described by `store_config`.
    ///
    /// Errors: backend errors (unknown type, unavailable), an invalid resource prefix.
    pub async fn open(config: &ResourceStorageConfig, store_config: StoreConfig) -> Result<Store> {
        let backend = registry::open(&config.backend).await?;
        Store::new(backend, store_config)
    }
}

/// Kubernetes `RESTOptions`: what a registry needs to create a resource's storage.
#[derive(Clone)]
pub struct RESTOptions {
    /// The resource's storage config.
    pub storage_config: ResourceStorageConfig,
    /// Keys live under `/<resource_prefix>/` (e.g. `deployments`).
    pub resource_prefix: String,
    /// `apiVersion` of the resource's objects, for the layers (empty when unknown).
    pub api_version: String,
    /// `kind` of the resource's objects (empty when unknown).
    pub kind: String,
    /// The config wants a watch cache for this resource (the watch cache layer, when the
    /// chain has one, applies only then).
    pub watch_cache: bool,
    /// The config's memory budget in bytes for the resource's watch cache (None = the cache
    /// layer's own setting; see [`WatchCacheSettings::memory_budget_for`]).
    pub watch_cache_memory_budget: Option<usize>,
    /// The layers over the undecorated storage, innermost first.
    pub layers: LayerChain,
    /// Workers of a DeleteCollection call.
    pub delete_collection_workers: usize,
    /// Garbage collection on.
    pub enable_garbage_collection: bool,
    /// How often object counts are polled for metrics (zero: never).
    pub count_metric_poll_period: Duration,
}

impl fmt::Debug for RESTOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RESTOptions")
            .field("storage_config", &self.storage_config)
            .field("resource_prefix", &self.resource_prefix)
            .field("watch_cache", &self.watch_cache)
            .field("watch_cache_memory_budget", &self.watch_cache_memory_budget)
            .field("layers", &self.layers.names())
            .field("delete_collection_workers", &self.delete_collection_workers)
            .field("enable_garbage_collection", &self.enable_garbage_collection)
            .field("count_metric_poll_period", &self.count_metric_poll_period)
            .finish()
    }
}

impl RESTOptions {
    /// Options for `storage_config` under `resource_prefix`: no watch cache, no layers.
    pub fn new(storage_config: ResourceStorageConfig, resource_prefix: &str) -> Self {
        RESTOptions {
            storage_config,
            resource_prefix: resource_prefix.to_owned(),
            api_version: String::new(),
            kind: String::new(),
            watch_cache: false,
            watch_cache_memory_budget: None,
            layers: LayerChain::new(),
            delete_collection_workers: 1,
            enable_garbage_collection: true,
            count_metric_poll_period: Duration::from_secs(60),
        }
    }

    /// These options with `layers` as the chain.
    pub fn with_layers(mut self, layers: LayerChain) -> Self {
        self.layers = layers;
        self
    }

    /// The store config of the undecorated storage.
    pub fn store_config(&self) -> StoreConfig {
        let mut config = self.storage_config.store_config(&self.resource_prefix);
        config.api_version.clone_from(&self.api_version);
        config.kind.clone_from(&self.kind);
        config
    }

    /// Creates the resource's storage: the undecorated storage, then the chain over it, on
    /// the current tokio runtime.
    ///
    /// Errors: [`Error::Invalid`] for an empty or `/` resource prefix (Kubernetes
    /// `CompleteWithOptions`), backend errors, a layer's errors.
    pub async fn create_storage(&self) -> Result<Arc<dyn Storage>> {
        if self.resource_prefix.trim_matches('/').is_empty() {
            return Err(Error::invalid(
                "resourcePrefix",
                &self.resource_prefix,
                format!("the resource prefix of {} must not be empty or '/'", self.storage_config.group_resource),
            ));
        }
        let store_config = self.store_config();
        let mut context = ResourceContext::for_store(self.storage_config.group_resource.clone(), &store_config)?;
        context.watch_cache = self.watch_cache;
        context.watch_cache_memory_budget = self.watch_cache_memory_budget;
        let store = UndecoratedStorage::open(&self.storage_config, store_config).await?;
        self.layers.apply(&context, Arc::new(store))
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
    layers: LayerChain,
    delete_collection_workers: usize,
    enable_garbage_collection: bool,
    count_metric_poll_period: Duration,
}

impl fmt::Debug for StorageFactoryRestOptionsFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageFactoryRestOptionsFactory")
            .field("factory", &self.factory)
            .field("watch_cache", &self.watch_cache)
            .field("layers", &self.layers.names())
            .finish_non_exhaustive()
    }
}

impl StorageFactoryRestOptionsFactory {
    /// A getter over `factory` with `watch_cache` settings, giving every resource `layers`.
    pub fn new(factory: Arc<dyn StorageFactory>, watch_cache: WatchCacheSettings, layers: LayerChain) -> Self {
        StorageFactoryRestOptionsFactory {
            factory,
            watch_cache,
            layers,
            delete_collection_workers: 1,
            enable_garbage_collection: true,
            count_metric_poll_period: Duration::from_secs(60),
        }
    }

    /// The getter of a completed config: its [`DefaultStorageFactory`](crate::factory::DefaultStorageFactory),
    /// watch cache settings and worker options, with `layers` over every resource.
    pub fn from_config(config: &StorageFactoryConfig, layers: LayerChain) -> Self {
        let mut getter = Self::new(Arc::new(config.build()), config.watch_cache.clone(), layers);
        getter.delete_collection_workers = config.delete_collection_workers;
        getter.enable_garbage_collection = config.enable_garbage_collection;
        getter.count_metric_poll_period = config.count_metric_poll_period;
        getter
    }

    /// This getter with `layers` as every resource's chain.
    pub fn with_layers(mut self, layers: LayerChain) -> Self {
        self.layers = layers;
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
        let watch_cache =
            storage_config.watch_cache.unwrap_or_else(|| self.watch_cache.wants_cache(gr)) && self.watch_cache.enabled;
        Ok(RESTOptions {
            resource_prefix: self.factory.resource_prefix(gr),
            storage_config,
            api_version: String::new(),
            kind: String::new(),
            watch_cache,
            watch_cache_memory_budget: self.watch_cache.memory_budget_for(gr),
            layers: self.layers.clone(),
            delete_collection_workers: self.delete_collection_workers,
            enable_garbage_collection: self.enable_garbage_collection,
            count_metric_poll_period: self.count_metric_poll_period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::DefaultStorageFactory;
    use crate::registry::BackendConfig;

    fn getter(factory: DefaultStorageFactory) -> StorageFactoryRestOptionsFactory {
        let settings = WatchCacheSettings {
            enabled: true,
            sizes: [(GroupResource::core("events"), 0)].into(),
            memory_budget: Some(1 << 20),
            memory_budgets: [(GroupResource::core("configmaps"), 4096)].into(),
        };
        StorageFactoryRestOptionsFactory::new(Arc::new(factory), settings, LayerChain::new())
    }

    #[test]
    fn options_carry_the_factory_answers() {
        let mut factory = DefaultStorageFactory::new(BackendConfig::new("sled"), "/registry", "application/json");
        factory.set_resource_prefix(&GroupResource::core("configmaps"), "cm");
        let options = getter(factory).get_rest_options(&GroupResource::core("configmaps")).expect("options");
        assert_eq!(options.resource_prefix, "cm");
        assert_eq!(options.storage_config.prefix, "/registry");
        assert!(options.watch_cache, "the watch cache is on by default");
        assert_eq!(options.watch_cache_memory_budget, Some(4096), "the resource's own budget");
        assert_eq!(options.delete_collection_workers, 1);
        let printed = format!("{options:?}");
        assert!(printed.contains("watch_cache: true") && printed.contains("cm"), "{printed}");
        let events = getter(DefaultStorageFactory::new(BackendConfig::new("sled"), "/registry", "application/json"))
            .get_rest_options(&GroupResource::core("events"))
            .expect("events");
        assert!(!events.watch_cache, "size 0 turns the cache off");
        assert_eq!(events.watch_cache_memory_budget, Some(1 << 20), "the default budget");
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
