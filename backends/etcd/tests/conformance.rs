//! The apistore conformance suite (KvBackend and Storage behaviours) against real etcd.
//!
//! Each backend the suite asks for gets its own etcd process (on tmpfs) and a unique
//! `key_prefix`. One etcd per backend rather than prefixes on one shared etcd because
//! revisions and compaction are global to an etcd: behaviours that compact, or that check
//! "a new backend is at revision 1", would otherwise disturb each other when run in
//! parallel. The prefix still runs every behaviour through the key-prefix mapping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apistore::kv::{
    Capabilities, GetResponse, KvBackend, RangeRequest, RangeResponse, Revision, TxnOutcome, WatchRequest, WatchStream,
};
use apistore::testing::BackendFixture;
use apistore::Result;
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::EtcdCluster;
use async_trait::async_trait;
use bytes::Bytes;

/// An [`EtcdBackend`] that owns the etcd process it talks to.
#[derive(Debug)]
struct OwnedEtcd {
    backend: EtcdBackend,
    _etcd: EtcdCluster,
}

#[async_trait]
impl KvBackend for OwnedEtcd {
    fn backend_name(&self) -> &str {
        self.backend.backend_name()
    }
    fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }
    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        self.backend.get(key, revision).await
    }
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.backend.range(request).await
    }
    async fn put(&self, key: &str, value: Bytes, expected: Revision, ttl: Option<Duration>) -> Result<TxnOutcome> {
        self.backend.put(key, value, expected, ttl).await
    }
    async fn delete(&self, key: &str, expected: Revision) -> Result<TxnOutcome> {
        self.backend.delete(key, expected).await
    }
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        self.backend.watch(request).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.backend.current_revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.backend.compact(revision).await
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        self.backend.compacted_revision().await
    }
    async fn health(&self) -> Result<()> {
        self.backend.health().await
    }
}

#[derive(Default)]
struct EtcdFixture {
    next: AtomicUsize,
}

#[async_trait]
impl BackendFixture for EtcdFixture {
    fn name(&self) -> &str {
        "etcd3"
    }

    async fn new_backend(&self) -> Arc<dyn KvBackend> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let etcd = tokio::task::spawn_blocking(EtcdCluster::single)
            .await
            .expect("etcd start task")
            .unwrap_or_else(|e| panic!("cannot start etcd for the conformance suite: {e}"));
        let mut options = EtcdOptions::new(etcd.endpoints());
        options.key_prefix = format!("/conformance-{n}");
        options.compaction_interval_secs = 0;
        options.timeout_ms = 10_000;
        let backend = EtcdBackend::new(options).expect("etcd backend");
        Arc::new(OwnedEtcd { backend, _etcd: etcd })
    }
}

fn main() -> std::process::ExitCode {
    apistore::testing::run(EtcdFixture::default())
}
