//! Layout: objects written through the framework sit where kube-apiserver puts them
//! (`/registry/<resource>/<namespace>/<name>`), read back with the `etcdctl` binary.

mod common;

use std::process::Command;
use std::sync::Arc;

use apistore::storage::Storage;
use apistore::{KvBackend, Object, Store, StoreConfig};
use apistore_etcd::EtcdBackend;

/// Runs `etcdctl` (API v3) against `endpoints`; fails the test with the install hint when
/// it is missing.
fn etcdctl(endpoints: &[String], args: &[&str]) -> String {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install it with `apt-get install etcd-client`"));
    assert!(output.status.success(), "etcdctl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("etcdctl prints UTF-8")
}

#[tokio::test]
async fn objects_sit_under_registry_resource_namespace_name() {
    let etcd = common::single();
    let backend: Arc<dyn KvBackend> = Arc::new(EtcdBackend::new(common::options(&etcd)).expect("backend"));
    let pods = Store::new(backend.clone(), StoreConfig::new("pods")).expect("pods store");
    let nodes = Store::new(backend.clone(), StoreConfig::new("minions")).expect("nodes store");
    let deployments = Store::new(backend, StoreConfig::new("deployments")).expect("deployments store");

    let nginx = Object::new("v1", "Pod", "default", "nginx").with_field("spec", serde_json::json!({"nodeName": "n1"}));
    let created = pods.create("/pods/default/nginx", nginx, 0).await.expect("create pod");
    pods.create("/pods/kube-system/dns", Object::new("v1", "Pod", "kube-system", "dns"), 0).await.expect("create");
    nodes.create("/minions/node1", Object::new("v1", "Node", "", "node1"), 0).await.expect("create node");
    deployments
        .create("/deployments/ns/web", Object::new("apps/v1", "Deployment", "ns", "web"), 0)
        .await
        .expect("create");

    let keys: Vec<String> = etcdctl(&etcd.endpoints(), &["get", "--prefix", "/registry/", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        keys,
        [
            "/registry/deployments/ns/web",
            "/registry/minions/node1",
            "/registry/pods/default/nginx",
            "/registry/pods/kube-system/dns",
        ]
    );
    // Nothing else was written outside /registry (the compactor is off here).
    let all = etcdctl(&etcd.endpoints(), &["get", "--from-key", "", "--keys-only"]);
    assert_eq!(all.lines().filter(|l| !l.is_empty()).count(), 4, "unexpected keys: {all}");

    // The value is the object's JSON without resourceVersion; its mod revision is the RV.
    let value = etcdctl(&etcd.endpoints(), &["get", "/registry/pods/default/nginx", "--print-value-only"]);
    let stored: serde_json::Value = serde_json::from_str(value.trim()).expect("stored JSON");
    assert_eq!(stored["metadata"]["name"], "nginx");
    assert_eq!(stored["metadata"]["namespace"], "default");
    assert_eq!(stored["spec"]["nodeName"], "n1");
    assert!(stored["metadata"].get("resourceVersion").is_none(), "resourceVersion is never persisted: {stored}");
    let json = etcdctl(&etcd.endpoints(), &["get", "/registry/pods/default/nginx", "-w", "json"]);
    let response: serde_json::Value = serde_json::from_str(json.trim()).expect("etcdctl json");
    let mod_revision = response["kvs"][0]["mod_revision"].as_u64().expect("mod_revision");
    assert_eq!(created.metadata.resource_version, mod_revision.to_string());
}
