//! The watch cache's lifecycle over a real backend (the in-memory plugin): readiness, what
//! happens to open watches when its own watch fails, relist, stop, and its error forms.

use std::sync::Arc;
use std::time::Duration;

use apistore::cacher::{Cacher, CacherConfig};
use apistore::storage::{GetOptions, ListOptions, ResourceVersion, Storage, WatchEvent};
use apistore::{KvBackend, Object, Store, StoreConfig};
use apistore_memory::MemoryBackend;
use bytes::Bytes;

const TIMEOUT: Duration = Duration::from_secs(10);

fn pod(name: &str) -> Object {
    Object::new("v1", "Pod", "ns", name)
}

async fn cache_over(backend: Arc<dyn KvBackend>) -> (Arc<Cacher>, Arc<dyn Storage>) {
    let store: Arc<dyn Storage> = Arc::new(Store::new(backend, StoreConfig::new("pods")).expect("store"));
    let cacher = Arc::new(Cacher::new(store.clone(), CacherConfig::new("pods")).expect("cacher"));
    cacher.wait_until_ready(TIMEOUT).await.expect("ready");
    (cacher, store)
}

async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failing_cache_watch_ends_open_watches_turns_not_ready_and_relists() {
    let backend: Arc<dyn KvBackend> = Arc::new(MemoryBackend::new());
    let (cacher, _store) = cache_over(backend.clone()).await;
    cacher.readiness_check().await.expect("ready after the first list");
    let created = cacher.create("/pods/ns/a", pod("a"), 0).await.expect("create");
    let options = ListOptions {
        resource_version: ResourceVersion::at(created.resource_version().expect("rv")),
        recursive: true,
        ..ListOptions::default()
    };
    let mut watch = cacher.watch("/pods/", options).await.expect("watch");
    // Undecodable data under the resource: the cache's own watch fails on it.
    let Ok(apistore::kv::TxnOutcome::Succeeded { .. }) =
        backend.put("/registry/pods/ns/corrupt", Bytes::from_static(b"not json"), 0, None).await
    else {
        panic!("raw write failed")
    };
    match tokio::time::timeout(TIMEOUT, watch.next()).await {
        Ok(None) => {}
        other => panic!("the open watch must end when the cache fails, got {other:?}"),
    }
    let err = cacher.readiness_check().await.expect_err("not ready");
    assert_eq!(err.code(), 429, "{err:?}");
    assert!(err.to_string().starts_with("storage is (re)initializing"), "{err}");
    assert_eq!(
        cacher.watch("/pods/", ListOptions { recursive: true, ..ListOptions::default() }).await.err().map(|e| e.code()),
        Some(429)
    );
    // Reads with a resourceVersion fall back to the store while the cache is down.
    let got =
        cacher.get("/pods/ns/a", GetOptions { resource_version: ResourceVersion::Any, ..GetOptions::default() }).await;
    assert_eq!(got.expect("get from the store").map(|o| o.metadata.name), Some("a".to_owned()));
    // Removing the bad data lets the relist succeed.
    let current = backend.get("/registry/pods/ns/corrupt", 0).await.expect("get").kv.expect("present");
    backend.delete("/registry/pods/ns/corrupt", current.mod_revision).await.expect("delete");
    wait_until("the cache is ready again", async || cacher.readiness_check().await.is_ok()).await;
    let list = cacher
        .get_list(
            "/pods/",
            ListOptions { resource_version: ResourceVersion::Any, recursive: true, ..ListOptions::default() },
        )
        .await
        .expect("list");
    assert_eq!(list.items.iter().map(|o| o.metadata.name.as_str()).collect::<Vec<_>>(), ["a"]);
}

#[tokio::test]
async fn a_stopped_cache_ends_watches_and_says_so() {
    let (cacher, _store) = cache_over(Arc::new(MemoryBackend::new())).await;
    let mut watch = cacher
        .watch(
            "/pods/",
            ListOptions { resource_version: ResourceVersion::Any, recursive: true, ..ListOptions::default() },
        )
        .await
        .expect("watch");
    cacher.stop();
    assert!(matches!(tokio::time::timeout(TIMEOUT, watch.next()).await, Ok(None)), "the watch ends");
    let err = cacher.readiness_check().await.expect_err("stopped");
    assert_eq!(err.to_string(), "apiserver cacher is stopped");
    cacher.stop();
}

#[tokio::test]
async fn a_future_resource_version_is_too_large_with_retry_after_one_second() {
    let (cacher, _store) = cache_over(Arc::new(MemoryBackend::new())).await;
    let created = cacher.create("/pods/ns/a", pod("a"), 0).await.expect("create");
    let future = ResourceVersion::at(created.resource_version().expect("rv") + 10);
    let err = cacher
        .get("/pods/ns/a", GetOptions { resource_version: future, ..GetOptions::default() })
        .await
        .expect_err("future RV");
    assert!(err.is_too_large_resource_version(), "{err:?}");
    assert_eq!(err.retry_after_seconds(), Some(1), "the cache asks to retry after 1 s");
    let options = ListOptions {
        resource_version: future,
        send_initial_events: Some(true),
        recursive: true,
        ..ListOptions::default()
    };
    let mut watch = cacher.watch("/pods/", options).await.expect("watch");
    match tokio::time::timeout(TIMEOUT, watch.next()).await {
        Ok(Some(WatchEvent::Error(e))) => assert!(e.is_too_large_resource_version(), "{e:?}"),
        other => panic!("expected a TooLargeResourceVersion ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn consistent_lists_go_to_the_store_when_the_backend_cannot_answer_progress_requests() {
    use apistore::group_resource::GroupResource;
    use apistore::layer::{Layer, ResourceContext};
    use apistore::layers::StorageMetrics;
    let backend: Arc<dyn KvBackend> = Arc::new(MemoryBackend::new());
    assert!(!backend.capabilities().progress_requests, "the memory plugin sends no progress notifications");
    let metrics = StorageMetrics::new();
    let config = StoreConfig::new("pods");
    let context = ResourceContext::for_store(GroupResource::core("pods"), &config).expect("context");
    let store: Arc<dyn Storage> = Arc::new(Store::new(backend, config).expect("store"));
    let metered = metrics.layer().layer(&context, store).expect("metrics layer");
    let cacher = Cacher::new(metered, CacherConfig::new("pods")).expect("cacher");
    cacher.wait_until_ready(TIMEOUT).await.expect("ready");
    let created = cacher.create("/pods/ns/a", pod("a"), 0).await.expect("create");
    let options = ListOptions { recursive: true, ..ListOptions::default() };
    for round in 1..=2 {
        let list = cacher.get_list("/pods", options.clone()).await.expect("consistent list");
        assert_eq!(list.items.len(), 1);
        assert!(list.resource_version >= created.resource_version().expect("rv"));
        assert_eq!(metrics.request_count("pods", "list"), 1 + round, "round {round}: served by the store");
    }
    assert_eq!(metrics.request_count("pods", "requestWatchProgress"), 1, "asked once, then remembered the answer");
}

#[tokio::test]
async fn over_its_memory_budget_the_cache_serves_from_the_store_reports_it_and_comes_back() {
    use apistore::cacher::CacheMetrics;
    let backend: Arc<dyn KvBackend> = Arc::new(MemoryBackend::new());
    let store: Arc<dyn Storage> = Arc::new(Store::new(backend, StoreConfig::new("pods")).expect("store"));
    let metrics = CacheMetrics::new();
    let config =
        CacherConfig { memory_budget: Some(4_000), metrics: Some(metrics.clone()), ..CacherConfig::new("pods") };
    let cacher = Cacher::new(store.clone(), config).expect("cacher");
    cacher.wait_until_ready(TIMEOUT).await.expect("ready");
    for name in ["a", "b"] {
        cacher.create(&format!("/pods/ns/{name}"), pod(name), 0).await.expect("create");
    }
    wait_until("the cache holds both pods", async || cacher.memory().1 == 2).await;
    let (bytes, objects) = metrics.get("pods");
    assert!(bytes > 0 && bytes < 4_000, "{bytes} bytes reported");
    assert_eq!(objects, 2);
    assert!(!metrics.bypassed("pods") && !cacher.bypassed());
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let render = |registry: &prometheus_client::registry::Registry| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text
    };
    let text = render(&registry);
    assert!(text.contains("apistore_watch_cache_memory_budget_bytes{resource=\"pods\"} 4000\n"), "{text}");
    assert!(text.contains("apistore_watch_cache_bypassed{resource=\"pods\"} 0\n"), "{text}");

    // One large object takes the resource over its budget: the cache holds nothing and says so.
    let mut big = pod("big");
    big.metadata.annotations.insert("filler".into(), "x".repeat(6_000));
    cacher.create("/pods/ns/big", big, 0).await.expect("create over the budget");
    wait_until("the cache is bypassed", async || cacher.bypassed()).await;
    assert_eq!(cacher.memory(), (0, 0), "a bypassed cache holds nothing");
    let text = render(&registry);
    assert!(text.contains("apistore_watch_cache_bypassed{resource=\"pods\"} 1\n"), "{text}");
    assert!(text.contains("apistore_watch_cache_bytes{resource=\"pods\"} 0\n"), "{text}");
    // Requests never fail for it: the store serves them.
    let any = ListOptions { resource_version: ResourceVersion::Any, recursive: true, ..ListOptions::default() };
    assert_eq!(cacher.get_list("/pods/", any).await.expect("list while bypassed").items.len(), 3);
    let got = cacher.get("/pods/ns/a", GetOptions { resource_version: ResourceVersion::Any, ..GetOptions::default() });
    assert!(got.await.expect("get while bypassed").is_some());
    cacher.readiness_check().await.expect("a bypassed cache is ready (the store answers)");

    // Once the resource fits again (checked every 10 s), the cache lists it and serves it.
    cacher
        .delete("/pods/ns/big", None, &apistore::storage::allow_all_deletions, None, Default::default())
        .await
        .expect("delete");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cacher.bypassed() || cacher.memory().1 != 2 {
        assert!(tokio::time::Instant::now() < deadline, "the cache did not come back: {:?}", cacher.memory());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!metrics.bypassed("pods"));
    assert_eq!(metrics.get("pods").1, 2);
}

/// What readers derive from the cached objects and keep with them counts in the cache's bytes
/// (the gauge follows at once) and in its budget: a value is kept only while it fits, a new
/// object version or a delete gives its bytes back, and objects growing into the room the
/// derived values take push the cache over its budget.
#[tokio::test]
async fn derived_values_count_in_the_cache_bytes_and_its_budget() {
    use apistore::cacher::CacheMetrics;
    let backend: Arc<dyn KvBackend> = Arc::new(MemoryBackend::new());
    let store: Arc<dyn Storage> = Arc::new(Store::new(backend, StoreConfig::new("pods")).expect("store"));
    let metrics = CacheMetrics::new();
    let budget = 20_000;
    let config =
        CacherConfig { memory_budget: Some(budget), metrics: Some(metrics.clone()), ..CacherConfig::new("pods") };
    let cacher = Cacher::new(store.clone(), config).expect("cacher");
    cacher.wait_until_ready(TIMEOUT).await.expect("ready");
    for name in ["a", "b"] {
        cacher.create(&format!("/pods/ns/{name}"), pod(name), 0).await.expect("create");
    }
    wait_until("the cache holds both pods", async || cacher.memory().1 == 2).await;
    let (objects_only, _) = cacher.memory();
    assert_eq!(metrics.get("pods").0, objects_only as i64);
    let any = ListOptions { resource_version: ResourceVersion::Any, recursive: true, ..ListOptions::default() };
    let list = cacher.get_list_encoded("/pods/", any.clone()).await.expect("list from the cache");
    let (a, b) = (&list.items[0], &list.items[1]);

    // A kept value: counted in the cache's bytes and on the gauge right away.
    assert!(a.keep_derived(1_000, false));
    assert_eq!(a.derived_bytes(), 1_000);
    assert_eq!(cacher.memory().0, objects_only + 1_000);
    assert_eq!(metrics.get("pods").0, (objects_only + 1_000) as i64, "the gauge grows when a value is kept");
    // The same object read again (another list) is the same version: its count is shared.
    let again = cacher.get_list_encoded("/pods/", any.clone()).await.expect("list");
    assert_eq!(again.items[0].derived_bytes(), 1_000);

    // The budget: a value that does not fit is not kept (nor counted); one that fits exactly is.
    let room = budget - cacher.memory().0;
    assert!(!b.keep_derived(room + 1, false), "over the budget: not kept");
    assert_eq!((b.derived_bytes(), cacher.memory().0), (0, budget - room));
    assert!(b.keep_derived(room, false), "exactly the room left");
    assert_eq!(cacher.memory().0, budget);
    assert!(!cacher.bypassed(), "derived values alone never take the cache over its budget");
    b.unkeep_derived(room);
    assert_eq!(cacher.memory().0, budget - room);

    // A new version of `a` gives back the old version's derived bytes (a reader may still hold
    // the old one: it is no longer counted).
    let mut relabel = |mut current: Object, _| {
        current.metadata.labels.insert("v".into(), "2".into());
        Ok((current, None))
    };
    cacher.guaranteed_update("/pods/ns/a", false, None, &mut relabel, None).await.expect("update");
    wait_until("the cache has the new version", async || {
        cacher.get_list_encoded("/pods/", any.clone()).await.is_ok_and(|l| l.items[0].revision() != a.revision())
    })
    .await;
    let (after_update, _) = cacher.memory();
    assert!(after_update < objects_only + 200, "{after_update}: the old version's 1000 derived bytes are gone");
    assert_eq!(metrics.get("pods").0, after_update as i64);
    assert!(a.keep_derived(500, false), "the old version is a reader's own now");
    assert_eq!(cacher.memory().0, after_update, "and counts nowhere");

    // The room taken by derived values counts when the objects grow: over the budget → bypassed.
    let list = cacher.get_list_encoded("/pods/", any.clone()).await.expect("list");
    let room = budget - cacher.memory().0;
    assert!(list.items[1].keep_derived(room - 500, false));
    let mut grown = pod("c");
    grown.metadata.annotations.insert("filler".into(), "x".repeat(1_000));
    cacher.create("/pods/ns/c", grown, 0).await.expect("create");
    wait_until("the cache is bypassed", async || cacher.bypassed()).await;
    assert_eq!(cacher.memory(), (0, 0));
    assert_eq!(metrics.get("pods").0, 0);
    assert!(list.items[1].keep_derived(10, false), "a released object's values count nowhere");
    assert_eq!(metrics.get("pods").0, 0);
}
