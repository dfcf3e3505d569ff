//! A longer run of the correctness audit (`apistore::testing::audit`): repeated rounds of
//! 8+ concurrent clients on a backend, plain and through the watch cache alternately, each
//! round's history checked (on sled, each round in a fresh database). `--level kv` drives
//! the backend directly (the `KvBackend`-level workload) instead of the storage layers.
//! `--backend etcd` (feature `etcd`) runs three etcd members (the test harness); at 30 % of
//! an even round it SIGKILLs the leader and restarts it at 60 %, at 30 % of an odd round it
//! SIGSTOPs a follower and resumes it (SIGCONT) at 60 %.
//!
//! ```text
//! cargo run --release --features testing --example audit_soak -- --seconds 60 [--backend memory|sled|etcd] [--level storage|kv] [--round-seconds 5] [--clients 8]
//! ```
//!
//! Prints each round's report and the totals; exits non-zero on any violation.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::testing::audit::{audit, audit_kv, storage_over, CheckOptions, Workload};
use apistore::testing::StorageMode;
use apistore::KvBackend;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = arg(&args, "--seconds").and_then(|s| s.parse().ok()).unwrap_or(30);
    let round_seconds: u64 = arg(&args, "--round-seconds").and_then(|s| s.parse().ok()).unwrap_or(5);
    let clients: usize = arg(&args, "--clients").and_then(|s| s.parse().ok()).unwrap_or(8);
    let backend_name = arg(&args, "--backend").unwrap_or_else(|| "memory".to_owned());
    let kv_level = arg(&args, "--level").is_some_and(|l| l == "kv");
    #[cfg(feature = "etcd")]
    let mut cluster = (backend_name == "etcd").then(|| {
        apistore_etcd_harness::EtcdCluster::three().unwrap_or_else(|e| panic!("cannot start three etcd members: {e}"))
    });
    #[cfg(not(feature = "etcd"))]
    if backend_name == "etcd" {
        eprintln!("--backend etcd needs --features testing,etcd");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let started = Instant::now();
    let (mut rounds, mut operations, mut unknown, mut events, mut lists, mut violations, mut inconclusive) =
        (0u32, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    while started.elapsed() < Duration::from_secs(seconds) {
        let mode = if rounds % 2 == 0 { StorageMode::Store } else { StorageMode::Cached };
        let backend: Arc<dyn KvBackend> = match backend_name.as_str() {
            "sled" => Arc::new(
                apistore_sled::SledBackend::open(apistore_sled::SledOptions::new(
                    dir.path().join(format!("r{rounds}")),
                ))
                .expect("open sled"),
            ),
            #[cfg(feature = "etcd")]
            "etcd" => {
                let endpoints = cluster.as_ref().map(|c| c.endpoints()).unwrap_or_default();
                let mut options = apistore_etcd::EtcdOptions::new(endpoints);
                options.compaction_interval_secs = 0;
                options.timeout_ms = 2000;
                let _runtime = runtime.enter();
                Arc::new(apistore_etcd::EtcdBackend::new(options).expect("etcd backend"))
            }
            _ => Arc::new(apistore_memory::MemoryBackend::new()),
        };
        // Etcd: a leader kill (even rounds) or a follower stall (odd rounds) during the round.
        #[cfg(feature = "etcd")]
        let faults = cluster.take().map(|mut c| {
            let round = Duration::from_secs(round_seconds);
            let stall = rounds % 2 == 1;
            std::thread::spawn(move || {
                std::thread::sleep(round.mul_f64(0.3));
                let leader = c.leader(Duration::from_secs(5)).unwrap_or(0);
                if stall {
                    // Odd rounds: a follower stalls (SIGSTOP) and resumes (SIGCONT).
                    let follower = (leader + 1) % c.len();
                    let signal = |name: &str| {
                        let pid = c.pid(follower).expect("a running member").to_string();
                        let status = std::process::Command::new("kill").args([name, &pid]).status();
                        assert!(status.is_ok_and(|s| s.success()), "kill {name} m{follower}");
                    };
                    signal("-STOP");
                    std::thread::sleep(round.mul_f64(0.3));
                    signal("-CONT");
                    return (c, format!("SIGSTOPped and resumed the follower m{follower}"));
                }
                c.kill(leader);
                std::thread::sleep(round.mul_f64(0.3));
                c.restart(leader).unwrap_or_else(|e| panic!("restart m{leader}: {e}"));
                (c, format!("SIGKILLed and restarted the leader m{leader}"))
            })
        });
        let workload = Workload {
            clients,
            watchers: 3,
            keys: 8,
            duration: Duration::from_secs(round_seconds),
            seed: rounds as u64 + 1,
            round: rounds,
            // A fresh namespace per round: a backend kept across rounds (etcd) still holds the
            // keys of earlier rounds, and a history starts with its keys absent.
            namespace: format!("audit-r{rounds}"),
            compact: kv_level,
            call_timeout: Duration::from_secs(6),
            ..Workload::default()
        };
        let options = CheckOptions { linearizability_budget: Duration::from_secs(60), ..CheckOptions::default() };
        let report = runtime.block_on(async {
            if kv_level {
                audit_kv(backend, &workload, &options).await
            } else {
                let storage = storage_over(backend, mode).await;
                audit(storage, &workload, &options).await.1
            }
        });
        #[cfg(feature = "etcd")]
        if let Some(faults) = faults {
            let (c, done) = faults.join().expect("fault thread");
            println!("round {rounds}: {done}");
            cluster = Some(c);
        }
        let level = if kv_level { "KvBackend".to_owned() } else { format!("{mode:?}") };
        println!("round {rounds} ({backend_name}, {level}): {report}");
        operations += report.operations;
        unknown += report.unknown;
        events += report.events;
        lists += report.lists_replayed;
        violations += report.violations.len();
        inconclusive += report.inconclusive.len();
        rounds += 1;
    }
    println!(
        "soak {backend_name} (KvBackend level: {kv_level}): {seconds} s, {rounds} rounds, {operations} operations checked ({unknown} unknown), {events} watch events, {lists} lists replayed, {inconclusive} inconclusive keys, {violations} violations"
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
