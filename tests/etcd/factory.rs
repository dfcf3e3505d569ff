//! Per-resource backends of different types in one process: sled and a real etcd started by
//! the test (apistore-etcd-harness: free loopback ports, temp dir, killed by pid on drop).

use std::path::Path;
use std::sync::Arc;

use apistore::factory::{check_backends, StorageOptions};
use apistore::group_resource::GroupResource;
use apistore::layer::LayerChain;
use apistore::layers::WatchCacheLayer;
use apistore::registry::{self, BackendConfig};
use apistore::rest_options::{RESTOptionsGetter, StorageFactoryRestOptionsFactory};
use apistore::storage::{GetOptions, ListOptions, Storage};
use apistore::Object;
use apistore_etcd_harness::EtcdCluster;
use serde_json::json;

fn register_backends() {
    apistore_sled::register();
    apistore_etcd::register();
}

async fn storage_of(getter: &dyn RESTOptionsGetter, gr: &GroupResource) -> Arc<dyn Storage> {
    getter.get_rest_options(gr).expect("rest options").create_storage().await.expect("create storage")
}

async fn raw_value(backend: &BackendConfig, key: &str) -> Option<Vec<u8>> {
    let kv = registry::open(backend).await.expect("open backend");
    kv.get(key, 0).await.expect("raw get").kv.map(|kv| kv.value.to_vec())
}

fn sled_at(path: &Path) -> BackendConfig {
    BackendConfig::new("sled").with_option("path", path.display().to_string())
}

#[tokio::test]
async fn configmaps_on_sled_and_events_on_etcd() {
    register_backends();
    let etcd = EtcdCluster::single().expect("start etcd");
    let url = etcd.endpoint(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let path = dir.path().join("apistore.toml");
    std::fs::write(&path, format!("[backend]\ntype = \"sled\"\npath = {:?}\n", db.display().to_string()))
        .expect("write");
    // The events location comes from kube-apiserver's own flag syntax.
    let mut options = StorageOptions::load(&path).expect("load");
    options.apply_args([format!("--etcd-servers-overrides=/events#{url}")]).expect("flags");
    let getter = StorageFactoryRestOptionsFactory::from_config(
        &options.complete().expect("complete"),
        LayerChain::new().with(WatchCacheLayer::default()),
    );
    check_backends(getter.factory().as_ref()).await.expect("sled and etcd healthy");

    let events_options = getter.get_rest_options(&GroupResource::core("events")).expect("events");
    assert_eq!(events_options.storage_config.backend.backend, "etcd3");
    let etcd_backend = events_options.storage_config.backend.clone();
    let events = events_options.create_storage().await.expect("events storage");
    let configmaps = storage_of(&getter, &GroupResource::core("configmaps")).await;
    // events.k8s.io/events cohabits with core events: same etcd, same keys.
    let new_events = storage_of(&getter, &GroupResource::new("events.k8s.io", "events")).await;

    let event = Object::new("v1", "Event", "default", "started").with_field("reason", json!("Started"));
    let created_event = events.create("/events/default/started", event, 0).await.expect("create event");
    let cm = Object::new("v1", "ConfigMap", "default", "settings").with_field("data", json!({"a": "1"}));
    let created_cm = configmaps.create("/configmaps/default/settings", cm, 0).await.expect("create configmap");

    // On the backends themselves.
    let sled = sled_at(&db);
    assert!(raw_value(&etcd_backend, "/registry/events/default/started").await.is_some(), "event on etcd");
    assert_eq!(raw_value(&sled, "/registry/events/default/started").await, None, "event not on sled");
    assert!(raw_value(&sled, "/registry/configmaps/default/settings").await.is_some(), "configmap on sled");
    assert_eq!(raw_value(&etcd_backend, "/registry/configmaps/default/settings").await, None, "configmap not on etcd");

    // Each read back through its own storage; the cohabiting resource sees the event.
    let read = configmaps.get("/configmaps/default/settings", GetOptions::default()).await.expect("get").expect("cm");
    assert_eq!(read, created_cm);
    let listed = new_events
        .get_list("/events/default", ListOptions { recursive: true, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(listed.items, vec![created_event]);
    drop((events, new_events, configmaps));
    drop(etcd);
}

#[tokio::test]
async fn etcd_by_default_events_on_sled_secrets_encrypted_on_etcd() {
    register_backends();
    let etcd = EtcdCluster::single().expect("start etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("events-db");
    std::fs::write(
        dir.path().join("enc.yaml"),
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aescbc: {keys: [{name: k1, secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=}]}\n",
    )
    .expect("write encryption");
    let path = dir.path().join("apistore.yaml");
    std::fs::write(
        &path,
        format!(
            "encryption_provider_config: enc.yaml\nbackend:\n  type: etcd3\n  endpoints: [{}]\nresources:\n  events:\n    backend: {{type: sled, path: {}}}\n",
            etcd.endpoint(0),
            db.display()
        ),
    )
    .expect("write config");
    let completed = StorageOptions::load(&path).expect("load").complete().expect("complete");
    let etcd_backend = completed.backend.clone();
    let getter =
        StorageFactoryRestOptionsFactory::from_config(&completed, LayerChain::new().with(WatchCacheLayer::default()));

    let events = storage_of(&getter, &GroupResource::core("events")).await;
    let secrets = storage_of(&getter, &GroupResource::core("secrets")).await;
    events.create("/events/default/e", Object::new("v1", "Event", "default", "e"), 0).await.expect("event");
    let secret = Object::new("v1", "Secret", "default", "s").with_field("data", json!({"token": "plaintext-token"}));
    let created = secrets.create("/secrets/default/s", secret, 0).await.expect("secret");

    assert!(raw_value(&sled_at(&db), "/registry/events/default/e").await.is_some(), "event on sled");
    assert_eq!(raw_value(&etcd_backend, "/registry/events/default/e").await, None, "event not on etcd");
    let raw = raw_value(&etcd_backend, "/registry/secrets/default/s").await.expect("secret on etcd");
    assert!(raw.starts_with(b"k8s:enc:aescbc:v1:k1:"), "{}", String::from_utf8_lossy(&raw));
    assert!(!raw.windows(15).any(|w| w == b"plaintext-token"), "plaintext at rest");
    let read = secrets.get("/secrets/default/s", GetOptions::default()).await.expect("get").expect("secret");
    assert_eq!(read, created);
    drop((events, secrets));
    drop(etcd);
}
