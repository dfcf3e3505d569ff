//! Backup, restore and status (`apistore::ops`) on real backends: sled in a temporary
//! directory and the memory plugin.

use std::io::{BufRead, Cursor};
use std::sync::Arc;
use std::time::Duration;

use apistore::kv::{BatchWrite, KvBackend, RangeRequest, TxnOutcome};
use apistore::ops;
use apistore::registry::{self, BackendConfig};
use apistore::Error;
use bytes::Bytes;

async fn sled(dir: &tempfile::TempDir, name: &str) -> Arc<dyn KvBackend> {
    apistore_sled::register();
    let config = BackendConfig::new("sled").with_option("path", dir.path().join(name).display().to_string());
    registry::open(&config).await.expect("open sled")
}

fn memory() -> Arc<dyn KvBackend> {
    Arc::new(apistore_memory::MemoryBackend::new())
}

async fn put(backend: &dyn KvBackend, key: &str, value: &str) -> u64 {
    let current = backend.get(key, 0).await.expect("get").kv.map(|kv| kv.mod_revision).unwrap_or(0);
    match backend.put(key, Bytes::from(value.to_owned()), current, None).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        TxnOutcome::Failed { .. } => panic!("put {key} lost a race"),
    }
}

/// 1,200 configmaps (three chunks) and 30 crontabs, some updated, some deleted.
async fn seed(backend: &dyn KvBackend) {
    for i in 0..1200 {
        put(backend, &format!("/registry/configmaps/default/cm-{i:04}"), &format!("{{\"n\":{i}}}")).await;
    }
    for i in 0..30 {
        put(backend, &format!("/registry/stable.example.com/crontabs/default/ct-{i}"), "{}").await;
    }
    for i in 0..50 {
        put(backend, &format!("/registry/configmaps/default/cm-{i:04}"), "{\"updated\":true}").await;
    }
    for i in 50..60 {
        let key = format!("/registry/configmaps/default/cm-{i:04}");
        let rev = backend.get(&key, 0).await.expect("get").kv.expect("present").mod_revision;
        backend.delete(&key, rev).await.expect("delete");
    }
}

async fn all(backend: &dyn KvBackend, revision: u64) -> Vec<(String, Bytes)> {
    let request = RangeRequest { revision, ..RangeRequest::prefix("/registry/") };
    backend.range(request).await.expect("range").kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

async fn take_backup(backend: &dyn KvBackend, resources: Option<&[String]>) -> (Vec<u8>, ops::BackupSummary) {
    let mut out = Vec::new();
    let summary = ops::backup(backend, "/registry", resources, &mut out, &mut |_, _| {}).await.expect("backup");
    (out, summary)
}

async fn restore_from(backend: &dyn KvBackend, data: &[u8]) -> apistore::Result<ops::RestoreSummary> {
    let data = data.to_vec();
    let mut open = move || Ok(Box::new(Cursor::new(data.clone())) as Box<dyn BufRead + Send>);
    ops::restore(backend, &mut open, &mut |_, _| {}).await
}

async fn round_trip(source: Arc<dyn KvBackend>, target: Arc<dyn KvBackend>) {
    seed(source.as_ref()).await;
    let (data, summary) = take_backup(source.as_ref(), None).await;
    assert_eq!(summary.trailer.keys, 1190 + 30);
    assert_eq!(summary.trailer.chunks, 3, "1,220 keys in chunks of 500: {summary:?}");
    let restored = restore_from(target.as_ref(), &data).await.expect("restore");
    assert_eq!(restored.keys, 1220);
    assert!(restored.revision > summary.revision, "{restored:?} vs {summary:?}");
    assert_eq!(all(target.as_ref(), 0).await, all(source.as_ref(), summary.revision).await);
    // Every restored key is newer than the backup's revision.
    let kvs = target.range(RangeRequest::prefix("/registry/")).await.expect("range").kvs;
    assert!(kvs.iter().all(|kv| kv.mod_revision > summary.revision));
    // A resourceVersion from before the restore is 410, never a silently different state.
    let old = target.range(RangeRequest { revision: summary.revision, ..RangeRequest::prefix("/registry/") }).await;
    assert!(matches!(old, Err(Error::Compacted { .. })), "{old:?}");
    let status = ops::status(target.as_ref(), "/registry").await.expect("status");
    assert_eq!(status.resources["configmaps"].objects, 1190);
    assert_eq!(status.resources["stable.example.com/crontabs"].objects, 30);
    assert_eq!(status.compacted, restored.compacted);
    // The scratch keys that raised the revision are gone.
    assert_eq!(status.total().objects, 1220);
}

#[tokio::test]
async fn sled_backup_restores_into_sled_above_the_backup_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trip(sled(&dir, "source").await, sled(&dir, "target").await).await;
}

#[tokio::test]
async fn memory_backup_restores_into_sled() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trip(memory(), sled(&dir, "target").await).await;
}

#[tokio::test]
async fn a_backup_is_consistent_at_one_revision_while_writes_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    seed(source.as_ref()).await;
    let writer = {
        let source = source.clone();
        tokio::spawn(async move {
            for round in 0..400 {
                put(source.as_ref(), &format!("/registry/configmaps/default/cm-{:04}", round % 1200), "{\"racing\":1}")
                    .await;
            }
        })
    };
    let (data, summary) = take_backup(source.as_ref(), None).await;
    writer.await.expect("writer");
    let target = sled(&dir, "target").await;
    restore_from(target.as_ref(), &data).await.expect("restore");
    assert_eq!(all(target.as_ref(), 0).await, all(source.as_ref(), summary.revision).await);
}

#[tokio::test]
async fn corrupt_or_truncated_backups_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    seed(source.as_ref()).await;
    let (data, _) = take_backup(source.as_ref(), None).await;
    let target = sled(&dir, "target").await;
    let before = target.current_revision().await.expect("revision");
    let text = String::from_utf8(data.clone()).expect("text");
    let corrupt = text.replacen("cm-0100", "cm-0101", 1);
    let e = restore_from(target.as_ref(), corrupt.as_bytes()).await.expect_err("corrupt");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    let lines: Vec<&str> = text.lines().collect();
    let truncated = lines[..lines.len() - 1].join("\n");
    let e = restore_from(target.as_ref(), truncated.as_bytes()).await.expect_err("truncated");
    assert!(e.to_string().contains("truncated"), "{e}");
    let no_chunk = [&lines[..2], &lines[3..]].concat().join("\n");
    let e = restore_from(target.as_ref(), no_chunk.as_bytes()).await.expect_err("missing chunk");
    assert!(e.to_string().contains("trailer counts"), "{e}");
    let e = restore_from(target.as_ref(), b"hello\n").await.expect_err("not a backup");
    assert!(e.to_string().contains("not an apistore backup"), "{e}");
    assert_eq!(target.current_revision().await.expect("revision"), before, "nothing written");
    assert!(all(target.as_ref(), 0).await.is_empty());
}

#[tokio::test]
async fn restore_refuses_a_backend_that_is_not_empty_and_subsets_restore_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    seed(source.as_ref()).await;
    let only = vec!["stable.example.com/crontabs".to_owned()];
    let (data, summary) = take_backup(source.as_ref(), Some(&only)).await;
    assert_eq!(summary.trailer.keys, 30);
    let target = sled(&dir, "target").await;
    restore_from(target.as_ref(), &data).await.expect("restore");
    let keys = all(target.as_ref(), 0).await;
    assert_eq!(keys.len(), 30);
    assert!(keys.iter().all(|(k, _)| k.starts_with("/registry/stable.example.com/crontabs/")));
    let e = restore_from(target.as_ref(), &data).await.expect_err("not empty");
    assert!(e.to_string().contains("not empty"), "{e}");
}

/// Four writers update and delete keys of the source through a write gate (as the API server
/// does) while the migration copies, follows and verifies; the cutover holds the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_sled_to_memory_while_four_writers_go_on() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    seed(source.as_ref()).await;
    let target = memory();
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (source, gate, stop) = (source.clone(), gate.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            // The last acknowledged state of each key this writer owns (None: deleted).
            let mut last: HashMap<String, Option<String>> = HashMap::new();
            let mut round = 0u64;
            loop {
                let _open = gate.read().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("/registry/configmaps/w{w}/cm-{}", round % 40);
                let current = source.get(&key, 0).await.expect("get").kv;
                if round % 7 == 6 {
                    if let Some(kv) = current {
                        if let TxnOutcome::Succeeded { .. } =
                            source.delete(&key, kv.mod_revision).await.expect("delete")
                        {
                            last.insert(key, None);
                        }
                    }
                } else {
                    let value = format!("{{\"w\":{w},\"round\":{round}}}");
                    let expected = current.map(|kv| kv.mod_revision).unwrap_or(0);
                    if let TxnOutcome::Succeeded { .. } =
                        source.put(&key, Bytes::from(value.clone()), expected, None).await.expect("put")
                    {
                        last.insert(key, Some(value));
                    }
                }
                round += 1;
            }
            last
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = source.get("/registry/configmaps/default/cm-0000", 0).await.expect("get").kv.expect("seeded");
    let options = ops::MigrateOptions::everything("/registry");
    let mut migration =
        ops::Migration::start(source.clone(), target.clone(), options, &mut |_| {}).await.expect("start");
    assert!(migration.copied().0 >= 1220, "{migration:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let verification = migration.verify().await.expect("verify");
    assert_eq!(verification.differences, 0, "{verification:?}");
    assert!(verification.keys >= 1220);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let pause = std::time::Instant::now();
    let closed = gate.write().await;
    let summary = migration.finish().await.expect("cutover");
    // The writers stop at the gate: what they wrote is what was migrated.
    stop.store(true, Ordering::Relaxed);
    drop(closed);
    let pause = pause.elapsed();
    let mut acknowledged = HashMap::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(summary.followed > 0, "the writers wrote during the migration: {summary:?}");
    assert_eq!(summary.tail_verification.differences, 0, "{summary:?}");
    assert!(pause < std::time::Duration::from_secs(3), "writes waited {pause:?}");
    // Nothing acknowledged is lost.
    assert_eq!(source.current_revision().await.expect("revision"), summary.source_revision);
    for (key, value) in &acknowledged {
        let at_source = source.get(key, summary.source_revision).await.expect("get").kv;
        let at_target = target.get(key, 0).await.expect("get").kv;
        assert_eq!(at_target.as_ref().map(|kv| &kv.value), at_source.as_ref().map(|kv| &kv.value), "{key}");
        assert_eq!(at_target.map(|kv| kv.value), value.clone().map(Bytes::from), "{key}");
    }
    assert_eq!(all(target.as_ref(), 0).await, all(source.as_ref(), summary.source_revision).await);
    // The revision guarantee: above the source's final revision, everything older compacted,
    // an old mod revision never matches a precondition.
    assert!(summary.cutover_revision > summary.source_revision, "{summary:?}");
    assert_eq!(target.compacted_revision().await.expect("compacted"), summary.cutover_revision);
    let old = target.range(RangeRequest { revision: before.mod_revision, ..RangeRequest::prefix("/registry/") }).await;
    assert!(matches!(old, Err(Error::Compacted { .. })), "{old:?}");
    let kvs = target.range(RangeRequest::prefix("/registry/")).await.expect("range").kvs;
    assert!(kvs.iter().all(|kv| kv.mod_revision > before.mod_revision));
    let stale = target.put(&before.key, Bytes::from_static(b"{}"), before.mod_revision, None).await.expect("put");
    assert!(matches!(stale, TxnOutcome::Failed { .. }), "{stale:?}");
}

#[tokio::test]
async fn migrate_one_resource_and_refuse_a_target_that_is_not_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    seed(source.as_ref()).await;
    let target = memory();
    let only = ops::MigrateOptions {
        prefix: "/registry".into(),
        resources: Some(vec!["stable.example.com/crontabs".into()]),
        exclude: Vec::new(),
    };
    let mut migration =
        ops::Migration::start(source.clone(), target.clone(), only.clone(), &mut |_| {}).await.expect("start");
    assert_eq!(migration.copied().0, 30);
    // A change of the migrated resource and one of another resource after R.
    put(source.as_ref(), "/registry/stable.example.com/crontabs/default/ct-new", "{\"new\":1}").await;
    put(source.as_ref(), "/registry/configmaps/default/cm-0001", "{\"not migrated\":1}").await;
    assert_eq!(migration.verify().await.expect("verify").differences, 0);
    let summary = migration.finish().await.expect("cutover");
    assert_eq!(summary.followed, 1, "{summary:?}");
    let keys = all(target.as_ref(), 0).await;
    assert_eq!(keys.len(), 31);
    assert!(keys.iter().all(|(k, _)| k.starts_with("/registry/stable.example.com/crontabs/")));
    assert!(summary.cutover_revision > summary.source_revision);
    let again = ops::Migration::start(source.clone(), target.clone(), only, &mut |_| {}).await;
    assert!(matches!(&again, Err(e) if e.to_string().contains("not empty")), "{again:?}");
}

/// `KvBackend::write_batch`'s default (sled and the memory plugin have no multi-key
/// transaction): the writes in order, each at its own revision, stopping at the first failed
/// comparison (the writes before it stay).
#[tokio::test]
async fn the_default_write_batch_applies_in_order_and_stops_at_a_failed_comparison() {
    let dir = tempfile::tempdir().expect("tempdir");
    for backend in [sled(&dir, "batch").await, memory()] {
        let write = |key: &str, expected: u64, text: Option<&str>| BatchWrite {
            key: key.to_owned(),
            expected_mod_revision: expected,
            value: text.map(|t| Bytes::from(t.to_owned())),
            ttl: None,
        };
        let a = put(backend.as_ref(), "/registry/configmaps/default/a", "a1").await;
        let writes = vec![
            write("/registry/configmaps/default/a", a, None),
            write("/registry/configmaps/default/b", 0, Some("b1")),
        ];
        let revisions = backend.write_batch(writes).await.expect("batch").expect("the comparisons hold");
        assert_eq!(revisions, vec![a + 1, a + 2], "{}", backend.backend_name());
        let stale = vec![
            write("/registry/configmaps/default/c", 0, Some("c1")),
            write("/registry/configmaps/default/b", a + 1, Some("b2")),
            write("/registry/configmaps/default/d", 0, Some("d1")),
        ];
        assert_eq!(backend.write_batch(stale).await.expect("batch"), None);
        let keys: Vec<String> = all(backend.as_ref(), 0).await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["/registry/configmaps/default/b", "/registry/configmaps/default/c"]);
        let delete_absent = vec![write("/registry/configmaps/default/x", 0, None)];
        assert_eq!(backend.write_batch(delete_absent).await.expect_err("a delete expecting 0").code(), 422);
    }
}

async fn put_ttl(backend: &dyn KvBackend, key: &str, value: &str, ttl: Duration) -> u64 {
    let current = backend.get(key, 0).await.expect("get").kv.map(|kv| kv.mod_revision).unwrap_or(0);
    match backend.put(key, Bytes::from(value.to_owned()), current, Some(ttl)).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        TxnOutcome::Failed { .. } => panic!("put {key} lost a race"),
    }
}

/// key → time left, of every key with a TTL under /registry/.
async fn ttls(backend: &dyn KvBackend) -> Vec<(String, Duration)> {
    let expiries = backend.expiries("/registry/", &apistore::kv::prefix_end("/registry/")).await.expect("expiries");
    expiries.into_iter().map(|e| (e.key, e.remaining)).collect()
}

const HOUR: Duration = Duration::from_secs(3600);

fn about_an_hour(left: Duration) -> bool {
    left <= HOUR && left > HOUR - Duration::from_secs(60)
}

#[tokio::test]
async fn ttls_are_carried_by_backup_and_restore() {
    let source = memory();
    put(source.as_ref(), "/registry/configmaps/default/plain", "{}").await;
    put_ttl(source.as_ref(), "/registry/events/default/e-long", "{\"e\":1}", HOUR).await;
    put_ttl(source.as_ref(), "/registry/events/default/e-short", "{\"e\":2}", Duration::from_secs(2)).await;
    let (data, _) = take_backup(source.as_ref(), None).await;
    let text = String::from_utf8(data.clone()).expect("text");
    assert_eq!(text.matches("\"t\":").count(), 2, "a TTL on the two keys that have one: {text}");
    // Into the memory plugin: the TTLs are there again (counted from the restore).
    let restored = memory();
    restore_from(restored.as_ref(), &data).await.expect("restore");
    let got = ttls(restored.as_ref()).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].0.ends_with("e-long") && about_an_hour(got[0].1), "{got:?}");
    assert!(got[1].0.ends_with("e-short") && got[1].1 <= Duration::from_secs(2), "{got:?}");
    // Into sled: the short one expires there, the others stay.
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = sled(&dir, "restored").await;
    restore_from(sled.as_ref(), &data).await.expect("restore into sled");
    assert_eq!(all(sled.as_ref(), 0).await.len(), 3);
    let on_sled = ttls(sled.as_ref()).await;
    assert_eq!(on_sled.len(), 2, "sled reports both TTLs: {on_sled:?}");
    assert!(on_sled[0].0.ends_with("e-long") && about_an_hour(on_sled[0].1), "{on_sled:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sled.get("/registry/events/default/e-short", 0).await.expect("get").kv.is_some() {
        assert!(std::time::Instant::now() < deadline, "the restored TTL never expired on sled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<String> = all(sled.as_ref(), 0).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["/registry/configmaps/default/plain", "/registry/events/default/e-long"]);
    // A backup of sled carries the TTL that is left.
    let (from_sled, _) = take_backup(sled.as_ref(), None).await;
    let text = String::from_utf8(from_sled).expect("text");
    assert_eq!(text.matches("\"t\":").count(), 1, "the remaining TTL in a backup of sled: {text}");
}

#[tokio::test]
async fn ttls_are_carried_by_migrate_in_the_copy_and_the_follower() {
    let source = memory();
    put(source.as_ref(), "/registry/configmaps/default/plain", "{}").await;
    put_ttl(source.as_ref(), "/registry/events/default/copied", "{\"e\":1}", HOUR).await;
    let target = memory();
    let options = ops::MigrateOptions::everything("/registry");
    let mut migration =
        ops::Migration::start(source.clone(), target.clone(), options, &mut |_| {}).await.expect("start");
    // After R: a new key with a TTL, a TTL'd key rewritten without one, a plain key given one.
    put_ttl(source.as_ref(), "/registry/events/default/followed", "{\"e\":2}", HOUR).await;
    put(source.as_ref(), "/registry/events/default/copied", "{\"e\":3}").await;
    put_ttl(source.as_ref(), "/registry/configmaps/default/plain", "{\"now\":\"ttl\"}", HOUR).await;
    assert_eq!(migration.verify().await.expect("verify").differences, 0);
    migration.finish().await.expect("cutover");
    let got = ttls(target.as_ref()).await;
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["/registry/configmaps/default/plain", "/registry/events/default/followed"], "{got:?}");
    assert!(got.iter().all(|(_, left)| about_an_hour(*left)), "{got:?}");
    assert_eq!(all(target.as_ref(), 0).await, all(source.as_ref(), 0).await);
    // The copy carried the TTL too: a migration started now sees it at R.
    let again = memory();
    let options = ops::MigrateOptions::everything("/registry");
    let migration = ops::Migration::start(source.clone(), again.clone(), options, &mut |_| {}).await.expect("start");
    migration.abort();
    let copied = ttls(again.as_ref()).await;
    assert_eq!(copied.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), keys, "{copied:?}");
}

/// A TTL expiry is a write the backend makes by itself, outside any gate a server holds
/// during the cutover: when it lands on the source after the cutover's final revision S, the
/// migration does not apply it, and the target's copy (which carries the time left) expires
/// on its own — the key ends deleted on both sides, never resurrected on the target.
#[tokio::test]
async fn a_ttl_expiring_on_the_source_after_the_cutover_expires_on_the_target_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    put(source.as_ref(), "/registry/configmaps/default/plain", "{}").await;
    let ttl = Duration::from_millis(1500);
    put_ttl(source.as_ref(), "/registry/events/default/soon", "{\"e\":1}", ttl).await;
    let target = memory();
    let mut migration = ops::Migration::start(
        source.clone(),
        target.clone(),
        ops::MigrateOptions::everything("/registry"),
        &mut |_| {},
    )
    .await
    .expect("start");
    assert_eq!(migration.verify().await.expect("verify").differences, 0);
    let summary = migration.finish().await.expect("cutover");
    // The cutover was before the expiry: the target holds the key, with (at most) its TTL.
    let left = ttls(target.as_ref()).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].0.ends_with("/soon") && left[0].1 <= ttl, "{left:?}");
    let deadline = std::time::Instant::now() + ttl + Duration::from_secs(3);
    let (mut on_source, mut on_target) = (true, true);
    while (on_source || on_target) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        on_source = source.get("/registry/events/default/soon", 0).await.expect("get").kv.is_some();
        on_target = target.get("/registry/events/default/soon", 0).await.expect("get").kv.is_some();
    }
    assert!(!on_source && !on_target, "expired: source {}, target {}", !on_source, !on_target);
    // The source's expiry came after S (the migration never saw it) ...
    assert!(source.current_revision().await.expect("revision") > summary.source_revision);
    // ... and the target's own expiry is the only write after the cutover: nothing else moved.
    assert_eq!(all(target.as_ref(), 0).await, all(source.as_ref(), 0).await);
}

/// TTLs running out on both sides during a migration: the target (the memory plugin, exact
/// deadlines) expires its copies by itself, mostly before sled's sweeper (every 100 ms)
/// expires the source's and the follower brings that delete. Neither the follower nor a
/// verification takes the target's own expiry for a foreign write: the migration verifies
/// with zero differences, cuts over, and no expired key is left on either side.
#[tokio::test]
async fn ttls_running_out_on_both_sides_during_a_migration_neither_fail_nor_differ() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = sled(&dir, "source").await;
    for i in 0..20 {
        put(source.as_ref(), &format!("/registry/configmaps/default/plain-{i}"), "{}").await;
    }
    const EXPIRING: u64 = 40;
    for i in 0..EXPIRING {
        let ttl = Duration::from_millis(200 + 15 * i);
        put_ttl(source.as_ref(), &format!("/registry/events/default/e-{i:02}"), "{\"e\":1}", ttl).await;
    }
    let target = memory();
    let mut migration = ops::Migration::start(
        source.clone(),
        target.clone(),
        ops::MigrateOptions::everything("/registry"),
        &mut |_| {},
    )
    .await
    .expect("start");
    // Verifications while the TTLs run out (200 ms .. 800 ms), one every 50 ms.
    let started = std::time::Instant::now();
    let mut verifications = 0;
    while started.elapsed() < Duration::from_millis(900) {
        let verification = migration.verify().await.expect("verify");
        assert_eq!(verification.differences, 0, "{verification:?}");
        verifications += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every source expiry swept before the cutover (sled sweeps every 100 ms; a loaded machine
    // can hold its maintenance thread back longer, so wait for it, bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while all(source.as_ref(), 0).await.len() > 20 {
        assert!(std::time::Instant::now() < deadline, "the source never swept its expired keys");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = migration.finish().await.expect("cutover");
    assert_eq!(summary.tail_verification.differences, 0, "{summary:?}");
    for backend in [&source, &target] {
        let left: Vec<String> = all(backend.as_ref(), 0).await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(left.len(), 20, "only the plain keys are left: {left:?}");
        assert!(left.iter().all(|k| k.contains("/plain-")), "{left:?}");
    }
    assert!(verifications > 5, "{verifications}");
}
