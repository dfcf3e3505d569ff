//! The workloads of `benches/etcd.rs`, with raw and Store measurements alternating round by
//! round (and which goes first), so both sides see the same machine load. Prints the median time per round of each
//! side and the framework/raw throughput ratio.
//!
//! Run: `cargo bench -p apistore-etcd --bench interleaved` (optional arguments: rounds, default
//! 100, and name filters such as `update/64`; `a/a` compares raw creates on the backend's
//! connection ("raw") with raw creates on a second connection ("apistore" column)).

mod workload;

use std::future::Future;
use std::time::{Duration, Instant};

use workload::{Setup, IN_FLIGHT, LIST_SIZE, OPS_PER_WORKER};

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
    s.reset();
    let (mut raw_times, mut framework_times) = (Vec::new(), Vec::new());
    // CPU (ns) of [raw, framework] sides: [client, etcd]. Each span is read so that the
    // other process's reading falls outside it (etcd's threads are read outside this
    // process's span; getrusage is one syscall inside etcd's).
    let mut cpu = [[0u64; 2]; 2];
    s.runtime.block_on(async {
        // One warm-up round each.
        raw().await;
        framework().await;
        // Alternate which side goes first, so neither always inherits the other's after-effects
        // (etcd's batched backend commits, allocator state).
        for round in 0..rounds {
            for side in [round % 2, 1 - round % 2] {
                let etcd = s.etcd_pid().map(process_cpu_ns).unwrap_or(0);
                let client = own_cpu_ns();
                let started = Instant::now();
                if side == 0 {
                    raw().await;
                    raw_times.push(started.elapsed());
                } else {
                    framework().await;
                    framework_times.push(started.elapsed());
                }
                let client_after = own_cpu_ns();
                let etcd_after = s.etcd_pid().map(process_cpu_ns).unwrap_or(0);
                cpu[side][0] += client_after.saturating_sub(client);
                cpu[side][1] += etcd_after.saturating_sub(etcd);
            }
        }
    });
    let (raw, framework) = (median(raw_times), median(framework_times));
    let per_op = |ns: u64| Duration::from_nanos(ns / (rounds * elements) as u64);
    let per_second = |d: Duration| elements as f64 / d.as_secs_f64();
    println!(
        "{name:<12} raw {raw:>12.3?} ({:>9.0}/s)   apistore {framework:>12.3?} ({:>9.0}/s)   apistore/raw throughput {:.2}  time {:.2}",
        per_second(raw),
        per_second(framework),
        per_second(framework) / per_second(raw),
        framework.as_secs_f64() / raw.as_secs_f64(),
    );
    println!(
        "{:<12} CPU per op: raw client {:>9.1?} etcd {:>9.1?}   apistore client {:>9.1?} etcd {:>9.1?}",
        "",
        per_op(cpu[0][0]),
        per_op(cpu[0][1]),
        per_op(cpu[1][0]),
        per_op(cpu[1][1]),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; we take a number of rounds and name filters.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rounds = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100);
    let filters: Vec<&String> = args.iter().filter(|a| a.parse::<usize>().is_err()).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let s = Setup::new();
    for n in IN_FLIGHT {
        let name = format!("create/{n}");
        if wanted(&name) {
            pair(&s, &name, n * OPS_PER_WORKER, rounds, || s.raw_create(n), || s.store_create(n));
        }
        let name = format!("get/{n}");
        if wanted(&name) {
            pair(&s, &name, n * OPS_PER_WORKER, rounds, || s.raw_get(n), || s.store_get(n));
        }
        let name = format!("update/{n}");
        if wanted(&name) {
            pair(&s, &name, n * OPS_PER_WORKER, rounds, || s.raw_update(n), || s.store_update(n));
        }
    }
    // Not run by default: raw against raw on a second connection (an A/A comparison).
    if filters.iter().any(|f| f.as_str() == "a/a") {
        let n = IN_FLIGHT[1];
        let name = format!("a/a create/{n}");
        pair(&s, &name, n * OPS_PER_WORKER, rounds, || s.raw_create(n), || s.raw_create_other_connection(n));
    }
    if wanted("list/10000") {
        pair(&s, "list/10000", LIST_SIZE, rounds.min(15), || s.raw_list(), || s.store_list());
    }
}

/// CPU time (ns) this process has used (`getrusage`: one syscall, exact).
fn own_cpu_ns() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (micros(usage.ru_utime) + micros(usage.ru_stime)) * 1_000
}

/// CPU time (ns) process `pid` has used: the sum over its threads of
/// `/proc/<pid>/task/*/schedstat` (exact, but reading it costs the reader; threads that exited
/// are not counted).
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
