//! The typed facade (`apistore::TypedStorage`) with a user `Pod` type, over a `Store` and over
//! the watch cache (`apistore::cacher`) in front of it — the facade knows nothing of what it
//! wraps. Backend: the in-memory plugin (a real `KvBackend`, no mock).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apistore::cacher::{Cacher, CacherConfig};
use apistore::selector::LabelSelector;
use apistore::storage::{GetOptions, ListOptions, Preconditions, ResourceVersion, ResourceVersionMatch, Storage};
use apistore::typed::{TypedStorage, TypedWatchEvent, TypedWatchStream};
use apistore::{Error, Object, Store, StoreConfig};
use apistore_memory::MemoryBackend;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A user's pod: its own metadata type (a subset of `ObjectMeta`, `Option`s without
/// `skip_serializing_if`) and a spec with a required field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pod {
    api_version: String,
    kind: String,
    metadata: PodMeta,
    spec: PodSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    uid: Option<String>,
    resource_version: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    /// Required: a stored object without it does not decode into `Pod`.
    node_name: String,
    #[serde(default)]
    containers: Vec<String>,
    #[serde(default)]
    restarts: u32,
}

fn pod(namespace: &str, name: &str, node: &str) -> Pod {
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: PodMeta { name: name.into(), namespace: namespace.into(), ..PodMeta::default() },
        spec: PodSpec { node_name: node.into(), ..PodSpec::default() },
    }
}

fn rv(pod: &Pod) -> u64 {
    pod.metadata.resource_version.as_deref().expect("a stored pod has a resourceVersion").parse().expect("decimal RV")
}

/// `pod` as the storage returned it: same content, the storage's resourceVersion.
fn stored(mut pod: Pod, resource_version: u64) -> Pod {
    pod.metadata.resource_version = Some(resource_version.to_string());
    pod
}

fn names(items: &[Pod]) -> Vec<String> {
    items.iter().map(|p| format!("{}/{}", p.metadata.namespace, p.metadata.name)).collect()
}

fn store() -> Arc<dyn Storage> {
    Arc::new(Store::new(Arc::new(MemoryBackend::new()), StoreConfig::new("pods")).expect("store"))
}

async fn cached() -> Arc<dyn Storage> {
    let cacher = Cacher::new(store(), CacherConfig::new("pods")).expect("cacher");
    cacher.wait_until_ready(TIMEOUT).await.expect("cache ready");
    Arc::new(cacher)
}

async fn next(watch: &mut TypedWatchStream<Pod>) -> TypedWatchEvent<Pod> {
    match tokio::time::timeout(TIMEOUT, watch.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the watch ended early"),
        Err(_) => panic!("no watch event within {TIMEOUT:?}"),
    }
}

/// Runs a scenario over a plain `Store` and over the watch cache in front of one.
macro_rules! over_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store() {
                super::$scenario(super::store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cached() {
                super::$scenario(super::cached().await).await;
            }
        }
    };
}

over_both!(create_get_list_round_trip);
over_both!(list_pages_with_limit_and_continue_and_selects_by_label);
over_both!(update_retries_on_conflict_and_keeps_both_changes);
over_both!(concurrent_updaters_lose_no_change);
over_both!(delete_with_wrong_uid_fails_and_keeps_the_object);
over_both!(watch_delivers_typed_events_in_order);
over_both!(malformed_types_are_clear_errors);
over_both!(stored_objects_that_do_not_fit_the_type_are_clear_errors);

async fn create_get_list_round_trip(storage: Arc<dyn Storage>) {
    let pods = TypedStorage::<Pod>::new(storage.clone(), "/pods");
    let mut web = pod("ns", "web", "node-1");
    web.metadata.labels.insert("app".into(), "web".into());
    web.spec.containers = vec!["nginx".into(), "sidecar".into()];
    let created = pods.create(&web).await.expect("create");
    assert_eq!(created, stored(web.clone(), rv(&created)));
    // Same key scheme as the rest of apistore: the untyped storage finds it at /pods/ns/web.
    let raw = storage.get("/pods/ns/web", GetOptions::default()).await.expect("untyped get").expect("present");
    assert_eq!(raw.metadata.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(raw.field_value("spec.nodeName").as_deref(), Some("node-1"));

    let got = pods.get("ns", "web", GetOptions::default()).await.expect("get").expect("present");
    assert_eq!(got, created);
    let missing = pods.get("ns", "nope", GetOptions::default()).await.expect_err("missing");
    assert!(missing.is_not_found(), "{missing:?}");
    let ignored = pods.get("ns", "nope", GetOptions { ignore_not_found: true, ..GetOptions::default() }).await;
    assert_eq!(ignored, Ok(None));

    let db = pods.create(&pod("other", "db", "node-2")).await.expect("create db");
    assert_eq!(pods.count().await, Ok(2));
    let in_ns = pods.list("ns", ListOptions::default()).await.expect("list ns");
    assert_eq!(in_ns.items, vec![created.clone()]);
    let all = pods.list("", ListOptions::default()).await.expect("list all");
    assert_eq!(all.items, vec![created.clone(), db.clone()], "key order: /pods/ns/web, /pods/other/db");
    assert!(all.resource_version >= rv(&db), "list RV {} < last write {}", all.resource_version, rv(&db));
    assert_eq!(all.continue_token, "");
    // Served from the watch cache when there is one (not older than the list's RV); same items.
    let not_older = ListOptions {
        resource_version: ResourceVersion::at(all.resource_version),
        resource_version_match: Some(ResourceVersionMatch::NotOlderThan),
        ..ListOptions::default()
    };
    assert_eq!(pods.list("", not_older).await.expect("list not older than").items, all.items);
}

async fn list_pages_with_limit_and_continue_and_selects_by_label(storage: Arc<dyn Storage>) {
    let pods = TypedStorage::<Pod>::new(storage, "pods");
    for i in 0..5 {
        let mut p = pod("ns", &format!("p{i}"), "node");
        p.metadata.labels.insert("parity".into(), if i % 2 == 0 { "even" } else { "odd" }.into());
        pods.create(&p).await.expect("create");
    }
    pods.create(&pod("elsewhere", "x", "node")).await.expect("create in another namespace");

    let mut options = ListOptions::default();
    options.predicate.limit = 2;
    let first = pods.list("ns", options.clone()).await.expect("page 1");
    assert_eq!(names(&first.items), ["ns/p0", "ns/p1"]);
    assert_eq!(first.remaining_item_count, Some(3));
    assert!(!first.continue_token.is_empty());
    let mut seen = names(&first.items);
    let mut token = first.continue_token;
    let mut pages = 1;
    while !token.is_empty() {
        options.predicate.continue_token = token;
        let page = pods.list("ns", options.clone()).await.expect("next page");
        assert_eq!(page.resource_version, first.resource_version, "pages are read at the first page's RV");
        seen.extend(names(&page.items));
        token = page.continue_token;
        pages += 1;
        assert!(pages <= 3, "too many pages");
    }
    assert_eq!(seen, ["ns/p0", "ns/p1", "ns/p2", "ns/p3", "ns/p4"]);
    assert_eq!(pages, 3);

    let mut odd = ListOptions::default();
    odd.predicate.label = LabelSelector::parse("parity=odd").expect("selector");
    let odd = pods.list("", odd).await.expect("label-selected list");
    assert_eq!(names(&odd.items), ["ns/p1", "ns/p3"]);
    assert!(odd.items.iter().all(|p| p.metadata.labels["parity"] == "odd"));
}

/// Updater A reads the pod, then — inside its update closure, before A writes — updater B
/// updates the same pod to completion. A's write conflicts; the inner storage retries A's
/// closure with B's state, so the final pod has both changes.
async fn update_retries_on_conflict_and_keeps_both_changes(storage: Arc<dyn Storage>) {
    let pods = TypedStorage::<Pod>::new(storage, "pods");
    let created = pods.create(&pod("ns", "p", "node-1")).await.expect("create");
    let calls = AtomicUsize::new(0);
    let mut saw_b = false;
    let a = pods
        .update("ns", "p", None, |mut current: Pod| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                let b = pods.clone();
                // B runs on its own thread and runtime while A's closure waits for it.
                let result = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    runtime.block_on(b.update("ns", "p", None, |mut pod: Pod| {
                        pod.spec.containers.push("from-b".into());
                        Ok(pod)
                    }))
                })
                .join()
                .expect("updater B's thread");
                result.expect("updater B");
            }
            saw_b = current.spec.containers == ["from-b"];
            current.metadata.labels.insert("from-a".into(), "yes".into());
            Ok(current)
        })
        .await
        .expect("updater A");
    assert!(calls.load(Ordering::SeqCst) >= 2, "A's closure must be retried after the conflict");
    assert!(saw_b, "A's last attempt must see B's change");
    assert_eq!(a.spec.containers, ["from-b"]);
    assert_eq!(a.metadata.labels.get("from-a").map(String::as_str), Some("yes"));
    assert!(rv(&a) > rv(&created) + 1, "two writes after the create");
    let got = pods.get("ns", "p", GetOptions::default()).await.expect("get").expect("present");
    assert_eq!(got, a);

    // Preconditions pass through: a stale resourceVersion is refused, nothing is written.
    let stale = Preconditions { resource_version: Some(rv(&created)), ..Preconditions::default() };
    let err = pods.update("ns", "p", Some(&stale), Ok).await.expect_err("stale RV precondition");
    assert!(err.is_invalid_object(), "{err:?}");
    // The closure's own error is returned as is.
    let err = pods.update("ns", "p", None, |_| Err(Error::bad_request("no"))).await.expect_err("closure error");
    assert_eq!(err, Error::bad_request("no"));
    // Renaming inside an update is refused (the key is fixed).
    let err = pods
        .update("ns", "p", None, |mut pod: Pod| {
            pod.metadata.name = "q".into();
            Ok(pod)
        })
        .await
        .expect_err("rename");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "metadata.name"), "{err:?}");
    assert_eq!(pods.get("ns", "p", GetOptions::default()).await.expect("get").expect("present"), a);
    assert!(pods.update("ns", "missing", None, Ok).await.expect_err("missing").is_not_found());
}

/// Two tasks increment the same counter concurrently; no increment is lost.
async fn concurrent_updaters_lose_no_change(storage: Arc<dyn Storage>) {
    const ROUNDS: u32 = 25;
    let pods = TypedStorage::<Pod>::new(storage, "pods");
    pods.create(&pod("ns", "counter", "node")).await.expect("create");
    let updaters = (0..2).map(|_| {
        let pods = pods.clone();
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                pods.update("ns", "counter", None, |mut pod: Pod| {
                    pod.spec.restarts += 1;
                    Ok(pod)
                })
                .await
                .expect("increment");
            }
        })
    });
    for updater in updaters.collect::<Vec<_>>() {
        updater.await.expect("updater task");
    }
    let got = pods.get("ns", "counter", GetOptions::default()).await.expect("get").expect("present");
    assert_eq!(got.spec.restarts, 2 * ROUNDS);
}

async fn delete_with_wrong_uid_fails_and_keeps_the_object(storage: Arc<dyn Storage>) {
    let pods = TypedStorage::<Pod>::new(storage, "pods");
    let mut p = pod("ns", "p", "node");
    p.metadata.uid = Some("uid-1".into());
    let created = pods.create(&p).await.expect("create");

    let wrong = Preconditions { uid: Some("uid-2".into()), ..Preconditions::default() };
    let err = pods.delete("ns", "p", Some(&wrong)).await.expect_err("wrong uid");
    assert!(err.is_invalid_object(), "{err:?}");
    assert_eq!(err.code(), 409);
    assert!(err.to_string().contains("Precondition failed: UID in precondition: uid-2"), "{err}");
    assert_eq!(pods.get("ns", "p", GetOptions::default()).await.expect("get").expect("still there"), created);

    let right = Preconditions { uid: Some("uid-1".into()), ..Preconditions::default() };
    let deleted = pods.delete("ns", "p", Some(&right)).await.expect("delete");
    assert!(rv(&deleted) > rv(&created), "the deleted object carries the delete's RV");
    assert_eq!(deleted, stored(created, rv(&deleted)));
    assert!(pods.get("ns", "p", GetOptions::default()).await.expect_err("gone").is_not_found());
    assert!(pods.delete("ns", "p", None).await.expect_err("twice").is_not_found());
    assert_eq!(pods.count().await, Ok(0));
}

async fn watch_delivers_typed_events_in_order(storage: Arc<dyn Storage>) {
    let pods = TypedStorage::<Pod>::new(storage, "pods");
    let existing = pods.create(&pod("ns", "existing", "node")).await.expect("create");
    let elsewhere = pods.create(&pod("other", "x", "node")).await.expect("create elsewhere");

    // Initial events, then the end bookmark with the global RV.
    let mut options = ListOptions { send_initial_events: Some(true), ..ListOptions::default() };
    options.predicate.allow_watch_bookmarks = true;
    let mut initial = pods.watch("ns", options).await.expect("watch with initial events");
    assert_eq!(next(&mut initial).await, TypedWatchEvent::Added(existing.clone()));
    assert_eq!(next(&mut initial).await, TypedWatchEvent::Bookmark(rv(&elsewhere)));
    initial.stop();
    assert_eq!(initial.next().await, None);

    let from = ListOptions { resource_version: ResourceVersion::at(rv(&elsewhere)), ..ListOptions::default() };
    let mut watch = pods.watch("ns", from.clone()).await.expect("watch");
    let all = pods.watch("", from).await.expect("watch all namespaces").into_stream();
    let created = pods.create(&pod("ns", "p", "node-1")).await.expect("create");
    pods.create(&pod("other", "y", "node")).await.expect("create in another namespace");
    let updated = pods
        .update("ns", "p", None, |mut pod: Pod| {
            pod.spec.node_name = "node-2".into();
            Ok(pod)
        })
        .await
        .expect("update");
    let deleted = pods.delete("ns", "p", None).await.expect("delete");

    assert_eq!(next(&mut watch).await, TypedWatchEvent::Added(created.clone()));
    assert_eq!(next(&mut watch).await, TypedWatchEvent::Modified(updated.clone()));
    assert_eq!(next(&mut watch).await, TypedWatchEvent::Deleted(deleted.clone()));
    assert_eq!(deleted.spec.node_name, "node-2", "DELETED carries the last state");

    let events = tokio::time::timeout(TIMEOUT, all.take(4).collect::<Vec<_>>()).await.expect("4 events in time");
    let kinds: Vec<String> = events
        .iter()
        .map(|event| match event {
            TypedWatchEvent::Added(p) => format!("ADDED {}", p.metadata.name),
            TypedWatchEvent::Modified(p) => format!("MODIFIED {}", p.metadata.name),
            TypedWatchEvent::Deleted(p) => format!("DELETED {}", p.metadata.name),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["ADDED p", "ADDED y", "MODIFIED p", "DELETED p"]);
}

/// A type that is no Kubernetes object is refused before anything is stored.
async fn malformed_types_are_clear_errors(storage: Arc<dyn Storage>) {
    // Serializes to a JSON array.
    let arrays = TypedStorage::<Vec<String>>::new(storage.clone(), "pods");
    let err = arrays.create(&vec!["a".to_owned()]).await.expect_err("array");
    assert!(matches!(err, Error::BadRequest { .. }), "{err:?}");
    assert!(err.to_string().contains("serializes to JSON an array, not to a JSON object"), "{err}");

    // Serializes to an object with a malformed metadata.
    #[derive(Debug, Serialize, Deserialize)]
    struct BadMeta {
        metadata: serde_json::Value,
    }
    let bad = TypedStorage::<BadMeta>::new(storage.clone(), "pods");
    let err = bad.create(&BadMeta { metadata: json!({ "name": 7 }) }).await.expect_err("numeric name");
    assert_eq!(err.code(), 400, "{err:?}");
    assert!(err.to_string().contains("BadMeta is not a Kubernetes object"), "{err}");

    // An object without a name (no metadata at all, and an empty one).
    #[derive(Debug, Serialize, Deserialize)]
    struct NoMeta {
        spec: PodSpec,
    }
    let nameless = TypedStorage::<NoMeta>::new(storage.clone(), "pods");
    let err = nameless.create(&NoMeta { spec: PodSpec::default() }).await.expect_err("no metadata");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "metadata.name"), "{err:?}");
    let pods = TypedStorage::<Pod>::new(storage.clone(), "pods");
    let err = pods.create(&pod("ns", "", "node")).await.expect_err("empty name");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "metadata.name"), "{err:?}");
    assert_eq!(err.code(), 422);
    let err = pods.create(&pod("ns", "a/b", "node")).await.expect_err("slash in name");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "metadata.name"), "{err:?}");
    let err = pods.get("../x", "a", GetOptions::default()).await.expect_err("bad namespace");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "metadata.namespace"), "{err:?}");

    assert_eq!(pods.count().await, Ok(0), "nothing was stored");
}

/// A stored object missing `spec.nodeName` (required by `Pod`): every typed read fails with
/// a Corrupt error naming the key; typed writes refuse to touch it; nothing panics.
async fn stored_objects_that_do_not_fit_the_type_are_clear_errors(storage: Arc<dyn Storage>) {
    let pods = TypedStorage::<Pod>::new(storage.clone(), "pods");
    let fine = pods.create(&pod("ns", "a-fine", "node")).await.expect("create a fitting pod");
    let misfit = Object::new("v1", "Pod", "ns", "misfit").with_field("spec", json!({ "containers": ["c"] }));
    let misfit = storage.create("/pods/ns/misfit", misfit, 0).await.expect("untyped create");
    let is_misfit_error = |err: &Error| {
        matches!(err, Error::Corrupt { key, message }
            if key == "/pods/ns/misfit" && message.contains("missing field `nodeName`") && message.contains("Pod"))
    };

    let err = pods.get("ns", "misfit", GetOptions::default()).await.expect_err("get");
    assert!(is_misfit_error(&err), "{err:?}");
    assert_eq!(err.code(), 500);
    let err = pods.list("ns", ListOptions::default()).await.expect_err("list");
    assert!(is_misfit_error(&err), "{err:?}");
    let err = pods.update("ns", "misfit", None, Ok).await.expect_err("update");
    assert!(is_misfit_error(&err), "{err:?}");
    let err = pods.delete("ns", "misfit", None).await.expect_err("delete");
    assert!(is_misfit_error(&err), "{err:?}");
    let unchanged = storage.get("/pods/ns/misfit", GetOptions::default()).await.expect("untyped get");
    assert_eq!(unchanged, Some(misfit.clone()), "typed update and delete left it alone");

    // A watch delivers the fitting object, then one ERROR for the misfit, then ends.
    let options = ListOptions { send_initial_events: Some(true), ..ListOptions::default() };
    let mut watch = pods.watch("ns", options).await.expect("watch");
    assert_eq!(next(&mut watch).await, TypedWatchEvent::Added(fine));
    match next(&mut watch).await {
        TypedWatchEvent::Error(err) => assert!(is_misfit_error(&err), "{err:?}"),
        other => panic!("expected an ERROR for the misfit, got {other:?}"),
    }
    assert_eq!(watch.next().await, None);
}
