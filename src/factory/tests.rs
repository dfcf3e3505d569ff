use super::*;
use crate::config::{Config, ResourceOverride, MEDIA_TYPE_YAML};
use crate::error::Error;

fn sled(path: &str) -> BackendConfig {
    BackendConfig::new("sled").with_option("path", path)
}

fn etcd(url: &str) -> BackendConfig {
    BackendConfig::new("etcd3").with_option("endpoints", vec![url.to_owned()])
}

fn kube_factory(config: Config) -> DefaultStorageFactory {
    StorageOptions::new(config).fold().expect("fold").build()
}

#[test]
fn cohabitation_picks_the_first_enabled_group() {
    let factory = kube_factory(Config::default());
    let apps = GroupResource::new("apps", "deployments");
    let extensions = GroupResource::new("extensions", "deployments");
    assert_eq!(factory.storage_group_resource(&apps), apps);
    assert_eq!(factory.storage_group_resource(&extensions), apps);
    assert_eq!(factory.resource_prefix(&apps), "deployments");
    assert_eq!(factory.resource_prefix(&extensions), "deployments");
    let config = factory.new_config(&extensions).expect("config");
    assert_eq!(config.group_resource, extensions);
    assert_eq!(config.storage_group_resource, apps);
    // events.k8s.io/events is stored as core events.
    let events = GroupResource::new("events.k8s.io", "events");
    assert_eq!(factory.storage_group_resource(&events), GroupResource::core("events"));

    // With apps disabled, extensions is where both live.
    let factory = kube_factory(Config { disabled_groups: vec!["apps".into()], ..Config::default() });
    assert_eq!(factory.storage_group_resource(&apps), extensions);
    assert_eq!(factory.storage_group_resource(&extensions), extensions);
    // No member enabled: the resource itself.
    let factory =
        kube_factory(Config { disabled_groups: vec!["apps".into(), "extensions".into()], ..Config::default() });
    assert_eq!(factory.storage_group_resource(&extensions), extensions);
}

#[test]
fn special_prefixes_and_overrides_apply_in_kube_order() {
    let mut config = Config::default();
    config.resources.insert(
        "*.apps".into(),
        ResourceOverride {
            resource_prefix: Some("apps-all".into()),
            media_type: Some(MEDIA_TYPE_YAML.into()),
            ..Default::default()
        },
    );
    config.resources.insert(
        "daemonsets.apps".into(),
        ResourceOverride { resource_prefix: Some("ds".into()), prefix: Some("/other".into()), ..Default::default() },
    );
    config.resources.insert(
        "configmaps".into(),
        ResourceOverride { backend: Some(etcd("http://127.0.0.1:1")), ..Default::default() },
    );
    let factory = kube_factory(config);
    assert_eq!(factory.resource_prefix(&GroupResource::core("services")), "services/specs");
    assert_eq!(factory.resource_prefix(&GroupResource::core("endpoints")), "services/endpoints");
    assert_eq!(factory.resource_prefix(&GroupResource::core("nodes")), "minions");
    assert_eq!(factory.resource_prefix(&GroupResource::core("replicationcontrollers")), "controllers");
    assert_eq!(factory.resource_prefix(&GroupResource::new("extensions", "ingresses")), "ingress");
    assert_eq!(factory.resource_prefix(&GroupResource::new("networking.k8s.io", "ingresses")), "ingress");
    assert_eq!(factory.resource_prefix(&GroupResource::new("example.com", "Widgets")), "widgets");
    // Group override, then exact override.
    assert_eq!(factory.resource_prefix(&GroupResource::new("apps", "deployments")), "apps-all");
    assert_eq!(factory.resource_prefix(&GroupResource::new("extensions", "deployments")), "apps-all");
    assert_eq!(factory.resource_prefix(&GroupResource::new("apps", "daemonsets")), "ds");
    let ds = factory.new_config(&GroupResource::new("apps", "daemonsets")).expect("ds");
    assert_eq!((ds.prefix.as_str(), ds.media_type.as_str()), ("/other", MEDIA_TYPE_YAML));
    let deploy = factory.new_config(&GroupResource::new("apps", "deployments")).expect("deploy");
    assert_eq!((deploy.prefix.as_str(), deploy.codec.media_type()), ("/registry", MEDIA_TYPE_YAML));
    // Another backend type for one resource.
    let cm = factory.new_config(&GroupResource::core("configmaps")).expect("cm");
    assert_eq!(cm.backend.backend, "etcd3");
    let pods = factory.new_config(&GroupResource::core("pods")).expect("pods");
    assert_eq!(pods.backend, Config::default().backend);
    assert_eq!(pods.codec.media_type(), "application/json");
    // configs(): base, the override prefix, the override backend — each once.
    let configs = factory.configs();
    assert_eq!(configs.len(), 3, "{configs:?}");
    assert_eq!(configs[0].prefix, "/registry");
    assert!(configs.iter().any(|c| c.prefix == "/other" && c.backend == Config::default().backend));
    assert_eq!(factory.backends(), vec![Config::default().backend, etcd("http://127.0.0.1:1")]);
}

#[test]
fn etcd_servers_overrides_choose_etcd_for_that_resource() {
    let mut options = StorageOptions::new(Config { backend: sled("/tmp/x"), ..Config::default() });
    options
        .apply_args([
            "--etcd-servers-overrides=/events#http://127.0.0.1:2379;http://127.0.0.1:2380",
            "--watch-cache",
            "false",
        ])
        .expect("flags");
    let completed = options.fold().expect("fold");
    assert!(!completed.watch_cache.enabled);
    let factory = completed.build();
    let events = factory.new_config(&GroupResource::core("events")).expect("events");
    assert_eq!(events.backend.backend, "etcd3");
    assert_eq!(
        events.backend.options["endpoints"],
        serde_json::json!(["http://127.0.0.1:2379", "http://127.0.0.1:2380"])
    );
    // events.k8s.io/events cohabits with core events: same backend.
    let v1beta1 = factory.new_config(&GroupResource::new("events.k8s.io", "events")).expect("events.k8s.io");
    assert_eq!(v1beta1.backend, events.backend);
    assert_eq!(factory.new_config(&GroupResource::core("configmaps")).expect("cm").backend.backend, "sled");
    // With an etcd default, the override keeps the other etcd options.
    let mut options = StorageOptions::default();
    options
        .apply_args(["--etcd-servers", "http://a:1,http://b:2", "--etcd-servers-overrides=apps/deployments#http://c:3"])
        .expect("flags");
    options.config.backend.options.insert("dial_timeout_ms".into(), 500.into());
    let factory = options.fold().expect("fold").build();
    let deploy = factory.new_config(&GroupResource::new("apps", "deployments")).expect("deploy");
    assert_eq!(deploy.backend.options["endpoints"], serde_json::json!(["http://c:3"]));
    assert_eq!(deploy.backend.options["dial_timeout_ms"], serde_json::json!(500));
    let pods = factory.new_config(&GroupResource::core("pods")).expect("pods");
    assert_eq!(pods.backend.options["endpoints"], serde_json::json!(["http://a:1", "http://b:2"]));
}

#[test]
fn flags_are_checked() {
    let mut options = StorageOptions::default();
    let err = options.apply_flag("--no-such-flag", "1").expect_err("unknown");
    assert!(
        matches!(&err, Error::Invalid { field, value, .. } if field == "flag" && value == "--no-such-flag"),
        "{err}"
    );
    assert!(options.apply_flag("--watch-cache", "maybe").is_err());
    assert!(options.apply_args(["--etcd-prefix"]).is_err(), "missing value");
    options.apply_flag("--etcd-servers-overrides", "events#http://x").expect("appended, checked later");
    let err = options.complete().expect_err("bad override");
    assert!(
        err.to_string().contains("--etcd-servers-overrides invalid, must be of format: group/resource#servers"),
        "{err}"
    );
    let mut options = StorageOptions::default();
    options.apply_flag("--watch-cache-sizes", "pods#x").expect("set");
    let err = options.complete().expect_err("bad size");
    assert!(err.to_string().contains("invalid size of watch cache size: pods#x"), "{err}");
}

#[test]
fn watch_cache_settings_follow_sizes() {
    let options = StorageOptions::default();
    let settings = options.fold().expect("fold").watch_cache;
    assert!(settings.wants_cache(&GroupResource::core("configmaps")));
    assert!(!settings.wants_cache(&GroupResource::core("events")));
    assert!(!settings.wants_cache(&GroupResource::new("events.k8s.io", "events")));
    assert_eq!(settings.memory_budget_for(&GroupResource::core("configmaps")), None, "no limit by default");
    let off = WatchCacheSettings { enabled: false, ..settings };
    assert!(!off.wants_cache(&GroupResource::core("configmaps")));
}

#[test]
fn watch_cache_memory_budgets_fold_into_the_settings() {
    let mut config = Config::default();
    config.watch_cache.memory_budget_bytes = Some(1 << 20);
    config.watch_cache.memory_budgets = vec!["secrets#4096".into(), "deployments.apps#8192".into()];
    let settings = StorageOptions::new(config.clone()).fold().expect("fold").watch_cache;
    assert_eq!(settings.memory_budget_for(&GroupResource::core("secrets")), Some(4096));
    assert_eq!(settings.memory_budget_for(&GroupResource::new("apps", "deployments")), Some(8192));
    assert_eq!(settings.memory_budget_for(&GroupResource::core("configmaps")), Some(1 << 20), "the default");
    config.watch_cache.memory_budgets = vec!["secrets#lots".into()];
    let err = StorageOptions::new(config).complete().expect_err("bad budget");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "watch_cache.memory_budgets"), "{err}");
}

#[test]
fn unknown_backend_names_the_registered_ones() {
    let options = StorageOptions::new(Config { backend: BackendConfig::new("no-such-db"), ..Config::default() });
    let err = options.complete().expect_err("unknown backend");
    let message = err.to_string();
    assert!(message.contains("no-such-db") && message.contains("registered backends"), "{message}");
}

#[test]
fn transformers_follow_the_requested_resource() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.yaml");
    std::fs::write(
        &path,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: k1, secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=}]}\n",
    )
    .expect("write");
    let options = StorageOptions::new(Config { encryption_provider_config: Some(path), ..Config::default() });
    let factory = options.fold().expect("fold").build();
    let secrets = factory.new_config(&GroupResource::core("secrets")).expect("secrets");
    let stored = secrets
        .transformer
        .transform_to_storage(bytes::Bytes::from_static(b"x"), b"/registry/secrets/a")
        .expect("write")
        .to_vec();
    assert!(stored.starts_with(b"k8s:enc:secretbox:v1:k1:"));
    let cm = factory.new_config(&GroupResource::core("configmaps")).expect("cm");
    assert_eq!(
        cm.transformer.transform_to_storage(bytes::Bytes::from_static(b"x"), b"k").expect("write").to_vec(),
        b"x"
    );
    // A broken encryption file fails completion with its field named.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n",
    )
    .expect("write");
    let options = StorageOptions::new(Config {
        encryption_provider_config: Some(dir.path().join("bad.yaml")),
        ..Config::default()
    });
    let err = options.fold().expect_err("bad encryption config");
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "resources"), "{err}");
}
