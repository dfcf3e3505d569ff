//! The compactor: kube-apiserver's `pkg/storage/etcd3/compact.go`.
//!
//! Every interval each replica runs one [`CompactorState`] tick:
//!
//! ```text
//! Txn If(Version(compact_rev_key) == local_version)
//!     Then(Put(compact_rev_key, previous_revision))   // this replica compacts
//!     Else(Get(compact_rev_key))                      // another one did: adopt its version
//! ```
//!
//! On success the replica compacts at the revision it saw one tick earlier (never on its
//! first tick), so between one and two intervals of history stay readable. Replicas that
//! share an etcd coordinate through the version of `compact_rev_key`, which lives at the
//! etcd root (compaction is cluster-wide, whatever key prefix a backend uses). The replica
//! that compacted then defragments fragmented members, one at a time ([`crate::space`]).

use std::sync::Arc;
use std::time::Duration;

use apistore::Result;
use etcd_client::{CompactionOptions, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, Idempotence};
use crate::space::{self, DefragPolicy};

/// The key replicas coordinate compaction through (kube-apiserver's name).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// What one replica remembers between compaction ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactorState {
    /// The version of `compact_rev_key` this replica last saw.
    pub version: i64,
    /// The etcd revision seen at the last tick (compacted at the next successful tick).
    pub revision: i64,
    /// The revision this replica compacted at in its last successful tick, if any.
    pub compacted: Option<i64>,
}

/// One tick; returns the new state. `compacted` is set only when this tick compacted.
pub(crate) async fn tick(cluster: &Cluster, state: CompactorState) -> Result<CompactorState> {
    let value = state.revision.to_string();
    let txn = Txn::new()
        .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, state.version)])
        .and_then([TxnOp::put(COMPACT_REV_KEY, value, None)])
        .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
    let response = cluster
        .call("compaction txn", Idempotence::Write, 0, |c| {
            let mut kv = c.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    let current_revision = response.header().map(|h| h.revision()).unwrap_or(0);
    if !response.succeeded() {
        let remote_version = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.version()),
                _ => None,
            })
            .unwrap_or(0);
        return Ok(CompactorState { version: remote_version, revision: current_revision, compacted: None });
    }
    let next = CompactorState { version: state.version + 1, revision: current_revision, compacted: None };
    if state.revision == 0 {
        // The first tick only records where we are.
        return Ok(next);
    }
    let revision = state.revision;
    let result = cluster
        .call("compact", Idempotence::Read, u64::try_from(revision).unwrap_or(0), |c| {
            let mut kv = c.kv.clone();
            // Physical: answered once the history is gone, so that the defragmentation that
            // follows sees the space the compaction freed.
            async move { kv.compact(revision, Some(CompactionOptions::new().with_physical())).await }
        })
        .await;
    match result {
        Ok(_) => Ok(CompactorState { compacted: Some(revision), ..next }),
        // Someone compacted further already: nothing lost.
        Err(apistore::Error::Compacted { .. }) => Ok(next),
        Err(e) => Err(e),
    }
}

/// The background loop; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Compactor {
    task: JoinHandle<()>,
}

impl Compactor {
    /// Starts compacting every `interval`; after each compaction this replica made, the
    /// members the compaction left fragmented are defragmented, one at a time (`policy`).
    pub(crate) fn start(cluster: Arc<Cluster>, interval: Duration, policy: DefragPolicy) -> Self {
        let task = tokio::spawn(async move {
            let mut state = CompactorState::default();
            loop {
                tokio::time::sleep(interval).await;
                match tick(&cluster, state).await {
                    Ok(next) => {
                        if let Some(revision) = next.compacted {
                            tracing::debug!(revision, endpoints = ?cluster.endpoints(), "etcd: compacted");
                            if let Err(error) = space::defragment_fragmented(&cluster, policy).await {
                                tracing::warn!(%error, "etcd: defragmentation failed");
                            }
                        }
                        state = next;
                    }
                    Err(error) => {
                        tracing::warn!(%error, endpoints = ?cluster.endpoints(), "etcd: compaction failed");
                    }
                }
            }
        });
        Compactor { task }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.task.abort();
    }
}
