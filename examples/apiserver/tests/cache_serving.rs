//! Responses served from the watch cache's bytes: a GET with a resourceVersion is answered from
//! the cache, a GET without one from the store; both must carry the same bytes (JSON, YAML,
//! PartialObjectMetadata) or the same fields (Table, whose Age cell is computed per request),
//! the object version's own resourceVersion and the served apiVersion/kind — also after the
//! object changed (no representation kept from an older version) and for a resource served in a
//! version other than its storage version (two resources over one cached storage).

mod support;

use reqwest::Client;
use serde_json::{json, Value};
use support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";
const YAML: &str = "application/yaml";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

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
    for accept in [JSON, YAML, METADATA] {
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
    let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"size": {"type": "integer"}}}}}});
    let crd = json!({
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
    });
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

/// GETs every list representation of `path` (queries `queries`) from `server`.
async fn lists(client: &Client, server: &Server, queries: &[&str]) -> Vec<(String, u16, String, Vec<u8>)> {
    let mut out = Vec::new();
    for query in queries {
        for accept in [JSON, YAML, METADATA, TABLE] {
            let (code, content_type, body) = get(client, server, &format!("{CM}{query}"), accept).await;
            out.push((format!("{accept} {query}"), code, content_type, body));
        }
    }
    out
}

/// A LIST served from the watch cache (its items' kept representations) and the same LIST of
/// the same data from a server without the cache (every item decoded) are the same bytes in
/// YAML and PartialObjectMetadataList, the same JSON, and the same Table but for the Age cells
/// (computed per request); with paging (`limit`/`continue`, `remainingItemCount`) and RV=0.
#[tokio::test]
async fn a_list_from_the_cache_is_the_decoded_lists_bytes_in_every_representation() {
    let server = Server::start(&[]);
    let client = Client::new();
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list = parse(&get(&client, &server, &format!("{CM}?resourceVersion=0"), JSON).await.2);
        let at = list["metadata"]["resourceVersion"].as_str().and_then(|rv| rv.parse::<u64>().ok());
        if at >= last_rv.parse().ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cache never reached {last_rv}: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let queries = ["?resourceVersion=0", "", "?limit=2", "?labelSelector=n%3D1"];
    let cached = lists(&client, &server, &queries).await;
    // The continue token of the first page, for the second page (from each server).
    let page: Value = parse(&get(&client, &server, &format!("{CM}?limit=2"), JSON).await.2);
    let token = page["metadata"]["continue"].as_str().expect("a second page").to_owned();
    assert_eq!(page["metadata"]["remainingItemCount"], 3, "{page}");
    let next = format!("?limit=2&continue={token}");
    let cached_next = lists(&client, &server, &[next.as_str()]).await;
    let data = server.stop();
    let server = Server::start_in(data, &["--watch-cache=false"]);
    let decoded = lists(&client, &server, &queries).await;
    let decoded_next = lists(&client, &server, &[next.as_str()]).await;
    for ((what, code, media, from_cache), (_, decoded_code, decoded_media, from_store)) in
        cached.iter().chain(&cached_next).zip(decoded.iter().chain(&decoded_next))
    {
        assert_eq!((code, media), (&200, decoded_media), "{what}: {}", String::from_utf8_lossy(from_cache));
        assert_eq!(decoded_code, &200, "{what}");
        if what.starts_with(TABLE) {
            let (table, reference) = (parse(from_cache), parse(from_store));
            assert_eq!(without_age(table.clone()), without_age(reference), "{what}");
            assert!(table["rows"].as_array().is_some_and(|rows| !rows.is_empty()), "{what}: {table}");
            assert_eq!(table["columnDefinitions"][0]["name"], "Name", "{what}");
        } else if what.starts_with(JSON) {
            assert_eq!(parse(from_cache), parse(from_store), "{what}");
        } else {
            assert_eq!(String::from_utf8_lossy(from_cache), String::from_utf8_lossy(from_store), "{what}");
        }
    }
    // What the lists carry: every item, the list's resourceVersion, a YAML that parses to the JSON.
    let json = parse(&cached[0].3);
    assert_eq!(json["items"].as_array().map(Vec::len), Some(texts.len()));
    let yaml: Value = serde_yaml::from_slice(&cached[1].3).expect("YAML");
    assert_eq!(yaml, json, "the YAML list is the JSON list");
    let metadata = parse(&cached[2].3);
    assert_eq!(metadata["kind"], "PartialObjectMetadataList");
    assert_eq!(metadata["items"][1]["metadata"]["annotations"]["t"], texts[1]);
    assert_eq!(metadata["metadata"]["resourceVersion"], json["metadata"]["resourceVersion"]);
    let paged: Value = serde_yaml::from_slice(&cached[9].3).expect("YAML page");
    assert_eq!(paged["metadata"]["remainingItemCount"], 3, "{paged:?}");
    assert_eq!(paged["items"].as_array().map(Vec::len), Some(2));
}
