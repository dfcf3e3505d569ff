//! `apistore migrate --server`: the running API server moves from its embedded sled store to
//! a real etcd (three members) while 4 clients keep writing through it; per-resource
//! migration; the revision guarantee (old resourceVersions: 410 for watch and Exact lists,
//! 409 for preconditions); writes the CRD controller makes outside any request during a
//! cutover (a deleted CRD's objects, new CRDs' status) end on etcd; and a backup taken
//! through the server restored into etcd byte for byte (feature `etcd`).

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

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// A namespaced CRD `<plural>.<group>` with one served version `v1` and an open schema.
fn crd(plural: &str, group: &str) -> Value {
    let kind = format!("{}{}", plural[..1].to_uppercase(), &plural[1..plural.len() - 1]);
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": &plural[..plural.len() - 1], "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema":
                {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    })
}

/// True when a CRD (API shape) says `Established`.
fn is_established(crd: &Value) -> bool {
    let conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True")
}

/// Waits (at most 10 s) until the server serves CRD `name` as Established.
async fn wait_established(url: &str, name: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let crd: Value =
            client.get(format!("{url}{CRDS}/{name}")).send().await.expect("get").json().await.expect("json");
        if is_established(&crd) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} not Established: {crd}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a migration through `POST /apistore/admin/migrate` (the endpoint `apistore --server`
/// uses); notifies `reached` when the phase line `phase` arrives; returns every line.
async fn migrate_via_admin(
    url: String,
    body: Value,
    phase: &'static str,
    reached: Arc<tokio::sync::Notify>,
) -> Vec<Value> {
    use futures::StreamExt;
    let reply = reqwest::Client::new()
        .post(format!("{url}/apistore/admin/migrate"))
        .json(&body)
        .send()
        .await
        .expect("migrate request");
    assert_eq!(reply.status(), 200);
    let mut stream = reply.bytes_stream();
    let (mut pending, mut lines) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk.expect("migrate answer"));
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value: Value = serde_json::from_slice(&line).expect("a JSON line");
            if value["phase"] == phase {
                reached.notify_one();
            }
            lines.push(value);
        }
    }
    lines
}

/// The target storage config `apistore migrate` takes, as the admin endpoint's JSON.
fn etcd_target(etcd: &EtcdCluster) -> Value {
    json!({"backend": {"type": "etcd3", "endpoints": etcd.endpoints()}})
}

/// The CRD controller deletes a deleted CRD's objects outside any request. Here it is still
/// deleting them when the CRD's resource moves to etcd: the deletes after the cutover must
/// reach etcd (before they passed the write gate, the controller went on deleting through
/// the retired sled storage during and after the cutover: the cutover's verification found
/// differences, or the objects stayed on etcd). A restore through the server meanwhile is
/// refused (409): it would write outside the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crd_deleted_while_its_resource_moves_leaves_none_of_its_objects_on_the_target() {
    let etcd = EtcdCluster::single().expect("a real etcd (Debian etcd-server) must start");
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let name = "crontabs.stable.example.com";
    let created = client.post(format!("{}{CRDS}", server.url)).json(&crd("crontabs", "stable.example.com")).send();
    assert_eq!(created.await.expect("create CRD").status(), 201);
    wait_established(&server.url, name).await;
    let collection = "/apis/stable.example.com/v1/namespaces/default/crontabs";
    const OBJECTS: usize = 1000;
    let creators = (0..8).map(|w| {
        let (client, url) = (client.clone(), server.url.clone());
        tokio::spawn(async move {
            for i in (w..OBJECTS).step_by(8) {
                let body = json!({"apiVersion": "stable.example.com/v1", "kind": "Crontab",
                    "metadata": {"name": format!("ct-{i}")}, "spec": {"i": i}});
                let reply = client.post(format!("{url}{collection}")).json(&body).send().await.expect("create");
                assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap_or_default());
            }
        })
    });
    for creator in creators.collect::<Vec<_>>() {
        creator.await.expect("creator");
    }
    // The CRD is deleted once the copy is done: its clean-up runs through the verification
    // and the cutover.
    let reached = Arc::new(tokio::sync::Notify::new());
    let body = json!({"to": etcd_target(&etcd), "resource": "stable.example.com/crontabs"});
    let migration = tokio::spawn(migrate_via_admin(server.url.clone(), body, "copied", reached.clone()));
    reached.notified().await;
    let deleted = client.delete(format!("{}{CRDS}/{name}", server.url)).send().await.expect("delete CRD");
    assert_eq!(deleted.status(), 200);
    // A restore through the server writes outside the write gate: never beside a migration.
    let restore = client.post(format!("{}/apistore/admin/restore", server.url)).body("").send().await;
    let restore = restore.expect("restore");
    assert_eq!(restore.status(), 409, "{}", restore.text().await.unwrap_or_default());
    let lines = migration.await.expect("migration");
    let done = lines.last().expect("a last line");
    assert_eq!(done["phase"], "done", "{lines:?}\n{}", server.log_text());
    assert_eq!(done["differences"], 0, "{done}");
    let target = etcd_backend(&etcd).await;
    let prefix = "/registry/stable.example.com/crontabs/";
    let at_cutover = keys(target.as_ref(), prefix, 0).await.len();
    assert!(at_cutover > 0, "the clean-up had finished before the cutover: nothing was exercised");
    // The clean-up finishes (the CRD goes) ...
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client.get(format!("{}{CRDS}/{name}", server.url)).send().await.expect("get CRD").status();
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the CRD is still there\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and every object deleted after the cutover was deleted on etcd.
    let left = keys(target.as_ref(), prefix, 0).await;
    assert!(left.is_empty(), "{} of {at_cutover} objects left on etcd: {:?}", left.len(), &left[..left.len().min(3)]);
    // Created again, the CRD serves no old object.
    let again = client.post(format!("{}{CRDS}", server.url)).json(&crd("crontabs", "stable.example.com")).send();
    assert_eq!(again.await.expect("create CRD").status(), 201);
    wait_established(&server.url, name).await;
    let list: Value =
        client.get(format!("{}{collection}", server.url)).send().await.expect("list").json().await.expect("json");
    assert_eq!(list["items"], json!([]), "{list}");
    println!("{at_cutover} of {OBJECTS} objects were still there at the cutover; {done}");
}

/// The CRD controller writes a new CRD's status (NamesAccepted, Established) and serves its
/// resource outside any request. CRDs created while the whole store moves to etcd: each one
/// ends Established in etcd and served from etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crds_created_while_the_store_moves_are_established_on_the_target() {
    let etcd = EtcdCluster::single().expect("a real etcd (Debian etcd-server) must start");
    let server = Server::start(&[]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let (url, stop) = (server.url.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut created = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let group = format!("g{}.example.com", created.len());
                let reply = client.post(format!("{url}{CRDS}")).json(&crd("widgets", &group)).send().await;
                let reply = reply.expect("create CRD");
                assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap_or_default());
                created.push(format!("widgets.{group}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            created
        })
    };
    let writers = Writers::start(&server.url, 2, 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reached = Arc::new(tokio::sync::Notify::new());
    let body = json!({"to": etcd_target(&etcd)});
    let lines = migrate_via_admin(server.url.clone(), body, "done", reached).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let created = creator.await.expect("creator");
    let written = writers.stop().await;
    let done = lines.last().expect("a last line");
    assert_eq!(done["phase"], "done", "{lines:?}\n{}", server.log_text());
    assert!(written.failures.is_empty(), "{:?}", written.failures);
    assert!(created.len() > 5, "{created:?}");
    let target = etcd_backend(&etcd).await;
    let client = reqwest::Client::new();
    for name in &created {
        wait_established(&server.url, name).await;
    }
    let on_etcd = keys(target.as_ref(), "/registry/", 0).await;
    for name in &created {
        let suffix = format!("/customresourcedefinitions/{name}");
        let (_, stored) = on_etcd
            .iter()
            .find(|(key, _)| key.ends_with(&suffix))
            .unwrap_or_else(|| panic!("CRD {name} is not in etcd"));
        let stored: Value = serde_json::from_slice(stored).expect("stored JSON");
        assert!(is_established(&stored), "{name} in etcd: {stored}");
        let group = name.trim_start_matches("widgets.");
        let path = format!("{}/apis/{group}/v1/namespaces/default/widgets", server.url);
        let body = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w"}});
        let reply = client.post(&path).json(&body).send().await.expect("create widget");
        assert_eq!(reply.status(), 201, "{name}: {}", reply.text().await.unwrap_or_default());
        let stored = target.get(&format!("/registry/{group}/widgets/default/w"), 0).await.expect("get");
        assert!(stored.kv.is_some(), "the widget of {name} went to etcd");
    }
    println!("{} CRDs created around the migration; {done}", created.len());
}

/// A namespace deleted while the store moves: the request deletes the namespace's contents
/// inline, in batches, letting the cutover run between two (before, it held the write gate
/// for the whole deletion and the cutover — every write — waited for all of it). The
/// batches after the cutover delete on etcd: objects were still there at the cutover
/// revision, none is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_namespace_deleted_while_the_store_moves_leaves_nothing_of_it_on_the_target() {
    let etcd = EtcdCluster::single().expect("a real etcd (Debian etcd-server) must start");
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let namespace = json!({"kind": "Namespace", "metadata": {"name": "doomed"}});
    let created = client.post(format!("{}/api/v1/namespaces", server.url)).json(&namespace).send().await;
    assert_eq!(created.expect("create namespace").status(), 201);
    const OBJECTS: usize = 1000;
    let creators = (0..8).map(|w| {
        let (client, url) = (client.clone(), server.url.clone());
        tokio::spawn(async move {
            for i in (w..OBJECTS).step_by(8) {
                let body = json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
                let path = format!("{url}/api/v1/namespaces/doomed/configmaps");
                assert_eq!(client.post(path).json(&body).send().await.expect("create").status(), 201);
            }
        })
    });
    for creator in creators.collect::<Vec<_>>() {
        creator.await.expect("creator");
    }
    let writers = Writers::start(&server.url, 2, 10);
    let reached = Arc::new(tokio::sync::Notify::new());
    let body = json!({"to": etcd_target(&etcd)});
    let migration = tokio::spawn(migrate_via_admin(server.url.clone(), body, "copied", reached.clone()));
    reached.notified().await;
    let deleted = client.delete(format!("{}/api/v1/namespaces/doomed", server.url)).send().await.expect("delete");
    assert_eq!(deleted.status(), 200);
    let lines = migration.await.expect("migration");
    let written = writers.stop().await;
    let done = lines.last().expect("a last line");
    assert_eq!(done["phase"], "done", "{lines:?}\n{}", server.log_text());
    assert_eq!(done["differences"], 0, "{done}");
    assert!(written.failures.is_empty(), "{:?}", written.failures);
    let target = etcd_backend(&etcd).await;
    let cutover = done["cutoverRevision"].as_u64().expect("cutover revision");
    let at_cutover = keys(target.as_ref(), "/registry/configmaps/doomed/", cutover).await.len();
    assert!(at_cutover > 0, "the namespace's deletion did not let the cutover run before it ended: {done}");
    let left = keys(target.as_ref(), "/registry/configmaps/doomed/", 0).await;
    assert!(left.is_empty(), "{} objects of the deleted namespace on etcd", left.len());
    assert!(target.get("/registry/namespaces/doomed", 0).await.expect("get").kv.is_none());
    for (name, value) in &written.acknowledged {
        let stored = target.get(&format!("/registry/configmaps/default/{name}"), 0).await.expect("get");
        let stored: Value = serde_json::from_slice(&stored.kv.expect("on etcd").value).expect("json");
        assert_eq!(stored["data"]["v"], value.as_str(), "{name}");
    }
    println!("{at_cutover} of {OBJECTS} objects of the namespace were there at the cutover; {done}");
}
