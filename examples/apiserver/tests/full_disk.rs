//! A full disk under the running API server (issue 11): the server's sled data directory on
//! a small real tmpfs, filled with a ballast file, then written through HTTP until the disk
//! is full. Writes get a clean 5xx Kubernetes `Status` (never a dropped connection); reads
//! the watch cache serves (GET at resourceVersion 0, LIST, WATCH) keep working, and a
//! consistent GET (it reaches sled) answers the right object or a clean 503; once space is back
//! writes succeed again without a restart; SIGTERM on a full disk stops
//! the server cleanly (exit code 0, within seconds); once space is back (the ballast
//! removed) a restart on the same directory has every acknowledged write and takes writes
//! again. A refused write's outcome is unknown (as for any 5xx): it may appear, with the
//! value it was sent with.
//!
//! Needs root to mount the tmpfs (CI runs as root); without it the test fails and says so.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apistore::testing::tmpfs::Tmpfs;
use serde_json::{json, Value};
use support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// A ConfigMap of about 4 KiB.
fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"v": value, "pad": "p".repeat(4000)}})
}

/// Asserts `body` is a Kubernetes failure `Status` carrying `code`.
fn assert_status(code: u16, body: &str) -> Value {
    let status: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("a {code} without a Status ({e}): {body}"));
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["status"], "Failure", "{body}");
    assert_eq!(status["code"], code, "{body}");
    assert!(!status["message"].as_str().unwrap_or("").is_empty(), "{body}");
    status
}

/// The `data.v` of every ConfigMap a LIST returns.
async fn list_values(client: &reqwest::Client, url: &str, query: &str) -> (BTreeMap<String, String>, String) {
    let reply = client.get(format!("{url}{CM}{query}")).send().await.expect("a LIST on a full disk is answered");
    assert_eq!(reply.status(), 200, "LIST{query} on a full disk");
    let list: Value = reply.json().await.expect("list JSON");
    let values = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let name = item["metadata"]["name"].as_str().expect("name").to_owned();
            (name, item["data"]["v"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    (values, list["metadata"]["resourceVersion"].as_str().expect("list resourceVersion").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_clean_5xx_keeps_reads_shuts_down_cleanly_and_loses_nothing() {
    let fs = Tmpfs::mount("32m");
    let data_dir = tempfile::tempdir_in(fs.path()).expect("data directory on the tmpfs");
    let server = Server::start_in(data_dir, &[]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    // A first object and the resourceVersion of the state before the disk fills.
    let reply = client.post(format!("{}{CM}", server.url)).json(&config_map("first", "0")).send().await;
    assert_eq!(reply.expect("create").status(), 201);
    let mut acknowledged = BTreeMap::from([("first".to_owned(), "0".to_owned())]);
    let (_, before_rv) = list_values(&client, &server.url, "").await;
    let ballast = fs.fill_leaving(3 << 20);
    // Creates, and now and then an update of an earlier object, until the disk refuses.
    // A refused write's outcome is unknown, as for any 5xx (kube-apiserver over etcd alike):
    // it may still show up, with the value it was sent with, never with another one.
    let mut refusals = Vec::new();
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 1..20_000u64 {
        let (name, request) = if i % 5 == 0 {
            let name = format!("cm-{}", i / 2);
            (name.clone(), client.put(format!("{}{CM}/{name}", server.url)))
        } else {
            let name = format!("cm-{i}");
            (name, client.post(format!("{}{CM}", server.url)))
        };
        if i % 5 == 0 && !acknowledged.contains_key(&name) {
            continue;
        }
        let value = i.to_string();
        let reply = request.json(&config_map(&name, &value)).send().await;
        let reply = reply.unwrap_or_else(|e| panic!("write {i}: the connection failed instead of a Status: {e}"));
        let code = reply.status().as_u16();
        let body = reply.text().await.expect("the body of the answer");
        match code {
            200 | 201 => {
                acknowledged.insert(name, value);
            }
            500..=599 => {
                assert_status(code, &body);
                refused.entry(name).or_default().push(value);
                refusals.push((i, code, body));
                if refusals.len() == 5 {
                    break;
                }
            }
            other => panic!("write {i}: {other} {body}"),
        }
    }
    assert_eq!(refusals.len(), 5, "the disk never filled up: {} writes acknowledged", acknowledged.len());
    assert!(acknowledged.len() > 20, "{} writes acknowledged before the disk was full", acknowledged.len());
    println!(
        "{} writes acknowledged; first refusal at write {}: {} {}",
        acknowledged.len(),
        refusals[0].0,
        refusals[0].1,
        refusals[0].2
    );
    // Every acknowledged value is there; anything else is a refused write's own value.
    let check = |what: &str, values: &BTreeMap<String, String>| {
        // A key whose later write was refused may hold that write's value instead.
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|(name, value)| {
                let got = values.get(*name);
                got != Some(*value) && !got.is_some_and(|v| refused.get(*name).is_some_and(|sent| sent.contains(v)))
            })
            .collect();
        let foreign: Vec<_> = values
            .iter()
            .filter(|(name, value)| {
                acknowledged.get(*name) != Some(*value) && !refused.get(*name).is_some_and(|sent| sent.contains(value))
            })
            .collect();
        assert!(
            lost.is_empty() && foreign.is_empty(),
            "{what}: lost {lost:?}, neither acknowledged nor sent {foreign:?}"
        );
    };
    // Reads served by the watch cache go on: GET at resourceVersion 0, LIST (consistent and
    // at 0), and a WATCH from before the disk filled that replays every acknowledged write.
    for (name, value) in &acknowledged {
        let reply = client.get(format!("{}{CM}/{name}?resourceVersion=0", server.url)).send().await;
        let reply = reply.expect("a GET on a full disk");
        let code = reply.status();
        let body = reply.text().await.expect("body");
        assert_eq!(code, 200, "GET {name} (resourceVersion 0) on a full disk: {body}");
        let object: Value = serde_json::from_str(&body).expect("object JSON");
        let got = object["data"]["v"].as_str().unwrap_or_default();
        let refused_value = refused.get(name).is_some_and(|sent| sent.iter().any(|v| v == got));
        assert!(got == value || refused_value, "{name}: {got}, acknowledged {value}");
    }
    for query in ["", "?resourceVersion=0"] {
        let (values, _) = list_values(&client, &server.url, query).await;
        check(&format!("LIST{query} on a full disk"), &values);
    }
    let watch = client
        .get(format!("{}{CM}?watch=true&resourceVersion={before_rv}&timeoutSeconds=2", server.url))
        .send()
        .await
        .expect("a WATCH on a full disk");
    assert_eq!(watch.status(), 200);
    let mut watched = BTreeMap::from([("first".to_owned(), "0".to_owned())]);
    for line in watch.text().await.expect("watch stream").lines() {
        let event: Value = serde_json::from_str(line).expect("watch event JSON");
        assert!(event["type"] == "ADDED" || event["type"] == "MODIFIED", "{line}");
        let object = &event["object"];
        let name = object["metadata"]["name"].as_str().expect("name").to_owned();
        watched.insert(name, object["data"]["v"].as_str().unwrap_or("").to_owned());
    }
    check("WATCH on a full disk", &watched);
    // Reads that reach sled (a consistent GET): the right object, or a clean 503 when sled
    // 0.34 must first finish a node split or merge, which writes (seen in about one run of
    // ten: a sled read helps with pending tree maintenance); never a wrong answer.
    let mut unavailable = 0;
    for (name, value) in &acknowledged {
        let reply = client.get(format!("{}{CM}/{name}", server.url)).send().await.expect("a GET on a full disk");
        let code = reply.status().as_u16();
        let body = reply.text().await.expect("body");
        if code == 503 {
            assert_status(503, &body);
            unavailable += 1;
            continue;
        }
        assert_eq!(code, 200, "GET {name} on a full disk: {body}");
        let object: Value = serde_json::from_str(&body).expect("object JSON");
        let got = object["data"]["v"].as_str().unwrap_or_default();
        let refused_value = refused.get(name).is_some_and(|sent| sent.iter().any(|v| v == got));
        assert!(got == value || refused_value, "{name}: {got}, acknowledged {value}");
    }
    println!("consistent GETs on a full disk: {} answered, {unavailable} refused with 503", acknowledged.len());
    // Space back while the server runs: writes succeed again without a restart (the backend
    // probes the disk and recovers by itself). A refused attempt may have landed: then the
    // create answers 409 and the object holds the one value ever sent.
    std::fs::remove_file(&ballast).expect("removing the ballast");
    let space_back = Instant::now();
    loop {
        let reply = client.post(format!("{}{CM}", server.url)).json(&config_map("resumed", "1")).send().await;
        let reply = reply.expect("a create once space is back");
        let code = reply.status().as_u16();
        let body = reply.text().await.expect("body");
        if code == 201 || code == 409 {
            break;
        }
        assert_status(code, &body);
        assert!(
            space_back.elapsed() < Duration::from_secs(30),
            "writes did not resume within 30 s of space coming back: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("writes resumed {:?} after space came back, without a restart", space_back.elapsed());
    let reply = client.get(format!("{}{CM}/resumed", server.url)).send().await.expect("GET resumed");
    let object: Value = serde_json::from_str(&reply.text().await.expect("body")).expect("object JSON");
    assert_eq!(object["data"]["v"], "1", "the write after recovery");
    // Full again for the shutdown.
    let ballast = fs.fill_leaving(0);
    // SIGTERM: a clean exit within seconds, full disk or not.
    let mut server = server;
    let asked = Instant::now();
    let status = server.terminate(Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "the server did not exit cleanly on SIGTERM within 10 s on a full disk: {status:?}; log:\n{}",
        server.log_text()
    );
    println!("SIGTERM on a full disk: exit 0 after {took:?}");
    // Space back, a restart on the same directory: everything acknowledged is there and
    // writes succeed again.
    std::fs::remove_file(&ballast).expect("removing the ballast");
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().expect("placeholder"));
    drop(server);
    let server = Server::start_in(data_dir, &[]);
    let (values, _) = list_values(&client, &server.url, "").await;
    check(
        "LIST after the restart",
        &values.iter().filter(|(name, _)| *name != "resumed").map(|(k, v)| (k.clone(), v.clone())).collect(),
    );
    assert_eq!(values.get("resumed").map(String::as_str), Some("1"), "the write acknowledged after recovery");
    let reply = client.post(format!("{}{CM}", server.url)).json(&config_map("after", "1")).send().await;
    assert_eq!(reply.expect("create").status(), 201, "writes succeed once space is back");
    let reply = client.put(format!("{}{CM}/first", server.url)).json(&config_map("first", "2")).send().await;
    assert_eq!(reply.expect("update").status(), 200);
}
