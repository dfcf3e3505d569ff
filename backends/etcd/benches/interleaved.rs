//! The workloads of `benches/etcd.rs`, with raw and Store measurements alternating round by
//! round (and which goes first), so both sides see the same machine load. Prints the median time per round of each
//! side and the framework/raw throughput ratio.
//!
//! Run: `cargo bench -p apistore-etcd --bench interleaved` (optional argument: rounds, default 100).

mod workload;

use std::future::Future;
use std::time::{Duration, Instant};

use workload::{Setup, IN_FLIGHT, LIST_SIZE};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn pair<'a, R, F, G, FutR, FutF>(s: &'a Setup, name: &str, elements: usize, rounds: usize, raw: R, framework: F)
where
    R: Fn() -> FutR,
    F: Fn() -> FutF,
    FutR: Future<Output = G> + 'a,
    FutF: Future + 'a,
{
    s.compact();
    let (mut raw_times, mut framework_times) = (Vec::new(), Vec::new());
    s.runtime.block_on(async {
        // One warm-up round each.
        raw().await;
        framework().await;
        // Alternate which side goes first, so neither always inherits the other's after-effects
        // (etcd's batched backend commits, allocator state).
        for round in 0..rounds {
            for side in [round % 2, 1 - round % 2] {
                let started = Instant::now();
                if side == 0 {
                    raw().await;
                    raw_times.push(started.elapsed());
                } else {
                    framework().await;
                    framework_times.push(started.elapsed());
                }
            }
        }
    });
    let (raw, framework) = (median(raw_times), median(framework_times));
    let per_second = |d: Duration| elements as f64 / d.as_secs_f64();
    println!(
        "{name:<12} raw {raw:>12.3?} ({:>9.0}/s)   apistore {framework:>12.3?} ({:>9.0}/s)   apistore/raw throughput {:.2}  time {:.2}",
        per_second(raw),
        per_second(framework),
        per_second(framework) / per_second(raw),
        framework.as_secs_f64() / raw.as_secs_f64(),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the only argument we take is a number of rounds.
    let rounds = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100);
    let s = Setup::new();
    for n in IN_FLIGHT {
        pair(&s, &format!("create/{n}"), n, rounds, || s.raw_create(n), || s.store_create(n));
        pair(&s, &format!("get/{n}"), n, rounds, || s.raw_get(n), || s.store_get(n));
        pair(&s, &format!("update/{n}"), n, rounds, || s.raw_update(n), || s.store_update(n));
    }
    pair(&s, "list/10000", LIST_SIZE, rounds.min(15), || s.raw_list(), || s.store_list());
}
