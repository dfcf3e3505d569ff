//! Responses served from the watch cache's bytes: a GET with a resourceVersion is answered from
//! the cache, a GET without one from the store; both must carry the same bytes (JSON, YAML,
//! PartialObjectMetadata as JSON and YAML) or the same fields (Tables as JSON and YAML, whose
//! Age cell is computed per request), the object version's own resourceVersion and the served
//! apiVersion/kind — also after the object changed (no representation kept from an older
//! version) and for a resource served in a version other than its storage version (two
//! resources over one cached storage). Lists and watches from the cache are compared with those
//! of a server without it (`--watch-cache=false`: every item decoded) on the same data.

mod support;

use reqwest::Client;
use serde_json::{json, Value};
use support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";
const YAML: &str = "application/yaml";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const TABLE_YAML: &str = "application/yaml;as=Table;v=v1;g=meta.k8s.io";
const METADATA_YAML: &str = "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// The list representations compared between the cache and the decoded path: (Accept, query).
const LIST_FORMS: &[(&str, &str)] = &[
    (JSON, ""),
    (YAML, ""),
    (METADATA, ""),
    (TABLE, ""),
    (METADATA_YAML, ""),
    (TABLE, "includeObject=Object"),
    (TABLE, "includeObject=None"),
    (TABLE_YAML, ""),
    (TABLE_YAML, "includeObject=Object"),
    (TABLE_YAML, "includeObject=None"),
];

/// GET `path` with `Accept: accept`: (status, content type, body).
async fn get(client: &Client, server: &Server, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let response =
        client.get(format!("{}{path}", server.url)).header("accept", accept).send().await.expect("server answers");
    let code = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (code, content_type, response.bytes().await.expect("body").to_vec())
}

async fn send(client: &Client, server: &Server, method: reqwest::Method, path: &str, body: &Value) -> Value {
    let response = client.request(method, format!("{}{path}", server.url)).json(body).send().await.expect("answer");
    let code = response.status().as_u16();
    let value: Value = response.json().await.expect("JSON");
    assert!(code == 200 || code == 201, "{code}: {value}");
    value
}

/// The CRD of `Gizmo`s (example.com, namespaced) served as v1 (stored) and v2, its `spec`
/// having `properties`.
fn gizmo_crd(properties: Value) -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
        "properties": properties}}}});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v2", "served": true, "storage": false, "schema": schema},
            ],
        },
    })
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// A Table without its Age cells (computed at each request, so they may differ by a second).
fn without_age(mut table: Value) -> Value {
    for row in table["rows"].as_array_mut().into_iter().flatten() {
        if let Some(cells) = row["cells"].as_array_mut() {
            cells.pop();
        }
    }
    table
}

/// Every representation of `path` read from the cache (`resourceVersion=rv`, which waits for
/// the cache to reach it) and from the store (no resourceVersion) agree; returns the cached JSON.
async fn assert_cache_matches_store(client: &Client, server: &Server, path: &str, rv: &str) -> Value {
    let cached = format!("{path}?resourceVersion={rv}");
    for accept in [JSON, YAML, METADATA, METADATA_YAML] {
        let (code, content_type, from_cache) = get(client, server, &cached, accept).await;
        assert_eq!(code, 200, "{accept}: {}", String::from_utf8_lossy(&from_cache));
        let (_, store_type, from_store) = get(client, server, path, accept).await;
        assert_eq!(content_type, store_type, "{accept}");
        assert_eq!(
            String::from_utf8_lossy(&from_cache),
            String::from_utf8_lossy(&from_store),
            "{accept}: the cache's bytes are the store's"
        );
        // Twice from the cache: the kept representation is the same.
        assert_eq!(get(client, server, &cached, accept).await.2, from_cache, "{accept}: second read");
    }
    for include in ["", "&includeObject=Object", "&includeObject=None"] {
        let from_cache = parse(&get(client, server, &format!("{cached}{include}"), TABLE).await.2);
        let query = if include.is_empty() { String::new() } else { format!("?{}", &include[1..]) };
        let from_store = parse(&get(client, server, &format!("{path}{query}"), TABLE).await.2);
        assert_eq!((&from_cache["kind"], &from_cache["apiVersion"]), (&json!("Table"), &json!("meta.k8s.io/v1")));
        assert_eq!(without_age(from_cache.clone()), without_age(from_store), "Table{include}");
        assert_eq!(from_cache["rows"].as_array().map(Vec::len), Some(1), "{from_cache}");
        let object = &from_cache["rows"][0]["object"];
        let yaml = get(client, server, &format!("{cached}{include}"), TABLE_YAML).await.2;
        let yaml: Value = serde_yaml::from_slice(&yaml).expect("YAML Table");
        assert_eq!(without_age(yaml), without_age(from_cache.clone()), "YAML Table{include}: the JSON one");
        match include {
            "" => assert_eq!(object["kind"], "PartialObjectMetadata", "{from_cache}"),
            "&includeObject=Object" => assert_eq!(object["metadata"]["resourceVersion"], json!(rv), "{from_cache}"),
            _ => assert!(object.is_null(), "{from_cache}"),
        }
    }
    let (_, _, yaml) = get(client, server, &cached, YAML).await;
    let yaml: Value = serde_yaml::from_slice(&yaml).expect("YAML");
    let json = parse(&get(client, server, &cached, JSON).await.2);
    assert_eq!(yaml, json, "YAML and JSON carry the same object");
    let metadata = parse(&get(client, server, &cached, METADATA).await.2);
    assert_eq!(metadata["kind"], "PartialObjectMetadata");
    assert_eq!(metadata["metadata"], json["metadata"]);
    assert!(metadata.get("data").is_none(), "{metadata}");
    let metadata_yaml: Value =
        serde_yaml::from_slice(&get(client, server, &cached, METADATA_YAML).await.2).expect("YAML metadata");
    assert_eq!(metadata_yaml, metadata);
    json
}

#[tokio::test]
async fn get_from_the_cache_serves_the_stores_bytes_in_every_representation() {
    let server = Server::start(&[]);
    let client = Client::new();
    let created = send(
        &client,
        &server,
        reqwest::Method::POST,
        CM,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "one"}}),
    )
    .await;
    let rv = created["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    let path = format!("{CM}/a");
    let first = assert_cache_matches_store(&client, &server, &path, &rv).await;
    assert_eq!((&first["apiVersion"], &first["kind"]), (&json!("v1"), &json!("ConfigMap")));
    assert_eq!(first["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(first["data"]["k"], "one");
    // RV=0 is any state the cache has: this one.
    assert_eq!(parse(&get(&client, &server, &format!("{path}?resourceVersion=0"), JSON).await.2), first);

    // A new version: every representation is the new one, none kept from the old.
    let mut changed = first.clone();
    changed["data"]["k"] = json!("two");
    changed["metadata"]["labels"]["app"] = json!("y");
    let updated = send(&client, &server, reqwest::Method::PUT, &path, &changed).await;
    let new_rv = updated["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    assert_ne!(new_rv, rv);
    let second = assert_cache_matches_store(&client, &server, &path, &new_rv).await;
    assert_eq!(second["metadata"]["resourceVersion"], json!(new_rv));
    assert_eq!(second["data"]["k"], "two");
    let yaml: Value =
        serde_yaml::from_slice(&get(&client, &server, &format!("{path}?resourceVersion={new_rv}"), YAML).await.2)
            .expect("YAML");
    assert_eq!((&yaml["data"]["k"], &yaml["metadata"]["resourceVersion"]), (&json!("two"), &json!(new_rv)));
    let table = parse(&get(&client, &server, &format!("{path}?resourceVersion={new_rv}"), TABLE).await.2);
    let cells = table["rows"][0]["cells"].as_array().cloned().unwrap_or_default();
    assert_eq!(cells.first(), Some(&json!("a")), "{table}");
    let age = cells.last().and_then(Value::as_str).unwrap_or("");
    assert!(age.ends_with('s') || age.ends_with('m'), "an Age cell: {table}");
    let metadata = parse(&get(&client, &server, &format!("{path}?resourceVersion={new_rv}"), METADATA).await.2);
    assert_eq!(metadata["metadata"]["labels"]["app"], "y");

    // Gone: 404 from the cache too.
    let response = client.delete(format!("{}{path}", server.url)).send().await.expect("delete");
    assert_eq!(response.status().as_u16(), 200);
    let deleted: Value = response.json().await.expect("JSON");
    let gone_rv = deleted["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_owned();
    let current = client.get(format!("{}{CM}", server.url)).send().await.expect("list");
    let list_rv = current.json::<Value>().await.expect("list")["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or(&gone_rv)
        .to_owned();
    let (code, _, body) = get(&client, &server, &format!("{path}?resourceVersion={list_rv}"), JSON).await;
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(parse(&body)["reason"], "NotFound");
}

#[tokio::test]
async fn get_without_the_cache_serves_the_same_representations() {
    let server = Server::start(&["--watch-cache=false"]);
    let client = Client::new();
    let created = send(
        &client,
        &server,
        reqwest::Method::POST,
        CM,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"k": "v"}}),
    )
    .await;
    let rv = created["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    let json = assert_cache_matches_store(&client, &server, &format!("{CM}/b"), &rv).await;
    assert_eq!(json, created, "GET answers what the create answered");
}

#[tokio::test]
async fn a_version_other_than_the_storage_version_is_served_from_the_same_cached_object() {
    let server = Server::start(&[]);
    let client = Client::new();
    let crd = gizmo_crd(json!({"size": {"type": "integer"}}));
    send(&client, &server, reqwest::Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd)
        .await;
    let v1 = "/apis/example.com/v1/namespaces/default/gizmos";
    let v2 = "/apis/example.com/v2/namespaces/default/gizmos";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get(&client, &server, v2, JSON).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "v2 not served");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let gizmo =
        json!({"apiVersion": "example.com/v2", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"size": 3}});
    let created = send(&client, &server, reqwest::Method::POST, v2, &gizmo).await;
    let rv = created["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    // Alternate the versions so that each finds the object's kept forms made for the other.
    for round in 0..2 {
        for (path, api_version) in [(v2, "example.com/v2"), (v1, "example.com/v1")] {
            let object = format!("{path}/g");
            let json = assert_cache_matches_store(&client, &server, &object, &rv).await;
            assert_eq!(json["apiVersion"], api_version, "round {round}: {json}");
            assert_eq!(json["kind"], "Gizmo");
            assert_eq!(json["metadata"]["resourceVersion"], json!(rv));
            assert_eq!(json["spec"]["size"], 3);
            let yaml: Value =
                serde_yaml::from_slice(&get(&client, &server, &format!("{object}?resourceVersion=0"), YAML).await.2)
                    .expect("YAML");
            assert_eq!(yaml["apiVersion"], api_version, "round {round}: {yaml}");
        }
    }
}

/// `path` with `query` (`?…` or empty) and `more` (`a=b` or empty) joined.
fn with_query(path: &str, query: &str, more: &str) -> String {
    match (query.is_empty(), more.is_empty()) {
        (_, true) => format!("{path}{query}"),
        (true, false) => format!("{path}?{more}"),
        (false, false) => format!("{path}{query}&{more}"),
    }
}

/// GETs every list representation ([`LIST_FORMS`]) of `path` with each of `queries` from
/// `server`: (what, status, content type, body).
async fn lists(client: &Client, server: &Server, path: &str, queries: &[&str]) -> Vec<(String, u16, String, Vec<u8>)> {
    let mut out = Vec::new();
    for query in queries {
        for (accept, more) in LIST_FORMS {
            let (code, content_type, body) = get(client, server, &with_query(path, query, more), accept).await;
            out.push((format!("{accept} {path}{query} {more}"), code, content_type, body));
        }
    }
    out
}

/// YAML text with its Table Age cells (a row's `  - 12s` line) replaced by `  - AGE`: they are
/// computed per request.
fn yaml_without_age(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let age = |line: &str| {
        line.strip_prefix("  - ").is_some_and(|cell| {
            cell.len() > 1
                && cell[..cell.len() - 1].bytes().all(|b| b.is_ascii_digit())
                && cell.ends_with(['s', 'm', 'h', 'd'])
        })
    };
    text.split_inclusive('\n').map(|line| if age(line.trim_end_matches('\n')) { "  - AGE\n" } else { line }).collect()
}

/// Each list from the cache is its decoded counterpart: the same bytes (YAML, and JSON
/// PartialObjectMetadataLists and Tables without the object), the same JSON where an object's
/// own JSON is embedded (plain lists, Tables with `includeObject=Object`: the stored bytes keep
/// their key order), Tables but for their Age cells.
fn assert_same_lists(cached: &[(String, u16, String, Vec<u8>)], decoded: &[(String, u16, String, Vec<u8>)]) {
    assert_eq!(cached.len(), decoded.len());
    for ((what, code, media, from_cache), (_, decoded_code, decoded_media, from_store)) in cached.iter().zip(decoded) {
        assert_eq!((code, media), (&200, decoded_media), "{what}: {}", String::from_utf8_lossy(from_cache));
        assert_eq!(decoded_code, &200, "{what}");
        if what.starts_with(TABLE) {
            let (table, reference) = (parse(from_cache), parse(from_store));
            assert_eq!(without_age(table.clone()), without_age(reference), "{what}");
            assert!(table["rows"].as_array().is_some_and(|rows| !rows.is_empty()), "{what}: {table}");
            assert_eq!(table["columnDefinitions"][0]["name"], "Name", "{what}");
        } else if what.starts_with(TABLE_YAML) {
            assert_eq!(yaml_without_age(from_cache), yaml_without_age(from_store), "{what}");
            let table: Value = serde_yaml::from_slice(from_cache).expect("YAML Table");
            assert!(table["rows"].as_array().is_some_and(|rows| !rows.is_empty()), "{what}: {table}");
        } else if what.starts_with(JSON) {
            assert_eq!(parse(from_cache), parse(from_store), "{what}");
        } else {
            assert_eq!(String::from_utf8_lossy(from_cache), String::from_utf8_lossy(from_store), "{what}");
        }
    }
}

/// Waits until the list of `path` at RV=0 (served by the cache, which may be a little behind
/// the store) has reached `rv`, so that a server without the cache lists the same data.
async fn wait_for_cache(client: &Client, server: &Server, path: &str, rv: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list = parse(&get(client, server, &format!("{path}?resourceVersion=0"), JSON).await.2);
        let at = list["metadata"]["resourceVersion"].as_str().and_then(|rv| rv.parse::<u64>().ok());
        if at >= rv.parse().ok() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the cache never reached {rv}: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The first `count` event lines of a watch of `path` (query `more`) from `rv` with `Accept: accept`, each
/// parsed (a Table event without its Age cells).
async fn watch_events(
    client: &Client,
    server: &Server,
    (path, more): (&str, &str),
    rv: &str,
    accept: &str,
    count: usize,
) -> Vec<Value> {
    let url = format!("{}{}", server.url, with_query(path, &format!("?watch=1&resourceVersion={rv}"), more));
    let mut response = client.get(&url).header("accept", accept).send().await.expect("watch");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let mut buffer = Vec::new();
    let deadline = std::time::Duration::from_secs(10);
    while buffer.iter().filter(|b| **b == b'\n').count() < count {
        let chunk = tokio::time::timeout(deadline, response.chunk()).await.expect("an event in time").expect("body");
        buffer.extend_from_slice(
            &chunk.unwrap_or_else(|| panic!("the watch ended: {}", String::from_utf8_lossy(&buffer))),
        );
    }
    buffer
        .split(|b| *b == b'\n')
        .take(count)
        .map(|line| {
            let mut event = parse(line);
            if event["object"]["kind"] == "Table" {
                event["object"] = without_age(event["object"].take());
            }
            event
        })
        .collect()
}

/// The watch representations compared: (Accept, query).
const WATCH_FORMS: &[(&str, &str)] =
    &[(JSON, ""), (METADATA, ""), (TABLE, ""), (TABLE, "includeObject=Object"), (TABLE, "includeObject=None")];

/// Every watch representation ([`WATCH_FORMS`]) of `path` from `rv`, its first `count` events.
async fn watches(client: &Client, server: &Server, path: &str, rv: &str, count: usize) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for (accept, more) in WATCH_FORMS {
        let events = watch_events(client, server, (path, more), rv, accept, count).await;
        out.push((format!("watch {accept} {path} {more}"), events));
    }
    out
}

/// A LIST served from the watch cache (its items' kept representations) and the same LIST of
/// the same data from a server without the cache (every item decoded) are the same bytes in
/// YAML, PartialObjectMetadataList (JSON and YAML) and YAML Tables (but for the Age cells), the
/// same JSON for plain lists and JSON Tables (every `includeObject`; Age cells aside); with
/// paging (`limit`/`continue`, `remainingItemCount`) and RV=0. A watch from before the writes
/// carries the same events in every representation.
#[tokio::test]
async fn a_list_from_the_cache_is_the_decoded_lists_bytes_in_every_representation() {
    let server = Server::start(&[]);
    let client = Client::new();
    let start =
        parse(&get(&client, &server, CM, JSON).await.2)["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    let texts = ["one", "two\nlines\n\nwith an empty one", "  leading spaces\n", "123", "ünï\u{2028}code"];
    let mut last_rv = String::new();
    for (i, text) in texts.iter().enumerate() {
        let created = send(
            &client,
            &server,
            reqwest::Method::POST,
            CM,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("c{i}"), "labels": {"n": i.to_string()}, "annotations": {"t": text}},
                "data": {"text": text, "other": "x"}}),
        )
        .await;
        last_rv = created["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    }
    // An RV=0 list may be served by a cache a little behind the store: wait until the cache
    // has the last write, so both servers list the same data.
    wait_for_cache(&client, &server, CM, &last_rv).await;
    let queries = ["?resourceVersion=0", "", "?limit=2", "?labelSelector=n%3D1"];
    let cached = lists(&client, &server, CM, &queries).await;
    // The continue token of the first page, for the second page (from each server).
    let page: Value = parse(&get(&client, &server, &format!("{CM}?limit=2"), JSON).await.2);
    let token = page["metadata"]["continue"].as_str().expect("a second page").to_owned();
    assert_eq!(page["metadata"]["remainingItemCount"], 3, "{page}");
    let next = format!("?limit=2&continue={token}");
    let cached_next = lists(&client, &server, CM, &[next.as_str()]).await;
    let cached_watches = watches(&client, &server, CM, &start, texts.len()).await;
    let data = server.stop();
    let server = Server::start_in(data, &["--watch-cache=false"]);
    let decoded = lists(&client, &server, CM, &queries).await;
    let decoded_next = lists(&client, &server, CM, &[next.as_str()]).await;
    let decoded_watches = watches(&client, &server, CM, &start, texts.len()).await;
    assert_same_lists(&[cached.clone(), cached_next].concat(), &[decoded, decoded_next].concat());
    for ((what, from_cache), (_, decoded)) in cached_watches.iter().zip(&decoded_watches) {
        assert_eq!(from_cache, decoded, "{what}");
        assert_eq!(from_cache.len(), texts.len(), "{what}");
        assert!(from_cache.iter().all(|e| e["type"] == "ADDED"), "{what}: {from_cache:?}");
    }
    // The Table watch's first event carries the column definitions, the later ones none.
    let table = &cached_watches[3].1;
    assert_eq!(table[0]["object"]["columnDefinitions"][0]["name"], "Name", "{table:?}");
    assert!(table[1]["object"]["columnDefinitions"].is_null(), "{table:?}");
    assert_eq!(table[1]["object"]["rows"][0]["object"]["data"]["text"], texts[1], "{table:?}");
    // What the lists carry: every item, the list's resourceVersion, a YAML that parses to the JSON.
    let json = parse(&cached[0].3);
    assert_eq!(json["items"].as_array().map(Vec::len), Some(texts.len()));
    let yaml: Value = serde_yaml::from_slice(&cached[1].3).expect("YAML");
    assert_eq!(yaml, json, "the YAML list is the JSON list");
    let metadata = parse(&cached[2].3);
    assert_eq!(metadata["kind"], "PartialObjectMetadataList");
    assert_eq!(metadata["items"][1]["metadata"]["annotations"]["t"], texts[1]);
    assert_eq!(metadata["metadata"]["resourceVersion"], json["metadata"]["resourceVersion"]);
    let metadata_yaml: Value = serde_yaml::from_slice(&cached[4].3).expect("YAML metadata");
    assert_eq!(metadata_yaml, metadata, "the YAML metadata list is the JSON one");
    let table = parse(&cached[5].3);
    assert_eq!(table["rows"][1]["object"], json["items"][1], "includeObject=Object: the object");
    let table_yaml: Value = serde_yaml::from_slice(&cached[8].3).expect("YAML Table");
    assert_eq!(without_age(table_yaml), without_age(table), "the YAML Table is the JSON one");
    let paged: Value = serde_yaml::from_slice(&cached[2 * LIST_FORMS.len() + 1].3).expect("YAML page");
    assert_eq!(paged["metadata"]["remainingItemCount"], 3, "{paged:?}");
    assert_eq!(paged["items"].as_array().map(Vec::len), Some(2));
}

/// The gizmos' watch cache bytes (`apistore_watch_cache_bytes`: its objects and their kept forms).
async fn gizmo_cache_bytes(client: &Client, server: &Server) -> i64 {
    let (code, _, metrics) = get(client, server, "/metrics", "text/plain").await;
    assert_eq!(code, 200);
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let line = metrics.lines().find(|l| l.starts_with("apistore_watch_cache_bytes{") && l.contains("gizmos"));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{metrics}"))
}

/// Lists and watches of a kind served in another version or form than it is stored — a CRD's
/// two served versions (stored as v1) and events.k8s.io/v1 events (stored as core/v1 events) —
/// from the cache, alternating the versions so that each finds the object's kept forms made for
/// the other, are the decoded path's of a server without the cache, with paging.
#[tokio::test]
async fn lists_of_other_served_versions_from_the_cache_are_the_decoded_ones() {
    let server = Server::start(&[]);
    let client = Client::new();
    let crd = gizmo_crd(json!({"size": {"type": "integer"}, "text": {"type": "string"}}));
    send(&client, &server, reqwest::Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd)
        .await;
    let v1 = "/apis/example.com/v1/namespaces/default/gizmos";
    let v2 = "/apis/example.com/v2/namespaces/default/gizmos";
    let events = "/apis/events.k8s.io/v1/namespaces/default/events";
    let core_events = "/api/v1/namespaces/default/events";
    let served = |server: &Server| {
        let (client, url) = (client.clone(), server.url.clone());
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while client.get(format!("{url}{v2}")).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
                assert!(std::time::Instant::now() < deadline, "v2 not served");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    served(&server).await;
    let rv_of = |list: Value| list["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    let start = rv_of(parse(&get(&client, &server, v1, JSON).await.2));
    let events_start = rv_of(parse(&get(&client, &server, events, JSON).await.2));
    let texts = ["one", "two\nlines\n\nwith an empty one", "  leading spaces\n", "123"];
    let mut last_rv = String::new();
    for (i, text) in texts.iter().enumerate() {
        // Written in either version: stored as v1.
        let (path, api_version) = if i % 2 == 0 { (v2, "example.com/v2") } else { (v1, "example.com/v1") };
        send(
            &client,
            &server,
            reqwest::Method::POST,
            path,
            &json!({"apiVersion": api_version, "kind": "Gizmo",
                "metadata": {"name": format!("g{i}"), "annotations": {"t": text}}, "spec": {"size": i, "text": text}}),
        )
        .await;
        let event = send(
            &client,
            &server,
            reqwest::Method::POST,
            events,
            &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": format!("e{i}")},
                "eventTime": "2026-11-27T00:00:00.000000Z", "reportingController": "test", "reportingInstance": "t1",
                "action": "Testing", "reason": "Tested", "note": text, "type": "Normal",
                "regarding": {"kind": "Gizmo", "name": format!("g{i}"), "namespace": "default"}}),
        )
        .await;
        last_rv = event["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    }
    for path in [v1, v2, events, core_events] {
        wait_for_cache(&client, &server, path, &last_rv).await;
    }
    let queries = ["?resourceVersion=0", "?limit=3"];
    // Twice, alternating: each version's forms are kept beside the other's.
    let paths = [v2, v1, events, core_events, v2, v1, events, core_events];
    let mut cached = Vec::new();
    let mut tokens = Vec::new();
    // The gizmos' cache bytes (its objects' and the kept forms'): the lists of each version keep
    // that version's forms, and the second round keeps nothing more.
    let mut cache_bytes = vec![gizmo_cache_bytes(&client, &server).await];
    for (i, path) in paths.iter().enumerate() {
        cached.extend(lists(&client, &server, path, &queries).await);
        let page = parse(&get(&client, &server, &format!("{path}?limit=3"), JSON).await.2);
        let token = page["metadata"]["continue"].as_str().expect("a second page").to_owned();
        let next = format!("?limit=3&continue={token}");
        cached.extend(lists(&client, &server, path, &[next.as_str()]).await);
        tokens.push(next);
        if i < 2 || i == paths.len() - 1 {
            cache_bytes.push(gizmo_cache_bytes(&client, &server).await);
        }
    }
    assert!(cache_bytes[1] > cache_bytes[0], "v2's forms kept and counted: {cache_bytes:?}");
    assert!(cache_bytes[2] > cache_bytes[1], "v1's forms kept beside v2's: {cache_bytes:?}");
    assert_eq!(cache_bytes[3], cache_bytes[2], "the second round makes nothing again: {cache_bytes:?}");
    let mut cached_watches = watches(&client, &server, v2, &start, texts.len()).await;
    cached_watches.extend(watches(&client, &server, v1, &start, texts.len()).await);
    cached_watches.extend(watches(&client, &server, events, &events_start, texts.len()).await);
    let data = server.stop();
    let server = Server::start_in(data, &["--watch-cache=false"]);
    served(&server).await;
    let mut decoded = Vec::new();
    for (path, next) in paths.iter().zip(&tokens) {
        decoded.extend(lists(&client, &server, path, &queries).await);
        decoded.extend(lists(&client, &server, path, &[next.as_str()]).await);
    }
    let mut decoded_watches = watches(&client, &server, v2, &start, texts.len()).await;
    decoded_watches.extend(watches(&client, &server, v1, &start, texts.len()).await);
    decoded_watches.extend(watches(&client, &server, events, &events_start, texts.len()).await);
    assert_same_lists(&cached, &decoded);
    for ((what, from_cache), (_, decoded)) in cached_watches.iter().zip(&decoded_watches) {
        assert_eq!(from_cache, decoded, "{what}");
    }
    // What they carry: each version's apiVersion, the converted fields, the paging.
    let per_path = 3 * LIST_FORMS.len();
    let v2_list = parse(&cached[0].3);
    assert_eq!(v2_list["apiVersion"], "example.com/v2");
    assert!(
        v2_list["items"].as_array().is_some_and(
            |items| items.len() == texts.len() && items.iter().all(|item| item["apiVersion"] == "example.com/v2")
        ),
        "{v2_list}"
    );
    let v1_yaml: Value = serde_yaml::from_slice(&cached[per_path + 1].3).expect("YAML");
    assert_eq!(v1_yaml["items"][1]["apiVersion"], "example.com/v1");
    assert_eq!(v1_yaml["items"][1]["spec"]["text"], texts[1]);
    let events_list = parse(&cached[2 * per_path].3);
    assert_eq!(events_list["items"][1]["note"], texts[1], "{events_list}");
    let core_table = parse(&cached[3 * per_path + 5].3);
    assert_eq!(core_table["rows"][1]["object"]["message"], texts[1], "{core_table}");
    let v2_table = parse(&cached[5].3);
    assert_eq!(v2_table["rows"][0]["object"]["apiVersion"], "example.com/v2", "{v2_table}");
    let page: Value = serde_yaml::from_slice(&cached[LIST_FORMS.len() + 1].3).expect("YAML page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3), "{page:?}");
    assert_eq!(page["metadata"]["remainingItemCount"], 1, "{page:?}");
    let v2_watch = &cached_watches[0].1;
    assert!(v2_watch.iter().all(|e| e["object"]["apiVersion"] == "example.com/v2"), "{v2_watch:?}");
}
