//! kubectl against the API server on a real etcd, through kube-apiserver's storage flags
//! (feature `etcd`, a `required-features` test: `./scripts/test` turns it on).

mod support;

use std::process::Command;

use support::kubectl::Kubectl;
use support::Server;

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
data:
  greeting: hello
";

#[test]
fn etcd_backend_through_kube_storage_flags() {
    let mut etcd = apistore_etcd_harness::EtcdCluster::single().expect("a real etcd (Debian etcd-server) must start");
    let endpoints = etcd.endpoints().join(",");
    let server = Server::start(&["--etcd-servers", &endpoints]);
    assert!(server.log_text().contains("storage: etcd3"), "{}", server.log_text());
    let k = Kubectl::new(&server);
    k.ok_stdin(&["apply", "-f", "-"], Some(CONFIGMAP));
    k.ok(&["label", "cm", "demo", "backend=etcd"]);
    let object = k.json(&["get", "cm", "demo"]);
    assert_eq!(object["metadata"]["labels"]["backend"], "etcd");
    // The object is in etcd under kube-apiserver's key layout.
    let endpoint = etcd.endpoint(0);
    let out = Command::new("etcdctl")
        .args(["--endpoints", endpoint.as_str(), "get", "/registry/configmaps/default/demo", "--print-value-only"])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl");
    let stored = String::from_utf8_lossy(&out.stdout);
    assert!(stored.contains("\"greeting\":\"hello\"") && stored.contains("\"backend\":\"etcd\""), "{stored}");
    drop(server);
    etcd.stop(0);
}
