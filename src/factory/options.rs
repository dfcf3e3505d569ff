//! `StorageOptions` (Kubernetes `EtcdOptions`: the Config plus flags) and its completed form
//! `StorageFactoryConfig`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{
    parse_etcd_servers_overrides, parse_watch_cache_memory_budgets, parse_watch_cache_sizes, Config, ResourceOverride,
    ETCD_BACKEND,
};
use crate::encryption::ResourceTransformers;
use crate::error::{Error, Result};
use crate::factory::kube::{default_cohabitating_resources, special_default_resource_prefixes};
use crate::factory::{DefaultStorageFactory, ResourceConfig};
use crate::group_resource::GroupResource;
use crate::registry::{self, BackendConfig};

/// `error` (an [`Error::Invalid`] of a config field) as one of command-line flag `flag`.
fn for_flag(error: Error, flag: &str) -> Error {
    match error {
        Error::Invalid { value, message, .. } => Error::invalid(flag, value, message),
        other => other,
    }
}

/// Kubernetes `EtcdOptions`: a [`Config`] plus what kube-apiserver takes as flags. Flags
/// given with [`StorageOptions::apply_flag`] change the config they are applied to.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageOptions {
    /// The configuration (from a file, or built in code).
    pub config: Config,
    /// Workers of a DeleteCollection call (`--delete-collection-workers`, default 1).
    pub delete_collection_workers: usize,
    /// `--enable-garbage-collector` (default true).
    pub enable_garbage_collection: bool,
    /// How often object counts are polled for metrics (`--etcd-count-metric-poll-period`,
    /// default 1 minute; zero disables).
    pub count_metric_poll_period: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions::new(Config::default())
    }
}

impl StorageOptions {
    /// Options around `config` with Kubernetes' defaults for the rest.
    pub fn new(config: Config) -> Self {
        StorageOptions {
            config,
            delete_collection_workers: 1,
            enable_garbage_collection: true,
            count_metric_poll_period: Duration::from_secs(60),
        }
    }

    /// Options from a config file (see [`Config::load`]).
    ///
    /// Errors: those of [`Config::load`].
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Config::load(path).map(Self::new)
    }

    /// Applies command-line arguments: `--flag=value` or `--flag value` (see
    /// [`StorageOptions::apply_flag`] for the flags).
    ///
    /// Errors: an unknown flag, a flag without its value, bad values.
    pub fn apply_args<I, S>(&mut self, args: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut args = args.into_iter().map(|a| a.as_ref().to_owned());
        while let Some(arg) = args.next() {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value = args.next().ok_or_else(|| Error::invalid("flag", &arg, "missing value"))?;
                    (arg, value)
                }
            };
            self.apply_flag(&name, &value)?;
        }
        Ok(())
    }

    /// Applies one kube-apiserver storage flag:
    /// `--etcd-servers` (default backend = etcd3 at these comma-separated URLs),
    /// `--storage-backend`, `--etcd-prefix`, `--storage-media-type`,
    /// `--encryption-provider-config`, `--etcd-servers-overrides` (appended),
    /// `--watch-cache`, `--watch-cache-sizes` (replaces the list, like the kube flag),
    /// `--delete-collection-workers`, `--enable-garbage-collector`.
    ///
    /// Errors: [`Error::Invalid`] on `flag` for an unknown flag or a bad number/boolean.
    pub fn apply_flag(&mut self, name: &str, value: &str) -> Result<()> {
        let list = |v: &str| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        let boolean = |v: &str| v.parse::<bool>().map_err(|_| Error::invalid(name, v, "must be true or false"));
        match name.trim_start_matches('-') {
            "etcd-servers" => {
                let mut backend = if self.config.backend.backend == ETCD_BACKEND {
                    self.config.backend.clone()
                } else {
                    BackendConfig::new(ETCD_BACKEND)
                };
                backend.options.insert("endpoints".to_owned(), list(value).into());
                self.config.backend = backend;
            }
            "storage-backend" => {
                if value != self.config.backend.backend {
                    self.config.backend = BackendConfig::new(value);
                }
            }
            "etcd-prefix" => self.config.prefix = value.to_owned(),
            "storage-media-type" => self.config.storage_media_type = value.to_owned(),
            "encryption-provider-config" => self.config.encryption_provider_config = Some(value.into()),
            "etcd-servers-overrides" => self.config.etcd_servers_overrides.extend(list(value)),
            "watch-cache" => self.config.watch_cache.enabled = boolean(value)?,
            "watch-cache-sizes" => self.config.watch_cache.sizes = list(value),
            // The budgets' flags replace the config file's values; their errors name the flag.
            "watch-cache-memory-budget" => {
                let flag = "--watch-cache-memory-budget";
                let bytes = value.trim().parse::<u64>().map_err(|_| {
                    Error::invalid(flag, value, "must be a positive number of bytes (an unsigned integer)")
                })?;
                let config = crate::config::WatchCacheConfig { memory_budget_bytes: Some(bytes), ..Default::default() };
                config.memory_budget().map_err(|e| for_flag(e, flag))?;
                self.config.watch_cache.memory_budget_bytes = Some(bytes);
            }
            "watch-cache-memory-budgets" => {
                let entries = list(value);
                parse_watch_cache_memory_budgets(&entries).map_err(|e| for_flag(e, "--watch-cache-memory-budgets"))?;
                self.config.watch_cache.memory_budgets = entries;
            }
            "delete-collection-workers" => {
                self.delete_collection_workers =
                    value.parse().map_err(|_| Error::invalid(name, value, "must be a non-negative integer"))?;
            }
            "enable-garbage-collector" => self.enable_garbage_collection = boolean(value)?,
            _ => return Err(Error::invalid("flag", name, "unknown storage flag")),
        }
        Ok(())
    }

    /// Checks the options (Kubernetes `EtcdOptions.Validate`): every config field, the flag
    /// syntaxes with Kubernetes' messages.
    ///
    /// Errors: [`Error::Invalid`] naming the field and value.
    pub fn validate(&self) -> Result<()> {
        self.config.validate()
    }

    /// Validates, checks that every backend type is registered, loads the encryption
    /// configuration and folds overrides and flags into a [`StorageFactoryConfig`].
    ///
    /// Errors: those of [`StorageOptions::validate`]; an unregistered backend type
    /// ([`Error::Invalid`] listing the registered ones); those of
    /// [`ResourceTransformers::load`].
    pub fn complete(&self) -> Result<StorageFactoryConfig> {
        let completed = self.fold()?;
        completed.check_backends_registered()?;
        Ok(completed)
    }

    /// [`StorageOptions::complete`] without the registry check.
    pub(crate) fn fold(&self) -> Result<StorageFactoryConfig> {
        self.validate()?;
        let config = &self.config;
        let mut overrides = config.resource_overrides()?;
        for (gr, servers) in parse_etcd_servers_overrides(&config.etcd_servers_overrides)? {
            let entry = overrides.entry(gr).or_insert_with(ResourceOverride::default);
            // Like SetEtcdLocation: keep the rest of the etcd transport (options), swap servers.
            let mut backend = match &entry.backend {
                Some(b) if b.backend == ETCD_BACKEND => b.clone(),
                _ if config.backend.backend == ETCD_BACKEND => config.backend.clone(),
                _ => BackendConfig::new(ETCD_BACKEND),
            };
            backend.options.insert("endpoints".to_owned(), servers.into());
            entry.backend = Some(backend);
        }
        let transformers = match &config.encryption_provider_config {
            Some(path) => ResourceTransformers::load(path)?,
            None => ResourceTransformers::default(),
        };
        let mut cohabitating_resources = default_cohabitating_resources();
        for list in &config.cohabitating_resources {
            cohabitating_resources.push(list.iter().map(|s| GroupResource::parse_lenient(s)).collect());
        }
        let mut resource_config = ResourceConfig::all_enabled();
        for group in &config.disabled_groups {
            resource_config.disable_group(group);
        }
        Ok(StorageFactoryConfig {
            backend: config.backend.clone(),
            prefix: config.prefix.clone(),
            default_media_type: config.storage_media_type.clone(),
            overrides,
            default_resource_prefixes: special_default_resource_prefixes()
                .into_iter()
                .map(|(gr, prefix)| (gr, prefix.to_owned()))
                .collect(),
            cohabitating_resources,
            resource_config,
            transformers,
            watch_cache: WatchCacheSettings {
                enabled: config.watch_cache.enabled,
                sizes: parse_watch_cache_sizes(&config.watch_cache.sizes)?,
                memory_budget: config.watch_cache.memory_budget()?,
                memory_budgets: parse_watch_cache_memory_budgets(&config.watch_cache.memory_budgets)?,
            },
            delete_collection_workers: self.delete_collection_workers,
            enable_garbage_collection: self.enable_garbage_collection,
            count_metric_poll_period: self.count_metric_poll_period,
        })
    }
}

/// Watch cache settings after parsing (`--watch-cache`, `--watch-cache-sizes`, the memory
/// budgets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchCacheSettings {
    /// Master switch.
    pub enabled: bool,
    /// Size per resource; 0 = no cache for it; any other value only means "on".
    pub sizes: BTreeMap<GroupResource, usize>,
    /// Memory budget in bytes of every resource's cache without one of its own (None = no
    /// limit).
    pub memory_budget: Option<usize>,
    /// Memory budget in bytes per resource (> 0), over [`WatchCacheSettings::memory_budget`].
    pub memory_budgets: BTreeMap<GroupResource, usize>,
}

impl WatchCacheSettings {
    /// True when `gr` should get a watch cache: enabled and its size is not 0.
    pub fn wants_cache(&self, gr: &GroupResource) -> bool {
        self.enabled && self.sizes.get(gr).is_none_or(|size| *size > 0)
    }

    /// The memory budget of `gr`'s cache: its own entry, else the default (None = no limit).
    pub fn memory_budget_for(&self, gr: &GroupResource) -> Option<usize> {
        self.memory_budgets.get(gr).copied().or(self.memory_budget)
    }
}

/// The completed options: everything [`DefaultStorageFactory`] and the REST options
/// getter need, parsed and checked.
#[derive(Clone, Debug)]
pub struct StorageFactoryConfig {
    /// The default backend.
    pub backend: BackendConfig,
    /// The default key prefix.
    pub prefix: String,
    /// The default media type.
    pub default_media_type: String,
    /// Per-GroupResource overrides (including `--etcd-servers-overrides`).
    pub overrides: BTreeMap<GroupResource, ResourceOverride>,
    /// Default resource prefixes (kube-apiserver's special ones).
    pub default_resource_prefixes: BTreeMap<GroupResource, String>,
    /// Cohabitation lists, each ordered.
    pub cohabitating_resources: Vec<Vec<GroupResource>>,
    /// Enabled groups and resources.
    pub resource_config: ResourceConfig,
    /// Encryption at rest.
    pub transformers: ResourceTransformers,
    /// Watch cache settings.
    pub watch_cache: WatchCacheSettings,
    /// Workers of a DeleteCollection call.
    pub delete_collection_workers: usize,
    /// Garbage collection on.
    pub enable_garbage_collection: bool,
    /// Object count poll period for metrics.
    pub count_metric_poll_period: Duration,
}

impl StorageFactoryConfig {
    /// Checks every backend type (default and overrides) is registered.
    ///
    /// Errors: [`Error::Invalid`] on `backend` naming the type and listing the registered ones.
    pub fn check_backends_registered(&self) -> Result<()> {
        let overrides = self.overrides.values().filter_map(|o| o.backend.as_ref());
        for backend in std::iter::once(&self.backend).chain(overrides) {
            registry::lookup(&backend.backend)?;
        }
        Ok(())
    }

    /// Builds the factory.
    pub fn build(&self) -> DefaultStorageFactory {
        let mut factory = DefaultStorageFactory::new(self.backend.clone(), &self.prefix, &self.default_media_type);
        for (gr, prefix) in &self.default_resource_prefixes {
            factory.set_default_resource_prefix(gr, prefix);
        }
        for list in &self.cohabitating_resources {
            factory.add_cohabitating_resources(list);
        }
        for (gr, entry) in &self.overrides {
            factory.set_override(gr, entry);
        }
        factory.set_resource_config(self.resource_config.clone());
        factory.set_transformers(self.transformers.clone());
        factory
    }
}
