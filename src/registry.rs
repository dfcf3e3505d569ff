//! The backend registry: `StorageBackendFactory` plugins found through `inventory`.
//!
//! A backend crate registers its factory once:
//!
//! ```ignore
//! inventory::submit! { apistore::registry::BackendRegistration::new(&MyFactory) }
//! ```
//!
//! and any binary that links the crate finds it by name. The linker drops crates a binary
//! never references, so a binary should mention the backend crate (`use apistore_sled as _;`)
//! or call [`register`] explicitly — the fallback that always works.
//!
//! [`open`] pools backends: the same `(name, options)` gives the same `Arc<dyn KvBackend>`
//! while any user holds it (sled allows one open `Db` per directory; etcd clients are
//! shared per endpoint set).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::kv::KvBackend;

/// The configuration of one backend instance: the registered type name plus options that
/// only that factory interprets (a JSON/TOML table; e.g. sled's `path`, etcd's `endpoints`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendConfig {
    /// Registered backend name (`"sled"`, `"etcd3"`, ...).
    #[serde(rename = "type")]
    pub backend: String,
    /// Backend-specific options.
    #[serde(default, flatten)]
    pub options: BTreeMap<String, Value>,
}

impl BackendConfig {
    /// A config for `backend` with no options.
    pub fn new(backend: &str) -> Self {
        BackendConfig { backend: backend.to_owned(), options: BTreeMap::new() }
    }

    /// Adds an option and returns the config (builder style).
    pub fn with_option(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.options.insert(key.to_owned(), value.into());
        self
    }

    /// Deserializes the options into a factory's own typed options.
    ///
    /// Errors: [`Error::Invalid`] naming the backend and the serde problem.
    pub fn parse_options<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let map: serde_json::Map<String, Value> = self.options.clone().into_iter().collect();
        serde_json::from_value(Value::Object(map)).map_err(|e| {
            Error::invalid(format!("backend.{}", self.backend), format!("{:?}", self.options), e.to_string())
        })
    }

    fn pool_key(&self) -> String {
        // BTreeMap keeps keys sorted, so equal configs give equal keys.
        format!("{}|{}", self.backend, serde_json::to_string(&self.options).unwrap_or_default())
    }
}

/// A backend plugin: creates `KvBackend`s of one type from a [`BackendConfig`].
#[async_trait]
pub trait StorageBackendFactory: Send + Sync + 'static {
    /// The name configs select this backend by (e.g. `"sled"`, `"etcd3"`).
    fn name(&self) -> &'static str;

    /// Opens a backend. Errors: [`Error::Invalid`] for bad options, [`Error::Unavailable`]
    /// when the backend cannot be reached.
    async fn create(&self, config: &BackendConfig) -> Result<Arc<dyn KvBackend>>;
}

/// One `inventory` entry: a registered factory.
pub struct BackendRegistration {
    /// The factory.
    pub factory: &'static dyn StorageBackendFactory,
}

impl BackendRegistration {
    /// Wraps a factory for `inventory::submit!`.
    pub const fn new(factory: &'static dyn StorageBackendFactory) -> Self {
        BackendRegistration { factory }
    }
}

impl fmt::Debug for BackendRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRegistration").field("name", &self.factory.name()).finish()
    }
}

inventory::collect!(BackendRegistration);

fn explicit() -> &'static Mutex<Vec<&'static dyn StorageBackendFactory>> {
    static EXPLICIT: OnceLock<Mutex<Vec<&'static dyn StorageBackendFactory>>> = OnceLock::new();
    EXPLICIT.get_or_init(|| Mutex::new(Vec::new()))
}

/// Registers a factory explicitly (the fallback when the linker dropped the crate's
/// `inventory` entry). Registering a name twice keeps the first.
pub fn register(factory: &'static dyn StorageBackendFactory) {
    let mut explicit = explicit().lock().unwrap_or_else(|e| e.into_inner());
    if !explicit.iter().any(|f| f.name() == factory.name()) {
        explicit.push(factory);
    }
}

/// Every registered backend name, sorted and de-duplicated.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = inventory::iter::<BackendRegistration>().map(|r| r.factory.name()).collect();
    names.extend(explicit().lock().unwrap_or_else(|e| e.into_inner()).iter().map(|f| f.name()));
    names.sort_unstable();
    names.dedup();
    names
}

/// The factory registered as `name`.
///
/// Errors: [`Error::Invalid`] naming the unknown backend and listing the registered ones.
pub fn lookup(name: &str) -> Result<&'static dyn StorageBackendFactory> {
    if let Some(reg) = inventory::iter::<BackendRegistration>().find(|r| r.factory.name() == name) {
        return Ok(reg.factory);
    }
    if let Some(f) = explicit().lock().unwrap_or_else(|e| e.into_inner()).iter().find(|f| f.name() == name) {
        return Ok(*f);
    }
    Err(Error::invalid(
        "backend",
        name,
        format!("unknown storage backend; registered backends: [{}]", names().join(", ")),
    ))
}

type Pool = Mutex<HashMap<String, Weak<dyn KvBackend>>>;

fn pool() -> &'static tokio::sync::Mutex<()> {
    static OPENING: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    OPENING.get_or_init(|| tokio::sync::Mutex::new(()))
}

fn live() -> &'static Pool {
    static LIVE: OnceLock<Pool> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Opens (or reuses) the backend of `config`: one shared instance per identical config while
/// it is in use.
///
/// Errors: unknown backend name (listing the registered ones), the factory's own errors.
pub async fn open(config: &BackendConfig) -> Result<Arc<dyn KvBackend>> {
    let factory = lookup(&config.backend)?;
    let key = config.pool_key();
    // Serialize opening so two callers of the same config never both open it.
    let _opening = pool().lock().await;
    if let Some(existing) = live().lock().unwrap_or_else(|e| e.into_inner()).get(&key).and_then(Weak::upgrade) {
        return Ok(existing);
    }
    let backend = factory.create(config).await?;
    let mut live = live().lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|_, weak| weak.strong_count() > 0);
    live.insert(key, Arc::downgrade(&backend));
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_backend_lists_registered_names() {
        let err = match lookup("no-such-backend") {
            Err(e) => e,
            Ok(_) => panic!("lookup of an unknown name succeeded"),
        };
        assert_eq!(err.code(), 422);
        assert!(err.to_string().contains("no-such-backend"), "{err}");
        assert!(err.to_string().contains("registered backends"), "{err}");
    }

    #[test]
    fn options_parse_into_typed_structs() {
        #[derive(Deserialize, Debug)]
        struct Opts {
            path: String,
        }
        let config = BackendConfig::new("x").with_option("path", "/tmp/a");
        let opts: Opts = config.parse_options().expect("parse");
        assert_eq!(opts.path, "/tmp/a");
        let bad = BackendConfig::new("x").with_option("path", 5);
        assert!(bad.parse_options::<Opts>().is_err());
    }
}
