//! Space on real etcd: apistore's compactor plus defragmentation (one member at a time)
//! return a three-member cluster's space after a churn; a quota's NOSPACE alarm refuses
//! growth with a typed error while reads and deletes go on, and is disarmed once space is
//! back.

mod common;

use std::time::{Duration, Instant};

use apistore::kv::{KvBackend, RangeRequest, TxnOutcome};
use apistore_etcd::EtcdBackend;
use apistore_etcd_harness::{ClusterConfig, EtcdCluster};
use bytes::Bytes;

fn value(tag: u64) -> Bytes {
    let mut v = format!("{tag:020}").into_bytes();
    v.resize(1024, b'v');
    Bytes::from(v)
}

/// `keys` keys written `rounds` times by 8 concurrent writers; returns the live bytes.
async fn churn(kv: &std::sync::Arc<EtcdBackend>, keys: usize, rounds: u64) -> u64 {
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for k in (w..keys).step_by(8) {
                    let key = format!("/registry/configmaps/default/cm-{k:05}");
                    let mut revision = kv.get(&key, 0).await.expect("get").kv.map_or(0, |kv| kv.mod_revision);
                    for round in 0..rounds {
                        match kv.put(&key, value(round), revision, None).await.expect("put") {
                            TxnOutcome::Succeeded { revision: r } => revision = r,
                            failed => panic!("{failed:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    (0..keys).map(|k| (format!("/registry/configmaps/default/cm-{k:05}").len() + 1024) as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compactor_then_defragments_one_member_at_a_time_and_returns_the_space() {
    let cluster = EtcdCluster::three().unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let mut options = common::options(&cluster);
    options.defrag_min_bytes = 1024 * 1024;
    let kv = std::sync::Arc::new(EtcdBackend::new(options.clone()).expect("backend"));
    let live = churn(&kv, 300, 20).await;
    let before = kv.members_space().await.expect("status");
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|m| m.db_bytes > 4 * live), "the churn left history: {before:?} for {live} live");

    // The compactor (driven here tick by tick, as its loop does) compacts; then each
    // fragmented member is defragmented in turn.
    let first = kv.compact_tick(Default::default()).await.expect("first tick");
    let second = kv.compact_tick(first).await.expect("second tick");
    assert!(second.compacted.is_some(), "the second tick compacts: {second:?}");
    // Followers apply a compaction on their own time: wait until every member shows it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spaces = kv.members_space().await.expect("status");
        if spaces.iter().all(|m| m.in_use_bytes * 2 < m.db_bytes) {
            break;
        }
        assert!(Instant::now() < deadline, "the compaction did not reach every member: {spaces:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let done = kv.defragment_fragmented().await.expect("defragment");
    let elapsed = started.elapsed();
    assert_eq!(done.len(), 3, "every member was fragmented: {done:?}");
    let endpoints: Vec<_> = done.iter().map(|d| d.before.endpoint.clone()).collect();
    assert_eq!(endpoints, cluster.endpoints(), "members in turn, in order");
    let sum: Duration = done.iter().map(|d| d.took).sum();
    assert!(elapsed >= sum, "one member at a time: {elapsed:?} for defragmentations taking {sum:?} together");
    for d in &done {
        assert!(d.after.db_bytes * 2 < d.before.db_bytes, "defragmentation returned space: {d:?}");
        assert!(
            d.after.db_bytes <= 3 * live.max(1024 * 1024),
            "{} after defrag: {d:?} for {live} live",
            d.after.endpoint
        );
        eprintln!(
            "{}: {} -> {} bytes ({:.1}x live {live}), blocked {:?}",
            d.after.endpoint,
            d.before.db_bytes,
            d.after.db_bytes,
            d.after.db_bytes as f64 / live as f64,
            d.took
        );
    }
    assert_eq!(kv.range(RangeRequest::prefix("/registry/configmaps/")).await.expect("range").count, 300);
    assert!(kv.defragment_fragmented().await.expect("again").is_empty(), "nothing fragmented any more");

    // The background compactor does the same on its own.
    churn(&kv, 300, 10).await;
    let mut auto = options;
    auto.compaction_interval_secs = 1;
    let background = EtcdBackend::new(auto).expect("backend with the compactor");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let members = background.members_space().await.expect("status");
        if members.len() == 3 && members.iter().all(|m| m.db_bytes <= 3 * live.max(1024 * 1024)) {
            break;
        }
        assert!(Instant::now() < deadline, "the compactor did not return the space: {members:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nospace_alarm_refuses_growth_and_is_disarmed_once_space_is_back() {
    let quota: u64 = 4 * 1024 * 1024;
    let config =
        ClusterConfig { extra_args: vec![format!("--quota-backend-bytes={quota}")], ..ClusterConfig::default() };
    let cluster = EtcdCluster::start(config).unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let mut options = common::options(&cluster);
    options.quota_backend_bytes = quota;
    options.defrag_min_bytes = 0;
    options.defrag_free_percent = 10;
    let kv = EtcdBackend::new(options).expect("backend");
    let mut written = Vec::new();
    let refused = loop {
        let key = format!("/q/{:05}", written.len());
        match kv.put(&key, value(0), 0, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => written.push((key, revision)),
            Ok(failed) => panic!("{failed:?}"),
            Err(e) => break e,
        }
        assert!(written.len() < 20_000, "the quota never refused a put");
    };
    assert!(refused.is_no_space(), "{refused:?}");
    assert_eq!(refused.code(), 500);
    let space = kv.space().await.expect("space");
    assert!(space.nospace() && space.quota_bytes == quota, "{space:?}");
    // etcd applies the write that crossed the quota and still answers it NOSPACE.
    let count = kv.range(RangeRequest::prefix("/q/")).await.expect("reads go on").count;
    assert!(count == written.len() as u64 || count == written.len() as u64 + 1, "{count} vs {}", written.len());
    for (key, revision) in written.iter().skip(10) {
        assert!(matches!(kv.delete(key, *revision).await.expect("deletes go on"), TxnOutcome::Succeeded { .. }));
    }
    kv.compact(kv.current_revision().await.expect("current")).await.expect("compaction goes on");
    // etcd compacts in the background: defragment once the compaction freed the pages.
    let deadline = Instant::now() + Duration::from_secs(20);
    while kv.defragment_fragmented().await.expect("defragment").is_empty() {
        assert!(Instant::now() < deadline, "the compaction never freed space: {:?}", kv.members_space().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let space = kv.space().await.expect("space");
    assert!(!space.nospace() && space.db_bytes < quota, "the alarm is disarmed once space is back: {space:?}");
    assert!(matches!(kv.put("/q/after", value(1), 0, None).await.expect("put after"), TxnOutcome::Succeeded { .. }));
    let count = kv.range(RangeRequest::prefix("/q/")).await.expect("range").count;
    assert!(count == 11 || count == 12, "{count}");
}
