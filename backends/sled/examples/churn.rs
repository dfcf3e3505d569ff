//! The churn of issue 11 against the sled backend: `--objects` live keys of `--value-bytes`
//! each, every one written `--writes` times (a create and updates) by `--writers` concurrent
//! writers, durable mode. Reports the data directory's size against the live bytes (keys
//! plus latest values) and the bytes in use, right after the churn and then every second
//! until it is within `--target` times the live bytes (or `--settle-secs` passed), the
//! longest single write, and the same churn with rewriting disabled (the comparison, same
//! run; `--comparison 0` skips it).
//!
//! ```text
//! cargo run --release -p apistore-sled --example churn -- --objects 2000 --writes 51
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::kv::{KvBackend, TxnOutcome};
use apistore_sled::{SledBackend, SledOptions};
use bytes::Bytes;

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
            other => panic!("unknown flag {other}"),
        }
    }
    args
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
    let value = Bytes::from(vec![b'x'; args.value_bytes]);
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let (kv, value, objects, writes, writers) =
            (kv.clone(), value.clone(), args.objects, args.writes, args.writers);
        tasks.push(tokio::spawn(async move {
            let mut longest = Duration::ZERO;
            let mut revisions = vec![0u64; objects];
            for _round in 0..writes {
                for object in (writer..objects).step_by(writers) {
                    let key = format!("/registry/configmaps/default/cm-{object:05}");
                    let started = Instant::now();
                    match kv.put(&key, value.clone(), revisions[object], None).await.expect("put") {
                        TxnOutcome::Succeeded { revision } => revisions[object] = revision,
                        failed => panic!("{key}: {failed:?}"),
                    }
                    longest = longest.max(started.elapsed());
                }
            }
            longest
        }));
    }
    let mut longest = Duration::ZERO;
    for task in tasks {
        longest = longest.max(task.await.expect("writer"));
    }
    let live: u64 = (0..args.objects)
        .map(|o| (format!("/registry/configmaps/default/cm-{o:05}").len() + args.value_bytes) as u64)
        .sum();
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
    let (_, pause) = kv.reclaim_stats();
    let rewrites = kv.reclaim_stats().0;
    let mut pauses = kv.rewrite_pauses();
    pauses.sort();
    let median = pauses.get(pauses.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "  rewrites {rewrites}, writer pause of a rewrite: median {:.1} ms, longest {:.1} ms",
        median.as_secs_f64() * 1e3,
        pause.as_secs_f64() * 1e3
    );
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
