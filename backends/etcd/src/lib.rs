//! # apistore-etcd: the etcd v3 backend of apistore (registered as `"etcd3"`)
//!
//! ```text
//!  Store (apistore) ──► Arc<dyn KvBackend> = EtcdBackend
//!                          │  keys exactly as given (/registry/pods/ns/name), or under key_prefix
//!                          ├─ KV:    Range(rev, limit, count) · Txn(ModRevision ==) Put|Delete Else Get
//!                          ├─ Watch: start revision, prev_kv, progress notify → kv::WatchEvent
//!                          ├─ Lease: TTLs, leases reused like kube-apiserver (lease)
//!                          ├─ Compactor: every interval (default 5 min), replicas coordinate
//!                          │            through `compact_rev_key` at the etcd root (compactor)
//!                          └─ Cluster: one client per endpoint, preferred member, failover,
//!                                      timeout on every call, TLS, username/password (cluster)
//! ```
//!
//! Configure it through the registry with a [`BackendConfig`]
//! such as `{"type":"etcd3","endpoints":["http://127.0.0.1:2379"]}` (see [`EtcdOptions`]), or
//! build an [`EtcdBackend`] directly.
//!
//! Errors follow the [`KvBackend`] contract: compacted →
//! [`Error::Compacted`](apistore::Error::Compacted), future revision →
//! [`Error::FutureRevision`](apistore::Error::FutureRevision), unreachable →
//! [`Error::Unavailable`](apistore::Error::Unavailable), deadline →
//! [`Error::Timeout`](apistore::Error::Timeout). No call outlives its timeout and a watch that
//! breaks ends with an error item.
//!
//! The crate is empty without its default feature `client` (which pulls in etcd-client, whose
//! build needs `protoc`); see `Cargo.toml`.
#![cfg(feature = "client")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod cluster;
pub mod compactor;
mod errors;
mod lease;
mod options;
pub mod space;
mod watch;

use std::sync::Arc;

use apistore::registry::{BackendConfig, BackendRegistration, StorageBackendFactory};
use apistore::{KvBackend, Result};
use async_trait::async_trait;

pub use backend::EtcdBackend;
pub use compactor::{CompactorState, COMPACT_REV_KEY};
pub use options::{
    EtcdOptions, DEFAULT_COMPACTION_INTERVAL, DEFAULT_DEFRAG_FREE_PERCENT, DEFAULT_DEFRAG_MIN_BYTES,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT,
};
pub use space::{Defragmented, MemberSpace};

/// The name configs select this backend by.
pub const BACKEND_NAME: &str = "etcd3";

/// The `etcd3` [`StorageBackendFactory`], registered with `inventory`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EtcdFactory;

#[async_trait]
impl StorageBackendFactory for EtcdFactory {
    fn name(&self) -> &'static str {
        BACKEND_NAME
    }

    /// Parses the options and creates the backend without contacting etcd (it connects
    /// lazily; [`KvBackend::health`] tells whether etcd is reachable).
    async fn create(&self, config: &BackendConfig) -> Result<Arc<dyn KvBackend>> {
        let options = EtcdOptions::from_config(config)?;
        Ok(Arc::new(EtcdBackend::new(options)?))
    }
}

apistore::inventory::submit! { BackendRegistration::new(&EtcdFactory) }

/// Registers [`EtcdFactory`] explicitly: the fallback for binaries whose linker dropped the
/// `inventory` entry (call it once at start-up; repeated calls are harmless).
pub fn register() {
    apistore::registry::register(&EtcdFactory);
}
