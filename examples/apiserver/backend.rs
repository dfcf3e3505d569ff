//! Where each resource's storage comes from — the one place that opens backends.
//!
//! Every resource gets an `Arc<dyn Storage>`: a [`apistore::Store`] over the backend its
//! config names (the default `[storage]`, or a per-resource override), opened through the
//! plugin registry (`apistore::registry::open`, pooled: one backend per config). Resources
//! that cohabit (core/v1 and events.k8s.io/v1 events) share one storage location.

use std::collections::HashMap;
use std::sync::Arc;

use apistore::registry::{self, BackendConfig};
use apistore::storage::DynStorage;
use apistore::{Result, Store, StoreConfig};

use crate::config::ServerConfig;

/// Opens storages per resource prefix, once each.
pub struct StorageProvider {
    default: BackendConfig,
    overrides: std::collections::BTreeMap<String, BackendConfig>,
    opened: HashMap<String, DynStorage>,
}

impl StorageProvider {
    /// A provider for the server's storage config.
    pub fn new(config: &ServerConfig) -> Self {
        StorageProvider {
            default: config.storage.clone(),
            overrides: config.storage_overrides.clone(),
            opened: HashMap::new(),
        }
    }

    /// The storage of `resource_prefix` (e.g. `configmaps`); objects of `api_version`/`kind`.
    ///
    /// Errors: unknown backend name (listing the registered ones), backend open failures.
    pub async fn storage(&mut self, resource_prefix: &str, api_version: &str, kind: &str) -> Result<DynStorage> {
        if let Some(storage) = self.opened.get(resource_prefix) {
            return Ok(storage.clone());
        }
        let backend_config = self.overrides.get(resource_prefix).unwrap_or(&self.default);
        let backend = registry::open(backend_config).await?;
        let mut store_config = StoreConfig::new(resource_prefix);
        store_config.api_version = api_version.to_owned();
        store_config.kind = kind.to_owned();
        let storage: DynStorage = Arc::new(Store::new(backend, store_config)?);
        self.opened.insert(resource_prefix.to_owned(), storage.clone());
        Ok(storage)
    }
}
