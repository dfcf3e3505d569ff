//! The StorageFactory: where and how each GroupResource is stored (Kubernetes
//! `pkg/server/storage`).
//!
//! ```text
//!  StorageOptions (Config + flags)  ──complete()──►  StorageFactoryConfig  ──build()──►  DefaultStorageFactory
//!     validate(): syntax, kube messages      backends registered, encryption loaded      new_config(gr) → ResourceStorageConfig
//! ```
//!
//! [`DefaultStorageFactory::new_config`] follows Kubernetes' `NewConfig`: the
//! cohabitation list picks the *storage* GroupResource (first member whose group is enabled),
//! then the `*.group` override and the exact override of that resource apply (backend,
//! prefix, media type); the transformer comes from the encryption configuration for the
//! *requested* resource. Unlike kube-apiserver, an override may select a backend of another
//! type (events on sled, the rest on etcd).

use std::fmt;
use std::sync::Arc;

use crate::codec::DynCodec;
use crate::error::Result;
use crate::group_resource::GroupResource;
use crate::kv::KvBackend;
use crate::registry::{self, BackendConfig};
use crate::store::StoreConfig;
use crate::transformer::DynTransformer;

mod default;
pub mod kube;
mod options;
mod resource_config;

pub use default::DefaultStorageFactory;
pub use options::{StorageFactoryConfig, StorageOptions, WatchCacheSettings};
pub use resource_config::ResourceConfig;

/// Kubernetes `ConfigForResource`: everything needed to open one resource's storage.
#[derive(Clone)]
pub struct ResourceStorageConfig {
    /// The resource asked for.
    pub group_resource: GroupResource,
    /// The resource whose storage location is used (differs under cohabitation).
    pub storage_group_resource: GroupResource,
    /// The backend to open through the registry.
    pub backend: BackendConfig,
    /// Key prefix (`/registry`).
    pub prefix: String,
    /// The codec's media type.
    pub media_type: String,
    /// Encodes objects.
    pub codec: DynCodec,
    /// Encryption at rest (identity when not configured).
    pub transformer: DynTransformer,
    /// A per-resource watch cache switch from the config (None = follow the sizes).
    pub watch_cache: Option<bool>,
}

impl fmt::Debug for ResourceStorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceStorageConfig")
            .field("group_resource", &self.group_resource.to_string())
            .field("storage_group_resource", &self.storage_group_resource.to_string())
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("media_type", &self.media_type)
            .field("transformer", &self.transformer)
            .field("watch_cache", &self.watch_cache)
            .finish()
    }
}

impl ResourceStorageConfig {
    /// The [`StoreConfig`] of a `Store` for this resource under `resource_prefix`.
    pub fn store_config(&self, resource_prefix: &str) -> StoreConfig {
        let mut config = StoreConfig::new(resource_prefix);
        config.prefix.clone_from(&self.prefix);
        config.codec = self.codec.clone();
        config.transformer = self.transformer.clone();
        config
    }
}

/// One distinct backend location (Kubernetes `storagebackend.Config` as `Configs()`
/// returns it): the backend and the key prefix used on it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// The backend.
    pub backend: BackendConfig,
    /// The key prefix.
    pub prefix: String,
}

/// Kubernetes `StorageFactory`.
pub trait StorageFactory: Send + Sync + fmt::Debug {
    /// The storage config of `gr` (Kubernetes `NewConfig`).
    ///
    /// Errors: [`Error::Invalid`](crate::Error::Invalid) when the resource's media type
    /// has no codec.
    fn new_config(&self, gr: &GroupResource) -> Result<ResourceStorageConfig>;

    /// The resource prefix of `gr`'s keys (`deployments`, `services/specs`, ...): the
    /// override, else the default prefix of the storage resource, else its lowercase name.
    fn resource_prefix(&self, gr: &GroupResource) -> String;

    /// The base config plus one per override with its own backend or prefix, without
    /// duplicates (for health checks and compaction).
    fn configs(&self) -> Vec<StorageConfig>;

    /// Every distinct backend the factory may open.
    fn backends(&self) -> Vec<BackendConfig>;
}

/// Opens every backend of `factory` (pooled) and checks it answers. Returns the opened
/// backends: while the caller holds them, the resources' storages share these instances
/// instead of closing and reopening each backend (a sled directory closed a moment ago may
/// still be locked by its closing threads).
///
/// Errors: the first failure: an unknown backend type (listing the registered ones), a
/// backend that cannot be opened or does not answer its health check.
pub async fn check_backends(factory: &dyn StorageFactory) -> Result<Vec<Arc<dyn KvBackend>>> {
    let mut opened = Vec::new();
    for backend in factory.backends() {
        let kv = registry::open(&backend).await?;
        kv.health().await?;
        opened.push(kv);
    }
    Ok(opened)
}

#[cfg(test)]
mod tests;
