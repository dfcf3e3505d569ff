//! Backup, restore and status (`apistore::ops`) on real backends: sled in a temporary
//! directory and the memory plugin.

use std::io::{BufRead, Cursor};
use std::sync::Arc;

use apistore::kv::{KvBackend, RangeRequest, TxnOutcome};
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
