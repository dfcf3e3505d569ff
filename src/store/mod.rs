//! `Store`: [`Storage`] implemented once over any [`KvBackend`].
//!
//! The Kubernetes etcd3 store (`pkg/storage/etcd3/store.go`) made backend-neutral: keys are
//! validated (`PrepareKey`) and mapped to `<prefix>/<key>` (`/registry/pods/ns/name`), objects
//! go through the [`Codec`](crate::codec::Codec), the size limit and the
//! [`Transformer`](crate::transformer::Transformer) (with the full backend key as
//! authenticated data), and every write is a conditional write on the key's `mod_revision`.
//! An object's resourceVersion is its `mod_revision`; it is never persisted.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::codec::{DynCodec, JsonCodec};
use crate::error::{Error, Result};
use crate::kv::{KeyValue, KvBackend, RangeRequest, Revision, TxnOutcome};
use crate::object::Object;
use crate::storage::{
    DeleteOptions, GetOptions, ListOptions, ObjectList, Preconditions, Stats, Storage, UpdateFn, ValidateDeletion,
    WatchStream,
};
use crate::transformer::{DynTransformer, IdentityTransformer};
use crate::version::{format_resource_version, parse_resource_version};

mod list;
mod update;
mod watch;

/// Default object size limit: 1.5 MiB, etcd's default request size limit.
pub const DEFAULT_MAX_OBJECT_SIZE: usize = 3 * 512 * 1024;

/// Default storage key prefix, as kube-apiserver's `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/registry";

/// How a [`Store`] maps objects onto its backend.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Storage prefix of every backend key (default `/registry`).
    pub prefix: String,
    /// The resource's prefix; keys passed to the store must lie under `/<resource_prefix>/`
    /// (e.g. `pods` → `/pods/ns/name`).
    pub resource_prefix: String,
    /// Encodes objects (default JSON).
    pub codec: DynCodec,
    /// Transforms encoded bytes (default identity; encryption at rest plugs in here).
    pub transformer: DynTransformer,
    /// Largest encoded object accepted, in bytes (default 1.5 MiB).
    pub max_object_size: usize,
    /// `apiVersion` of bookmark objects (the resource's type).
    pub api_version: String,
    /// `kind` of bookmark objects.
    pub kind: String,
}

impl StoreConfig {
    /// A config with defaults for the resource prefix `resource_prefix` (e.g. `pods`).
    pub fn new(resource_prefix: &str) -> Self {
        StoreConfig {
            prefix: DEFAULT_PREFIX.to_owned(),
            resource_prefix: resource_prefix.to_owned(),
            codec: Arc::new(JsonCodec),
            transformer: Arc::new(IdentityTransformer),
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            api_version: String::new(),
            kind: String::new(),
        }
    }
}

/// [`Storage`] over a [`KvBackend`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

/// How many stored objects [`Storage::stats`] reads to estimate the average object size.
const STATS_SAMPLE: u64 = 1_000;

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn KvBackend>,
    config: StoreConfig,
    /// `/registry/`: prepended to store keys (without their leading `/`).
    path_prefix: String,
    /// `/pods/`: every key must start with it.
    resource_dir: String,
    /// Watches whose producer task is running (see [`Store::live_watches`]).
    live_watches: std::sync::atomic::AtomicUsize,
}

/// One read of a key, decoded: what update and delete loops work on.
#[derive(Clone, Debug)]
struct State {
    object: Object,
    /// Codec output (pre-transform) of the stored object; empty when absent.
    data: Bytes,
    /// The key's mod_revision; 0 when absent.
    revision: Revision,
    /// Read with a non-primary transformer: rewrite even if unchanged.
    stale: bool,
}

impl Store {
    /// A store over `backend`.
    ///
    /// Errors: [`Error::Invalid`] when the resource prefix is empty or `/`.
    pub fn new(backend: Arc<dyn KvBackend>, config: StoreConfig) -> Result<Self> {
        let resource = config.resource_prefix.trim_matches('/');
        if resource.is_empty() {
            return Err(Error::invalid("resourcePrefix", &config.resource_prefix, "must not be empty"));
        }
        let prefix = config.prefix.trim_matches('/');
        let path_prefix = if prefix.is_empty() { "/".to_owned() } else { format!("/{prefix}/") };
        let resource_dir = format!("/{resource}/");
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                config,
                path_prefix,
                resource_dir,
                live_watches: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Watches of this store (and its clones) whose producer is still running. A watch ends,
    /// and stops counting, once its consumer dropped or stopped its stream, or after its last
    /// (ERROR) event.
    pub fn live_watches(&self) -> usize {
        self.inner.live_watches.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The backend under this store.
    pub fn backend(&self) -> &Arc<dyn KvBackend> {
        &self.inner.backend
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Kubernetes `PrepareKey`: validates a store key and normalizes a recursive one to end
    /// in `/`. Errors: [`Error::BadRequest`] "empty key" / "invalid key".
    pub fn prepare_key(&self, key: &str, recursive: bool) -> Result<String> {
        prepare_key(&self.inner.resource_dir, key, recursive)
    }

    /// The backend key of a (prepared) store key: `/registry/pods/ns/a`.
    pub fn backend_key(&self, key: &str) -> String {
        format!("{}{}", self.inner.path_prefix, key.trim_start_matches('/'))
    }

    /// Encodes an object for storage: clears resourceVersion and selfLink, encodes, checks
    /// the size limit. Returns the codec output (pre-transform), its buffer not copied.
    fn encode(&self, key: &str, object: &mut Object) -> Result<Bytes> {
        object.metadata.resource_version.clear();
        object.metadata.self_link.clear();
        let data = self.inner.config.codec.encode(object)?;
        let limit = self.inner.config.max_object_size;
        if data.len() > limit {
            return Err(Error::TooLarge { key: key.to_owned(), size: data.len(), limit });
        }
        Ok(data)
    }

    fn transform_to_storage(&self, backend_key: &str, data: Bytes) -> Result<Bytes> {
        self.inner.config.transformer.transform_to_storage(data, backend_key.as_bytes())
    }

    /// Transforms and decodes a stored value; the object gets RV = `mod_revision`.
    fn decode_kv(&self, kv: &KeyValue) -> Result<State> {
        let (data, stale) = self.transform_from_storage(kv)?;
        let object = self.decode_data(kv, &data)?;
        let data = match data {
            // Stored as it is (identity): share the backend's buffer.
            Cow::Borrowed(plain) => kv.value.slice_ref(plain),
            Cow::Owned(plain) => Bytes::from(plain),
        };
        Ok(State { object, data, revision: kv.mod_revision, stale })
    }

    /// [`Store::decode_kv`]'s object alone (no copy of the plain bytes when they are stored
    /// as they are).
    fn decode_object(&self, kv: &KeyValue) -> Result<Object> {
        let (data, _) = self.transform_from_storage(kv)?;
        self.decode_data(kv, &data)
    }

    fn transform_from_storage<'a>(&self, kv: &'a KeyValue) -> Result<(Cow<'a, [u8]>, bool)> {
        self.inner
            .config
            .transformer
            .transform_from_storage(&kv.value, kv.key.as_bytes())
            .map_err(|e| Error::internal(format!("unable to transform key {:?}: {e}", kv.key)))
    }

    fn decode_data(&self, kv: &KeyValue, data: &[u8]) -> Result<Object> {
        let mut object = self.inner.config.codec.decode(data)?;
        object.metadata.resource_version = format_resource_version(kv.mod_revision);
        Ok(object)
    }

    /// The state of an object handed in as a suggestion (`cachedExistingObject`).
    fn state_from_object(&self, key: &str, mut object: Object) -> Result<State> {
        let revision = object.resource_version()?;
        // Encode without resourceVersion and selfLink, then put them back (no clone needed).
        let resource_version = std::mem::take(&mut object.metadata.resource_version);
        let self_link = std::mem::take(&mut object.metadata.self_link);
        let data = self.encode(key, &mut object);
        object.metadata.resource_version = resource_version;
        object.metadata.self_link = self_link;
        Ok(State { object, data: data?, revision, stale: false })
    }

    /// The current state of `backend_key`; a missing key gives the zero state when
    /// `ignore_not_found`, else [`Error::NotFound`].
    async fn current_state(&self, key: &str, backend_key: &str, ignore_not_found: bool) -> Result<State> {
        let response = self.inner.backend.get(backend_key, 0).await?;
        self.state_from_kv(key, response.kv.as_ref(), ignore_not_found)
    }

    fn state_from_kv(&self, key: &str, kv: Option<&KeyValue>, ignore_not_found: bool) -> Result<State> {
        match kv {
            Some(kv) => self.decode_kv(kv),
            None if ignore_not_found => {
                Ok(State { object: Object::default(), data: Bytes::new(), revision: 0, stale: false })
            }
            None => Err(Error::NotFound { key: key.to_owned() }),
        }
    }

    fn bookmark(&self, revision: Revision) -> Object {
        let mut object = Object::default();
        object.api_version.clone_from(&self.inner.config.api_version);
        object.kind.clone_from(&self.inner.config.kind);
        object.metadata.resource_version = format_resource_version(revision);
        object
    }
}

/// Kubernetes `PrepareKey` for a store whose keys live under `resource_dir` (`/pods/`):
/// validates `key` and normalizes a recursive one to end in `/`. Shared by [`Store`] and
/// decorators that must reject exactly the same keys (the watch cache).
///
/// Errors: [`Error::BadRequest`] "empty key" / "invalid key" (also for a key outside
/// `resource_dir`).
pub fn prepare_key(resource_dir: &str, key: &str, recursive: bool) -> Result<String> {
    if key.is_empty() || key == "/" {
        return Err(Error::bad_request(format!("empty key: {key:?}")));
    }
    if key.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(Error::bad_request(format!("invalid key: {key:?}")));
    }
    let mut key = key.to_owned();
    if recursive && !key.ends_with('/') {
        key.push('/');
    }
    if !key.starts_with(resource_dir) {
        return Err(Error::bad_request(format!("invalid key: {key:?} lacks resource prefix: {resource_dir:?}")));
    }
    Ok(key)
}

/// Turns a TTL in seconds into the backend's form (0 = none).
fn ttl_duration(ttl: u64) -> Option<Duration> {
    (ttl > 0).then(|| Duration::from_secs(ttl))
}

/// `validateMinimumResourceVersion`: a read served at `current` must not be older than the
/// requested minimum.
fn check_minimum_resource_version(minimum: Revision, current: Revision) -> Result<()> {
    if minimum > current {
        return Err(Error::TooLargeResourceVersion { requested: minimum, current, retry_after_seconds: 0 });
    }
    Ok(())
}

#[async_trait]
impl Storage for Store {
    async fn create(&self, key: &str, mut object: Object, ttl: u64) -> Result<Object> {
        let key = self.prepare_key(key, false)?;
        if parse_resource_version(&object.metadata.resource_version)? != 0 {
            return Err(Error::ResourceVersionSetOnCreate);
        }
        let data = self.encode(&key, &mut object)?;
        let backend_key = self.backend_key(&key);
        let value = self.transform_to_storage(&backend_key, data)?;
        match self.inner.backend.put(&backend_key, value, 0, ttl_duration(ttl)).await? {
            TxnOutcome::Succeeded { revision } => {
                object.metadata.resource_version = format_resource_version(revision);
                Ok(object)
            }
            TxnOutcome::Failed { .. } => Err(Error::AlreadyExists { key }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate_deletion: ValidateDeletion<'_>,
        cached_existing: Option<Object>,
        options: DeleteOptions,
    ) -> Result<Object> {
        let key = self.prepare_key(key, false)?;
        self.conditional_delete(&key, preconditions, validate_deletion, cached_existing, options).await
    }

    async fn watch(&self, key: &str, options: ListOptions) -> Result<WatchStream> {
        let key = self.prepare_key(key, options.recursive)?;
        self.start_watch(key, options).await
    }

    async fn get(&self, key: &str, options: GetOptions) -> Result<Option<Object>> {
        let key = self.prepare_key(key, false)?;
        let minimum = options.resource_version.revision();
        let response = self.inner.backend.get(&self.backend_key(&key), 0).await?;
        check_minimum_resource_version(minimum, response.revision)?;
        match response.kv {
            Some(kv) => Ok(Some(self.decode_object(&kv)?)),
            None if options.ignore_not_found => Ok(None),
            None => Err(Error::NotFound { key }),
        }
    }

    async fn get_list(&self, key: &str, options: ListOptions) -> Result<ObjectList> {
        let key = self.prepare_key(key, options.recursive)?;
        self.list(&key, &options).await
    }

    async fn guaranteed_update(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        try_update: UpdateFn<'_>,
        cached_existing: Option<Object>,
    ) -> Result<Object> {
        let key = self.prepare_key(key, false)?;
        self.update_loop(&key, ignore_not_found, preconditions, try_update, cached_existing).await
    }

    async fn stats(&self) -> Result<Stats> {
        // One read of at most STATS_SAMPLE keys gives the count (of every key) and the sizes
        // the average is estimated from (exact when there are no more keys than that).
        let mut request = RangeRequest::prefix(&self.backend_key(&self.inner.resource_dir));
        request.limit = STATS_SAMPLE;
        let response = self.inner.backend.range(request).await?;
        let sampled: u64 = response.kvs.iter().map(|kv| kv.value.len() as u64).sum();
        let average = sampled.checked_div(response.kvs.len() as u64).unwrap_or(0);
        Ok(Stats {
            object_count: i64::try_from(response.count).unwrap_or(i64::MAX),
            estimated_average_object_size_bytes: i64::try_from(average).unwrap_or(i64::MAX),
        })
    }

    async fn readiness_check(&self) -> Result<()> {
        self.inner.backend.health().await
    }

    async fn current_resource_version(&self) -> Result<u64> {
        let revision = self.inner.backend.current_revision().await?;
        if revision == 0 {
            return Err(Error::internal("the current resource version must be greater than 0"));
        }
        Ok(revision)
    }

    async fn compact_revision(&self) -> Result<u64> {
        self.inner.backend.compacted_revision().await
    }

    async fn request_watch_progress(&self) -> Result<bool> {
        self.inner.backend.request_progress().await
    }
}
