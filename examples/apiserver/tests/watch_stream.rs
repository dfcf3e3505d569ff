//! The HTTP watch stream as clients read it: each JSON event line is the
//! `{"type":..,"object":..}` frame around the object's stored bytes (from the watch cache the
//! very bytes a LIST served from the cache returns), with the served apiVersion/kind and the
//! write's resourceVersion, with the watch cache on and off; and many concurrent watchers each
//! receive every acknowledged write, in order.

mod support;

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// Reads raw event lines (without the newline) until `count` arrived.
async fn read_lines(response: &mut reqwest::Response, count: usize) -> Vec<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    while lines.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("a watch event within 20 s")
            .expect("watch chunk")
            .expect("the watch stays open");
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = buffer.drain(..=end).collect();
            line.pop();
            lines.push(line);
        }
    }
    lines
}

/// Splits `{"type":"<T>","object":<object>}` into (T, object bytes); panics on any other shape.
fn split_line(line: &[u8]) -> (String, &[u8]) {
    let text = String::from_utf8_lossy(line);
    let rest =
        line.strip_prefix(b"{\"type\":\"".as_slice()).unwrap_or_else(|| panic!("line starts with its type: {text}"));
    let quote = rest.iter().position(|b| *b == b'"').expect("end of the type");
    let kind = String::from_utf8_lossy(&rest[..quote]).into_owned();
    let object = rest[quote..]
        .strip_prefix(b"\",\"object\":".as_slice())
        .and_then(|o| o.strip_suffix(b"}".as_slice()))
        .unwrap_or_else(|| panic!("line is the type then the object: {text}"));
    (kind, object)
}

async fn send(client: &Client, method: reqwest::Method, url: String, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request reaches the server");
    let code = response.status();
    (code, response.json().await.expect("a JSON answer"))
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).expect("a numeric resourceVersion")
}

/// One namespace's writes seen through a watch: every line is the frame around the object
/// as the write answered it; with the cache on, around the bytes the cache serves in a LIST.
async fn lines_are_frames_of_the_written_objects(server: &Server, cache: bool) {
    let client = Client::new();
    let base = &server.url;
    let (code, list) = send(&client, reqwest::Method::GET, format!("{base}{CM}"), None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let start = list["metadata"]["resourceVersion"].as_str().expect("list RV").to_owned();
    let mut watch = client
        .get(format!("{base}{CM}?watch=1&resourceVersion={start}&timeoutSeconds=60"))
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), StatusCode::OK);
    assert_eq!(watch.headers()["content-type"], "application/json");

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "labels": {"app": "x"}},
        "data": {"k": "v", "text": "quotes \" and \\ and ünïcode"}});
    let (code, created) = send(&client, reqwest::Method::POST, format!("{base}{CM}"), Some(&cm)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let mut changed = created.clone();
    changed["data"]["k"] = json!("changed");
    let (code, updated) = send(&client, reqwest::Method::PUT, format!("{base}{CM}/one"), Some(&changed)).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    // With the cache on, the LIST is served from the cache's bytes: the watch must carry them.
    // (NotOlderThan the update: the cache waits until it holds it.)
    let listed = client
        .get(format!("{base}{CM}?resourceVersion={}&resourceVersionMatch=NotOlderThan", rv(&updated)))
        .send()
        .await
        .expect("list")
        .bytes()
        .await
        .expect("body");
    let (code, deleted) = send(&client, reqwest::Method::DELETE, format!("{base}{CM}/one"), None).await;
    assert_eq!(code, StatusCode::OK, "{deleted}");

    let lines = read_lines(&mut watch, 3).await;
    let mut previous = start.parse::<u64>().expect("numeric list RV");
    for (line, (kind, written)) in
        lines.iter().zip([("ADDED", &created), ("MODIFIED", &updated), ("DELETED", &updated)])
    {
        let (event_kind, object_bytes) = split_line(line);
        assert_eq!(event_kind, kind, "{}", String::from_utf8_lossy(line));
        assert!(
            object_bytes.starts_with(br#"{"apiVersion":"v1","kind":"ConfigMap","#),
            "served apiVersion/kind first: {}",
            String::from_utf8_lossy(object_bytes)
        );
        let object: Value = serde_json::from_slice(object_bytes).expect("the object is JSON");
        let revision = rv(&object);
        assert!(revision > previous, "resourceVersions increase: {revision} after {previous}");
        previous = revision;
        if kind == "DELETED" {
            // The last state, at the deletion's revision.
            assert!(revision > rv(&updated));
            let mut expected = updated.clone();
            expected["metadata"]["resourceVersion"] = object["metadata"]["resourceVersion"].clone();
            assert_eq!(object, expected);
        } else {
            assert_eq!(&object, written, "the event carries the object the write answered");
        }
    }
    if cache {
        let (_, modified) = split_line(&lines[1]);
        let item = listed
            .windows(9)
            .position(|w| w == b"\"items\":[")
            .map(|at| &listed[at + 9..listed.len() - 2])
            .expect("a list with items");
        assert_eq!(
            String::from_utf8_lossy(modified),
            String::from_utf8_lossy(item),
            "the watch writes the cache's bytes of the object"
        );
    }

    // The initial-events-end bookmark of a streaming watch: served kind, the list's revision.
    let mut streaming = client
        .get(format!(
            "{base}{CM}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=60"
        ))
        .send()
        .await
        .expect("watch");
    let (code, survivor) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}{CM}"),
        Some(&json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{survivor}");
    // The namespace is empty: no initial ADDED, the bookmark, then the later write.
    let lines = read_lines(&mut streaming, 2).await;
    let (kind, bookmark) = split_line(&lines[0]);
    assert_eq!(kind, "BOOKMARK", "{}", String::from_utf8_lossy(&lines[0]));
    let bookmark: Value = serde_json::from_slice(bookmark).expect("JSON");
    assert_eq!(
        (bookmark["apiVersion"].as_str(), bookmark["kind"].as_str()),
        (Some("v1"), Some("ConfigMap")),
        "{bookmark}"
    );
    assert_eq!(bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"], "true", "{bookmark}");
    let (kind, added) = split_line(&lines[1]);
    assert_eq!(kind, "ADDED");
    let added: Value = serde_json::from_slice(added).expect("JSON");
    assert_eq!(added, survivor);
    assert!(rv(&bookmark) < rv(&survivor), "the bookmark comes before the later write");
}

#[tokio::test]
async fn watch_lines_frame_the_objects_bytes_with_the_cache() {
    let server = Server::start(&["--watch-cache=true"]);
    lines_are_frames_of_the_written_objects(&server, true).await;
}

#[tokio::test]
async fn watch_lines_frame_the_objects_bytes_without_the_cache() {
    let server = Server::start(&["--watch-cache=false"]);
    lines_are_frames_of_the_written_objects(&server, false).await;
}

/// Many watchers of one collection while several writers update it: every watcher receives
/// every acknowledged write, in increasing resourceVersion order, nothing else.
#[tokio::test]
async fn many_concurrent_watchers_each_receive_every_write_in_order() {
    const WATCHERS: usize = 60;
    const WRITERS: usize = 4;
    const WRITES: usize = 50; // per writer
    let server = Server::start(&["--watch-cache=true"]);
    let client = Client::builder().pool_max_idle_per_host(WATCHERS + WRITERS).build().expect("client");
    let base = server.url.clone();
    for i in 0..WRITERS {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"n": "0"}});
        let (code, body) = send(&client, reqwest::Method::POST, format!("{base}{CM}"), Some(&cm)).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let (_, list) = send(&client, reqwest::Method::GET, format!("{base}{CM}"), None).await;
    let start = list["metadata"]["resourceVersion"].as_str().expect("RV").to_owned();
    let mut watches = Vec::new();
    for _ in 0..WATCHERS {
        let response = client
            .get(format!("{base}{CM}?watch=1&resourceVersion={start}&timeoutSeconds=60"))
            .send()
            .await
            .expect("watch");
        assert_eq!(response.status(), StatusCode::OK);
        watches.push(response);
    }
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let (client, base) = (client.clone(), base.clone());
        writers.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for n in 1..=WRITES {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")},
                    "data": {"n": n.to_string()}});
                let (code, body) = send(&client, reqwest::Method::PUT, format!("{base}{CM}/cm-{i}"), Some(&cm)).await;
                assert_eq!(code, StatusCode::OK, "{body}");
                revisions.push((rv(&body), i, n));
            }
            revisions
        }));
    }
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.expect("writer"));
    }
    written.sort_unstable();
    let readers: Vec<_> = watches
        .into_iter()
        .map(|mut watch| tokio::spawn(async move { read_lines(&mut watch, WRITERS * WRITES).await }))
        .collect();
    for reader in readers {
        let lines = reader.await.expect("reader");
        let seen: Vec<(u64, usize, usize)> = lines
            .iter()
            .map(|line| {
                let (kind, object) = split_line(line);
                assert_eq!(kind, "MODIFIED");
                let object: Value = serde_json::from_slice(object).expect("JSON");
                let name = object["metadata"]["name"].as_str().expect("name");
                let writer = name.trim_start_matches("cm-").parse().expect("writer index");
                let n = object["data"]["n"].as_str().and_then(|n| n.parse().ok()).expect("n");
                (rv(&object), writer, n)
            })
            .collect();
        assert_eq!(seen, written, "every write, in resourceVersion order, with its content");
    }
}
