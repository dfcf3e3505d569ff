//! Where each resource's storage comes from — the one place that opens storage.
//!
//! apistore's factory decides per resource: the [`StorageOptions`] (config file plus kube
//! storage flags) complete into a `DefaultStorageFactory`; its `RESTOptionsGetter` gives each
//! GroupResource its backend (opened through the plugin registry, pooled), key prefix, codec,
//! encryption and its one layer chain ([`production_chain`]: metrics → watch cache → store,
//! the watch cache only where the config's `watch_cache` settings want one — kube's defaults:
//! every resource but events; `--watch-cache=false` turns it off). Resources
//! that cohabit (core/v1 and events.k8s.io/v1 events) resolve to one storage location and
//! share one storage here.

use std::collections::HashMap;
use std::sync::Arc;

use apistore::factory::{check_backends, StorageOptions};
use apistore::group_resource::GroupResource;
use apistore::kv::KvBackend;
use apistore::layers::{production_chain, StorageMetrics, WatchCacheLayer};
use apistore::rest_options::{RESTOptionsGetter, StorageFactoryRestOptionsFactory};
use apistore::storage::DynStorage;
use apistore::Result;

/// Opens storages per resource through the factory, once per storage location.
pub struct StorageProvider {
    options: StorageOptions,
    getter: StorageFactoryRestOptionsFactory,
    metrics: StorageMetrics,
    opened: HashMap<(String, String), (DynStorage, String)>,
    /// The backends checked at start, held so that storages share them (never a close and
    /// reopen between the check and the first resource).
    _backends: Vec<Arc<dyn KvBackend>>,
}

impl StorageProvider {
    /// Completes `options` into a factory and checks that every backend it names answers.
    ///
    /// Errors: invalid options, an unregistered backend name (listing the registered ones),
    /// a backend that cannot be opened or is unhealthy.
    pub async fn new(options: &StorageOptions) -> Result<Self> {
        let completed = options.complete()?;
        let metrics = StorageMetrics::new();
        let chain = production_chain(WatchCacheLayer::default(), &metrics);
        let getter = StorageFactoryRestOptionsFactory::from_config(&completed, chain);
        let backends = check_backends(getter.factory().as_ref()).await?;
        Ok(StorageProvider { options: options.clone(), getter, metrics, opened: HashMap::new(), _backends: backends })
    }

    /// The storage options this provider opens storages with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Every backend the factory names, opened (the registry pools them: these are the
    /// instances the storages use), with an id for metrics: the backend type, plus `#n`
    /// when several share it.
    ///
    /// Errors: a backend that cannot be opened.
    pub async fn backends(&self) -> Result<Vec<(String, Arc<dyn apistore::KvBackend>)>> {
        let configs = self.getter.factory().backends();
        let mut out = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let shared = configs.iter().filter(|c| c.backend == config.backend).count() > 1;
            let id = if shared { format!("{}#{i}", config.backend) } else { config.backend.clone() };
            out.push((id, apistore::registry::open(config).await?));
        }
        Ok(out)
    }

    /// The storage metrics every storage records into.
    pub fn metrics(&self) -> StorageMetrics {
        self.metrics.clone()
    }

    /// The storage of `resource` in `group` and its resource prefix (keys are
    /// `/<prefix>/<namespace>/<name>`). A custom resource without a configured prefix lives
    /// under `<group>/<resource>`, as CRDs do in Kubernetes.
    ///
    /// Errors: the factory's (bad media type, disabled resource), backend open failures.
    pub async fn storage(&mut self, group: &str, resource: &str, custom: bool) -> Result<(DynStorage, String)> {
        let mut rest = self.getter.get_rest_options(&GroupResource::new(group, resource))?;
        if custom && rest.resource_prefix == resource {
            rest.resource_prefix = format!("{group}/{resource}");
        }
        let location = (rest.storage_config.storage_group_resource.to_string(), rest.resource_prefix.clone());
        if let Some(opened) = self.opened.get(&location) {
            return Ok(opened.clone());
        }
        let storage = rest.create_storage().await?;
        let opened = (storage, rest.resource_prefix.clone());
        self.opened.insert(location, opened.clone());
        Ok(opened)
    }
}
