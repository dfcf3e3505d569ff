//! Space of the sled backend: a rewrite into a fresh generation returns the space of
//! compacted history while writes, reads and a watch go on (and on its own, from the
//! maintenance thread); the quota's NOSPACE alarm refuses puts, lets deletes and compaction
//! through and clears itself; `kill -9` in the middle of rewrites, and at each step of making
//! a switch durable, loses no acknowledged write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::kv::{KvBackend, RangeRequest, TxnOutcome, WatchEvent, WatchRequest};
use apistore::Error;
use apistore_sled::{SledBackend, SledOptions, GENERATION_FILE};
use bytes::Bytes;
use futures::StreamExt;

#[path = "fixture/crash.rs"]
mod crash;

const CHILD_ENV: &str = "APISTORE_SLED_RECLAIM_CHILD_DIR";
const ROUND_ENV: &str = "APISTORE_SLED_RECLAIM_ROUND";

fn value(len: usize, tag: u64) -> Bytes {
    let mut v = format!("{tag:020}").into_bytes();
    v.resize(len, b'v');
    Bytes::from(v)
}

async fn put(kv: &SledBackend, key: &str, value: Bytes, expected: u64) -> u64 {
    match kv.put(key, value, expected, None).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        failed => panic!("put {key} failed: {failed:?}"),
    }
}

/// Options with automatic rewriting off (tests call `reclaim_now`) unless they set it.
fn manual(dir: &Path) -> SledOptions {
    SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(dir) }
}

/// `keys` keys updated `rounds` times each with 1 KiB values; returns key -> (revision, value).
async fn churn(kv: &SledBackend, prefix: &str, keys: usize, rounds: u64) -> BTreeMap<String, (u64, Bytes)> {
    let mut latest = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..keys {
            let key = format!("{prefix}{k:04}");
            let expected = latest.get(&key).map_or(0, |(r, _)| *r);
            let v = value(1024, round);
            let revision = put(kv, &key, v.clone(), expected).await;
            latest.insert(key, (revision, v));
        }
    }
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewrite_under_writes_reads_and_a_watch_returns_space_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = Arc::new(SledBackend::open(manual(dir.path())).expect("open"));
    let mut latest = churn(&kv, "/s/a/", 100, 30).await;
    let current = kv.current_revision().await.expect("current");
    kv.compact(current).await.expect("compact");
    let before = kv.space().await.expect("space");
    assert!(before.db_bytes > 3 * before.in_use_bytes, "compaction alone leaves the bytes on disk: {before:?}");

    // Writers, a reader and a watch run while the backend rewrites three times.
    let from = current + 1;
    let request = WatchRequest { start: "/s/".into(), end: "/s0".into(), start_revision: from, progress_notify: false };
    let mut watch = kv.watch(request).await.expect("watch");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let kv = kv.clone();
            let mut mine: BTreeMap<String, (u64, Bytes)> = latest
                .iter()
                .filter(|(k, _)| k.ends_with(&format!("{w}")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tokio::spawn(async move {
                for round in 0..15u64 {
                    for (key, (revision, v)) in mine.iter_mut() {
                        let next = value(1024, 1_000 + round);
                        *revision = put(&kv, key, next.clone(), *revision).await;
                        *v = next;
                    }
                }
                mine
            })
        })
        .collect();
    let reader = {
        let kv = kv.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let page = kv.range(RangeRequest::prefix("/s/a/")).await.expect("range during a rewrite");
                assert_eq!(page.count, 100, "every key is there at every revision");
                reads += 1;
                if kv.get("/s/stop", 0).await.expect("get").kv.is_some() {
                    break;
                }
            }
            reads
        })
    };
    let mut rewrites = Vec::new();
    for _ in 0..3 {
        rewrites.push(kv.reclaim_now().await.expect("rewrite").expect("a directory database rewrites"));
    }
    for writer in writers {
        latest.extend(writer.await.expect("writer"));
    }
    let stop = put(&kv, "/s/stop", Bytes::from_static(b"x"), 0).await;
    assert!(reader.await.expect("reader") > 0);

    // The watch saw every revision from `from` to the stop, in order, none twice.
    let mut next = from;
    while next <= stop {
        let event = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("no watch error across rewrites");
        assert_eq!(event.revision(), next, "events are contiguous across rewrites");
        if let WatchEvent::Put { kv: item, prev } = &event {
            if item.key.starts_with("/s/a/") {
                assert!(prev.is_some(), "the previous value survives a rewrite: {}", item.key);
            }
        }
        next += 1;
    }
    for (key, (revision, v)) in &latest {
        let got = kv.get(key, 0).await.expect("get").kv.expect("key survives");
        assert_eq!((got.mod_revision, &got.value), (*revision, v), "{key}");
    }
    let generation = rewrites.last().expect("rewrites").generation;
    assert_eq!(rewrites.iter().map(|r| r.generation).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(
        rewrites[0].after_bytes * 2 < before.db_bytes,
        "the first rewrite returned space: {:?} vs {before:?}",
        rewrites[0]
    );
    let dirs: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gen-") || n == "db" || n == "conf")
        .collect();
    assert_eq!(dirs, vec![format!("gen-{generation:06}")], "only the live generation is left");
    let (count, pause) = kv.reclaim_stats();
    assert_eq!(count, 3);
    assert!(pause < Duration::from_secs(2), "writes waited {pause:?}");

    // A restart opens the live generation with everything.
    drop(watch);
    let kv = Arc::into_inner(kv).expect("sole owner");
    drop(kv);
    let kv = SledBackend::open(manual(dir.path())).expect("reopen");
    assert!(kv.current_revision().await.expect("current") >= stop);
    assert_eq!(kv.range(RangeRequest::prefix("/s/a/")).await.expect("range").count, 100);
    let a = latest.iter().next().expect("a key");
    assert_eq!(kv.get(a.0, 0).await.expect("get").kv.expect("kept").value, a.1 .1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_rewrites_on_its_own_once_the_directory_outgrew_its_bytes_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SledOptions {
        compaction_window: 50,
        compaction_interval_ms: 100,
        reclaim_min_bytes: 256 * 1024,
        ..SledOptions::new(dir.path())
    };
    let kv = SledBackend::open(options).expect("open");
    let latest = churn(&kv, "/auto/", 20, 150).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let live: u64 = latest.iter().map(|(k, (_, v))| (k.len() + v.len()) as u64).sum();
    loop {
        let space = kv.space().await.expect("space");
        let (rewrites, _) = kv.reclaim_stats();
        if rewrites > 0 && space.db_bytes <= 3 * space.in_use_bytes.max(live) + 512 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "no rewrite brought the directory down: {space:?}, {rewrites} rewrites");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (key, (revision, v)) in &latest {
        let got = kv.get(key, 0).await.expect("get").kv.expect("kept");
        assert_eq!((got.mod_revision, &got.value), (*revision, v));
    }
    assert!(dir.path().join(GENERATION_FILE).exists(), "the pointer names the live generation");
}

/// `keys` keys of `len`-byte values updated `rounds` times by 8 concurrent writers; returns
/// the live bytes (keys plus latest values).
async fn churn_concurrently(kv: &Arc<SledBackend>, prefix: &str, keys: usize, rounds: u64, len: usize) -> u64 {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (kv, prefix) = (kv.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut revisions = vec![0; keys];
                for round in 0..rounds {
                    for k in (w..keys).step_by(8) {
                        revisions[k] = put(&kv, &format!("{prefix}{k:04}"), value(len, round), revisions[k]).await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    (0..keys).map(|k| (format!("{prefix}{k:04}").len() + len) as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_churn_the_directory_comes_within_three_times_the_live_bytes_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SledOptions { compaction_interval_ms: 200, ..SledOptions::new(dir.path()) };
    let kv = Arc::new(SledBackend::open(options).expect("open"));
    // 1.2 MB live, 24 MB written: the default limits (10,000 revisions, 5 minutes) keep it
    // all; the history budget (the bytes in use at most twice the live bytes) does not.
    let live = churn_concurrently(&kv, "/churn/", 600, 20, 2048).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let space = kv.space().await.expect("space");
        if space.db_bytes <= 3 * live && space.in_use_bytes <= 2 * live + 64 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "not within 3x the live {live} bytes: {space:?}, {:?}", kv.reclaim_stats());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // History beyond the budget is compacted (410 for a read there), the rest reads.
    let compacted = kv.compacted_revision().await.expect("compacted");
    assert!(compacted > 600, "the budget compacted: {compacted}");
    let error = kv.get("/churn/0000", compacted - 1).await.expect_err("below the compaction revision");
    assert!(matches!(error, Error::Compacted { .. }), "{error:?}");
    assert_eq!(
        kv.range(RangeRequest { revision: compacted, ..RangeRequest::prefix("/churn/") })
            .await
            .expect("at the compaction revision")
            .count,
        600
    );
    let page = kv.range(RangeRequest::prefix("/churn/")).await.expect("range");
    assert!(page.kvs.iter().all(|kv| kv.value == value(2048, 19)), "every key at its last write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_the_retention_time_is_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SledOptions {
        compaction_interval_ms: 100,
        compaction_retention_ms: 500,
        history_budget_percent: 0,
        reclaim_min_bytes: 0,
        ..SledOptions::new(dir.path())
    };
    let kv = SledBackend::open(options).expect("open");
    let first = put(&kv, "/age/a", value(16, 0), 0).await;
    let second = put(&kv, "/age/a", value(16, 1), first).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(kv.compacted_revision().await.expect("compacted") < second, "younger than the retention time");
    let deadline = Instant::now() + Duration::from_secs(10);
    while kv.compacted_revision().await.expect("compacted") < second {
        assert!(Instant::now() < deadline, "history older than 500 ms was not compacted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(kv.get("/age/a", first).await, Err(Error::Compacted { .. })));
    assert_eq!(kv.get("/age/a", 0).await.expect("get").kv.expect("a").mod_revision, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nospace_alarm_refuses_puts_lets_deletes_through_and_clears_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let quota = 3 * 1024 * 1024;
    let options = SledOptions { quota_backend_bytes: quota, compaction_window: 0, ..SledOptions::new(dir.path()) };
    let kv = SledBackend::open(options).expect("open");
    let mut written = Vec::new();
    let refused = loop {
        let key = format!("/q/{:05}", written.len());
        match kv.put(&key, value(1024, 0), 0, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => written.push((key, revision)),
            Ok(failed) => panic!("{failed:?}"),
            Err(e) => break e,
        }
        assert!(written.len() < 50_000, "the quota never refused a put");
    };
    assert!(matches!(refused, Error::NoSpace { .. }), "{refused:?}");
    assert_eq!(refused.code(), 500);
    let space = kv.space().await.expect("space");
    assert!(space.nospace() && space.db_bytes >= quota && space.quota_bytes == quota, "{space:?}");
    let revision_at_alarm = kv.current_revision().await.expect("current");
    // Refused puts changed nothing; reads go on; updates are refused too (they grow history).
    assert!(kv.get("/q/refused", 0).await.expect("get").kv.is_none());
    let (first, first_rev) = &written[0];
    assert!(kv.put(first, value(10, 1), *first_rev, None).await.expect_err("update refused").is_no_space());
    assert_eq!(kv.current_revision().await.expect("current"), revision_at_alarm);
    assert_eq!(kv.range(RangeRequest::prefix("/q/")).await.expect("range").count, written.len() as u64);
    // Deletes and compaction go on; the rewrite they allow clears the alarm by itself.
    for (key, revision) in written.iter().skip(100) {
        assert!(matches!(
            kv.delete(key, *revision).await.expect("delete under the alarm"),
            TxnOutcome::Succeeded { .. }
        ));
    }
    kv.compact(kv.current_revision().await.expect("current")).await.expect("compaction under the alarm");
    let deadline = Instant::now() + Duration::from_secs(30);
    while kv.space().await.expect("space").nospace() {
        assert!(Instant::now() < deadline, "the alarm did not clear: {:?}", kv.space().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    put(&kv, "/q/after", value(1024, 2), 0).await;
    assert_eq!(kv.range(RangeRequest::prefix("/q/")).await.expect("range").count, 101);
}

/// Keys created with a TTL while rewrites run expire all the same: the TTL entries of writes
/// that land while a rewrite copies, up to its switch, are carried into the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_written_with_a_ttl_during_rewrites_still_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = Arc::new(SledBackend::open(manual(dir.path())).expect("open"));
    churn(&kv, "/t/base/", 100, 5).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (kv, stop) = (kv.clone(), stop.clone());
            tokio::spawn(async move {
                let mut created = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("/t/ttl/{w}/{created:06}");
                    let outcome = kv.put(&key, value(256, created), 0, Some(Duration::from_secs(1))).await;
                    assert!(matches!(outcome.expect("put"), TxnOutcome::Succeeded { .. }), "{key}");
                    created += 1;
                }
                created
            })
        })
        .collect();
    for _ in 0..5 {
        kv.reclaim_now().await.expect("rewrite").expect("a directory database rewrites");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut created = 0;
    for writer in writers {
        created += writer.await.expect("writer");
    }
    assert!(created > 0, "keys were created during the rewrites");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = kv.range(RangeRequest::prefix("/t/ttl/")).await.expect("range").count;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} of {created} keys with a 1 s TTL did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kv.range(RangeRequest::prefix("/t/base/")).await.expect("range").count, 100, "no other key expired");
}

/// Child side of the crash test: writes durably from 4 tasks (printing every acknowledged
/// write) while another task rewrites the database over and over (printing each). Does
/// nothing unless started by the parent.
#[test]
fn reclaim_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let kv = Arc::new(SledBackend::open(manual(Path::new(&dir))).expect("open"));
        let rewriter = kv.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(Some(done)) = rewriter.reclaim_now().await {
                    println!("rewrote {}", done.generation);
                }
            }
        });
        // Every task updates its own key, each value tagged with its write number.
        crash::write_and_ack_forever(kv, 4, move |task, i, previous| {
            (format!("/crash/{round}/{task}"), value(512, i), previous)
        })
        .await;
    });
}

#[test]
fn sigkill_during_rewrites_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3u64 {
        let env = [(CHILD_ENV, dir.path().display().to_string()), (ROUND_ENV, round.to_string())];
        let (mut child, mut lines) = crash::spawn_child("reclaim_crash_child", &env);
        // key -> (revision, i) of its latest acknowledged write.
        let mut acked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut rewrites = 0;
        let mut acks = 0;
        // Kill at a different moment each round, always after some rewrites.
        while rewrites < 2 + round || acks < 200 * (round + 1) {
            let line = lines.next().expect("child stopped early").expect("read child output");
            if line.contains("rewrote ") {
                rewrites += 1;
            }
            if let Some((revision, key, i)) = crash::parse_ack(&line) {
                acked.insert(key, (revision, i));
                acks += 1;
            }
        }
        child.kill().expect("SIGKILL the child");
        for line in lines.map_while(Result::ok) {
            if let Some((revision, key, i)) = crash::parse_ack(&line) {
                acked.insert(key, (revision, i));
            }
        }
        let _ = child.wait();
        let max_acked = acked.values().map(|(r, _)| *r).max().expect("acks");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let kv = SledBackend::open(manual(dir.path())).expect("reopen after SIGKILL");
            for (key, (revision, i)) in &acked {
                let got = kv.get(key, 0).await.expect("get").kv;
                let got = got.unwrap_or_else(|| panic!("round {round}: acknowledged {key} at {revision} lost"));
                // The child may have been killed between a write's acknowledgement and its line.
                let written: u64 = std::str::from_utf8(&got.value[..20]).expect("utf8").parse().expect("tag");
                assert!(got.mod_revision >= *revision && written >= *i, "round {round}: {key} went back");
                assert_eq!(got.value, value(512, written), "round {round}: {key}");
            }
            let next = put(&kv, &format!("/after/{round}"), Bytes::from_static(b"x"), 0).await;
            assert!(next > max_acked, "round {round}: revision {next} reused (acknowledged up to {max_acked})");
        });
        let generations = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("gen-"))
            .count();
        assert_eq!(generations, 1, "round {round}: open removed every generation but the live one");
    }
}

const CRASH_AT_ENV: &str = "APISTORE_SLED_CRASH_AT";

/// The step the switch hook stops at (from [`CRASH_AT_ENV`]), and how often it was reached.
static CRASH_AT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static CRASH_AT_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The switch hook of [`switch_crash_child`]: at the second rewrite's step [`CRASH_AT`], says
/// so and stops there (the parent kills the process while it waits).
fn stop_at_step(step: &'static str) {
    if CRASH_AT.get().is_some_and(|at| at == step)
        && CRASH_AT_SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1
    {
        use std::io::Write;
        println!("at {step}");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Child side of the switch crash test: writes durably from 4 tasks (printing every
/// acknowledged write) while another task rewrites every 50 ms from 300 ms on (every task
/// has written by then); the second rewrite stops at
/// the step of making its switch durable named by [`CRASH_AT_ENV`]. Does nothing unless
/// started by the parent.
#[test]
fn switch_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let step = std::env::var(CRASH_AT_ENV).expect("the step to stop at");
    CRASH_AT.set(step.clone()).expect("set once");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let kv = Arc::new(SledBackend::open(manual(Path::new(&dir))).expect("open"));
        kv.set_switch_hook(stop_at_step);
        let rewriter = kv.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Ok(Some(done)) = rewriter.reclaim_now().await {
                    println!("rewrote {}", done.generation);
                }
            }
        });
        crash::write_and_ack_forever(kv, 4, move |task, i, previous| {
            (format!("/switch/{step}/{task}"), value(512, i), previous)
        })
        .await;
    });
}

/// `kill -9` at each step of making a rewrite's switch durable — the new generation live in
/// memory with writes applied to it but not yet flushed ("flushing"), its pointer renamed but
/// the directory not fsynced ("renamed"), the switch durable but the old generation not yet
/// removed ("durable") — loses no acknowledged write, reuses no revision, and reopens the
/// generation the pointer names at that step.
#[test]
fn sigkill_at_each_step_of_a_switch_loses_no_acknowledged_write() {
    for (step, live_generation) in [("flushing", 1), ("renamed", 2), ("durable", 2)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = [(CHILD_ENV, dir.path().display().to_string()), (CRASH_AT_ENV, step.to_owned())];
        let (mut child, mut lines) = crash::spawn_child("switch_crash_child", &env);
        // key -> (revision, i) of its latest acknowledged write.
        let mut acked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        loop {
            let line = lines.next().expect("child stopped early").expect("read child output");
            if line.contains(&format!("at {step}")) {
                break;
            }
            if let Some((revision, key, i)) = crash::parse_ack(&line) {
                acked.insert(key, (revision, i));
            }
        }
        child.kill().expect("SIGKILL the child");
        for line in lines.map_while(Result::ok) {
            if let Some((revision, key, i)) = crash::parse_ack(&line) {
                acked.insert(key, (revision, i));
            }
        }
        let _ = child.wait();
        assert!(acked.len() == 4, "{step}: every task wrote before the second rewrite: {acked:?}");
        let pointer = std::fs::read_to_string(dir.path().join(GENERATION_FILE)).expect("pointer");
        assert_eq!(pointer.trim(), format!("gen-{live_generation:06}"), "{step}: the pointer at the kill");
        let max_acked = acked.values().map(|(r, _)| *r).max().expect("acks");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let kv = SledBackend::open(manual(dir.path())).expect("reopen after SIGKILL");
            for (key, (revision, i)) in &acked {
                let got = kv.get(key, 0).await.expect("get").kv;
                let got = got.unwrap_or_else(|| panic!("{step}: acknowledged {key} at {revision} lost"));
                // The child may have been killed between a write's acknowledgement and its line.
                let written: u64 = std::str::from_utf8(&got.value[..20]).expect("utf8").parse().expect("tag");
                assert!(got.mod_revision >= *revision && written >= *i, "{step}: {key} went back");
                assert_eq!(got.value, value(512, written), "{step}: {key}");
            }
            let next = put(&kv, &format!("/after/{step}"), Bytes::from_static(b"x"), 0).await;
            assert!(next > max_acked, "{step}: revision {next} reused (acknowledged up to {max_acked})");
        });
        let generations: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("gen-"))
            .collect();
        assert_eq!(generations, vec![format!("gen-{live_generation:06}")], "{step}: open kept only the live one");
    }
}
