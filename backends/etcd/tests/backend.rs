//! `EtcdBackend` against a real etcd: the etcd mapping of every `KvBackend` method, leases,
//! compaction, key prefixes, limits, timeouts, auth and the registry entry.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::kv::{prefix_end, BatchWrite, KvBackend, RangeRequest, TxnOutcome, WatchEvent, WatchRequest};
use apistore::registry::BackendConfig;
use apistore::Error;
use apistore_etcd::{CompactorState, EtcdBackend, EtcdOptions, COMPACT_REV_KEY};
use bytes::Bytes;
use common::{backend, next_event, options, raw_client, revision, single};

const SECOND: Duration = Duration::from_secs(1);

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn create(backend: &dyn KvBackend, key: &str, text: &str) -> u64 {
    match backend.put(key, value(text), 0, None).await.expect("create") {
        TxnOutcome::Succeeded { revision } => revision,
        other => panic!("create of {key} failed: {other:?}"),
    }
}

#[tokio::test]
async fn conditional_writes_compare_mod_revision() {
    let etcd = single();
    let backend = backend(&etcd);
    assert_eq!(revision(backend.as_ref()).await, 1, "a new etcd is at revision 1");
    let created = create(backend.as_ref(), "/registry/pods/ns/a", "v1").await;
    assert_eq!(created, 2);
    let got = backend.get("/registry/pods/ns/a", 0).await.expect("get").kv.expect("exists");
    assert_eq!((got.create_revision, got.mod_revision, got.version), (2, 2, 1));
    assert_eq!(got.value, value("v1"));

    // A second create fails and returns the current value (Else(Get)).
    match backend.put("/registry/pods/ns/a", value("again"), 0, None).await.expect("txn") {
        TxnOutcome::Failed { current: Some(kv), revision } => {
            assert_eq!((kv.value.clone(), kv.mod_revision, revision), (value("v1"), 2, 2));
        }
        other => panic!("second create must fail with the current value: {other:?}"),
    }
    // Update with the right revision, then a stale one.
    let updated = match backend.put("/registry/pods/ns/a", value("v2"), 2, None).await.expect("update") {
        TxnOutcome::Succeeded { revision } => revision,
        other => panic!("update failed: {other:?}"),
    };
    assert_eq!(updated, 3);
    match backend.put("/registry/pods/ns/a", value("v3"), 2, None).await.expect("txn") {
        TxnOutcome::Failed { current: Some(kv), .. } => assert_eq!((kv.mod_revision, kv.version), (3, 2)),
        other => panic!("stale update must fail: {other:?}"),
    }
    // Delete: stale fails, current succeeds, missing fails with None.
    assert!(matches!(
        backend.delete("/registry/pods/ns/a", 2).await.expect("txn"),
        TxnOutcome::Failed { current: Some(_), .. }
    ));
    assert_eq!(backend.delete("/registry/pods/ns/a", 3).await.expect("delete"), TxnOutcome::Succeeded { revision: 4 });
    assert!(matches!(
        backend.delete("/registry/pods/ns/a", 3).await.expect("txn"),
        TxnOutcome::Failed { current: None, .. }
    ));
    assert!(matches!(
        backend.delete("/registry/pods/ns/a", 0).await.expect("txn"),
        TxnOutcome::Failed { current: None, .. }
    ));
    let gone = backend.get("/registry/pods/ns/a", 0).await.expect("get");
    assert_eq!((gone.kv, gone.revision), (None, 4));
    // The old value is still readable at its revision.
    let old = backend.get("/registry/pods/ns/a", 2).await.expect("get at 2").kv.expect("existed at 2");
    assert_eq!(old.value, value("v1"));
}

fn batch_write(key: &str, expected: u64, text: Option<&str>) -> BatchWrite {
    BatchWrite { key: key.to_owned(), expected_mod_revision: expected, value: text.map(value), ttl: None }
}

#[tokio::test]
async fn a_write_batch_is_one_transaction_at_one_revision_all_or_nothing() {
    let etcd = single();
    let backend = backend(&etcd);
    let a = create(backend.as_ref(), "/registry/pods/ns/a", "a1").await;
    let b = create(backend.as_ref(), "/registry/pods/ns/b", "b1").await;
    let writes = vec![
        batch_write("/registry/pods/ns/a", a, Some("a2")),
        batch_write("/registry/pods/ns/b", b, None),
        batch_write("/registry/pods/ns/c", 0, Some("c1")),
    ];
    let revisions = backend.write_batch(writes).await.expect("batch").expect("every comparison holds");
    assert_eq!(revisions, vec![b + 1; 3], "one transaction: one revision for every write");
    assert_eq!(revision(backend.as_ref()).await, b + 1);
    let c = backend.get("/registry/pods/ns/c", 0).await.expect("get").kv.expect("created");
    assert_eq!((c.value, c.mod_revision), (value("c1"), b + 1));
    assert!(backend.get("/registry/pods/ns/b", 0).await.expect("get").kv.is_none(), "deleted");
    // One stale comparison: nothing of the batch is written.
    let stale =
        vec![batch_write("/registry/pods/ns/d", 0, Some("d1")), batch_write("/registry/pods/ns/a", a, Some("a3"))];
    assert_eq!(backend.write_batch(stale).await.expect("batch"), None);
    assert!(backend.get("/registry/pods/ns/d", 0).await.expect("get").kv.is_none(), "all or nothing");
    assert_eq!(revision(backend.as_ref()).await, b + 1);
    // A key twice in one batch is refused before anything is sent.
    let twice =
        vec![batch_write("/registry/pods/ns/e", 0, Some("1")), batch_write("/registry/pods/ns/e", 0, Some("2"))];
    assert_eq!(backend.write_batch(twice).await.expect_err("a key twice").code(), 422);
}

#[tokio::test]
async fn expiries_report_the_keys_with_a_lease_and_the_time_left() {
    let etcd = single();
    let backend = backend(&etcd);
    create(backend.as_ref(), "/registry/events/ns/plain", "p").await;
    let put = backend.put("/registry/events/ns/e", value("e"), 0, Some(Duration::from_secs(600))).await;
    let TxnOutcome::Succeeded { revision } = put.expect("put with a TTL") else { panic!("put failed") };
    create(backend.as_ref(), "/registry/pods/ns/outside", "o").await;
    let found = backend.expiries("/registry/events/", &prefix_end("/registry/events/")).await.expect("expiries");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].key.as_str(), found[0].mod_revision), ("/registry/events/ns/e", revision));
    assert!(found[0].remaining <= Duration::from_secs(660) && found[0].remaining >= Duration::from_secs(590));
    // A batch write with a TTL gets a lease too.
    let write = BatchWrite {
        key: "/registry/events/ns/batched".into(),
        expected_mod_revision: 0,
        value: Some(value("b")),
        ttl: Some(Duration::from_secs(600)),
    };
    backend.write_batch(vec![write]).await.expect("batch").expect("written");
    let found = backend.expiries("/registry/events/", &prefix_end("/registry/events/")).await.expect("expiries");
    let keys: Vec<&str> = found.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["/registry/events/ns/batched", "/registry/events/ns/e"]);
}

#[tokio::test]
async fn range_honours_limit_count_and_revision() {
    let etcd = single();
    let backend = backend(&etcd);
    for i in 0..5 {
        create(backend.as_ref(), &format!("/registry/pods/ns/p{i}"), &format!("v{i}")).await;
    }
    create(backend.as_ref(), "/registry/pods0", "outside").await;
    let at_five = revision(backend.as_ref()).await;
    let mut request = RangeRequest::prefix("/registry/pods/");
    request.limit = 2;
    let page = backend.range(request.clone()).await.expect("range");
    assert_eq!(
        page.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        ["/registry/pods/ns/p0", "/registry/pods/ns/p1"]
    );
    assert_eq!((page.count, page.more, page.revision), (5, true, at_five));

    // Continue after the last key at the same revision while the data changes.
    match backend.put("/registry/pods/ns/p4", value("changed"), 0, None).await.expect("txn") {
        TxnOutcome::Failed { current: Some(kv), .. } => {
            backend.put("/registry/pods/ns/p4", value("changed"), kv.mod_revision, None).await.expect("update");
        }
        other => panic!("unexpected {other:?}"),
    }
    request.start = "/registry/pods/ns/p1\0".into();
    request.limit = 0;
    request.revision = page.revision;
    let rest = backend.range(request.clone()).await.expect("range at revision");
    assert_eq!(rest.kvs.len(), 3);
    assert_eq!(rest.kvs[2].value, value("v4"), "read at the pinned revision sees the old value");
    assert!(!rest.more);
    assert!(rest.revision > page.revision, "header revision is the current one");

    let mut count = RangeRequest::prefix("/registry/pods/");
    count.count_only = true;
    let counted = backend.range(count).await.expect("count");
    assert!(counted.kvs.is_empty());
    assert_eq!(counted.count, 5);

    // Unbounded end = every key from start.
    let everything = backend.range(RangeRequest { end: String::new(), ..RangeRequest::prefix("/registry/pods") }).await;
    assert_eq!(everything.expect("unbounded").count, 6);
}

#[tokio::test]
async fn future_and_compacted_revisions_are_typed() {
    let etcd = single();
    let backend = backend(&etcd);
    for i in 0..4 {
        create(backend.as_ref(), &format!("/k/{i}"), "v").await;
    }
    let current = revision(backend.as_ref()).await;
    assert_eq!(backend.compacted_revision().await.expect("compacted"), 0);
    match backend.get("/k/0", current + 10).await {
        Err(Error::FutureRevision { requested, current: reported }) => {
            assert_eq!((requested, reported), (current + 10, current))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    match backend.range(RangeRequest { revision: u64::MAX, ..RangeRequest::prefix("/k/") }).await {
        Err(e) => assert!(e.is_too_large_resource_version(), "{e:?}"),
        Ok(r) => panic!("read at u64::MAX succeeded: {r:?}"),
    }
    backend.compact(current - 1).await.expect("compact");
    assert_eq!(backend.compacted_revision().await.expect("compacted"), current - 1);
    match backend.get("/k/0", current - 2).await {
        Err(Error::Compacted { requested, compacted }) => {
            assert_eq!((requested, compacted), (current - 2, current - 1))
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    // Reading at the compaction revision itself still works.
    assert!(backend.get("/k/0", current - 1).await.expect("at compaction point").kv.is_some());
    // Compacting again at or below the point is a no-op; a future one is typed.
    backend.compact(current - 2).await.expect("no-op compact");
    match backend.compact(current + 5).await {
        Err(Error::FutureRevision { .. }) => {}
        other => panic!("compacting the future must fail with FutureRevision: {other:?}"),
    }
    // A watch below the compaction point ends with Compacted.
    let request =
        WatchRequest { start: "/k/".into(), end: prefix_end("/k/"), start_revision: 2, progress_notify: false };
    match backend.watch(request).await {
        Err(Error::Compacted { compacted, .. }) => assert_eq!(compacted, current - 1),
        Ok(mut stream) => match next_event(&mut stream, 5 * SECOND).await {
            Some(Err(Error::Compacted { compacted, .. })) => assert_eq!(compacted, current - 1),
            other => panic!("watch from a compacted revision must end with Compacted: {other:?}"),
        },
        Err(other) => panic!("unexpected watch error {other:?}"),
    }
}

#[tokio::test]
async fn watch_delivers_history_and_live_events_with_prev_values() {
    let etcd = single();
    let backend = backend(&etcd);
    let first = create(backend.as_ref(), "/w/a", "1").await;
    backend.put("/w/a", value("2"), first, None).await.expect("update");
    create(backend.as_ref(), "/x/outside", "nope").await;
    let request =
        WatchRequest { start: "/w/".into(), end: prefix_end("/w/"), start_revision: first, progress_notify: false };
    let mut stream = backend.watch(request).await.expect("watch");
    match next_event(&mut stream, 5 * SECOND).await {
        Some(Ok(WatchEvent::Put { kv, prev: None })) => assert_eq!((kv.key.as_str(), kv.mod_revision), ("/w/a", first)),
        other => panic!("expected the create, got {other:?}"),
    }
    match next_event(&mut stream, 5 * SECOND).await {
        Some(Ok(WatchEvent::Put { kv, prev: Some(prev) })) => {
            assert_eq!((kv.value, prev.value, prev.mod_revision), (value("2"), value("1"), first));
        }
        other => panic!("expected the update with its previous value, got {other:?}"),
    }
    let current = backend.get("/w/a", 0).await.expect("get").kv.expect("exists");
    let deleted = match backend.delete("/w/a", current.mod_revision).await.expect("delete") {
        TxnOutcome::Succeeded { revision } => revision,
        other => panic!("delete failed: {other:?}"),
    };
    match next_event(&mut stream, 5 * SECOND).await {
        Some(Ok(WatchEvent::Delete { key, revision, prev: Some(prev) })) => {
            assert_eq!((key.as_str(), revision, prev.value), ("/w/a", deleted, value("2")));
        }
        other => panic!("expected the delete, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_zero_sees_only_new_changes_and_single_key_range() {
    let etcd = single();
    let backend = backend(&etcd);
    create(backend.as_ref(), "/s/a", "old").await;
    let request =
        WatchRequest { start: "/s/a".into(), end: "/s/a\0".into(), start_revision: 0, progress_notify: false };
    let mut stream = backend.watch(request).await.expect("watch");
    create(backend.as_ref(), "/s/ab", "other key").await;
    let a = backend.get("/s/a", 0).await.expect("get").kv.expect("exists");
    let rev = match backend.put("/s/a", value("new"), a.mod_revision, None).await.expect("update") {
        TxnOutcome::Succeeded { revision } => revision,
        other => panic!("update failed: {other:?}"),
    };
    match next_event(&mut stream, 5 * SECOND).await {
        Some(Ok(event @ WatchEvent::Put { .. })) => {
            assert_eq!(event.revision(), rev, "only /s/a, only after the start")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn watch_progress_notify_reports_the_revision() {
    let etcd = single(); // the harness sets a 1 s progress-notify interval
    let backend = backend(&etcd);
    let written = create(backend.as_ref(), "/p/a", "1").await;
    let request = WatchRequest {
        start: "/p/".into(),
        end: prefix_end("/p/"),
        start_revision: written + 1,
        progress_notify: true,
    };
    let mut stream = backend.watch(request).await.expect("watch");
    match next_event(&mut stream, 10 * SECOND).await {
        Some(Ok(WatchEvent::Progress { revision })) => assert!(revision >= written, "{revision} < {written}"),
        other => panic!("expected a progress notification, got {other:?}"),
    }
    assert!(backend.capabilities().progress_notify);
}

#[tokio::test]
async fn ttl_expiry_is_a_delete_event() {
    let etcd = single();
    let backend = backend(&etcd);
    let start = revision(backend.as_ref()).await + 1;
    let request =
        WatchRequest { start: "/ttl/".into(), end: prefix_end("/ttl/"), start_revision: start, progress_notify: false };
    let mut stream = backend.watch(request).await.expect("watch");
    backend.put("/ttl/a", value("short"), 0, Some(SECOND)).await.expect("put with ttl");
    assert!(matches!(next_event(&mut stream, 5 * SECOND).await, Some(Ok(WatchEvent::Put { .. }))));
    match next_event(&mut stream, 15 * SECOND).await {
        Some(Ok(WatchEvent::Delete { key, prev: Some(_), .. })) => assert_eq!(key, "/ttl/a"),
        other => panic!("expected the expiry delete, got {other:?}"),
    }
    assert!(backend.get("/ttl/a", 0).await.expect("get").kv.is_none());
}

#[tokio::test]
async fn leases_are_reused_like_kube_apiserver() {
    let etcd = single();
    let backend = backend(&etcd);
    let hour = Duration::from_secs(3600);
    backend.put("/lease/a", value("a"), 0, Some(hour)).await.expect("put a");
    backend.put("/lease/b", value("b"), 0, Some(hour)).await.expect("put b");
    backend.put("/lease/c", value("c"), 0, Some(Duration::from_secs(7200))).await.expect("put c");
    backend.put("/lease/d", value("d"), 0, None).await.expect("put d");
    let raw = raw_client(&etcd).await;
    let lease_of = |key: &'static str| {
        let mut raw = raw.clone();
        async move { raw.get(key, None).await.expect("raw get").kvs()[0].lease() }
    };
    let (a, b, c, d) = (
        lease_of("/lease/a").await,
        lease_of("/lease/b").await,
        lease_of("/lease/c").await,
        lease_of("/lease/d").await,
    );
    assert_ne!(a, 0);
    assert_eq!(a, b, "two writes with the same TTL share a lease");
    assert_ne!(a, c, "a much longer TTL needs a new lease");
    assert_eq!(d, 0, "no TTL, no lease");
    let ttl = raw.clone().lease_time_to_live(a, None).await.expect("ttl").ttl();
    assert!(ttl > 3600 - 30 && ttl <= 3600 + 60, "granted ttl + reuse window, got {ttl}");
    // Removing the TTL on update detaches the lease.
    let b_now = backend.get("/lease/b", 0).await.expect("get").kv.expect("b");
    backend.put("/lease/b", value("b2"), b_now.mod_revision, None).await.expect("update b");
    assert_eq!(lease_of("/lease/b").await, 0);
}

#[tokio::test]
async fn a_revoked_reused_lease_is_replaced() {
    let etcd = single();
    let backend = backend(&etcd);
    let hour = Duration::from_secs(3600);
    backend.put("/revoked/a", value("a"), 0, Some(hour)).await.expect("put a");
    let mut raw = raw_client(&etcd).await;
    let lease = raw.get("/revoked/a", None).await.expect("raw get").kvs()[0].lease();
    raw.lease_revoke(lease).await.expect("revoke");
    assert!(backend.get("/revoked/a", 0).await.expect("get").kv.is_none(), "revoking deletes the key");
    // The backend still holds the revoked lease for reuse; the put must recover.
    let outcome = backend.put("/revoked/b", value("b"), 0, Some(hour)).await.expect("put b after revoke");
    assert!(matches!(outcome, TxnOutcome::Succeeded { .. }), "{outcome:?}");
    let new_lease = raw.get("/revoked/b", None).await.expect("raw get").kvs()[0].lease();
    assert!(new_lease != 0 && new_lease != lease, "a fresh lease: {new_lease} vs revoked {lease}");
}

#[tokio::test]
async fn key_prefix_isolates_backends_on_one_etcd() {
    let etcd = single();
    let mut a_options = options(&etcd);
    a_options.key_prefix = "/tenant-a".into();
    let mut b_options = options(&etcd);
    b_options.key_prefix = "/tenant-b".into();
    let a: Arc<dyn KvBackend> = Arc::new(EtcdBackend::new(a_options).expect("a"));
    let b: Arc<dyn KvBackend> = Arc::new(EtcdBackend::new(b_options).expect("b"));
    create(a.as_ref(), "/registry/pods/ns/x", "from a").await;
    create(b.as_ref(), "/registry/pods/ns/x", "from b").await;
    create(b.as_ref(), "/registry/pods/ns/y", "from b").await;
    let a_all = a.range(RangeRequest { end: String::new(), ..RangeRequest::prefix("/") }).await.expect("range a");
    assert_eq!(
        a_all.kvs.iter().map(|kv| (kv.key.as_str(), kv.value.clone())).collect::<Vec<_>>(),
        [("/registry/pods/ns/x", value("from a"))]
    );
    assert_eq!(b.range(RangeRequest::prefix("/registry/")).await.expect("range b").count, 2);
    let mut raw = raw_client(&etcd).await;
    let raw_keys: Vec<String> = raw
        .get("/tenant-", Some(etcd_client::GetOptions::new().with_prefix().with_keys_only()))
        .await
        .expect("raw range")
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    assert_eq!(
        raw_keys,
        ["/tenant-a/registry/pods/ns/x", "/tenant-b/registry/pods/ns/x", "/tenant-b/registry/pods/ns/y"]
    );
    // A watch in A does not see B's writes.
    let start = revision(a.as_ref()).await + 1;
    let mut stream = a
        .watch(WatchRequest { start: "/".into(), end: String::new(), start_revision: start, progress_notify: false })
        .await
        .expect("watch a");
    create(b.as_ref(), "/registry/pods/ns/z", "b only").await;
    create(a.as_ref(), "/registry/pods/ns/w", "a").await;
    match next_event(&mut stream, 5 * SECOND).await {
        Some(Ok(WatchEvent::Put { kv, .. })) => assert_eq!(kv.key, "/registry/pods/ns/w"),
        other => panic!("expected only A's write, got {other:?}"),
    }
}

#[tokio::test]
async fn values_beyond_the_request_limit_are_too_large() {
    let etcd = single();
    let backend = backend(&etcd);
    let limit = backend.capabilities().max_value_size.expect("etcd has a limit");
    let at_limit = Bytes::from(vec![b'x'; limit]);
    assert!(matches!(backend.put("/big/ok", at_limit, 0, None).await.expect("put"), TxnOutcome::Succeeded { .. }));
    match backend.put("/big/no", Bytes::from(vec![b'x'; limit + 1]), 0, None).await {
        Err(Error::TooLarge { size, limit: reported, .. }) => assert_eq!((size, reported), (limit + 1, limit)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // If etcd itself refuses (a smaller server limit than configured), the error is typed too.
    let mut lying = options(&etcd);
    lying.max_request_bytes = 4 * 1024 * 1024;
    let lying = EtcdBackend::new(lying).expect("backend");
    match lying.put("/big/server-says-no", Bytes::from(vec![b'x'; 2 * 1024 * 1024]), 0, None).await {
        Err(Error::TooLarge { key, .. }) => assert_eq!(key, "/big/server-says-no"),
        other => panic!("expected TooLarge from etcd, got {other:?}"),
    }
}

#[tokio::test]
async fn compactor_replicas_coordinate_through_compact_rev_key() {
    let etcd = single();
    let a = backend(&etcd);
    let b = backend(&etcd);
    let a1 = a.compact_tick(CompactorState::default()).await.expect("a tick 1");
    assert_eq!((a1.version, a1.compacted), (1, None), "the first tick only records the revision");
    let b1 = b.compact_tick(CompactorState::default()).await.expect("b tick 1");
    assert_eq!((b1.version, b1.compacted), (1, None), "b adopts a's version");
    for i in 0..3 {
        create(a.as_ref(), &format!("/c/{i}"), "v").await;
    }
    let a2 = a.compact_tick(a1).await.expect("a tick 2");
    assert_eq!(a2.version, 2);
    assert_eq!(a2.compacted, Some(a1.revision), "compacts at the revision seen one tick earlier");
    assert_eq!(a.compacted_revision().await.expect("compacted") as i64, a1.revision);
    let b2 = b.compact_tick(b1).await.expect("b tick 2");
    assert_eq!((b2.version, b2.compacted), (2, None), "b saw a's compaction and did not compact");
    let mut raw = raw_client(&etcd).await;
    let key = raw.get(COMPACT_REV_KEY, None).await.expect("raw get");
    let kv = &key.kvs()[0];
    assert_eq!(kv.version(), 2);
    assert_eq!(kv.value_str().expect("utf8"), a1.revision.to_string());
}

#[tokio::test]
async fn background_compactor_compacts_on_its_interval() {
    let etcd = single();
    let mut opts = options(&etcd);
    opts.compaction_interval_secs = 1;
    let backend = EtcdBackend::new(opts).expect("backend");
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        create(&backend, &format!("/bg/{i}"), "v").await;
        let compacted = backend.compacted_revision().await.expect("compacted revision");
        if compacted > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the compactor never compacted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Disabled: nothing happens.
    let etcd2 = single();
    let idle = backend_with_interval(&etcd2, 0);
    create(&idle, "/bg/x", "v").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(idle.compacted_revision().await.expect("compacted"), 0);
}

fn backend_with_interval(etcd: &apistore_etcd_harness::EtcdCluster, secs: u64) -> EtcdBackend {
    let mut opts = options(etcd);
    opts.compaction_interval_secs = secs;
    EtcdBackend::new(opts).expect("backend")
}

#[tokio::test]
async fn unreachable_etcd_is_unavailable_within_the_timeout_and_recovers() {
    let mut etcd = single();
    let backend = backend(&etcd);
    create(backend.as_ref(), "/r/a", "v").await;
    backend.health().await.expect("healthy");
    etcd.kill(0);
    let timeout = Duration::from_millis(backend.options().timeout_ms);
    for call in 0..3 {
        let started = Instant::now();
        let result = match call {
            0 => backend.get("/r/a", 0).await.map(|_| ()),
            1 => backend.put("/r/b", value("v"), 0, None).await.map(|_| ()),
            _ => backend.health().await,
        };
        let elapsed = started.elapsed();
        match result {
            Err(Error::Unavailable { .. }) | Err(Error::Timeout { .. }) => {}
            other => panic!("call {call} with etcd down: expected Unavailable/Timeout, got {other:?}"),
        }
        assert!(elapsed < timeout + SECOND, "call {call} took {elapsed:?} (timeout {timeout:?})");
    }
    etcd.restart(0).expect("restart etcd");
    let deadline = Instant::now() + Duration::from_secs(15);
    while backend.health().await.is_err() {
        assert!(Instant::now() < deadline, "backend did not recover after etcd restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(backend.get("/r/a", 0).await.expect("get after restart").kv.is_some());
}

#[tokio::test]
async fn unresponsive_endpoint_times_out() {
    // A socket that accepts connections but never speaks HTTP/2.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut opts = EtcdOptions::new([format!("http://127.0.0.1:{port}")]);
    opts.timeout_ms = 800;
    opts.compaction_interval_secs = 0;
    let backend = EtcdBackend::new(opts).expect("backend");
    let started = Instant::now();
    let result = backend.get("/k", 0).await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(Error::Timeout { .. }) | Err(Error::Unavailable { .. })), "{result:?}");
    assert!(elapsed < Duration::from_millis(800) + SECOND, "took {elapsed:?}");
    let watch = backend.watch(WatchRequest {
        start: "/".into(),
        end: String::new(),
        start_revision: 0,
        progress_notify: false,
    });
    let started = Instant::now();
    assert!(watch.await.is_err());
    assert!(started.elapsed() < Duration::from_millis(800) + SECOND);
    drop(listener);
}

#[tokio::test]
async fn lost_watch_ends_with_an_error() {
    let mut etcd = single();
    let backend = backend(&etcd);
    let mut stream = backend
        .watch(WatchRequest { start: "/l/".into(), end: prefix_end("/l/"), start_revision: 0, progress_notify: false })
        .await
        .expect("watch");
    create(backend.as_ref(), "/l/a", "v").await;
    assert!(matches!(next_event(&mut stream, 5 * SECOND).await, Some(Ok(WatchEvent::Put { .. }))));
    etcd.kill(0);
    match next_event(&mut stream, 30 * SECOND).await {
        Some(Err(Error::Unavailable { .. })) => {}
        other => panic!("a lost watch must end with Unavailable, got {other:?}"),
    }
    assert!(next_event(&mut stream, 5 * SECOND).await.is_none(), "nothing after the error");
}

#[tokio::test]
async fn username_and_password_authenticate() {
    let etcd = single();
    let mut raw = raw_client(&etcd).await;
    raw.user_add("root", "rootpw", None).await.expect("add root");
    raw.user_grant_role("root", "root").await.expect("grant root");
    raw.auth_enable().await.expect("enable auth");

    let mut good = options(&etcd);
    good.username = Some("root".into());
    good.password = Some("rootpw".into());
    let good = EtcdBackend::new(good).expect("backend");
    create(&good, "/auth/a", "v").await;
    assert!(good.get("/auth/a", 0).await.expect("get").kv.is_some());

    let mut wrong = options(&etcd);
    wrong.username = Some("root".into());
    wrong.password = Some("nope".into());
    let wrong = EtcdBackend::new(wrong).expect("backend");
    let err = wrong.get("/auth/a", 0).await.expect_err("wrong password must fail");
    assert!(err.to_string().contains("authentication failed"), "{err}");

    let anonymous = EtcdBackend::new(options(&etcd)).expect("backend");
    let err = anonymous.get("/auth/a", 0).await.expect_err("no credentials must fail");
    assert!(err.to_string().contains("user name is empty") || err.to_string().contains("permission"), "{err}");
}

#[tokio::test]
async fn registry_opens_etcd3_by_name() {
    let etcd = single();
    apistore_etcd::register();
    assert!(apistore::registry::names().contains(&"etcd3"));
    let config: BackendConfig = serde_json::from_value(serde_json::json!({
        "type": "etcd3",
        "endpoints": etcd.endpoints(),
        "timeout_ms": 2000,
        "compaction_interval_secs": 0,
    }))
    .expect("config");
    let backend = apistore::registry::open(&config).await.expect("open etcd3");
    assert_eq!(backend.backend_name(), "etcd3");
    create(backend.as_ref(), "/reg/a", "v").await;
    let again = apistore::registry::open(&config).await.expect("open again");
    assert!(Arc::ptr_eq(&backend, &again), "same config, same pooled backend");
    let bad = config.clone().with_option("timeout_ms", "soon");
    assert_eq!(apistore::registry::open(&bad).await.expect_err("bad option").code(), 422);
}

#[tokio::test]
async fn kv_client_uses_etcd_keys_on_the_backends_connection() {
    let etcd = single();
    let mut prefixed = options(&etcd);
    prefixed.key_prefix = "/tenant".into();
    let backend = EtcdBackend::new(prefixed).expect("backend");
    create(&backend, "/registry/pods/ns/a", "through the backend").await;
    let mut kv = backend.kv_client().await.expect("kv client");
    let raw = kv.get("/tenant/registry/pods/ns/a", None).await.expect("raw get");
    assert_eq!(raw.kvs()[0].value(), b"through the backend", "the raw client sees etcd's own key, prefix included");
    kv.put("/tenant/registry/pods/ns/b", "through the raw client", None).await.expect("raw put");
    let seen = backend.get("/registry/pods/ns/b", 0).await.expect("get").kv.expect("b is there");
    assert_eq!(seen.value, value("through the raw client"));

    // Nothing listening: the client is handed out (it connects lazily), its calls fail.
    let free_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut nowhere = options(&etcd);
    nowhere.endpoints = vec![format!("http://127.0.0.1:{free_port}")];
    let nowhere = EtcdBackend::new(nowhere).expect("backend");
    let mut kv = nowhere.kv_client().await.expect("a lazily connecting client");
    let call = tokio::time::timeout(Duration::from_secs(10), kv.get("/tenant/registry/pods/ns/a", None)).await;
    assert!(!matches!(call, Ok(Ok(_))), "a get from an endpoint nobody listens on succeeded");
}
