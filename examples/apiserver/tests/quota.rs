//! The space quota through the API server (issue 11): sled with a small
//! `quota_backend_bytes` in the server's storage config. Past it the NOSPACE alarm refuses
//! writes that grow the store with the Status kube-apiserver sends for etcd's "database
//! space exceeded" (500 with etcd's message: kube's `ErrorToAPIStatus` turns a storage error
//! it does not translate into a 500 whose message is the error's; kube's reason is then empty,
//! apistore's is InternalError); reads and deletes go on; `/metrics` shows the alarm; and
//! after the deletes, compaction (sled's own, a short window here) and the rewrite it allows
//! clear the alarm by themselves, and writes succeed again.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const QUOTA: u64 = 4 << 20;

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"v": value, "pad": "p".repeat(4000)}})
}

/// The value of the first `/metrics` sample named `name` whose labels contain `labels`.
async fn metric(client: &reqwest::Client, url: &str, name: &str, labels: &str) -> Option<i64> {
    let text = client.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(labels))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Waits (at most 20 s: the server polls the space every 5 s) until the alarm gauge is `value`.
async fn alarm_gauge_becomes(client: &reqwest::Client, url: &str, value: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = metric(client, url, "apistore_storage_alarm", "alarm=\"NOSPACE\"").await;
        if now == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "apistore_storage_alarm NOSPACE stayed {now:?}, expected {value}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_refuses_growth_with_a_status_keeps_reads_and_deletes_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[storage.backend]\ntype = \"sled\"\nquota_backend_bytes = {QUOTA}\ncompaction_window = 5\n\
             compaction_interval_ms = 200\n"
        ),
    )
    .expect("server config");
    let server = Server::start(&["--config", &config.display().to_string()]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    alarm_gauge_becomes(&client, &server.url, 0).await;
    let quota = metric(&client, &server.url, "apistore_storage_quota_backend_bytes", "").await;
    assert_eq!(quota, Some(QUOTA as i64), "the quota of the storage config reaches the backend");
    // Creates until the alarm refuses them for good: at first a rewrite of the store (due at
    // once under the alarm) can bring it below the quota again and clear the alarm; once the
    // live objects alone fill the quota, refusals persist (3 s here) until objects go.
    let mut created = Vec::new();
    let mut refused = None;
    let mut refused_since: Option<Instant> = None;
    loop {
        let name = format!("cm-{}", created.len());
        let reply = client.post(format!("{}{CM}", server.url)).json(&config_map(&name, "1")).send().await;
        let reply = reply.expect("the server answers");
        let code = reply.status().as_u16();
        let body = reply.text().await.expect("body");
        match code {
            201 => {
                created.push(name);
                refused_since = None;
            }
            500 => {
                refused.get_or_insert(body);
                if refused_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(3) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("create {name}: {other} {body}"),
        }
        assert!(created.len() < 20_000, "the quota never refused a write");
    }
    let refused = refused.expect("a refusal");
    assert!(created.len() > 10, "{} creates before the quota", created.len());
    let status: Value = serde_json::from_str(&refused).expect("a Status");
    assert_eq!(
        (&status["kind"], &status["status"], &status["code"]),
        (&json!("Status"), &json!("Failure"), &json!(500))
    );
    let message = status["message"].as_str().expect("message");
    assert!(message.contains("database space exceeded") && message.contains("quota_backend_bytes"), "{message}");
    println!("{} creates before the quota refused one: {message}", created.len());
    // Updates grow the store too: refused alike, and the object is unchanged.
    let first = &created[0];
    let update = client.put(format!("{}{CM}/{first}", server.url)).json(&config_map(first, "2")).send().await;
    assert_eq!(update.expect("update").status(), 500);
    let object: Value =
        client.get(format!("{}{CM}/{first}", server.url)).send().await.expect("get").json().await.expect("json");
    assert_eq!(object["data"]["v"], "1");
    // Reads go on.
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(created.len()));
    alarm_gauge_becomes(&client, &server.url, 1).await;
    // Deletes go on; compaction and the rewrite they allow clear the alarm by themselves.
    let keep = 5;
    for name in &created[keep..] {
        let reply = client.delete(format!("{}{CM}/{name}", server.url)).send().await.expect("delete");
        assert_eq!(reply.status(), 200, "a delete under the alarm: {}", reply.text().await.unwrap_or_default());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reply = client.post(format!("{}{CM}", server.url)).json(&config_map("after", "3")).send().await;
        let code = reply.expect("create").status().as_u16();
        if code == 201 {
            break;
        }
        assert_eq!(code, 500, "refused with the quota's Status until the alarm clears");
        assert!(Instant::now() < deadline, "the alarm did not clear within 30 s of the deletes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("writes succeed again after {attempts} attempts");
    alarm_gauge_becomes(&client, &server.url, 0).await;
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    let mut names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    names.sort();
    let mut expected: Vec<&str> = created[..keep].iter().map(String::as_str).chain(["after"]).collect();
    expected.sort();
    assert_eq!(names, expected);
}
