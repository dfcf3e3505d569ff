//! The correctness audit on real etcd: one member, plain and through the watch cache; then
//! three members with the leader and a follower SIGKILLed and restarted and a member stalled
//! (SIGSTOP/SIGCONT) under the workload, plain and through the watch cache.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::testing::audit::{audit_backend, audit_kv, CheckOptions, Report, Workload};
use apistore::testing::StorageMode;
use apistore::KvBackend;
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::EtcdCluster;

fn backend(cluster: &EtcdCluster, timeout_ms: u64) -> Arc<dyn KvBackend> {
    let mut options = EtcdOptions::new(cluster.endpoints());
    options.compaction_interval_secs = 0;
    options.timeout_ms = timeout_ms;
    Arc::new(EtcdBackend::new(options).expect("etcd backend"))
}

/// Fewest operations a 6 s run under faults must have checked.
const FAULTED_OPERATIONS: usize = 150;

fn workload(seed: u64, duration: Duration) -> Workload {
    Workload {
        clients: 8,
        watchers: 2,
        keys: 6,
        duration,
        seed,
        call_timeout: Duration::from_secs(6),
        ..Workload::default()
    }
}

async fn single(mode: StorageMode) {
    let cluster = EtcdCluster::single().unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let report =
        audit_backend(backend(&cluster, 5000), mode, &workload(3, Duration::from_secs(2)), &CheckOptions::default())
            .await;
    println!("etcd single {mode:?}: {report}");
    report.assert_ok();
    assert!(report.operations > 300 && report.events > 30, "too little checked: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_audit() {
    single(StorageMode::Store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_through_the_watch_cache_passes_the_audit() {
    single(StorageMode::Cached).await;
}

fn signal(cluster: &EtcdCluster, member: usize, signal: &str) {
    if let Some(pid) = cluster.pid(member) {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    }
}

/// Leader SIGKILL + restart, follower SIGSTOP/SIGCONT (a stalled peer), follower SIGKILL +
/// restart, spread over `duration`. Returns the cluster and what was done.
fn inject_faults(mut cluster: EtcdCluster, duration: Duration) -> (EtcdCluster, Vec<String>) {
    let start = Instant::now();
    let at = |fraction: f64| start + duration.mul_f64(fraction);
    let sleep_until = |t: Instant| std::thread::sleep(t.saturating_duration_since(Instant::now()));
    let mut done = Vec::new();
    sleep_until(at(0.1));
    let leader = cluster.leader(Duration::from_secs(5)).unwrap_or(0);
    cluster.kill(leader);
    done.push(format!("SIGKILL leader m{leader}"));
    sleep_until(at(0.3));
    cluster.restart(leader).unwrap_or_else(|e| panic!("restart m{leader}: {e}\n{}", cluster.log_tail(leader)));
    done.push(format!("restart m{leader}"));
    let leader = cluster.leader(Duration::from_secs(5)).unwrap_or(0);
    let follower = (leader + 1) % cluster.len();
    sleep_until(at(0.4));
    signal(&cluster, follower, "STOP");
    done.push(format!("SIGSTOP follower m{follower}"));
    sleep_until(at(0.55));
    signal(&cluster, follower, "CONT");
    done.push(format!("SIGCONT m{follower}"));
    let leader = cluster.leader(Duration::from_secs(5)).unwrap_or(0);
    let follower = (leader + 2) % cluster.len();
    sleep_until(at(0.65));
    cluster.kill(follower);
    done.push(format!("SIGKILL follower m{follower}"));
    sleep_until(at(0.8));
    cluster.restart(follower).unwrap_or_else(|e| panic!("restart m{follower}: {e}\n{}", cluster.log_tail(follower)));
    done.push(format!("restart m{follower}"));
    (cluster, done)
}

async fn three_members_under_faults(mode: StorageMode) {
    let cluster = EtcdCluster::three().unwrap_or_else(|e| panic!("cannot start a three-member etcd: {e}"));
    let backend = backend(&cluster, 2000);
    let duration = Duration::from_secs(6);
    let faults = std::thread::spawn(move || inject_faults(cluster, duration));
    let report = audit_backend(backend, mode, &workload(5, duration), &CheckOptions::default()).await;
    let (_cluster, done) = faults.join().expect("fault thread");
    println!("etcd three members {mode:?}, faults [{}]: {report}", done.join(", "));
    report.assert_ok();
    // A guard against a workload that checks next to nothing (every call failing), not a
    // throughput target: under a loaded machine the 6 s with three kills and stalls have
    // done 248 operations.
    assert!(report.operations > FAULTED_OPERATIONS, "too little checked: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_members_with_kills_and_stalls_passes_the_audit() {
    three_members_under_faults(StorageMode::Store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_members_with_kills_and_stalls_through_the_watch_cache_passes_the_audit() {
    three_members_under_faults(StorageMode::Cached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_audit_at_the_kv_backend_level() {
    let cluster = EtcdCluster::single().unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let workload = Workload { compact: true, ..workload(13, Duration::from_secs(2)) };
    let report = audit_kv(backend(&cluster, 5000), &workload, &CheckOptions::default()).await;
    println!("etcd single, KvBackend level: {report}");
    report.assert_ok();
    assert!(report.operations > 300 && report.events > 30, "too little checked: {report}");
    assert!(report.lists_replayed > 10 && report.reads_replayed > 10, "too little replayed: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_members_with_kills_and_stalls_passes_the_audit_at_the_kv_backend_level() {
    let cluster = EtcdCluster::three().unwrap_or_else(|e| panic!("cannot start a three-member etcd: {e}"));
    let backend = backend(&cluster, 2000);
    let duration = Duration::from_secs(6);
    let faults = std::thread::spawn(move || inject_faults(cluster, duration));
    let report: Report = audit_kv(backend, &workload(17, duration), &CheckOptions::default()).await;
    let (_cluster, done) = faults.join().expect("fault thread");
    println!("etcd three members, KvBackend level, faults [{}]: {report}", done.join(", "));
    report.assert_ok();
    // A guard against a workload that checks next to nothing (every call failing), not a
    // throughput target: under a loaded machine the 6 s with three kills and stalls have
    // done 248 operations.
    assert!(report.operations > FAULTED_OPERATIONS, "too little checked: {report}");
}

fn model(mode: StorageMode) {
    let cluster = EtcdCluster::single().unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let backend = runtime.block_on(async { backend(&cluster, 5000) });
    apistore::testing::audit::check_model(&runtime, backend, mode, 32, 30);
}

#[test]
fn etcd_follows_the_storage_model() {
    model(StorageMode::Store);
}

#[test]
fn etcd_through_the_watch_cache_follows_the_storage_model() {
    model(StorageMode::Cached);
}
