//! Shared helpers of the etcd integration tests: a real etcd per test, backends over it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use apistore::kv::{KvBackend, WatchEvent};
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::EtcdCluster;
use futures::StreamExt;

/// A fresh one-member etcd (fails the test with the install hint when etcd is missing).
pub fn single() -> EtcdCluster {
    EtcdCluster::single().unwrap_or_else(|e| panic!("cannot start etcd: {e}"))
}

/// Options for `cluster` with compaction off and a short timeout.
pub fn options(cluster: &EtcdCluster) -> EtcdOptions {
    let mut options = EtcdOptions::new(cluster.endpoints());
    options.compaction_interval_secs = 0;
    options.timeout_ms = 3000;
    options
}

/// A backend over `cluster` with [`options`].
pub fn backend(cluster: &EtcdCluster) -> Arc<EtcdBackend> {
    Arc::new(EtcdBackend::new(options(cluster)).expect("backend"))
}

/// A raw etcd-client connected to every member (for checks behind the backend's back).
pub async fn raw_client(cluster: &EtcdCluster) -> etcd_client::Client {
    etcd_client::Client::connect(cluster.endpoints(), None).await.expect("raw etcd client")
}

/// The next watch item within `within`, failing the test on timeout.
pub async fn next_event(
    stream: &mut apistore::kv::WatchStream,
    within: Duration,
) -> Option<apistore::Result<WatchEvent>> {
    tokio::time::timeout(within, stream.next()).await.expect("watch item in time")
}

/// Current revision, for readability.
pub async fn revision(backend: &dyn KvBackend) -> u64 {
    backend.current_revision().await.expect("current revision")
}
