//! apistore's `Store` over sled: concurrent guaranteed updates, and the registry factory.

use std::sync::Arc;

use apistore::registry::{self, BackendConfig};
use apistore::storage::{GetOptions, ResponseMeta, Storage};
use apistore::{Object, Store, StoreConfig};
use apistore_sled::{Durability, SledBackend, SledOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_of_200_guaranteed_updates_count_to_1600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = SledBackend::open(SledOptions::new(dir.path()).durability(Durability::Periodic(500))).expect("open");
    let store = Store::new(Arc::new(backend), StoreConfig::new("counters")).expect("store");
    let counter = Object::new("v1", "Counter", "default", "c").with_field("count", json!(0));
    store.create("/counters/default/c", counter, 0).await.expect("create");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let mut increment = |mut object: Object, _: ResponseMeta| {
                        let count = object.fields.get("count").and_then(|v| v.as_i64()).unwrap_or(-1_000_000);
                        object.fields.insert("count".into(), json!(count + 1));
                        Ok((object, None))
                    };
                    store
                        .guaranteed_update("/counters/default/c", false, None, &mut increment, None)
                        .await
                        .expect("guaranteed update");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let object = store.get("/counters/default/c", GetOptions::default()).await.expect("get").expect("counter");
    assert_eq!(object.fields.get("count"), Some(&json!(1600)));
    // Create (1) + 1600 updates, each exactly one revision.
    assert_eq!(object.resource_version().expect("rv"), 2 + 1600);
}

#[tokio::test]
async fn registry_opens_sled_by_name_and_pools_per_config() {
    apistore_sled::register();
    assert!(registry::names().contains(&"sled"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BackendConfig::new("sled")
        .with_option("path", dir.path().to_str().expect("utf-8 path"))
        .with_option("durability", json!({"periodic_ms": 200}))
        .with_option("compaction_window", 500);
    let first = registry::open(&config).await.expect("open sled through the registry");
    let second = registry::open(&config).await.expect("open again");
    assert!(Arc::ptr_eq(&first, &second), "one backend per identical config");
    assert_eq!(first.backend_name(), "sled");
    let store = Store::new(first.clone(), StoreConfig::new("pods")).expect("store");
    let pod = Object::new("v1", "Pod", "default", "p");
    let created = store.create("/pods/default/p", pod, 0).await.expect("create");
    assert_eq!(created.metadata.resource_version, "2");
}

#[tokio::test]
async fn bad_sled_options_are_typed_invalid_errors() {
    let cases = [
        BackendConfig::new("sled").with_option("durability", "sometimes"),
        BackendConfig::new("sled").with_option("durability", json!({"periodic_ms": 0})),
        BackendConfig::new("sled").with_option("compaction_window", "many"),
        BackendConfig::new("sled").with_option("no_such_option", true),
        BackendConfig::new("sled").with_option("temporary", true).with_option("watch_buffer", 0),
    ];
    for config in cases {
        match registry::open(&config).await {
            Err(e) => assert_eq!(e.code(), 422, "{config:?}: {e}"),
            Ok(_) => panic!("{config:?} must be rejected"),
        }
    }
}
