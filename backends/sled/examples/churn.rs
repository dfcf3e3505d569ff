//! The churn of issue 11 against the sled backend: `--objects` live keys of `--value-bytes`
//! each, every one written `--writes` times (a create and updates) by `--writers` concurrent
//! writers, durable mode. Reports the data directory's size against the live bytes (keys
//! plus latest values) and the bytes in use, right after the churn and then every second
//! until it is within `--target` times the live bytes (or `--settle-secs` passed), the
//! longest single write, and the same churn with rewriting disabled (the comparison, same
//! run; `--comparison 0` skips it).
//!
//! The writer pause (rewrite on): the distribution (median, p99, max) of the rewrites' writer
//! pauses (how long writes could not be applied), what ran during the longest one step by step
//! and each step's spread, for the rewrites maintenance made during the churn, then for
//! `--pause-rewrites` rewrites run back to back while the writers go on updating the same
//! objects (`--pause-rewrites 0` skips that phase), with, as the yardstick on the same disk at
//! the same time, the latency of every durable write of that phase and of the writes in flight
//! when a pause ended (their acknowledgement also waits for the switch to be durable); last,
//! every rewrite's pause in microseconds (for pooling several runs).
//!
//! ```text
//! cargo run --release -p apistore-sled --example churn -- --objects 2000 --writes 51
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::kv::{KvBackend, TxnOutcome};
use apistore_sled::{Reclaimed, SledBackend, SledOptions};
use bytes::Bytes;

#[derive(Clone, Copy)]
struct Args {
    objects: usize,
    writes: usize,
    writers: usize,
    value_bytes: usize,
    window: u64,
    interval_ms: u64,
    settle_secs: u64,
    target: f64,
    comparison: bool,
    pause_rewrites: usize,
}

fn parse() -> Args {
    let mut args = Args {
        objects: 2_000,
        writes: 51,
        writers: 8,
        value_bytes: 1_024,
        window: apistore_sled::DEFAULT_COMPACTION_WINDOW,
        interval_ms: apistore_sled::DEFAULT_COMPACTION_INTERVAL_MS,
        settle_secs: 60,
        target: 3.0,
        comparison: true,
        pause_rewrites: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || value.parse::<u64>().unwrap_or_else(|_| panic!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--objects" => args.objects = number() as usize,
            "--writes" => args.writes = number() as usize,
            "--writers" => args.writers = number() as usize,
            "--value-bytes" => args.value_bytes = number() as usize,
            "--compaction-window" => args.window = number(),
            "--compaction-interval-ms" => args.interval_ms = number(),
            "--settle-secs" => args.settle_secs = number(),
            "--target" => args.target = value.parse().expect("--target: a number"),
            "--comparison" => args.comparison = number() != 0,
            "--pause-rewrites" => args.pause_rewrites = number() as usize,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// The key of object `object`.
fn key_of(object: usize) -> String {
    format!("/registry/configmaps/default/cm-{object:05}")
}

/// One durable write's (start, latency).
type Timed = (Instant, Duration);

/// `writers` tasks updating the objects (each its own share, `revisions` their latest
/// revisions) `rounds` times, or until `stop` is set when `rounds` is 0. Returns every write's
/// (start, latency) and the objects' latest revisions.
async fn write_rounds(
    kv: &Arc<SledBackend>,
    args: &Args,
    revisions: Vec<u64>,
    rounds: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<Timed>, Vec<u64>) {
    let value = Bytes::from(vec![b'x'; args.value_bytes]);
    let revisions = Arc::new(revisions);
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let (kv, value, objects, writers, stop, revisions) =
            (kv.clone(), value.clone(), args.objects, args.writers, stop.clone(), revisions.clone());
        tasks.push(tokio::spawn(async move {
            let mut timed = Vec::new();
            let mut mine: Vec<(usize, u64)> = (writer..objects).step_by(writers).map(|o| (o, revisions[o])).collect();
            let mut round = 0;
            while (rounds == 0 && !stop.load(Ordering::SeqCst)) || (rounds > 0 && round < rounds) {
                for (object, revision) in mine.iter_mut() {
                    let key = key_of(*object);
                    let started = Instant::now();
                    match kv.put(&key, value.clone(), *revision, None).await.expect("put") {
                        TxnOutcome::Succeeded { revision: new } => *revision = new,
                        failed => panic!("{key}: {failed:?}"),
                    }
                    timed.push((started, started.elapsed()));
                    if rounds == 0 && stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                round += 1;
            }
            (timed, mine)
        }));
    }
    let mut timed = Vec::new();
    let mut revisions = (*revisions).clone();
    for task in tasks {
        let (mut t, mine) = task.await.expect("writer");
        timed.append(&mut t);
        for (object, revision) in mine {
            revisions[object] = revision;
        }
    }
    (timed, revisions)
}

/// (median, p99, max) of `durations`, milliseconds.
fn spread(mut durations: Vec<Duration>) -> (f64, f64, f64) {
    if durations.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    durations.sort();
    let at = |q: f64| durations[((durations.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

/// "median X ms, p99 Y ms, max Z ms (n N)".
fn show(durations: Vec<Duration>) -> String {
    let n = durations.len();
    let (median, p99, max) = spread(durations);
    format!("median {median:.2} ms, p99 {p99:.2} ms, max {max:.2} ms (n {n})")
}

/// The writer-pause phase: writers go on while `args.pause_rewrites` rewrites run back to back.
async fn pause_phase(kv: &Arc<SledBackend>, args: &Args, revisions: Vec<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let writing = {
        let (kv, stop) = (kv.clone(), stop.clone());
        let args = *args;
        tokio::spawn(async move { write_rounds(&kv, &args, revisions, 0, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rewrites = Vec::new();
    for _ in 0..args.pause_rewrites {
        rewrites.push(kv.reclaim_now().await.expect("rewrite").expect("rewrote"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (timed, _) = writing.await.expect("writers");
    let in_flight: Vec<Duration> = timed
        .iter()
        .filter(|(start, took)| rewrites.iter().any(|r| *start <= r.resumed_at && r.resumed_at <= *start + *took))
        .map(|(_, took)| *took)
        .collect();
    println!("  durable write latency in the same phase: {}", show(timed.iter().map(|(_, t)| *t).collect()));
    println!("  writes in flight when a pause ended: {}", show(in_flight));
    report_rewrites("the pause phase's", &rewrites);
}

/// Prints the writer pauses of `rewrites` (median, p99, max), what ran during the longest one
/// step by step, and each step's spread.
fn report_rewrites(label: &str, rewrites: &[Reclaimed]) {
    println!(
        "  writer pause of {label} {} rewrites: {}",
        rewrites.len(),
        show(rewrites.iter().map(|r| r.pause).collect())
    );
    let Some(longest) = rewrites.iter().max_by_key(|r| r.pause) else { return };
    let steps = |steps: &[(&str, Duration)]| {
        steps.iter().map(|(name, t)| format!("{name} {:.2} ms", t.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ")
    };
    println!("    the longest, {:.2} ms: {}", longest.pause.as_secs_f64() * 1e3, steps(&longest.under_lock));
    let commit = if longest.commit.is_empty() {
        "(made durable by a concurrent flush first)".to_owned()
    } else {
        steps(&longest.commit)
    };
    println!("      then, writes applied, acknowledgements waiting: {commit}");
    let mut names: Vec<&str> = Vec::new();
    for r in rewrites {
        for (name, _) in r.under_lock.iter().chain(&r.commit) {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    for name in names {
        let times = rewrites
            .iter()
            .flat_map(|r| r.under_lock.iter().chain(&r.commit).filter(|(n, _)| *n == name).map(|(_, t)| *t))
            .collect();
        println!("    step {name}: {}", show(times));
    }
}

/// One churn; returns (dir bytes after the churn, after settling, live bytes, in use, seconds
/// to reach the target, longest write).
async fn churn(args: &Args, reclaim: bool) -> (u64, u64, u64, u64, Option<f64>, Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SledOptions {
        compaction_window: args.window,
        compaction_interval_ms: args.interval_ms,
        reclaim_min_bytes: if reclaim { apistore_sled::DEFAULT_RECLAIM_MIN_BYTES } else { 0 },
        ..SledOptions::new(dir.path())
    };
    let kv = Arc::new(SledBackend::open(options).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let (timed, revisions) = write_rounds(&kv, args, vec![0; args.objects], args.writes, stop).await;
    let longest = timed.iter().map(|(_, t)| *t).max().unwrap_or_default();
    println!("  durable write latency during the churn: {}", show(timed.into_iter().map(|(_, t)| t).collect()));
    let live: u64 = (0..args.objects).map(|o| (key_of(o).len() + args.value_bytes) as u64).sum();
    let after_churn = kv.space().await.expect("space").db_bytes;
    let started = Instant::now();
    let mut reached = None;
    let mut space = kv.space().await.expect("space");
    while started.elapsed() < Duration::from_secs(args.settle_secs) {
        space = kv.space().await.expect("space");
        if reached.is_none() && space.db_bytes as f64 <= args.target * live as f64 {
            reached = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if reclaim {
        let forced = kv.reclaim_now().await.expect("rewrite").expect("rewrote");
        eprintln!(
            "  a forced rewrite now: {:.2} MB -> {:.2} MB ({} entries, pause {:.1} ms)",
            forced.before_bytes as f64 / 1e6,
            forced.after_bytes as f64 / 1e6,
            forced.entries,
            forced.pause.as_secs_f64() * 1e3
        );
    }
    eprintln!("  files: {}", files(dir.path(), dir.path()).join(", "));
    let rewrites = kv.reclaim_stats().0;
    if reclaim {
        report_rewrites("the churn's", &kv.rewrite_log());
    }
    if reclaim && args.pause_rewrites > 0 {
        pause_phase(&kv, args, revisions).await;
        let log = kv.rewrite_log();
        let pauses: Vec<String> = log.iter().map(|r| r.pause.as_micros().to_string()).collect();
        println!("  every rewrite's writer pause, us: {}", pauses.join(" "));
    }
    (after_churn, space.db_bytes, live, space.in_use_bytes, reached, longest, rewrites)
}

/// `path size` of every file under `dir`, relative to `root`.
fn files(root: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            out.extend(files(root, &entry.path()));
        } else {
            let name = entry.path().strip_prefix(root).map(|p| p.display().to_string()).unwrap_or_default();
            out.push(format!("{name} {}", meta.len()));
        }
    }
    out.sort();
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args = parse();
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "churn: {} objects x {} writes of {} B, {} writers, compaction window {} revisions every {} ms",
        args.objects, args.writes, args.value_bytes, args.writers, args.window, args.interval_ms
    );
    let sides: &[(&str, bool)] = if args.comparison {
        &[("rewrite on (default)", true), ("rewrite off (comparison)", false)]
    } else {
        &[("rewrite on (default)", true)]
    };
    for &(label, reclaim) in sides {
        let started = Instant::now();
        let (after_churn, settled, live, in_use, reached, longest, _) = churn(&args, reclaim).await;
        println!(
            "{label}: churn {:.1} s; dir {:.1} MB after the churn, {:.1} MB after settling = {:.1}x live ({:.2} MB), \
             {:.1}x in use ({:.2} MB); {}x-live reached after {}; longest write {:.1} ms",
            started.elapsed().as_secs_f64(),
            mb(after_churn),
            mb(settled),
            settled as f64 / live as f64,
            mb(live),
            settled as f64 / in_use.max(1) as f64,
            mb(in_use),
            args.target,
            reached.map_or("never (within the settle time)".to_owned(), |s| format!("{s:.0} s")),
            longest.as_secs_f64() * 1e3,
        );
    }
}
