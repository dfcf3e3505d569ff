//! The correctness audit on the memory plugin (store and watch cache), and the proof that the
//! audit can fail: a backend that breaks one property on purpose is caught every time, with
//! the violation named.

use std::sync::Arc;
use std::time::Duration;

use apistore::testing::audit::{
    audit_backend, audit_kv, CheckOptions, Fault, FaultyBackend, Report, ViolationKind, Workload,
};
use apistore::testing::StorageMode;
use apistore::KvBackend;
use apistore_memory::MemoryBackend;

fn workload(seed: u64) -> Workload {
    Workload { clients: 8, watchers: 2, keys: 6, duration: Duration::from_millis(1500), seed, ..Workload::default() }
}

async fn run(fault: Fault, mode: StorageMode, seed: u64) -> Report {
    let backend: Arc<dyn KvBackend> = Arc::new(FaultyBackend::new(Arc::new(MemoryBackend::new()), fault));
    let report = audit_backend(backend, mode, &workload(seed), &CheckOptions::default()).await;
    println!("{fault:?} {mode:?} seed {seed}: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_audit() {
    let report = run(Fault::None, StorageMode::Store, 1).await;
    report.assert_ok();
    assert!(report.operations > 1000 && report.events > 100, "too little checked: {report}");
    assert!(report.inconclusive.is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_through_the_watch_cache_passes_the_audit() {
    let report = run(Fault::None, StorageMode::Cached, 2).await;
    report.assert_ok();
    assert!(report.operations > 1000 && report.events > 100, "too little checked: {report}");
}

async fn caught(fault: Fault, kind: ViolationKind) {
    for seed in 1..=2 {
        let report = run(fault, StorageMode::Store, seed).await;
        assert!(report.has(kind), "{fault:?} (seed {seed}) was not reported as {kind:?}:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_read_is_caught() {
    caught(Fault::StaleRead, ViolationKind::StaleRead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_event_is_caught() {
    caught(Fault::DropWatchEvent, ViolationKind::WatchGap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_watch_events_are_caught() {
    caught(Fault::ReorderWatchEvents, ViolationKind::WatchUnordered).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_reused_after_a_restart_is_caught() {
    caught(Fault::ReuseRevisionAfterRestart, ViolationKind::RevisionReused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_then_lost_write_is_caught() {
    caught(Fault::LoseAcknowledgedWrite, ViolationKind::LostWrite).await;
}

async fn run_kv(fault: Fault, seed: u64) -> Report {
    let backend: Arc<dyn KvBackend> = Arc::new(FaultyBackend::new(Arc::new(MemoryBackend::new()), fault));
    // The memory backend answers in microseconds: a short run is tens of thousands of calls.
    let workload = Workload { compact: true, duration: Duration::from_millis(500), ..workload(seed) };
    let report = audit_kv(backend, &workload, &CheckOptions::default()).await;
    println!("KvBackend level, {fault:?} seed {seed}: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_passes_the_audit_at_the_kv_backend_level() {
    let report = run_kv(Fault::None, 3).await;
    report.assert_ok();
    assert!(report.operations > 1000 && report.events > 100, "too little checked: {report}");
    assert!(report.lists_replayed > 50 && report.reads_replayed > 50, "too little replayed: {report}");
    assert!(report.inconclusive.is_empty(), "{report}");
}

/// Each fault, injected under the backend, is caught by the `KvBackend`-level workload too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_caught_at_the_kv_backend_level() {
    let faults = [
        (Fault::StaleRead, ViolationKind::StaleRead),
        (Fault::DropWatchEvent, ViolationKind::WatchGap),
        (Fault::ReorderWatchEvents, ViolationKind::WatchUnordered),
        (Fault::ReuseRevisionAfterRestart, ViolationKind::RevisionReused),
        (Fault::LoseAcknowledgedWrite, ViolationKind::LostWrite),
    ];
    for (fault, kind) in faults {
        for seed in 1..=2 {
            let report = run_kv(fault, seed).await;
            assert!(report.has(kind), "{fault:?} (seed {seed}) was not reported as {kind:?}:\n{report}");
        }
    }
}

fn model(mode: StorageMode) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    apistore::testing::audit::check_model(&runtime, Arc::new(MemoryBackend::new()), mode, 64, 40);
}

#[test]
fn memory_store_follows_the_storage_model() {
    model(StorageMode::Store);
}

#[test]
fn memory_watch_cache_follows_the_storage_model() {
    model(StorageMode::Cached);
}

#[test]
#[should_panic(expected = "differs from the model")]
fn the_model_catches_a_reused_revision() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let faulty = FaultyBackend::new(Arc::new(MemoryBackend::new()), Fault::ReuseRevisionAfterRestart);
    apistore::testing::audit::check_model(&runtime, Arc::new(faulty), StorageMode::Store, 64, 40);
}
