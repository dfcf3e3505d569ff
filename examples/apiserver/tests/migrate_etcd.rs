//! `apistore migrate --server`: the running API server moves from its embedded sled store to
//! a real etcd (three members) while 4 clients keep writing through it; per-resource
//! migration; the revision guarantee (old resourceVersions: 410 for watch and Exact lists,
//! 409 for preconditions); and a backup taken through the server restored into etcd byte for
//! byte (feature `etcd`).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::kv::{KvBackend, RangeRequest};
use apistore::registry::{self, BackendConfig};
use apistore_etcd_harness::{ClusterConfig, EtcdCluster};
use serde_json::{json, Value};
use support::writers::{median_max, Writers};
use support::Server;

async fn apistore(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_apistore")).args(&args).output().expect("running apistore");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("apistore task")
}

fn etcd_config(dir: &Path, etcd: &EtcdCluster) -> String {
    let path = dir.join("etcd.toml");
    let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
    std::fs::write(&path, format!("[backend]\ntype = \"etcd3\"\nendpoints = [{}]\n", endpoints.join(", ")))
        .expect("target config");
    path.display().to_string()
}

async fn etcd_backend(etcd: &EtcdCluster) -> Arc<dyn KvBackend> {
    apistore_etcd::register();
    registry::open(&BackendConfig::new("etcd3").with_option("endpoints", etcd.endpoints())).await.expect("etcd")
}

async fn keys(backend: &dyn KvBackend, prefix: &str, revision: u64) -> Vec<(String, Vec<u8>)> {
    let request = RangeRequest { revision, ..RangeRequest::prefix(prefix) };
    backend.range(request).await.expect("range").kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())).collect()
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// The revision guarantee after a cutover, for an object read before it.
async fn old_versions_are_refused(url: &str, collection: &str, object: &Value, list_rv: &str) {
    let client = reqwest::Client::new();
    let watch = client
        .get(format!("{url}{collection}?watch=true&resourceVersion={list_rv}&timeoutSeconds=2"))
        .send()
        .await
        .expect("watch");
    let code = watch.status().as_u16();
    let text = watch.text().await.unwrap_or_default();
    assert!(code == 410 || (text.contains("\"ERROR\"") && text.contains("410")), "watch: {code}: {text}");
    let exact = client
        .get(format!("{url}{collection}?resourceVersion={list_rv}&resourceVersionMatch=Exact"))
        .send()
        .await
        .expect("list");
    assert_eq!(exact.status(), 410, "an Exact list at a pre-migration resourceVersion");
    let name = object["metadata"]["name"].as_str().expect("name");
    let mut stale = object.clone();
    stale["data"] = json!({"stale": "write"});
    let update = client.put(format!("{url}{collection}/{name}")).json(&stale).send().await.expect("update");
    assert_eq!(update.status(), 409, "an update with a pre-migration resourceVersion");
    let now: Value =
        client.get(format!("{url}{collection}/{name}")).send().await.expect("get").json().await.expect("json");
    assert_ne!(now["data"], json!({"stale": "write"}));
    let new_rv: u64 = now["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("number");
    let old_rv: u64 = object["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("number");
    assert!(new_rv > old_rv, "{new_rv} vs {old_rv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_to_three_member_etcd_while_four_clients_write() {
    let etcd = EtcdCluster::start(ClusterConfig { members: 3, ..Default::default() })
        .expect("a real three-member etcd (Debian etcd-server) must start");
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    for i in 0..300 {
        let body = json!({"metadata": {"name": format!("seed-{i}")}, "data": {"i": i.to_string()}});
        let reply = client.post(format!("{}{CM}", server.url)).json(&body).send().await.expect("create");
        assert_eq!(reply.status(), 201);
    }
    let seed: Value =
        client.get(format!("{}{CM}/seed-0", server.url)).send().await.expect("get").json().await.expect("json");
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    let list_rv = list["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    // A watch open across the cutover ends with it (the client watches again).
    let open_watch = client
        .get(format!("{}{CM}?watch=true&resourceVersion={list_rv}&timeoutSeconds=60", server.url))
        .send()
        .await
        .expect("watch");
    let watch_ended = tokio::spawn(async move { open_watch.text().await.map(|t| t.len()) });
    let writers = Writers::start(&server.url, 4, 25);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let target = etcd_config(dir.path(), &etcd);
    let migrate_started = Instant::now();
    let (ok, out, err) =
        apistore(vec!["--server".into(), server.url.clone(), "migrate".into(), "--to".into(), target]).await;
    let cutover = Instant::now();
    assert!(ok, "{out}{err}\n{}", server.log_text());
    // Clients keep working on the target.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = writers.stop().await;
    assert!(written.failures.is_empty(), "no write fails: {:?}", written.failures);
    let after = written.latencies.iter().filter(|(sent, _)| *sent > cutover).count();
    assert!(after > 0, "writes succeed after the cutover");
    let during: Vec<Duration> =
        written.latencies.iter().filter(|(sent, _)| *sent >= migrate_started).map(|(_, d)| *d).collect();
    let (median, max) = median_max(&during);
    println!("writes during the migration: {} (median {median:?}, max {max:?}); {out}", during.len());
    assert!(max < Duration::from_secs(5), "the longest write waited {max:?}");
    assert!(out.contains(", 0 differences"), "{out}");
    let pause: f64 =
        out.split("writes paused ").nth(1).and_then(|t| t.split(' ').next()).expect("pause").parse().expect("secs");
    assert!(pause < 3.0, "writes paused {pause} s");
    assert!(watch_ended.await.expect("watch task").is_ok(), "the open watch ended at the cutover");
    // Every acknowledged write's last value is in etcd, and the server serves it from there.
    let target = etcd_backend(&etcd).await;
    let stored = keys(target.as_ref(), "/registry/configmaps/default/", 0).await;
    assert!(stored.len() >= 300 + written.acknowledged.len(), "{}", stored.len());
    for (name, value) in &written.acknowledged {
        let key = format!("/registry/configmaps/default/{name}");
        let (_, bytes) = stored.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("{key} is not in etcd"));
        let object: Value = serde_json::from_slice(bytes).expect("stored JSON");
        assert_eq!(object["data"]["v"], value.as_str(), "{key}");
    }
    let namespaces = keys(target.as_ref(), "/registry/namespaces/", 0).await;
    assert!(namespaces.iter().any(|(k, _)| k == "/registry/namespaces/default"));
    old_versions_are_refused(&server.url, CM, &seed, &list_rv).await;
    // A restart on the same data directory runs on etcd (the config the migration wrote).
    let data_dir = server.stop();
    let server = Server::start_in(data_dir, &[]);
    assert!(server.log_text().contains("storage: etcd3"), "{}", server.log_text());
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(stored.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_resource_moves_to_etcd_and_the_rest_stays_on_sled() {
    let etcd = EtcdCluster::single().expect("a real etcd (Debian etcd-server) must start");
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    for i in 0..50 {
        for (path, kind) in [(CM, "ConfigMap"), ("/api/v1/namespaces/default/secrets", "Secret")] {
            let body = json!({"kind": kind, "metadata": {"name": format!("o-{i}")}, "data": {}});
            let reply = client.post(format!("{}{path}", server.url)).json(&body).send().await.expect("create");
            assert_eq!(reply.status(), 201);
        }
    }
    let object: Value =
        client.get(format!("{}{CM}/o-1", server.url)).send().await.expect("get").json().await.expect("json");
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    let list_rv = list["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    let writers = Writers::start(&server.url, 4, 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = etcd_config(dir.path(), &etcd);
    let (ok, out, err) = apistore(vec![
        "--server".into(),
        server.url.clone(),
        "migrate".into(),
        "--to".into(),
        target,
        "--resource".into(),
        "configmaps".into(),
    ])
    .await;
    assert!(ok && out.contains(", 0 differences"), "{out}{err}\n{}", server.log_text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = writers.stop().await;
    assert!(written.failures.is_empty(), "{:?}", written.failures);
    let target = etcd_backend(&etcd).await;
    let configmaps = keys(target.as_ref(), "/registry/configmaps/", 0).await;
    assert_eq!(configmaps.len(), 50 + written.acknowledged.len());
    assert!(keys(target.as_ref(), "/registry/secrets/", 0).await.is_empty(), "secrets stay on sled");
    assert!(keys(target.as_ref(), "/registry/namespaces/", 0).await.is_empty(), "namespaces stay on sled");
    // Both keep serving: secrets from sled, configmaps from etcd.
    let body = json!({"kind": "Secret", "metadata": {"name": "after"}, "data": {}});
    let reply = client.post(format!("{}/api/v1/namespaces/default/secrets", server.url)).json(&body).send().await;
    assert_eq!(reply.expect("create").status(), 201);
    let secrets: Value = client
        .get(format!("{}/api/v1/namespaces/default/secrets", server.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(secrets["items"].as_array().map(Vec::len), Some(51));
    old_versions_are_refused(&server.url, CM, &object, &list_rv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_through_the_server_while_eight_clients_write_restores_into_etcd_byte_for_byte() {
    let etcd = EtcdCluster::single().expect("a real etcd (Debian etcd-server) must start");
    let server = Server::start(&[]);
    let writers = Writers::start(&server.url, 8, 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("backup.apistore").display().to_string();
    let (ok, out, err) =
        apistore(vec!["--server".into(), server.url.clone(), "backup".into(), "-o".into(), backup.clone()]).await;
    let written = writers.stop().await;
    assert!(ok && out.contains("backed up"), "{out}{err}");
    assert!(written.failures.is_empty(), "{:?}", written.failures);
    let text = std::fs::read_to_string(&backup).expect("backup");
    let header: Value =
        serde_json::from_str(text.lines().nth(1).and_then(|l| l.splitn(3, ' ').nth(2)).expect("header"))
            .expect("header json");
    let revision = header["revision"].as_u64().expect("revision");
    let data_dir = server.stop();
    apistore_sled::register();
    let path = data_dir.path().join("data").display().to_string();
    let source = registry::open(&BackendConfig::new("sled").with_option("path", path)).await.expect("sled");
    let expected = keys(source.as_ref(), "/registry/", revision).await;
    assert!(expected.iter().any(|(k, _)| k.starts_with("/registry/configmaps/default/w7-")));
    let endpoints = etcd.endpoints().join(",");
    let (ok, out, err) =
        apistore(vec!["restore".into(), "-i".into(), backup, "--etcd-servers".into(), endpoints]).await;
    assert!(ok, "{out}{err}");
    let target = etcd_backend(&etcd).await;
    assert_eq!(keys(target.as_ref(), "/registry/", 0).await, expected, "byte for byte at the backup's revision");
    let old = target.range(RangeRequest { revision, ..RangeRequest::prefix("/registry/") }).await;
    assert!(matches!(old, Err(apistore::Error::Compacted { .. })), "{old:?}");
}
