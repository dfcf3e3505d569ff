//! `DefaultStorageFactory`: Kubernetes' `DefaultStorageFactory` with per-resource backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::codec::codec_for_media_type;
use crate::config::ResourceOverride;
use crate::encryption::ResourceTransformers;
use crate::error::Result;
use crate::factory::{ResourceConfig, ResourceStorageConfig, StorageConfig, StorageFactory};
use crate::group_resource::GroupResource;
use crate::registry::BackendConfig;

/// Stores each resource according to defaults plus overrides (see the [module
/// docs](crate::factory)). Build one with [`StorageFactoryConfig::build`](crate::factory::StorageFactoryConfig::build)
/// or [`DefaultStorageFactory::new`] and the setters.
#[derive(Clone, Debug)]
pub struct DefaultStorageFactory {
    backend: BackendConfig,
    prefix: String,
    default_media_type: String,
    overrides: BTreeMap<GroupResource, ResourceOverride>,
    cohabitation: BTreeMap<GroupResource, Arc<[GroupResource]>>,
    default_resource_prefixes: BTreeMap<GroupResource, String>,
    resource_config: ResourceConfig,
    transformers: ResourceTransformers,
}

impl DefaultStorageFactory {
    /// A factory storing everything on `backend` under `prefix` with `default_media_type`,
    /// no overrides, no cohabitation, everything enabled, no encryption.
    pub fn new(backend: BackendConfig, prefix: &str, default_media_type: &str) -> Self {
        DefaultStorageFactory {
            backend,
            prefix: prefix.to_owned(),
            default_media_type: default_media_type.to_owned(),
            overrides: BTreeMap::new(),
            cohabitation: BTreeMap::new(),
            default_resource_prefixes: BTreeMap::new(),
            resource_config: ResourceConfig::all_enabled(),
            transformers: ResourceTransformers::default(),
        }
    }

    /// Kubernetes `SetEtcdLocation`, generalised: `gr` (or `*.group`) uses its own backend.
    pub fn set_backend(&mut self, gr: &GroupResource, backend: BackendConfig) -> &mut Self {
        self.overrides.entry(gr.clone()).or_default().backend = Some(backend);
        self
    }

    /// Kubernetes `SetEtcdPrefix`.
    pub fn set_prefix(&mut self, gr: &GroupResource, prefix: &str) -> &mut Self {
        self.overrides.entry(gr.clone()).or_default().prefix = Some(prefix.to_owned());
        self
    }

    /// Kubernetes `SetResourceEtcdPrefix`.
    pub fn set_resource_prefix(&mut self, gr: &GroupResource, resource_prefix: &str) -> &mut Self {
        self.overrides.entry(gr.clone()).or_default().resource_prefix = Some(resource_prefix.to_owned());
        self
    }

    /// Kubernetes `SetSerializer` (by media type).
    pub fn set_media_type(&mut self, gr: &GroupResource, media_type: &str) -> &mut Self {
        self.overrides.entry(gr.clone()).or_default().media_type = Some(media_type.to_owned());
        self
    }

    /// Merges a whole override entry (fields set in `entry` replace earlier ones).
    pub fn set_override(&mut self, gr: &GroupResource, entry: &ResourceOverride) -> &mut Self {
        let target = self.overrides.entry(gr.clone()).or_default();
        if entry.backend.is_some() {
            target.backend.clone_from(&entry.backend);
        }
        if entry.prefix.is_some() {
            target.prefix.clone_from(&entry.prefix);
        }
        if entry.resource_prefix.is_some() {
            target.resource_prefix.clone_from(&entry.resource_prefix);
        }
        if entry.media_type.is_some() {
            target.media_type.clone_from(&entry.media_type);
        }
        if entry.watch_cache.is_some() {
            target.watch_cache = entry.watch_cache;
        }
        self
    }

    /// Kubernetes `AddCohabitatingResources`: the resources share one storage location; the
    /// first whose group is enabled is it. Every member gets the same ordered list.
    pub fn add_cohabitating_resources(&mut self, resources: &[GroupResource]) -> &mut Self {
        let list: Arc<[GroupResource]> = resources.to_vec().into();
        for gr in resources {
            self.cohabitation.insert(gr.clone(), list.clone());
        }
        self
    }

    /// The default resource prefix of `gr` (Kubernetes `DefaultResourcePrefixes`).
    pub fn set_default_resource_prefix(&mut self, gr: &GroupResource, prefix: &str) -> &mut Self {
        self.default_resource_prefixes.insert(gr.clone(), prefix.to_owned());
        self
    }

    /// Which groups/resources are enabled (for cohabitation).
    pub fn set_resource_config(&mut self, resource_config: ResourceConfig) -> &mut Self {
        self.resource_config = resource_config;
        self
    }

    /// Encryption at rest per resource.
    pub fn set_transformers(&mut self, transformers: ResourceTransformers) -> &mut Self {
        self.transformers = transformers;
        self
    }

    /// Kubernetes `getStorageGroupResource`: the first member of `gr`'s cohabitation list
    /// whose group has any enabled resource; else `gr` itself.
    pub fn storage_group_resource(&self, gr: &GroupResource) -> GroupResource {
        self.cohabitation
            .get(gr)
            .and_then(|list| {
                list.iter().find(|candidate| self.resource_config.any_resource_for_group_enabled(&candidate.group))
            })
            .cloned()
            .unwrap_or_else(|| gr.clone())
    }

    /// The overrides that apply to a storage resource: `*.group` first, then the exact one.
    fn overrides_for(&self, storage: &GroupResource) -> [Option<&ResourceOverride>; 2] {
        [self.overrides.get(&storage.group_alias()), self.overrides.get(storage)]
    }
}

impl StorageFactory for DefaultStorageFactory {
    fn new_config(&self, gr: &GroupResource) -> Result<ResourceStorageConfig> {
        let storage = self.storage_group_resource(gr);
        let mut backend = self.backend.clone();
        let mut prefix = self.prefix.clone();
        let mut media_type = self.default_media_type.clone();
        let mut watch_cache = None;
        for entry in self.overrides_for(&storage).into_iter().flatten() {
            if let Some(b) = &entry.backend {
                backend = b.clone();
            }
            if let Some(p) = &entry.prefix {
                prefix = p.clone();
            }
            if let Some(m) = &entry.media_type {
                media_type = m.clone();
            }
            if entry.watch_cache.is_some() {
                watch_cache = entry.watch_cache;
            }
        }
        let codec = codec_for_media_type(&media_type)?;
        Ok(ResourceStorageConfig {
            group_resource: gr.clone(),
            storage_group_resource: storage,
            backend,
            prefix,
            media_type,
            codec,
            transformer: self.transformers.transformer_for_resource(gr),
            watch_cache,
        })
    }

    fn resource_prefix(&self, gr: &GroupResource) -> String {
        let storage = self.storage_group_resource(gr);
        let mut resource_prefix = self.default_resource_prefixes.get(&storage).cloned().unwrap_or_default();
        for entry in self.overrides_for(&storage).into_iter().flatten() {
            if let Some(p) = entry.resource_prefix.as_ref().filter(|p| !p.is_empty()) {
                resource_prefix = p.clone();
            }
        }
        if resource_prefix.is_empty() {
            resource_prefix = storage.resource.to_lowercase();
        }
        resource_prefix
    }

    fn configs(&self) -> Vec<StorageConfig> {
        let mut configs = vec![StorageConfig { backend: self.backend.clone(), prefix: self.prefix.clone() }];
        for entry in self.overrides.values() {
            if entry.backend.is_none() && entry.prefix.is_none() {
                continue;
            }
            let config = StorageConfig {
                backend: entry.backend.clone().unwrap_or_else(|| self.backend.clone()),
                prefix: entry.prefix.clone().unwrap_or_else(|| self.prefix.clone()),
            };
            if !configs.contains(&config) {
                configs.push(config);
            }
        }
        configs
    }

    fn backends(&self) -> Vec<BackendConfig> {
        let mut backends = vec![self.backend.clone()];
        for backend in self.overrides.values().filter_map(|entry| entry.backend.as_ref()) {
            if !backends.contains(backend) {
                backends.push(backend.clone());
            }
        }
        backends
    }
}
