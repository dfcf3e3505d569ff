//! The correctness audit on sled: plain and through the watch cache, then with the writer
//! process SIGKILLed and restarted in a loop — one history across every incarnation, checked
//! for linearizability, revision invariants and the watch guarantees.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::testing::audit::{
    audit_backend, audit_kv, check, drive, drive_kv, parse_line, storage_over, CheckOptions, History, Record, Recorder,
    StdoutSink, Workload,
};
use apistore::testing::StorageMode;
use apistore::KvBackend;
use apistore_sled::{SledBackend, SledOptions};

const CHILD_DIR: &str = "APISTORE_SLED_AUDIT_CHILD_DIR";
const CHILD_ROUND: &str = "APISTORE_SLED_AUDIT_ROUND";
/// Set (to anything) when the child drives the backend directly (the `KvBackend` level).
const CHILD_KV: &str = "APISTORE_SLED_AUDIT_KV";

fn workload(seed: u64, round: u32, duration: Duration) -> Workload {
    Workload { clients: 8, watchers: 2, keys: 6, duration, seed, round, ..Workload::default() }
}

fn mode_of(round: u32) -> StorageMode {
    if round % 2 == 0 {
        StorageMode::Store
    } else {
        StorageMode::Cached
    }
}

async fn run(mode: StorageMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::open(SledOptions::new(dir.path())).expect("open sled"));
    let report = audit_backend(backend, mode, &workload(1, 0, Duration::from_secs(2)), &CheckOptions::default()).await;
    println!("sled {mode:?}: {report}");
    report.assert_ok();
    assert!(report.operations > 500 && report.events > 50, "too little checked: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_passes_the_audit() {
    run(StorageMode::Store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_through_the_watch_cache_passes_the_audit() {
    run(StorageMode::Cached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_passes_the_audit_at_the_kv_backend_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::open(SledOptions::new(dir.path())).expect("open sled"));
    let workload = Workload { compact: true, ..workload(11, 0, Duration::from_secs(2)) };
    let report = audit_kv(backend, &workload, &CheckOptions::default()).await;
    println!("sled, KvBackend level: {report}");
    report.assert_ok();
    assert!(report.operations > 500 && report.events > 50, "too little checked: {report}");
    assert!(report.lists_replayed > 20 && report.reads_replayed > 20, "too little replayed: {report}");
}

/// Child side of the kill loop: drives the workload against the directory, printing every
/// record, until it is killed. Does nothing unless started by the parent.
#[test]
fn audit_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let round: u32 = std::env::var(CHILD_ROUND).ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::open(SledOptions::new(dir)).expect("open sled"));
        // Runs far longer than the parent lets it.
        let workload =
            Workload { first_watch_from: Some(1), ..workload(round as u64 + 7, round, Duration::from_secs(60)) };
        if std::env::var_os(CHILD_KV).is_some() {
            drive_kv(backend, &workload, Arc::new(StdoutSink)).await;
        } else {
            let storage = storage_over(backend, mode_of(round)).await;
            drive(storage, &workload, Arc::new(StdoutSink)).await;
        }
    });
}

/// Runs the writer as a child process, SIGKILLs it after `alive`, and returns its records.
fn incarnation(dir: &std::path::Path, round: u32, alive: Duration, kv: bool) -> Vec<Record> {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    if kv {
        command.env(CHILD_KV, "1");
    }
    let mut child = command
        .args(["--exact", "audit_child", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).filter_map(|l| parse_line(&l)).collect::<Vec<_>>()
    });
    // Kill once it has been writing for `alive` (counted from its first record).
    let started = Instant::now();
    std::thread::sleep(alive);
    child.kill().expect("SIGKILL the writer");
    let _ = child.wait();
    let records = reader.join().expect("reader thread");
    assert!(
        records.iter().any(|r| matches!(r, Record::Return { .. })),
        "round {round}: the writer recorded nothing in {:?}",
        started.elapsed()
    );
    records
}

/// Four SIGKILLed incarnations and a last one in this process, one history over all.
fn kill_loop(kv: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rounds: u32 = 4;
    let mut records = Vec::new();
    for round in 0..rounds {
        records.extend(incarnation(dir.path(), round, Duration::from_millis(1500), kv));
    }
    // A last incarnation in this process reads what survived (store and cache).
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let last = runtime.block_on(async {
        let backend: Arc<dyn KvBackend> =
            Arc::new(SledBackend::open(SledOptions::new(dir.path())).expect("reopen sled"));
        let recorder = Arc::new(Recorder::default());
        let workload = Workload { first_watch_from: Some(1), ..workload(99, rounds, Duration::from_millis(500)) };
        if kv {
            drive_kv(backend, &workload, recorder.clone()).await;
        } else {
            let storage = storage_over(backend, StorageMode::Store).await;
            drive(storage, &workload, recorder.clone()).await;
        }
        recorder.history()
    });
    records.extend(history_records(last));
    let history = History::from_records(records);
    let report = check(&history, &CheckOptions::default());
    println!("sled, {rounds} SIGKILLs (KvBackend level: {kv}): {report}");
    report.assert_ok();
    assert!(report.unknown > 0 || report.operations > 1000, "{report}");
}

#[test]
fn sled_killed_and_restarted_in_a_loop_passes_the_audit() {
    kill_loop(false);
}

#[test]
fn sled_killed_and_restarted_in_a_loop_passes_the_audit_at_the_kv_backend_level() {
    kill_loop(true);
}

/// A history back as records (to merge with the children's).
fn history_records(history: History) -> Vec<Record> {
    let mut records = vec![Record::Baseline { rv: history.baseline }];
    for op in history.operations {
        records.push(Record::Invoke { id: op.id, call: op.call, at: op.invoked });
        if let Some(at) = op.returned {
            records.push(Record::Return { id: op.id, outcome: op.outcome, at });
        }
    }
    for watch in history.watches {
        records.push(Record::WatchStart { id: watch.id, from: watch.from, prefix: watch.prefix, at: watch.started });
        for (at, event) in watch.events {
            records.push(Record::Event { id: watch.id, event, at });
        }
    }
    records
}

fn model(mode: StorageMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::open(SledOptions::new(dir.path())).expect("open sled"));
    apistore::testing::audit::check_model(&runtime, backend, mode, 48, 40);
}

#[test]
fn sled_follows_the_storage_model() {
    model(StorageMode::Store);
}

#[test]
fn sled_through_the_watch_cache_follows_the_storage_model() {
    model(StorageMode::Cached);
}
