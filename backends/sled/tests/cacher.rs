//! The watch cache over sled: consistent lists (resourceVersion "") are served from the
//! cache, kept exact by sled's answers to progress requests (Kubernetes'
//! `ConsistentListFromCache`).

use std::sync::Arc;
use std::time::Duration;

use apistore::cacher::{Cacher, CacherConfig};
use apistore::group_resource::GroupResource;
use apistore::layer::{Layer, ResourceContext};
use apistore::layers::StorageMetrics;
use apistore::storage::{ListOptions, Predicate, Storage};
use apistore::{KvBackend, Object, Store, StoreConfig};
use apistore_sled::SledBackend;

fn pod(name: &str) -> Object {
    Object::new("v1", "Pod", "ns", name)
}

fn names(objects: &[Object]) -> Vec<&str> {
    objects.iter().map(|o| o.metadata.name.as_str()).collect()
}

fn list(limit: i64, continue_token: &str) -> ListOptions {
    let predicate = Predicate { limit, continue_token: continue_token.to_owned(), ..Predicate::everything() };
    ListOptions { recursive: true, predicate, ..ListOptions::default() }
}

#[tokio::test]
async fn consistent_lists_come_from_the_cache_and_see_every_acknowledged_write() {
    let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::temporary().expect("sled"));
    let metrics = StorageMetrics::new();
    let config = StoreConfig::new("pods");
    let context = ResourceContext::for_store(GroupResource::core("pods"), &config).expect("context");
    let store: Arc<dyn Storage> = Arc::new(Store::new(backend.clone(), config).expect("store"));
    let metered = metrics.layer().layer(&context, store).expect("metrics layer");
    let cacher = Cacher::new(metered, CacherConfig::new("pods")).expect("cacher");
    cacher.wait_until_ready(Duration::from_secs(10)).await.expect("ready");
    let inner_lists = metrics.request_count("pods", "list");
    assert_eq!(inner_lists, 1, "the reflector's initial list");

    for i in 0..5 {
        cacher.create(&format!("/pods/ns/p{i}"), pod(&format!("p{i}")), 0).await.expect("create");
    }
    // A write to another resource moves the global revision past every pod event: only a
    // progress notification tells the pods cache it has seen everything up to it.
    let configmaps = Store::new(backend, StoreConfig::new("configmaps")).expect("configmaps store");
    let other = configmaps.create("/configmaps/ns/c", Object::new("v1", "ConfigMap", "ns", "c"), 0).await;
    let other_revision = other.expect("create configmap").resource_version().expect("rv");

    let all = cacher.get_list("/pods", list(0, "")).await.expect("consistent list");
    assert_eq!(names(&all.items), ["p0", "p1", "p2", "p3", "p4"]);
    assert!(all.resource_version >= other_revision, "list RV {} < {other_revision}", all.resource_version);
    assert_eq!(metrics.request_count("pods", "list"), inner_lists, "served by the cache, not the store");
    assert!(metrics.request_count("pods", "requestWatchProgress") >= 1, "the cache asked for progress");

    // A page from the cache; its continuation (served by the store) at the same revision.
    let page = cacher.get_list("/pods", list(2, "")).await.expect("first page");
    assert_eq!(names(&page.items), ["p0", "p1"]);
    assert_eq!(page.remaining_item_count, Some(3));
    assert_eq!(metrics.request_count("pods", "list"), inner_lists, "first page from the cache");
    // The continuation reads at the page's revision: a later delete does not show.
    let deleted = cacher.delete("/pods/ns/p3", None, &apistore::storage::allow_all_deletions, None, Default::default());
    deleted.await.expect("delete p3");
    let rest = cacher.get_list("/pods", list(0, &page.continue_token)).await.expect("continuation");
    assert_eq!(names(&rest.items), ["p2", "p3", "p4"]);
    assert_eq!(rest.resource_version, page.resource_version);
    let now = cacher.get_list("/pods", list(0, "")).await.expect("consistent list after the delete");
    assert_eq!(names(&now.items), ["p0", "p1", "p2", "p4"], "the delete is seen by the next consistent list");
}
