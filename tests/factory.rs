//! The StorageFactory chain end to end over real backends: config file → StorageOptions →
//! StorageFactoryConfig → DefaultStorageFactory → RESTOptionsGetter → Arc<dyn Storage>.
//! Raw bytes are checked on the backend itself (opened through the pooled registry, so the
//! very instance the stores use).

use std::path::Path;
use std::sync::{Arc, Mutex};

use apistore::factory::{check_backends, StorageOptions};
use apistore::group_resource::GroupResource;
use apistore::layer::{Layer, LayerChain, ResourceContext};
use apistore::layers::{StorageMetrics, TracingLayer, WatchCacheLayer};
use apistore::registry::{self, BackendConfig};
use apistore::rest_options::{RESTOptions, RESTOptionsGetter, StorageFactoryRestOptionsFactory};
use apistore::storage::{allow_all_deletions, DeleteOptions, GetOptions, ListOptions, ResourceVersion, Storage};
use apistore::{Error, Object};
use serde_json::json;

const KEY1: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="; // 32 bytes
const KEY2: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY="; // 32 bytes
const KEY3: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng=="; // 16 bytes

fn register_backends() {
    apistore_sled::register();
}

fn sled_at(path: &Path) -> BackendConfig {
    BackendConfig::new("sled").with_option("path", path.display().to_string())
}

/// Writes `text` to `dir/name` and loads it as options, then completes them; the getter puts
/// the watch cache over the resources that want one.
fn getter_from_file(dir: &Path, name: &str, text: &str) -> StorageFactoryRestOptionsFactory {
    register_backends();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    let options = StorageOptions::load(&path).expect("load config");
    let completed = options.complete().expect("complete");
    StorageFactoryRestOptionsFactory::from_config(&completed, LayerChain::new().with(WatchCacheLayer::default()))
}

async fn storage_of(getter: &dyn RESTOptionsGetter, gr: &GroupResource) -> Arc<dyn Storage> {
    getter.get_rest_options(gr).expect("rest options").create_storage().await.expect("create storage")
}

fn configmap(name: &str, value: &str) -> Object {
    Object::new("v1", "ConfigMap", "default", name).with_field("data", json!({ "value": value }))
}

async fn raw_value(backend: &BackendConfig, key: &str) -> Option<Vec<u8>> {
    let kv = registry::open(backend).await.expect("open backend");
    kv.get(key, 0).await.expect("raw get").kv.map(|kv| kv.value.to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn resources_are_stored_where_the_config_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main_db = dir.path().join("main");
    let cm_db = dir.path().join("cm");
    let getter = getter_from_file(
        dir.path(),
        "apistore.yaml",
        &format!(
            "backend: {{type: sled, path: {}}}\nresources:\n  configmaps:\n    backend: {{type: sled, path: {}}}\n    prefix: /other\n    resource_prefix: cm\n    media_type: application/yaml\n",
            main_db.display(),
            cm_db.display()
        ),
    );
    check_backends(getter.factory().as_ref()).await.expect("backends healthy");
    let configmaps = storage_of(&getter, &GroupResource::core("configmaps")).await;
    let secrets = storage_of(&getter, &GroupResource::core("secrets")).await;
    let created = configmaps.create("/cm/default/a", configmap("a", "one"), 0).await.expect("create cm");
    secrets.create("/secrets/default/s", Object::new("v1", "Secret", "default", "s"), 0).await.expect("create secret");

    // configmaps: their own sled db, prefix /other, resource prefix cm, YAML.
    let raw = raw_value(&sled_at(&cm_db), "/other/cm/default/a").await.expect("configmap stored on its backend");
    assert!(String::from_utf8_lossy(&raw).contains("kind: ConfigMap"), "{}", String::from_utf8_lossy(&raw));
    assert_eq!(raw_value(&sled_at(&main_db), "/other/cm/default/a").await, None);
    // secrets: the default backend and layout, JSON.
    let raw = raw_value(&sled_at(&main_db), "/registry/secrets/default/s").await.expect("secret on the default");
    assert!(raw.starts_with(b"{"), "{}", String::from_utf8_lossy(&raw));
    assert_eq!(raw_value(&sled_at(&cm_db), "/registry/secrets/default/s").await, None);

    let read = configmaps.get("/cm/default/a", GetOptions::default()).await.expect("get").expect("exists");
    assert_eq!(read, created);
    let factory = getter.factory();
    assert_eq!(factory.resource_prefix(&GroupResource::core("configmaps")), "cm");
    assert_eq!(factory.backends().len(), 2);
}

#[tokio::test]
async fn cohabiting_deployments_read_each_others_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let getter = getter_from_file(
        dir.path(),
        "apistore.toml",
        &format!("[backend]\ntype = \"sled\"\npath = {:?}\n", dir.path().join("db").display().to_string()),
    );
    let apps_gr = GroupResource::new("apps", "deployments");
    let ext_gr = GroupResource::new("extensions", "deployments");
    let apps_options = getter.get_rest_options(&apps_gr).expect("apps");
    let ext_options = getter.get_rest_options(&ext_gr).expect("extensions");
    assert_eq!(apps_options.resource_prefix, "deployments");
    assert_eq!(ext_options.resource_prefix, "deployments");
    assert_eq!(ext_options.storage_config.storage_group_resource, apps_gr);
    assert_eq!(ext_options.storage_config.group_resource, ext_gr);
    let apps = apps_options.create_storage().await.expect("apps storage");
    let ext = ext_options.create_storage().await.expect("extensions storage");

    let by_apps = Object::new("apps/v1", "Deployment", "default", "web").with_field("spec", json!({"replicas": 2}));
    let created = apps.create("/deployments/default/web", by_apps, 0).await.expect("create via apps");
    let seen = ext.get("/deployments/default/web", GetOptions::default()).await.expect("get").expect("via extensions");
    assert_eq!(seen, created);

    let by_ext = Object::new("extensions/v1beta1", "Deployment", "default", "api");
    let created = ext.create("/deployments/default/api", by_ext, 0).await.expect("create via extensions");
    let list = apps
        .get_list("/deployments/default", ListOptions { recursive: true, ..Default::default() })
        .await
        .expect("list via apps");
    let names: Vec<&str> = list.items.iter().map(|o| o.metadata.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(list.items[0], created);
    let backend = sled_at(&dir.path().join("db"));
    assert!(raw_value(&backend, "/registry/deployments/default/api").await.is_some());
}

fn encryption_file(dir: &Path, name: &str, providers: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
        ),
    )
    .expect("write encryption config");
    path.display().to_string()
}

fn secret(name: &str, password: &str) -> Object {
    Object::new("v1", "Secret", "default", name).with_field("data", json!({ "password": password }))
}

#[tokio::test]
async fn encryption_at_rest_survives_key_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let backend = sled_at(&db);
    let config_with = |encryption: &str| {
        format!(
            "encryption_provider_config = {encryption:?}\n[backend]\ntype = \"sled\"\npath = {:?}\n",
            db.display().to_string()
        )
    };
    let secrets_gr = GroupResource::core("secrets");
    let key = "/registry/secrets/default/db-password";

    // 1. key1 writes.
    let enc1 = encryption_file(
        dir.path(),
        "enc1.yaml",
        &format!("      - aesgcm: {{keys: [{{name: key1, secret: {KEY1}}}]}}\n      - identity: {{}}\n"),
    );
    let getter = getter_from_file(dir.path(), "v1.toml", &config_with(&enc1));
    let secrets = storage_of(&getter, &secrets_gr).await;
    let created = secrets
        .create("/secrets/default/db-password", secret("db-password", "hunter2-plaintext"), 0)
        .await
        .expect("create");
    let raw = raw_value(&backend, key).await.expect("stored");
    assert!(raw.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "{}", String::from_utf8_lossy(&raw));
    assert!(!contains(&raw, b"hunter2-plaintext"), "plaintext visible at rest");
    // configmaps are not in the encryption config: plaintext.
    let configmaps = storage_of(&getter, &GroupResource::core("configmaps")).await;
    configmaps.create("/configmaps/default/c", configmap("c", "visible"), 0).await.expect("cm");
    assert!(contains(&raw_value(&backend, "/registry/configmaps/default/c").await.expect("cm raw"), b"visible"));

    // A no-op update of fresh data writes nothing.
    let unchanged = secrets
        .guaranteed_update(key.trim_start_matches("/registry"), false, None, &mut |o, _| Ok((o, None)), None)
        .await
        .expect("no-op update");
    assert_eq!(unchanged.metadata.resource_version, created.metadata.resource_version);

    // 2. Rotation: key2 first, key1 still readable.
    let enc2 = encryption_file(
        dir.path(),
        "enc2.yaml",
        &format!("      - secretbox: {{keys: [{{name: key2, secret: {KEY2}}}]}}\n      - aesgcm: {{keys: [{{name: key1, secret: {KEY1}}}]}}\n"),
    );
    let getter = getter_from_file(dir.path(), "v2.toml", &config_with(&enc2));
    let secrets = storage_of(&getter, &secrets_gr).await;
    let old = secrets.get("/secrets/default/db-password", GetOptions::default()).await.expect("get").expect("exists");
    assert_eq!(old, created, "old data stays readable");
    // The stale value is rewritten by a no-op update (storage migration).
    let migrated = secrets
        .guaranteed_update("/secrets/default/db-password", false, None, &mut |o, _| Ok((o, None)), None)
        .await
        .expect("migrate");
    assert_ne!(migrated.metadata.resource_version, created.metadata.resource_version, "stale data must be rewritten");
    assert_eq!(migrated.fields, created.fields);
    let raw = raw_value(&backend, key).await.expect("stored");
    assert!(raw.starts_with(b"k8s:enc:secretbox:v1:key2:"), "{}", String::from_utf8_lossy(&raw));
    assert!(!contains(&raw, b"hunter2-plaintext"));
    // New writes use key2 too.
    secrets.create("/secrets/default/new", secret("new", "fresh-plaintext"), 0).await.expect("create new");
    let raw_new = raw_value(&backend, "/registry/secrets/default/new").await.expect("stored");
    assert!(raw_new.starts_with(b"k8s:enc:secretbox:v1:key2:"));

    // 3. key1 removed: key2 data still reads.
    let enc3 = encryption_file(
        dir.path(),
        "enc3.yaml",
        &format!("      - secretbox: {{keys: [{{name: key2, secret: {KEY2}}}]}}\n"),
    );
    let getter = getter_from_file(dir.path(), "v3.toml", &config_with(&enc3));
    let secrets = storage_of(&getter, &secrets_gr).await;
    let read = secrets.get("/secrets/default/db-password", GetOptions::default()).await.expect("get").expect("exists");
    assert_eq!(read.fields, created.fields);

    // 4. key2 removed as well: a clear internal error naming the key, no panic.
    let enc4 = encryption_file(
        dir.path(),
        "enc4.yaml",
        &format!("      - aesgcm: {{keys: [{{name: key3, secret: {KEY3}}}]}}\n"),
    );
    let getter = getter_from_file(dir.path(), "v4.toml", &config_with(&enc4));
    let secrets = storage_of(&getter, &secrets_gr).await;
    let err = secrets.get("/secrets/default/db-password", GetOptions::default()).await.expect_err("unreadable");
    assert_eq!(err.code(), 500, "{err}");
    let message = err.to_string();
    assert!(message.contains("k8s:enc:secretbox:v1:key2:"), "{message}");
    assert!(message.contains(key), "{message}");
    let err = secrets
        .get_list("/secrets/default", ListOptions { recursive: true, ..Default::default() })
        .await
        .expect_err("list unreadable");
    assert_eq!(err.code(), 500);
}

#[tokio::test]
async fn unknown_backend_lists_the_registered_ones() {
    register_backends();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("apistore.toml");
    std::fs::write(&path, "[backend]\ntype = \"cassandra\"\n").expect("write");
    let err = StorageOptions::load(&path).expect("load").complete().expect_err("unknown backend");
    let message = err.to_string();
    assert!(message.contains("cassandra"), "{message}");
    assert!(message.contains("registered backends: [") && message.contains("sled"), "{message}");
    // An override naming an unknown backend fails the same way.
    std::fs::write(&path, "[resources.events]\nbackend = { type = \"nope\" }\n").expect("write");
    let err = StorageOptions::load(&path).expect("load").complete().expect_err("unknown override backend");
    assert!(err.to_string().contains("nope") && err.to_string().contains("sled"), "{err}");
    // And at open time through RESTOptions built by hand.
    let mut options = getter_from_file(
        dir.path(),
        "ok.toml",
        &format!("[backend]\ntype = \"sled\"\npath = {:?}\n", dir.path().join("db").display().to_string()),
    )
    .get_rest_options(&GroupResource::core("pods"))
    .expect("options");
    options.storage_config.backend = BackendConfig::new("missing-db");
    let err = options.create_storage().await.err().expect("unknown at open");
    assert!(err.to_string().contains("missing-db") && err.to_string().contains("sled"), "{err}");
}

#[test]
fn malformed_config_files_give_clear_errors() {
    register_backends();
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, &str)] = &[
        ("a.toml", "prefix = 5\n", "config"),
        ("b.toml", "[backend]\ntype = \"\"\n", "backend.type"),
        ("c.yaml", "prefix: registry\n", "prefix"),
        ("d.yaml", "storage_media_type: application/vnd.kubernetes.protobuf\n", "storage_media_type"),
        ("e.yaml", "watch_cache: {sizes: ['pods#-1']}\n", "watch_cache.sizes"),
        ("f.toml", "etcd_servers_overrides = [\"events#http://x\"]\n", "etcd_servers_overrides"),
        ("g.yaml", "resources: {'apps/deployments': {}}\n", "resources"),
        ("h.yaml", "resources: {configmaps: {media_type: text/csv}}\n", "resources.\"configmaps\".media_type"),
        ("i.json", "{\"unknown_field\": 1}", "config"),
        ("j.conf", "", "config"),
    ];
    for (name, text, field) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let err = StorageOptions::load(&path).and_then(|o| o.complete()).expect_err(name);
        match &err {
            Error::Invalid { field: got, .. } => assert_eq!(got, field, "{name}: {err}"),
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
    // Encryption files: missing, malformed, invalid.
    let missing = dir.path().join("missing.yaml");
    let path = dir.path().join("enc.toml");
    std::fs::write(&path, format!("encryption_provider_config = {:?}\n", missing.display().to_string()))
        .expect("write");
    let err = StorageOptions::load(&path).expect("load").complete().expect_err("missing encryption file");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "encryption_provider_config"), "{err}");
    std::fs::write(&missing, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{aesgcm: {keys: [{name: k, secret: c2hvcnQ=}]}}]\n").expect("write");
    let err = StorageOptions::load(&path).expect("load").complete().expect_err("short key");
    assert!(err.to_string().contains("secret is not of the expected length, got 5"), "{err}");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "resources[0].providers[0].aesgcm.keys[0].secret"),
        "{err}"
    );
}

/// A real layer replacing the watch cache: it records the resources whose context wants a
/// cache and passes the storage below through.
#[derive(Debug, Default)]
struct RecordingCacher {
    built: Mutex<Vec<String>>,
}

impl Layer for RecordingCacher {
    fn name(&self) -> &str {
        "recording-cacher"
    }

    fn layer(&self, context: &ResourceContext, inner: Arc<dyn Storage>) -> apistore::Result<Arc<dyn Storage>> {
        if context.watch_cache {
            self.built.lock().expect("lock").push(context.group_resource.to_string());
        }
        Ok(inner)
    }
}

#[tokio::test]
async fn the_watch_cache_is_chosen_by_watch_cache_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[backend]\ntype = \"sled\"\npath = {:?}\n[watch_cache]\nsizes = [\"events#0\", \"pods#100\"]\n[resources.secrets]\nwatch_cache = false\n",
        dir.path().join("db").display().to_string()
    );
    // By default cached resources get the watch cache.
    let getter = getter_from_file(dir.path(), "a.toml", &text);
    let expected = [("configmaps", true), ("pods", true), ("events", false), ("secrets", false)];
    for (resource, cached) in expected {
        let options = getter.get_rest_options(&GroupResource::core(resource)).expect("options");
        assert_eq!(options.watch_cache, cached, "{resource}");
        assert_eq!(options.layers.names(), ["watch-cache"], "{resource}: one chain for every resource");
    }
    // Another layer in the chain sees the same per-resource choice.
    let cacher = Arc::new(RecordingCacher::default());
    let getter =
        getter_from_file(dir.path(), "b.toml", &text).with_layers(LayerChain::new().with_shared(cacher.clone()));
    for (resource, cached) in expected {
        let options = getter.get_rest_options(&GroupResource::core(resource)).expect("options");
        assert_eq!(options.watch_cache, cached, "{resource}");
        let storage = options.create_storage().await.expect("storage");
        storage
            .create(&format!("/{resource}/default/x"), Object::new("v1", "X", "default", "x"), 0)
            .await
            .expect("create");
    }
    assert_eq!(*cacher.built.lock().expect("lock"), ["configmaps", "pods"]);
    // --watch-cache=false turns every cache off.
    let mut options = StorageOptions::load(dir.path().join("b.toml")).expect("load");
    options.apply_flag("--watch-cache", "false").expect("flag");
    let getter = StorageFactoryRestOptionsFactory::from_config(
        &options.complete().expect("complete"),
        LayerChain::new().with_shared(cacher.clone()),
    );
    let pods = getter.get_rest_options(&GroupResource::core("pods")).expect("pods");
    assert!(!pods.watch_cache);
    pods.create_storage().await.expect("storage");
    assert_eq!(*cacher.built.lock().expect("lock"), ["configmaps", "pods"], "no cache once turned off");
}

#[tokio::test]
async fn rest_options_is_its_own_getter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let getter = getter_from_file(
        dir.path(),
        "a.toml",
        &format!("[backend]\ntype = \"sled\"\npath = {:?}\n", dir.path().join("db").display().to_string()),
    );
    let options: RESTOptions = getter.get_rest_options(&GroupResource::core("configmaps")).expect("options");
    let same = options.get_rest_options(&GroupResource::core("anything")).expect("self");
    assert_eq!(same.resource_prefix, "configmaps");
    let storage = same.create_storage().await.expect("storage");
    storage.create("/configmaps/default/a", configmap("a", "1"), 0).await.expect("create");
    // An empty resource prefix is refused, as Kubernetes' CompleteWithOptions does.
    let mut bad = options.clone();
    bad.resource_prefix = "/".into();
    let err = bad.create_storage().await.err().expect("empty prefix");
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn metrics_and_tracing_layers_see_every_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = StorageMetrics::new();
    let getter = getter_from_file(
        dir.path(),
        "a.toml",
        &format!("[backend]\ntype = \"sled\"\npath = {:?}\n", dir.path().join("db").display().to_string()),
    )
    .with_layers(LayerChain::new().with(TracingLayer).with(metrics.layer()));
    let storage = storage_of(&getter, &GroupResource::core("configmaps")).await;
    let spans = capture::Spans::default();
    let subscriber = capture::Collector { spans: spans.clone() };
    let dispatch = tracing::Dispatch::new(subscriber);
    let _guard = tracing::dispatcher::set_default(&dispatch);

    storage.create("/configmaps/default/a", configmap("a", "1"), 0).await.expect("create");
    storage.create("/configmaps/default/b", configmap("b", "2"), 0).await.expect("create");
    let err = storage.create("/configmaps/default/a", configmap("a", "1"), 0).await.expect_err("exists");
    assert!(err.is_already_exists());
    storage.get("/configmaps/default/a", GetOptions::default()).await.expect("get");
    storage.get_list("/configmaps/default", ListOptions { recursive: true, ..Default::default() }).await.expect("list");
    storage
        .guaranteed_update(
            "/configmaps/default/a",
            false,
            None,
            &mut |o, _| Ok((o.with_field("data", json!({"v": "2"})), None)),
            None,
        )
        .await
        .expect("update");
    let watch = storage
        .watch("/configmaps/default", ListOptions { recursive: true, ..Default::default() })
        .await
        .expect("watch");
    drop(watch);
    storage
        .delete("/configmaps/default/b", None, &allow_all_deletions, None, DeleteOptions::default())
        .await
        .expect("delete");
    let stats = storage.stats().await.expect("stats");
    storage.readiness_check().await.expect("ready");
    storage.current_resource_version().await.expect("rv");
    storage.compact_revision().await.expect("compact rev");
    storage.request_watch_progress().await.expect("progress");

    let resource = "configmaps";
    for (operation, count) in [
        ("create", 3),
        ("get", 1),
        ("list", 1),
        ("update", 1),
        ("watch", 1),
        ("delete", 1),
        ("stats", 1),
        ("readiness", 1),
        ("currentResourceVersion", 1),
        ("compactRevision", 1),
        ("requestWatchProgress", 1),
    ] {
        assert_eq!(metrics.request_count(resource, operation), count, "{operation}");
    }
    assert_eq!(metrics.error_count(resource, "create"), 1);
    assert_eq!(stats.object_count, 1);
    assert_eq!(metrics.object_count(resource), Some(1));
    let text = metrics.render();
    assert!(
        text.contains(
            "apistore_request_errors_total{operation=\"create\",reason=\"AlreadyExists\",resource=\"configmaps\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("apiserver_storage_objects{resource=\"configmaps\"} 1"), "{text}");

    // The count poller updates apiserver_storage_objects from stats() on its own.
    storage.create("/configmaps/default/c", configmap("c", "3"), 0).await.expect("create");
    let poller = metrics.poll_object_counts(
        vec![("configmaps-polled".to_owned(), storage.clone())],
        std::time::Duration::from_millis(20),
    );
    let mut polled = None;
    for _ in 0..250 {
        polled = metrics.object_count("configmaps-polled");
        if polled.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    poller.abort();
    assert_eq!(polled, Some(2), "the poller must publish the object count");

    let spans = spans.0.lock().expect("spans").clone();
    let operations: Vec<&str> = spans.iter().take(13).map(|s| s.operation.as_str()).collect();
    assert_eq!(
        operations,
        [
            "create",
            "create",
            "create",
            "get",
            "list",
            "update",
            "watch",
            "delete",
            "stats",
            "readiness",
            "currentResourceVersion",
            "compactRevision",
            "requestWatchProgress"
        ]
    );
    assert!(spans.iter().all(|s| s.name == "storage" && s.resource == "configmaps"), "{spans:?}");
    assert_eq!(spans[3].key, "/configmaps/default/a");
}

/// A minimal `tracing` subscriber that records the `storage` spans it sees.
mod capture {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Debug, Default)]
    pub struct SpanRecord {
        pub name: String,
        pub resource: String,
        pub operation: String,
        pub key: String,
    }

    #[derive(Clone, Default)]
    pub struct Spans(pub Arc<Mutex<Vec<SpanRecord>>>);

    pub struct Collector {
        pub spans: Spans,
    }

    struct Fields<'a>(&'a mut SpanRecord);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.record_str(field, &format!("{value:?}"));
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "resource" => self.0.resource = value.to_owned(),
                "operation" => self.0.operation = value.to_owned(),
                "key" => self.0.key = value.to_owned(),
                _ => {}
            }
        }
    }

    static NEXT: AtomicU64 = AtomicU64::new(1);

    impl Subscriber for Collector {
        fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, attributes: &Attributes<'_>) -> Id {
            if attributes.metadata().name() == "storage" {
                let mut record = SpanRecord { name: "storage".into(), ..Default::default() };
                attributes.record(&mut Fields(&mut record));
                self.spans.0.lock().expect("lock").push(record);
            }
            Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
        }

        fn record(&self, _span: &Id, _values: &Record<'_>) {}
        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
        fn event(&self, _event: &Event<'_>) {}
        fn enter(&self, _span: &Id) {}
        fn exit(&self, _span: &Id) {}
    }
}

#[tokio::test]
async fn a_plugin_backend_serves_one_resource_beside_sled() {
    register_backends();
    registry::register(&apistore_memory::MemoryFactory);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let getter = getter_from_file(
        dir.path(),
        "apistore.yaml",
        &format!(
            "backend: {{type: sled, path: {}}}\nresources:\n  events: {{backend: {{type: memory}}}}\n",
            db.display()
        ),
    );
    let events = storage_of(&getter, &GroupResource::core("events")).await;
    let configmaps = storage_of(&getter, &GroupResource::core("configmaps")).await;
    let event = events.create("/events/default/e", Object::new("v1", "Event", "default", "e"), 0).await.expect("event");
    configmaps.create("/configmaps/default/c", configmap("c", "1"), 0).await.expect("configmap");
    let memory = BackendConfig::new("memory");
    assert!(raw_value(&memory, "/registry/events/default/e").await.is_some(), "event in memory");
    assert_eq!(raw_value(&memory, "/registry/configmaps/default/c").await, None);
    assert!(raw_value(&sled_at(&db), "/registry/configmaps/default/c").await.is_some(), "configmap on sled");
    assert_eq!(raw_value(&sled_at(&db), "/registry/events/default/e").await, None);
    let read = events.get("/events/default/e", GetOptions::default()).await.expect("get").expect("event");
    assert_eq!(read, event);
}

/// With the watch cache on (the default), `configmaps` is served by the cacher and `events`
/// (size 0, kube-apiserver's default) by the store: the same RV "0" list with a limit is a full
/// list from the cache (Kubernetes' cache ignores the limit) and one page from the store.
#[tokio::test]
async fn a_resource_with_watch_cache_is_served_by_the_cacher_and_one_with_size_zero_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[backend]\ntype = \"sled\"\npath = {:?}\n[watch_cache]\nsizes = [\"events#0\"]\n",
        dir.path().join("db").display().to_string()
    );
    let getter = getter_from_file(dir.path(), "cache.toml", &text);
    for (resource, cached) in [("configmaps", true), ("events", false)] {
        let gr = GroupResource::core(resource);
        let options = getter.get_rest_options(&gr).expect("options");
        assert_eq!(options.watch_cache, cached, "{resource}");
        let storage = options.create_storage().await.expect("storage");
        // A cache answers 429 NotReady until its first list is done (as kube's): wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while let Err(err) = storage.readiness_check().await {
            assert!(std::time::Instant::now() < deadline, "{resource} never became ready: {err}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut last = 0;
        for name in ["a", "b", "c"] {
            let created = storage
                .create(&format!("/{resource}/default/{name}"), Object::new("v1", "X", "default", name), 0)
                .await
                .expect("create");
            last = created.resource_version().expect("rv");
        }
        // Not older than the last create: a cache waits until it has seen it.
        let synced = ListOptions {
            resource_version: ResourceVersion::at(last),
            resource_version_match: Some(apistore::storage::ResourceVersionMatch::NotOlderThan),
            recursive: true,
            ..ListOptions::default()
        };
        assert_eq!(storage.get_list(&format!("/{resource}/"), synced).await.expect("list").items.len(), 3);
        let mut any = ListOptions { resource_version: ResourceVersion::Any, recursive: true, ..ListOptions::default() };
        any.predicate.limit = 1;
        let list = storage.get_list(&format!("/{resource}/"), any).await.expect("list at 0");
        if cached {
            assert_eq!(list.items.len(), 3, "the cache ignores the limit of an RV 0 list");
            assert!(list.continue_token.is_empty());
        } else {
            assert_eq!(list.items.len(), 1, "the store honours the limit");
            assert!(!list.continue_token.is_empty());
        }
        storage.readiness_check().await.expect("ready");
    }
}
