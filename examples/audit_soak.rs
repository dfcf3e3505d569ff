//! A longer run of the correctness audit (`apistore::testing::audit`): repeated rounds of
//! 8+ concurrent clients on a backend, plain and through the watch cache alternately, each
//! round's history checked (on sled, each round in a fresh database).
//!
//! ```text
//! cargo run --release --features testing --example audit_soak -- --seconds 60 [--backend memory|sled] [--round-seconds 5] [--clients 8]
//! ```
//!
//! Prints each round's report and the totals; exits non-zero on any violation.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::testing::audit::{audit, storage_over, CheckOptions, Workload};
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
            _ => Arc::new(apistore_memory::MemoryBackend::new()),
        };
        let workload = Workload {
            clients,
            watchers: 3,
            keys: 8,
            duration: Duration::from_secs(round_seconds),
            seed: rounds as u64 + 1,
            round: rounds,
            ..Workload::default()
        };
        let options = CheckOptions { linearizability_budget: Duration::from_secs(60), ..CheckOptions::default() };
        let (_, report) = runtime.block_on(async {
            let storage = storage_over(backend, mode).await;
            audit(storage, &workload, &options).await
        });
        println!("round {rounds} ({backend_name}, {mode:?}): {report}");
        operations += report.operations;
        unknown += report.unknown;
        events += report.events;
        lists += report.lists_replayed;
        violations += report.violations.len();
        inconclusive += report.inconclusive.len();
        rounds += 1;
    }
    println!(
        "soak {backend_name}: {seconds} s, {rounds} rounds, {operations} operations checked ({unknown} unknown), {events} watch events, {lists} lists replayed, {inconclusive} inconclusive keys, {violations} violations"
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
