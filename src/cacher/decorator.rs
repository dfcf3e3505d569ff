//! [`CacherDecorator`]: Kubernetes `StorageWithCacher` — the undecorated storage underneath, a
//! [`Cacher`] on top.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::factory::ResourceStorageConfig;
use crate::rest_options::{StorageDecorator, UndecoratedStorage};
use crate::storage::Storage;

use super::{Cacher, CacherConfig};

/// The caching [`StorageDecorator`]: opens the resource's storage with
/// [`UndecoratedStorage`] and layers a [`Cacher`] over it. The bookmark type comes from the
/// store config; every other setting from the template config (its resource prefix is
/// replaced by the resource's).
#[derive(Clone, Debug)]
pub struct CacherDecorator {
    template: CacherConfig,
}

impl Default for CacherDecorator {
    fn default() -> Self {
        CacherDecorator { template: CacherConfig::new("unset") }
    }
}

impl CacherDecorator {
    /// A decorator whose caches use `template`'s settings.
    pub fn new(template: CacherConfig) -> Self {
        CacherDecorator { template }
    }
}

#[async_trait]
impl StorageDecorator for CacherDecorator {
    fn name(&self) -> &str {
        "cacher"
    }

    async fn decorate(&self, config: &ResourceStorageConfig, resource_prefix: &str) -> Result<Arc<dyn Storage>> {
        let inner = UndecoratedStorage.decorate(config, resource_prefix).await?;
        let store_config = config.store_config(resource_prefix);
        let mut cacher_config = self.template.clone();
        cacher_config.resource_prefix = resource_prefix.to_owned();
        cacher_config.api_version = store_config.api_version;
        cacher_config.kind = store_config.kind;
        Ok(Arc::new(Cacher::new(inner, cacher_config)?))
    }
}
