//! The example API server over plain HTTP: Kubernetes REST semantics, and no input that
//! makes it panic or lose data — every bad request gets a 4xx `Status` with a clear message
//! and the stored objects stay as they were.

mod support;

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";

struct Api {
    client: Client,
    base: String,
}

struct Reply {
    code: StatusCode,
    body: Value,
}

impl Api {
    fn new(server: &Server) -> Self {
        Api { client: Client::new(), base: server.url.clone() }
    }

    async fn send(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request reaches the server");
        let code = response.status();
        let bytes = response.bytes().await.expect("response body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply { code, body }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, "application/json", Vec::new()).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, "application/json", body.to_string().into_bytes()).await
    }

    async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, "application/json", body.to_string().into_bytes()).await
    }

    async fn patch(&self, path: &str, content_type: &str, body: &str) -> Reply {
        self.send(Method::PATCH, path, content_type, body.as_bytes().to_vec()).await
    }

    async fn delete(&self, path: &str, body: Option<&Value>) -> Reply {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(Method::DELETE, path, "application/json", body).await
    }

    /// Every configmap of the default namespace: (name, resourceVersion, data).
    async fn snapshot(&self) -> Vec<(String, String, Value)> {
        let list = self.get(CM).await;
        assert_eq!(list.code, StatusCode::OK, "{}", list.body);
        list.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    i["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned(),
                    i["data"].clone(),
                )
            })
            .collect()
    }
}

fn configmap(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": { "k": "v" } })
}

/// Asserts a Kubernetes Status failure with `code`, `reason` and a message containing `needle`.
fn assert_status(reply: &Reply, code: u16, reason: &str, needle: &str) {
    assert_eq!(reply.code.as_u16(), code, "unexpected code, body: {}", reply.body);
    assert_eq!(reply.body["kind"], "Status", "{}", reply.body);
    assert_eq!(reply.body["apiVersion"], "v1", "{}", reply.body);
    assert_eq!(reply.body["status"], "Failure", "{}", reply.body);
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert_eq!(reply.body["reason"], reason, "{}", reply.body);
    let message = reply.body["message"].as_str().unwrap_or("");
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

async fn seeded() -> (Server, Api, Vec<(String, String, Value)>) {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    for name in ["alpha", "beta", "gamma"] {
        let reply = api.post(CM, &configmap(name)).await;
        assert_eq!(reply.code, StatusCode::CREATED, "{}", reply.body);
    }
    let snapshot = api.snapshot().await;
    assert_eq!(snapshot.len(), 3);
    (server, api, snapshot)
}

#[tokio::test]
async fn malformed_and_wrong_bodies_are_rejected_without_changes() {
    let (_server, api, before) = seeded().await;
    let malformed =
        api.send(Method::POST, CM, "application/json", b"{\"apiVersion\": \"v1\", \"kind\": ".to_vec()).await;
    assert_status(&malformed, 400, "BadRequest", "json parse error");
    let not_object = api.send(Method::POST, CM, "application/json", b"[1, 2, 3]".to_vec()).await;
    assert_status(&not_object, 400, "BadRequest", "the request body is not an object");
    let binary = api.send(Method::POST, CM, "application/json", vec![0xff, 0xfe, 0x00, 0x01]).await;
    assert_status(&binary, 400, "BadRequest", "json parse error");
    let bad_meta = api
        .post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": "oops"}}))
        .await;
    assert_status(&bad_meta, 400, "BadRequest", "ConfigMap in version \"v1\" cannot be handled as a ConfigMap");

    let wrong_kind = api.post(CM, &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})).await;
    assert_status(
        &wrong_kind,
        400,
        "BadRequest",
        "Secret in version \"v1\" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion",
    );
    let wrong_version =
        api.post(CM, &json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})).await;
    assert_status(&wrong_version, 400, "BadRequest", "no kind \"ConfigMap\" is registered for version \"apps/v1\"");
    let wrong_namespace = api
        .post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}}))
        .await;
    assert_status(&wrong_namespace, 400, "BadRequest", "does not match the namespace");
    let bad_data = api
        .post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"n": 5}}))
        .await;
    assert_status(&bad_data, 422, "Invalid", "must be a string");

    // Updates with bad bodies leave the object alone.
    let wrong_name = api.put(&format!("{CM}/alpha"), &configmap("beta")).await;
    assert_status(&wrong_name, 400, "BadRequest", "does not match the name on the URL");
    let garbage_put = api.send(Method::PUT, &format!("{CM}/alpha"), "application/json", b"}{".to_vec()).await;
    assert_status(&garbage_put, 400, "BadRequest", "json parse error");
    assert_eq!(api.snapshot().await, before);
}

#[tokio::test]
async fn invalid_names_get_422() {
    let (_server, api, before) = seeded().await;
    for name in ["Bad_Name", "UPPER", "-leading", "trailing-", "a..b", &"x".repeat(254)] {
        let reply = api.post(CM, &configmap(name)).await;
        assert_status(&reply, 422, "Invalid", "metadata.name: Invalid value");
        assert_eq!(reply.body["details"]["causes"][0]["field"], "metadata.name", "{}", reply.body);
    }
    for name in ["a/b", "..", "%2e%2e"] {
        let reply = api.post(CM, &configmap(name)).await;
        assert_eq!(reply.code.as_u16(), 422, "{name}: {}", reply.body);
    }
    let no_name = api.post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})).await;
    assert_status(&no_name, 422, "Invalid", "name or generateName is required");
    let bad_label = api
        .post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "labels": {"a": "not valid!"}}}))
        .await;
    assert_status(&bad_label, 422, "Invalid", "metadata.labels.a");
    let bad_namespace = api
        .post("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "has.dot"}}))
        .await;
    assert_status(&bad_namespace, 422, "Invalid", "RFC 1123 label");
    // Path segments that are not valid names never reach storage.
    for path in [format!("{CM}/..%2Fsecrets"), format!("{CM}/a%2Fb"), "/api/v1/namespaces/..%2F/configmaps".to_owned()]
    {
        let reply = api.get(&path).await;
        assert!(reply.code.is_client_error(), "{path}: {} {}", reply.code, reply.body);
        assert_eq!(reply.body["kind"], "Status", "{path}: {}", reply.body);
    }
    assert_eq!(api.snapshot().await, before);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let (_server, api, before) = seeded().await;
    let mut big = configmap("big");
    big["data"]["blob"] = json!("x".repeat(4 * 1024 * 1024));
    let reply = api.post(CM, &big).await;
    assert_status(&reply, 413, "RequestEntityTooLarge", "too large");
    let put = api.put(&format!("{CM}/alpha"), &big).await;
    assert_status(&put, 413, "RequestEntityTooLarge", "too large");
    // Under the request limit but over the storage object limit (1.5 MiB).
    let mut large = configmap("large");
    large["data"]["blob"] = json!("y".repeat(2 * 1024 * 1024));
    let reply = api.post(CM, &large).await;
    assert_status(&reply, 413, "RequestEntityTooLarge", "too large");
    // A chunked body without Content-Length is cut off at the limit too.
    let stream = futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let response = api
        .client
        .post(format!("{}{CM}", api.base))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("chunked request");
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(api.snapshot().await, before);
}

#[tokio::test]
async fn bad_selectors_and_list_options_get_400() {
    let (_server, api, before) = seeded().await;
    let cases = [
        ("labelSelector=a%20in%20(", "BadRequest", 400),
        ("labelSelector=%3D%3Dx", "BadRequest", 400),
        ("fieldSelector=spec.foo%3Dbar", "BadRequest", 400),
        ("fieldSelector=metadata.name", "BadRequest", 400),
        ("limit=-1", "BadRequest", 400),
        ("limit=ten", "BadRequest", 400),
        ("resourceVersion=abc", "BadRequest", 400),
        ("resourceVersionMatch=Sometimes&resourceVersion=1", "BadRequest", 400),
        ("resourceVersionMatch=Exact", "Invalid", 422),
        ("sendInitialEvents=true", "Invalid", 422),
        ("watch=true&timeoutSeconds=soon", "BadRequest", 400),
        ("watch=maybe", "BadRequest", 400),
    ];
    for (query, reason, code) in cases {
        let reply = api.get(&format!("{CM}?{query}")).await;
        assert_eq!(reply.code.as_u16(), code, "{query}: {}", reply.body);
        assert_eq!(reply.body["reason"], reason, "{query}: {}", reply.body);
        assert!(!reply.body["message"].as_str().unwrap_or("").is_empty(), "{query}: {}", reply.body);
    }
    assert_eq!(api.snapshot().await, before);
}

#[tokio::test]
async fn bad_continue_tokens_get_400_and_good_ones_page() {
    let (_server, api, before) = seeded().await;
    for token in ["garbage", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiIuLi8uLi9zZWNyZXRzIn0", "e30", "%00"] {
        let reply = api.get(&format!("{CM}?limit=1&continue={token}")).await;
        assert_status(&reply, 400, "BadRequest", "continue");
    }
    // Paging: one item per page, consistent resourceVersion, every item once.
    let mut names = Vec::new();
    let mut token = String::new();
    let mut list_rv = None;
    for _ in 0..10 {
        let reply = api.get(&format!("{CM}?limit=1&continue={token}")).await;
        assert_eq!(reply.code, StatusCode::OK, "{}", reply.body);
        let rv = reply.body["metadata"]["resourceVersion"].clone();
        assert_eq!(*list_rv.get_or_insert(rv.clone()), rv, "pages share the first page's resourceVersion");
        names.extend(reply.body["items"].as_array().expect("items").iter().map(|i| i["metadata"]["name"].clone()));
        token = reply.body["metadata"]["continue"].as_str().unwrap_or("").to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(names, [json!("alpha"), json!("beta"), json!("gamma")]);
    assert_eq!(api.snapshot().await, before);
}

#[tokio::test]
async fn updates_conflicts_preconditions_and_patches() {
    let (_server, api, _) = seeded().await;
    let current = api.get(&format!("{CM}/alpha")).await.body;
    let stale_rv = current["metadata"]["resourceVersion"].clone();
    let mut changed = current.clone();
    changed["data"]["k"] = json!("v2");
    let ok = api.put(&format!("{CM}/alpha"), &changed).await;
    assert_eq!(ok.code, StatusCode::OK, "{}", ok.body);
    assert_ne!(ok.body["metadata"]["resourceVersion"], stale_rv);
    assert_eq!(ok.body["metadata"]["uid"], current["metadata"]["uid"]);
    assert_eq!(ok.body["metadata"]["creationTimestamp"], current["metadata"]["creationTimestamp"]);
    // Same body again: its resourceVersion is stale now.
    changed["data"]["k"] = json!("v3");
    let conflict = api.put(&format!("{CM}/alpha"), &changed).await;
    assert_status(
        &conflict,
        409,
        "Conflict",
        "Operation cannot be fulfilled on configmaps \"alpha\": the object has been modified; please apply your changes to the latest version and try again",
    );
    let missing = api.put(&format!("{CM}/nope"), &configmap("nope")).await;
    assert_status(&missing, 404, "NotFound", "configmaps \"nope\" not found");

    // Patches.
    let path = format!("{CM}/alpha");
    let merge =
        api.patch(&path, "application/merge-patch+json", r#"{"metadata":{"labels":{"l":"1"}},"data":{"m":"1"}}"#).await;
    assert_eq!(merge.code, StatusCode::OK, "{}", merge.body);
    assert_eq!(merge.body["metadata"]["labels"]["l"], "1");
    let json_patch =
        api.patch(&path, "application/json-patch+json", r#"[{"op":"replace","path":"/data/m","value":"2"}]"#).await;
    assert_eq!(json_patch.body["data"]["m"], "2", "{}", json_patch.body);
    let before = api.get(&path).await.body;
    let dry = api.patch(&format!("{path}?dryRun=All"), "application/merge-patch+json", r#"{"data":{"m":"dry"}}"#).await;
    assert_eq!(dry.code, StatusCode::OK, "{}", dry.body);
    assert_eq!(dry.body["data"]["m"], "dry");
    assert_eq!(dry.body["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
    let failing_test =
        api.patch(&path, "application/json-patch+json", r#"[{"op":"test","path":"/data/m","value":"9"}]"#).await;
    assert_status(&failing_test, 422, "Invalid", "testing value /data/m failed");
    let malformed = api.patch(&path, "application/merge-patch+json", "{nope").await;
    assert_status(&malformed, 400, "BadRequest", "error decoding patch");
    let unsupported = api.patch(&path, "text/plain", "{}").await;
    assert_status(&unsupported, 415, "UnsupportedMediaType", "unknown format");
    let rename = api.patch(&path, "application/merge-patch+json", r#"{"metadata":{"name":"other"}}"#).await;
    assert_status(&rename, 422, "Invalid", "field is immutable");
    let stale = api
        .patch(&path, "application/merge-patch+json", &format!(r#"{{"metadata":{{"resourceVersion":{stale_rv}}}}}"#))
        .await;
    assert_status(&stale, 409, "Conflict", "the object has been modified");
    let bad_value = api.patch(&path, "application/merge-patch+json", r#"{"data":{"n":1}}"#).await;
    assert_status(&bad_value, 422, "Invalid", "must be a string");
    assert_eq!(api.get(&path).await.body, before, "failed patches changed nothing");
    let missing_patch = api.patch(&format!("{CM}/nope"), "application/merge-patch+json", "{}").await;
    assert_status(&missing_patch, 404, "NotFound", "not found");

    // Delete preconditions.
    let wrong_uid = api
        .delete(&path, Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "wrong"}})))
        .await;
    assert_status(&wrong_uid, 409, "Conflict", "Precondition failed: UID in precondition: wrong");
    let wrong_rv = api.delete(&path, Some(&json!({"preconditions": {"resourceVersion": "1"}}))).await;
    assert_status(&wrong_rv, 409, "Conflict", "Precondition failed");
    // A precondition resourceVersion that is no revision matches no object: Kubernetes' 409
    // naming both values (and 404 for a missing object, before any precondition).
    let record = before["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    for text in ["abc", "", "0", "-1"] {
        let bad_rv = api.delete(&path, Some(&json!({"preconditions": {"resourceVersion": text}}))).await;
        let says = format!(
            "the ResourceVersion in the precondition ({text}) does not match the ResourceVersion in record ({record})"
        );
        assert_status(&bad_rv, 409, "Conflict", &says);
        let missing =
            api.delete(&format!("{CM}/nope"), Some(&json!({"preconditions": {"resourceVersion": text}}))).await;
        assert_status(&missing, 404, "NotFound", "not found");
    }
    let both = json!({"preconditions": {"resourceVersion": "abc", "uid": "wrong"}});
    let uid_first = api.delete(&path, Some(&both)).await;
    assert_status(&uid_first, 409, "Conflict", "the UID in the precondition (wrong) does not match the UID in record");
    let collection_path = format!("{CM}?fieldSelector=metadata.name%3Dalpha");
    let body = json!({"preconditions": {"resourceVersion": "abc"}}).to_string().into_bytes();
    let collection = api.send(Method::DELETE, &collection_path, "application/json", body).await;
    assert_status(&collection, 409, "Conflict", "the ResourceVersion in the precondition (abc)");
    let bad_options = api.send(Method::DELETE, &path, "application/json", b"{oops".to_vec()).await;
    assert_status(&bad_options, 400, "BadRequest", "DeleteOptions");
    assert_eq!(api.get(&path).await.code, StatusCode::OK, "still there after refused deletes");
    let uid = before["metadata"]["uid"].clone();
    let deleted = api.delete(&path, Some(&json!({"preconditions": {"uid": uid}}))).await;
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["status"], "Success");
    assert_status(&api.get(&path).await, 404, "NotFound", "configmaps \"alpha\" not found");
    assert_status(&api.delete(&path, None).await, 404, "NotFound", "not found");
}

#[tokio::test]
async fn create_sets_server_fields_and_generate_name() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "uid": "client-uid"}});
    let created = api.post(CM, &body).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let name = created.body["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_ne!(created.body["metadata"]["uid"], "client-uid");
    assert!(created.body["metadata"]["creationTimestamp"].is_string());
    let with_rv = api
        .post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rv", "resourceVersion": "5"}}))
        .await;
    assert_status(&with_rv, 400, "BadRequest", "resourceVersion should not be set");
    let dup = api.post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})).await;
    assert_status(&dup, 409, "AlreadyExists", "already exists");
    let no_ns = api.post("/api/v1/namespaces/missing/configmaps", &configmap("x")).await;
    assert_status(&no_ns, 404, "NotFound", "namespaces \"missing\" not found");
    let dry = api.post(&format!("{CM}?dryRun=All"), &configmap("dry")).await;
    assert_eq!(dry.code, StatusCode::CREATED);
    assert_eq!(api.get(&format!("{CM}/dry")).await.code, StatusCode::NOT_FOUND, "dry run stored nothing");
}

#[tokio::test]
async fn discovery_health_metrics_and_unknown_paths() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    let version = api.get("/version").await.body;
    for field in
        ["major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"]
    {
        assert!(version[field].is_string(), "/version.{field}: {version}");
    }
    let core = api.get("/api/v1").await.body;
    let resources = core["resources"].as_array().expect("resources");
    let cm = resources.iter().find(|r| r["name"] == "configmaps").expect("configmaps served");
    assert_eq!(cm["namespaced"], true);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["shortNames"], json!(["cm"]));
    assert!(cm["verbs"]
        .as_array()
        .is_some_and(|v| v.contains(&json!("watch")) && v.contains(&json!("deletecollection"))));
    let ns = resources.iter().find(|r| r["name"] == "namespaces").expect("namespaces served");
    assert_eq!(ns["namespaced"], false);
    let groups = api.get("/apis").await.body;
    let names: Vec<&str> =
        groups["groups"].as_array().expect("groups").iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(
        names,
        ["events.k8s.io", "apiextensions.k8s.io", "apps", "rbac.authorization.k8s.io", "authorization.k8s.io"]
    );
    let apps = api.get("/apis/apps/v1").await.body;
    assert!(apps["resources"].as_array().expect("apps").iter().any(|r| r["name"] == "deployments/status"));
    assert_status(&api.get("/apis/nope/v1").await, 404, "NotFound", "could not find the requested resource");
    assert_status(&api.get("/api/v1/widgets").await, 404, "NotFound", "could not find");
    assert_status(&api.get("/api/v1/configmaps/x").await, 404, "NotFound", "could not find");
    assert_status(&api.get("/nothing/here").await, 404, "NotFound", "could not find");
    let post_named = api.post(&format!("{CM}/x"), &configmap("x")).await;
    assert_status(&post_named, 405, "MethodNotAllowed", "does not allow");
    assert_eq!(api.get("/openapi/v2").await.code, StatusCode::OK);
    assert_eq!(api.get(CM).await.code, StatusCode::OK);
    assert_eq!(api.get("/healthz").await.body, "ok");
    assert_eq!(api.get("/livez").await.body, "ok");
    assert_eq!(api.get("/readyz").await.body, "ok");
    let metrics = api.get("/metrics").await.body;
    let metrics = metrics.as_str().expect("text");
    assert!(metrics.contains("apiserver_request_total{verb=\"LIST\",resource=\"configmaps\""), "{metrics}");
    assert!(metrics.contains("apiserver_request_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("apistore_requests_total{operation=\"list\",resource=\"configmaps\"}"), "{metrics}");
    // One registry, one OpenMetrics exposition: both families, one `# EOF` at the end.
    assert!(metrics.contains("# TYPE apistore_request_duration_seconds histogram\n"), "{metrics}");
    assert!(metrics.contains("apiserver_storage_objects{resource=\"configmaps\"}"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n") && metrics.matches("# EOF").count() == 1, "{metrics}");
}

/// Reads watch events from a streaming response until `count` arrived.
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<Value> {
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("watch event within 10 s")
            .expect("watch chunk");
        let Some(chunk) = chunk else { break };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            events.push(serde_json::from_slice(&line).expect("one JSON event per line"));
        }
    }
    events
}

#[tokio::test]
async fn watch_initial_events_bookmarks_and_timeout() {
    let (_server, api, _) = seeded().await;
    let list = api.get(CM).await.body;
    let rv = list["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    let url = format!(
        "{}{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30",
        api.base
    );
    let mut initial = api.client.get(url).send().await.expect("watch");
    assert_eq!(initial.status(), StatusCode::OK);
    let events = read_events(&mut initial, 4).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["ADDED", "ADDED", "ADDED", "BOOKMARK"], "{events:?}");
    assert_eq!(events[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(events[3]["object"]["kind"], "ConfigMap");

    // From a resourceVersion: only later changes; the stream ends at timeoutSeconds.
    let url = format!("{}{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=4", api.base);
    let mut from_rv = api.client.get(url).send().await.expect("watch");
    api.post(CM, &configmap("delta")).await;
    api.delete(&format!("{CM}/beta"), None).await;
    let events = read_events(&mut from_rv, 2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "delta");
    assert_eq!(events[1]["type"], "DELETED");
    assert_eq!(events[1]["object"]["metadata"]["name"], "beta");
    let rest =
        tokio::time::timeout(Duration::from_secs(10), from_rv.chunk()).await.expect("the watch ends at its timeout");
    assert!(rest.expect("clean end").is_none(), "no more events, then the end of the stream");

    // Label-selected watch of one name, in the legacy /watch/ path form.
    let url = format!("{}/api/v1/watch/namespaces/default/configmaps/gamma?timeoutSeconds=30", api.base);
    let mut single = api.client.get(url).send().await.expect("watch");
    api.patch(&format!("{CM}/gamma"), "application/merge-patch+json", r#"{"data":{"k":"changed"}}"#).await;
    api.patch(&format!("{CM}/delta"), "application/merge-patch+json", r#"{"data":{"k":"changed"}}"#).await;
    let events = read_events(&mut single, 2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "MODIFIED");
    assert!(events.iter().all(|e| e["object"]["metadata"]["name"] == "gamma"), "{events:?}");

    // A watch from a malformed revision answers with a Status before any event.
    let bad = api.get(&format!("{CM}?watch=true&resourceVersion=abc&timeoutSeconds=1")).await;
    assert!(bad.code.is_client_error(), "{}", bad.body);
    assert_eq!(bad.body["kind"], "Status", "{}", bad.body);
    assert!(bad.body["message"].as_str().is_some_and(|m| m.contains("abc")), "{}", bad.body);
}

#[tokio::test]
async fn deletecollection_events_cohabit_and_custom_resources() {
    let config = tempfile::tempdir().expect("config dir");
    let path = config.path().join("apiserver.toml");
    std::fs::write(
        &path,
        r#"
[[custom_resources]]
group = "stable.example.com"
version = "v1"
kind = "CronTab"
plural = "crontabs"
short_names = ["ct"]
"#,
    )
    .expect("config");
    let mut args = vec!["--config", path.to_str().expect("utf-8 path")];
    let backend = support::test_backend();
    if let Some(backend) = &backend {
        args.extend(["--backend", backend.as_str()]);
    }
    let server = Server::start(&args);
    let api = Api::new(&server);

    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut cm = configmap(name);
        cm["metadata"]["labels"] = json!({ "tier": tier });
        assert_eq!(api.post(CM, &cm).await.code, StatusCode::CREATED);
    }
    let deleted = api.delete(&format!("{CM}?labelSelector=tier%3Dx"), None).await;
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["items"].as_array().map(Vec::len), Some(2));
    let left: Vec<String> = api.snapshot().await.into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(left, ["c"]);

    // Events: written as events.k8s.io/v1, read as core/v1, and the other way round.
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-11-27T00:00:00.000000Z", "reportingController": "test", "reportingInstance": "t1",
        "action": "Testing", "reason": "Tested", "note": "from v1", "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "c", "namespace": "default"}});
    let created = api.post("/apis/events.k8s.io/v1/namespaces/default/events", &ev).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["note"], "from v1");
    let core = api.get("/api/v1/namespaces/default/events/e1").await.body;
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "from v1");
    assert_eq!(core["involvedObject"]["name"], "c");
    assert_eq!(core["reportingComponent"], "test");
    let core_list = api.get("/api/v1/namespaces/default/events").await.body;
    let v1_list = api.get("/apis/events.k8s.io/v1/namespaces/default/events").await.body;
    assert_eq!(core_list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(v1_list["items"][0]["regarding"]["name"], "c");
    assert_eq!(v1_list["kind"], "EventList");

    // Custom resource from the config.
    let groups = api.get("/apis").await.body;
    assert!(groups["groups"].as_array().expect("groups").iter().any(|g| g["name"] == "stable.example.com"));
    // A create drops status (the status subresource owns it), as kube's CR strategy does.
    let ct = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "nightly"},
        "spec": {"cronSpec": "0 0 * * *"}, "status": {"lastRun": "dropped"}});
    let path = "/apis/stable.example.com/v1/namespaces/default/crontabs";
    let created = api.post(path, &ct).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["metadata"]["generation"], 1);
    assert_eq!(created.body["status"], Value::Null, "{}", created.body);
    let spec = api
        .patch(
            &format!("{path}/nightly"),
            "application/merge-patch+json",
            r#"{"spec":{"cronSpec":"1 0 * * *"},"status":{"lastRun":"ignored"}}"#,
        )
        .await;
    assert_eq!(spec.body["metadata"]["generation"], 2, "{}", spec.body);
    assert_eq!(spec.body["status"], Value::Null, "status changes only through /status: {}", spec.body);
    let status = api
        .patch(
            &format!("{path}/nightly/status"),
            "application/merge-patch+json",
            r#"{"status":{"lastRun":"today"},"spec":{"cronSpec":"ignored"}}"#,
        )
        .await;
    assert_eq!(status.body["status"]["lastRun"], "today", "{}", status.body);
    assert_eq!(status.body["spec"]["cronSpec"], "1 0 * * *");
    assert_eq!(status.body["metadata"]["generation"], 2);
    let wrong = api
        .post(path, &json!({"apiVersion": "stable.example.com/v1", "kind": "Other", "metadata": {"name": "x"}}))
        .await;
    assert_status(
        &wrong,
        422,
        "Invalid",
        "CronTab.stable.example.com \"x\" is invalid: kind: Invalid value: \"Other\": must be CronTab",
    );
    let kindless = api.post(path, &json!({"apiVersion": "stable.example.com/v1", "metadata": {"name": "x"}})).await;
    assert_status(&kindless, 400, "BadRequest", "Object 'Kind' is missing in");
}

#[tokio::test]
async fn graceful_shutdown_ends_watches_and_exits_cleanly() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    assert_eq!(api.post(CM, &configmap("kept")).await.code, StatusCode::CREATED);
    let mut watch = api.client.get(format!("{}{CM}?watch=true", api.base)).send().await.expect("watch");
    let first = read_events(&mut watch, 1).await;
    assert_eq!(first[0]["object"]["metadata"]["name"], "kept");
    let started = std::time::Instant::now();
    let dir = tokio::task::spawn_blocking(move || server.stop()).await.expect("stop task");
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    let end = tokio::time::timeout(Duration::from_secs(5), watch.chunk()).await.expect("the watch ended");
    assert!(matches!(end, Ok(None) | Err(_)), "the watch stream ended with the server");
    drop(dir);
}

#[tokio::test]
async fn restart_keeps_sled_data_and_config_mixes_backends() {
    let config = tempfile::tempdir().expect("config dir");
    let path = config.path().join("apiserver.toml");
    std::fs::write(
        &path,
        "[storage.backend]\ntype = \"sled\"\n\n[storage.resources.\"events\"]\nbackend = { type = \"memory\" }\n",
    )
    .expect("config");
    let args = ["--config", path.to_str().expect("utf-8 path")];
    let server = Server::start(&args);
    assert!(server.log_text().contains("storage: sled"), "{}", server.log_text());
    let api = Api::new(&server);
    assert_eq!(api.post(CM, &configmap("durable")).await.code, StatusCode::CREATED);
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "fleeting"},
        "involvedObject": {"kind": "ConfigMap", "name": "durable"}, "reason": "Test", "message": "in memory"});
    assert_eq!(api.post("/api/v1/namespaces/default/events", &event).await.code, StatusCode::CREATED);
    let before = api.get(&format!("{CM}/durable")).await.body;

    let data_dir = server.stop();
    let server = Server::start_in(data_dir, &args);
    let api = Api::new(&server);
    let after = api.get(&format!("{CM}/durable")).await;
    assert_eq!(after.code, StatusCode::OK, "sled kept the configmap across the restart: {}", after.body);
    assert_eq!(after.body, before);
    let gone = api.get("/api/v1/namespaces/default/events/fleeting").await;
    assert_status(&gone, 404, "NotFound", "events \"fleeting\" not found");
    // New writes continue after the restored revision.
    let next = api.post(CM, &configmap("later")).await;
    let rv = |v: &Value| v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    assert!(rv(&next.body) > rv(&before), "{} > {}", next.body, before);

    let unknown = tempfile::tempdir().expect("config dir");
    let bad = unknown.path().join("bad.toml");
    std::fs::write(&bad, "[storage.backend]\ntype = \"nosuch\"\n").expect("config");
    let output = std::process::Command::new(support::server_binary())
        .args(["--listen", "127.0.0.1:0", "--config", bad.to_str().expect("utf-8")])
        .output()
        .expect("run the server with a bad config");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nosuch") && stderr.contains("registered backends") && stderr.contains("sled"), "{stderr}");
}

#[tokio::test]
async fn events_expire_after_the_event_ttl() {
    let server = Server::start(&["--event-ttl", "1s"]);
    let api = Api::new(&server);
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "short-lived"},
        "involvedObject": {"kind": "ConfigMap", "name": "x"}, "reason": "Test", "message": "expires"});
    let path = "/api/v1/namespaces/default/events";
    assert_eq!(api.post(path, &event).await.code, StatusCode::CREATED);
    assert_eq!(api.post(CM, &configmap("stays")).await.code, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = api.get(&format!("{path}/short-lived")).await;
        if reply.code == StatusCode::NOT_FOUND {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the event did not expire: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(api.get(&format!("{CM}/stays")).await.code, StatusCode::OK, "only events have a TTL");
}

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(name: &str, replicas: Option<i64>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "strategy": { "type": "Recreate" },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "nginx", "image": "nginx:1.27" }] },
            },
        },
    });
    if let Some(replicas) = replicas {
        d["spec"]["replicas"] = json!(replicas);
    }
    d
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_only_spec_replicas() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    let apps = api.get("/apis/apps/v1").await.body;
    let scale_doc = apps["resources"]
        .as_array()
        .expect("apps/v1 resources")
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .cloned()
        .expect("deployments/scale is discoverable");
    assert_eq!(
        (&scale_doc["group"], &scale_doc["version"], &scale_doc["kind"]),
        (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
    );
    assert_eq!(scale_doc["verbs"], json!(["get", "patch", "update"]));

    let created = api.post(DEPLOY, &deployment("web", Some(2))).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let status = api
        .patch(&format!("{DEPLOY}/web/status"), "application/merge-patch+json", r#"{"status":{"replicas":2}}"#)
        .await;
    assert_eq!(status.code, StatusCode::OK, "{}", status.body);
    let web = format!("{DEPLOY}/web");
    let scale_path = format!("{web}/scale");
    let before = api.get(&web).await.body;

    // GET: the Scale view of the deployment.
    let scale = api.get(&scale_path).await;
    assert_eq!(scale.code, StatusCode::OK, "{}", scale.body);
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    for field in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        assert!(before["metadata"][field].is_string(), "deployment metadata.{field}: {before}");
        assert_eq!(scale.body["metadata"][field], before["metadata"][field], "metadata.{field}");
    }
    assert_eq!(scale.body["spec"], json!({ "replicas": 2 }));
    assert_eq!(scale.body["status"], json!({ "replicas": 2, "selector": "app=web" }));

    // PUT with the current resourceVersion: only spec.replicas changes.
    let mut body = scale.body.clone();
    body["spec"]["replicas"] = json!(3);
    let put = api.put(&scale_path, &body).await;
    assert_eq!(put.code, StatusCode::OK, "{}", put.body);
    assert_eq!((&put.body["kind"], &put.body["spec"]["replicas"]), (&json!("Scale"), &json!(3)), "{}", put.body);
    let after_put = api.get(&web).await.body;
    assert_eq!(after_put["spec"]["replicas"], 3);
    assert_ne!(after_put["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
    assert_eq!(put.body["metadata"]["resourceVersion"], after_put["metadata"]["resourceVersion"]);
    assert_eq!(after_put["metadata"]["generation"], 2, "a spec change bumps generation");
    for field in ["selector", "strategy", "template"] {
        assert_eq!(after_put["spec"][field], before["spec"][field], "spec.{field} untouched");
    }
    assert_eq!(after_put["status"], before["status"]);
    assert_eq!(after_put["metadata"]["labels"], before["metadata"]["labels"]);

    // PUT with the now stale resourceVersion: 409, nothing written.
    body["spec"]["replicas"] = json!(7);
    let stale = api.put(&scale_path, &body).await;
    assert_status(&stale, 409, "Conflict", "the object has been modified");
    assert_eq!(api.get(&web).await.body, after_put, "a stale scale update changes nothing");

    // PATCH: merge, JSON and strategic merge patches of the Scale.
    let merge = api.patch(&scale_path, "application/merge-patch+json", r#"{"spec":{"replicas":4}}"#).await;
    assert_eq!(merge.code, StatusCode::OK, "{}", merge.body);
    assert_eq!(merge.body["spec"]["replicas"], 4);
    let after_merge = api.get(&web).await.body;
    assert_eq!(after_merge["spec"]["replicas"], 4);
    for field in ["selector", "strategy", "template"] {
        assert_eq!(after_merge["spec"][field], before["spec"][field], "spec.{field} untouched by the patch");
    }
    assert_ne!(after_merge["metadata"]["resourceVersion"], after_put["metadata"]["resourceVersion"]);
    let json_patch = api
        .patch(&scale_path, "application/json-patch+json", r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#)
        .await;
    assert_eq!(
        (json_patch.code, &json_patch.body["spec"]["replicas"]),
        (StatusCode::OK, &json!(5)),
        "{}",
        json_patch.body
    );
    let strategic =
        api.patch(&scale_path, "application/strategic-merge-patch+json", r#"{"spec":{"replicas":6}}"#).await;
    assert_eq!(
        (strategic.code, &strategic.body["spec"]["replicas"]),
        (StatusCode::OK, &json!(6)),
        "{}",
        strategic.body
    );
    let stale_patch = api
        .patch(
            &scale_path,
            "application/merge-patch+json",
            &format!(
                r#"{{"metadata":{{"resourceVersion":"{}"}},"spec":{{"replicas":1}}}}"#,
                before["metadata"]["resourceVersion"].as_str().unwrap_or("")
            ),
        )
        .await;
    assert_status(&stale_patch, 409, "Conflict", "the object has been modified");
    let current = api.get(&web).await.body;
    assert_eq!(current["spec"]["replicas"], 6);

    // Negative replicas and malformed bodies: 422 / 400, nothing written.
    let negative = api.patch(&scale_path, "application/merge-patch+json", r#"{"spec":{"replicas":-1}}"#).await;
    assert_status(&negative, 422, "Invalid", "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
    let mut negative_body = api.get(&scale_path).await.body;
    negative_body["spec"]["replicas"] = json!(-1);
    let negative_put = api.put(&scale_path, &negative_body).await;
    assert_status(
        &negative_put,
        422,
        "Invalid",
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
    );
    let not_a_number = api.patch(&scale_path, "application/merge-patch+json", r#"{"spec":{"replicas":"many"}}"#).await;
    assert_eq!(not_a_number.code.as_u16() / 100, 4, "{}", not_a_number.body);
    assert_status(
        &api.patch(&scale_path, "application/merge-patch+json", "{").await,
        400,
        "BadRequest",
        "error decoding patch",
    );
    let wrong_kind = api.put(&scale_path, &deployment("web", Some(1))).await;
    assert_status(&wrong_kind, 400, "BadRequest", "autoscaling/v1 Scale");
    let mut wrong_name = negative_body.clone();
    wrong_name["metadata"]["name"] = json!("other");
    wrong_name["spec"]["replicas"] = json!(1);
    assert_status(&api.put(&scale_path, &wrong_name).await, 400, "BadRequest", "does not match the name on the URL");
    assert_eq!(api.get(&web).await.body, current, "rejected scale writes change nothing");

    // A deployment without spec.replicas scales as 1 (Kubernetes' default).
    assert_eq!(api.post(DEPLOY, &deployment("bare", None)).await.code, StatusCode::CREATED);
    assert_eq!(api.get(&format!("{DEPLOY}/bare/scale")).await.body["spec"]["replicas"], 1);

    // Missing deployments, resources without /scale, verbs /scale lacks.
    let missing = format!("{DEPLOY}/nope/scale");
    assert_status(&api.get(&missing).await, 404, "NotFound", "\"nope\" not found");
    let missing_body =
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "nope"}, "spec": {"replicas": 2}});
    assert_status(&api.put(&missing, &missing_body).await, 404, "NotFound", "\"nope\" not found");
    let missing_patch = api.patch(&missing, "application/merge-patch+json", r#"{"spec":{"replicas":2}}"#).await;
    assert_status(&missing_patch, 404, "NotFound", "\"nope\" not found");
    assert_eq!(api.post(CM, &configmap("plain")).await.code, StatusCode::CREATED);
    assert_status(&api.get(&format!("{CM}/plain/scale")).await, 404, "NotFound", "could not find");
    let cm_patch =
        api.patch(&format!("{CM}/plain/scale"), "application/merge-patch+json", r#"{"spec":{"replicas":2}}"#).await;
    assert_status(&cm_patch, 404, "NotFound", "could not find");
    assert_status(&api.delete(&scale_path, None).await, 405, "MethodNotAllowed", "does not allow");
    assert_eq!(api.get(&web).await.body, current, "nothing else changed the deployment");

    // Scale writes racing label writes on the same deployment: neither loses the other's.
    let scale_writes = async {
        for replicas in 1..=12 {
            let body = format!(r#"{{"spec":{{"replicas":{replicas}}}}}"#);
            let reply = api.patch(&scale_path, "application/merge-patch+json", &body).await;
            assert_eq!(reply.code, StatusCode::OK, "{}", reply.body);
        }
    };
    let label_writes = async {
        for i in 0..12 {
            let body = format!(r#"{{"metadata":{{"labels":{{"race-{i}":"yes"}}}}}}"#);
            let reply = api.patch(&web, "application/merge-patch+json", &body).await;
            assert_eq!(reply.code, StatusCode::OK, "{}", reply.body);
        }
    };
    tokio::join!(scale_writes, label_writes);
    let raced = api.get(&web).await.body;
    assert_eq!(raced["spec"]["replicas"], 12, "{raced}");
    for i in 0..12 {
        assert_eq!(raced["metadata"]["labels"][format!("race-{i}")], "yes", "label race-{i} kept: {raced}");
    }
    assert_eq!(raced["spec"]["template"], before["spec"]["template"]);
}

/// A request with explicit headers; the reply's Content-Type beside its raw body.
async fn raw(api: &Api, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut request = api.client.request(method, format!("{}{path}", api.base)).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request reaches the server");
    let code = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (code, content_type, response.text().await.expect("body"))
}

#[tokio::test]
async fn bodies_default_their_kind_and_decode_from_yaml() {
    let (_server, api, _) = seeded().await;
    // What the Python and JavaScript clients send: no apiVersion, no kind.
    let bare = api.post(CM, &json!({"metadata": {"name": "bare"}, "data": {"k": "v"}})).await;
    assert_eq!(bare.code, StatusCode::CREATED, "{}", bare.body);
    assert_eq!((bare.body["apiVersion"].as_str(), bare.body["kind"].as_str()), (Some("v1"), Some("ConfigMap")));
    let ns = api.post("/api/v1/namespaces", &json!({"metadata": {"name": "team-x"}})).await;
    assert_eq!(ns.code, StatusCode::CREATED, "{}", ns.body);
    assert_eq!(ns.body["status"]["phase"], "Active");
    // A YAML body, answered in JSON.
    let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  greeting: hi\n";
    let (code, content_type, body) = raw(&api, Method::POST, CM, &[("Content-Type", "application/yaml")], yaml).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(content_type, "application/json");
    let created: Value = serde_json::from_str(&body).expect("JSON reply");
    assert_eq!(created["data"]["greeting"], "hi");
    // Malformed YAML: 400 naming the line, nothing stored.
    let (code, _, body) =
        raw(&api, Method::POST, CM, &[("Content-Type", "application/yaml")], b"metadata: [a\nname: x\n").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line"), "{body}");
    // An unknown body format: 415 with kube's list.
    let (code, _, body) =
        raw(&api, Method::POST, CM, &[("Content-Type", "application/vnd.kubernetes.protobuf")], b"\x00").await;
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("accepted media types include: application/json, application/yaml"), "{body}");
    let names: Vec<String> = api.snapshot().await.into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(names, ["alpha", "bare", "beta", "from-yaml", "gamma"]);
}

#[tokio::test]
async fn responses_are_negotiated_like_kube() {
    let (_server, api, _) = seeded().await;
    let object = format!("{CM}/alpha");
    // YAML out.
    let (code, content_type, body) = raw(&api, Method::GET, &object, &[("Accept", "application/yaml")], b"").await;
    assert_eq!((code, content_type.as_str()), (200, "application/yaml"), "{body}");
    let yaml: Value = serde_yaml::from_str(&body).expect("a YAML document");
    assert_eq!(yaml["metadata"]["name"], "alpha");
    // client-go's default: protobuf preferred, JSON accepted → JSON.
    let client_go = [("Accept", "application/vnd.kubernetes.protobuf, application/json")];
    let (code, content_type, _) = raw(&api, Method::GET, &object, &client_go, b"").await;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    // Protobuf alone: 406, kube's message.
    let (code, _, body) =
        raw(&api, Method::GET, &object, &[("Accept", "application/vnd.kubernetes.protobuf")], b"").await;
    assert_eq!(code, 406, "{body}");
    assert!(body.contains("only the following media types are accepted"), "{body}");
    // PartialObjectMetadataList.
    let meta = [("Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")];
    let (code, _, body) = raw(&api, Method::GET, CM, &meta, b"").await;
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert!(list["items"][0].get("data").is_none(), "{list}");
    // A Table in YAML.
    let table = [("Accept", "application/yaml;as=Table;v=v1;g=meta.k8s.io")];
    let (code, content_type, body) = raw(&api, Method::GET, CM, &table, b"").await;
    assert_eq!((code, content_type.as_str()), (200, "application/yaml"), "{body}");
    assert!(body.contains("kind: Table"), "{body}");
    // A create answered in YAML.
    let (code, content_type, _) = raw(
        &api,
        Method::POST,
        CM,
        &[("Accept", "application/yaml"), ("Content-Type", "application/json")],
        br#"{"metadata":{"name":"yaml-out"}}"#,
    )
    .await;
    assert_eq!((code, content_type.as_str()), (201, "application/yaml"));
}

#[tokio::test]
async fn trailing_slashes_are_served_as_kube_apiserver_serves_them() {
    let (server, api, _) = seeded().await;
    for path in [
        "/version/",
        "/api/",
        "/api/v1/",
        "/apis/",
        "/apis/apps/",
        "/apis/apps/v1/",
        "/api/v1/namespaces/default/configmaps/",
    ] {
        let (code, _, body) = raw(&api, Method::GET, path, &[], b"").await;
        assert_eq!(code, 200, "{path}: {body}");
        let without = raw(&api, Method::GET, path.trim_end_matches('/'), &[], b"").await;
        let (a, b): (Value, Value) =
            (serde_json::from_str(&body).expect("JSON"), serde_json::from_str(&without.2).expect("JSON"));
        if path.ends_with("configmaps/") {
            assert_eq!(a["items"], b["items"], "{path}");
        } else {
            assert_eq!(a, b, "{path}");
        }
    }
    // Health endpoints match exactly, as kube's path recorder.
    let (code, _) = support::raw_get(server.port, "/healthz/").expect("answer");
    assert_eq!(code, 404);
    // Discovery is read-only.
    let (code, _, _) = raw(&api, Method::POST, "/apis/", &[], b"{}").await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn request_options_are_validated_like_kube() {
    let (_server, api, before) = seeded().await;
    let bad_dry_run = api.post(&format!("{CM}?dryRun=Some"), &configmap("x")).await;
    assert_status(&bad_dry_run, 422, "Invalid", "dryRun: Unsupported value: [\"Some\"]: supported values: \"All\"");
    let object = format!("{CM}/alpha");
    let no_manager = api.patch(&object, "application/apply-patch+yaml", "apiVersion: v1\nkind: ConfigMap\n").await;
    assert_status(&no_manager, 422, "Invalid", "fieldManager: Required value: is required for apply patch");
    let forced = api.patch(&format!("{object}?force=true"), "application/merge-patch+json", "{}").await;
    assert_status(&forced, 422, "Invalid", "force: Forbidden: may not be specified for non-apply patch");
    let wrong_version = api
        .patch(
            &format!("{object}?fieldManager=m"),
            "application/apply-patch+yaml",
            "apiVersion: apps/v1\nkind: ConfigMap\n",
        )
        .await;
    assert_status(
        &wrong_version,
        400,
        "BadRequest",
        "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: v1",
    );
    assert_eq!(api.snapshot().await, before);
}

fn apply_path(name: &str, manager: &str, force: bool) -> String {
    format!("{CM}/{name}?fieldManager={manager}{}", if force { "&force=true" } else { "" })
}

#[tokio::test]
async fn server_side_apply_tracks_field_ownership() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    let apply = "application/apply-patch+yaml";
    let first = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  labels:\n    app: web\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    let created = api.patch(&apply_path("owned", "alice", false), apply, first).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let entries = created.body["metadata"]["managedFields"].as_array().expect("managedFields").clone();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["manager"], "alice");
    assert_eq!(entries[0]["operation"], "Apply");
    assert_eq!(entries[0]["apiVersion"], "v1");
    assert_eq!(entries[0]["fieldsType"], "FieldsV1");
    assert!(entries[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{entries:?}");
    assert_eq!(entries[0]["fieldsV1"]["f:data"], json!({"f:a": {}, "f:b": {}}));
    // The same manager applies again: a changed, b removed → b pruned.
    let second =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  labels:\n    app: web\ndata:\n  a: \"10\"\n";
    let updated = api.patch(&apply_path("owned", "alice", false), apply, second).await;
    assert_eq!(updated.code, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["data"], json!({"a": "10"}), "{}", updated.body);
    // Another manager changes alice's field: 409 naming field and manager, nothing changes.
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  a: \"99\"\n";
    let conflict = api.patch(&apply_path("owned", "bob", false), apply, other).await;
    assert_status(&conflict, 409, "Conflict", "Apply failed with 1 conflict: conflict with \"alice\": .data.a");
    assert_eq!(conflict.body["details"]["causes"][0]["field"], ".data.a", "{}", conflict.body);
    assert_eq!(conflict.body["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(api.get(&format!("{CM}/owned")).await.body["data"]["a"], "10");
    // Forced: bob owns it now; alice's next apply without it keeps bob's value.
    let forced = api.patch(&apply_path("owned", "bob", true), apply, other).await;
    assert_eq!(forced.code, StatusCode::OK, "{}", forced.body);
    assert_eq!(forced.body["data"]["a"], "99");
    let alice_drops_a = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  labels:\n    app: web\n";
    let kept = api.patch(&apply_path("owned", "alice", false), apply, alice_drops_a).await;
    assert_eq!(kept.code, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["data"]["a"], "99", "bob owns data.a: {}", kept.body);
    // An update (PUT, kubectl edit) is recorded as the user agent's Update entry.
    let mut edited = kept.body.clone();
    edited["data"]["c"] = json!("3");
    let put = api.put(&format!("{CM}/owned?fieldManager=editor"), &edited).await;
    assert_eq!(put.code, StatusCode::OK, "{}", put.body);
    let managers: Vec<(String, String)> = put.body["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|e| (e["manager"].as_str().unwrap_or("").to_owned(), e["operation"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert!(managers.contains(&("editor".into(), "Update".into())), "{managers:?}");
    // A create records its manager (User-Agent prefix when no fieldManager is given).
    let plain = api.post(CM, &configmap("plain")).await;
    let entry = &plain.body["metadata"]["managedFields"][0];
    assert_eq!(
        (entry["operation"].as_str(), entry["manager"].as_str()),
        (Some("Update"), Some("unknown")),
        "{}",
        plain.body
    );
    // Broken managedFields in an apply configuration: 400, nothing stored.
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  managedFields: [{manager: x}]\n";
    let rejected = api.patch(&apply_path("owned", "alice", false), apply, bad).await;
    assert_status(&rejected, 400, "BadRequest", "metadata.managedFields must be nil");
}

fn crd(name: &str, group: &str, schema: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}],
        },
    })
}

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

#[tokio::test]
async fn crd_bad_input_is_422_and_changes_nothing() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"size": {"type": "integer", "maximum": 10}, "color": {"type": "string", "enum": ["red", "blue"]}},
        "required": ["size"]}}});
    let misnamed = api.post(CRDS, &crd("gadgets.example.com", "example.com", schema.clone())).await;
    assert_status(&misnamed, 422, "Invalid", "must be spec.names.plural+\".\"+spec.group");
    let untyped = api.post(CRDS, &crd("widgets.example.com", "example.com", json!({"properties": {"spec": {}}}))).await;
    assert_status(&untyped, 422, "Invalid", "openAPIV3Schema");
    let list = api.get(CRDS).await;
    assert_eq!(list.body["items"], json!([]), "nothing stored: {}", list.body);
    // A good one: served within a second, objects validated by its schema.
    let created = api.post(CRDS, &crd("widgets.example.com", "example.com", schema)).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    // Established within a second, and served once it says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let crd = api.get(&format!("{CRDS}/widgets.example.com")).await.body;
        let conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
        if conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not Established within a second: {crd}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(api.get(path).await.code, StatusCode::OK);
    let widget = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let wrong_type = api.post(path, &widget(json!({"size": "big"}))).await;
    assert_status(
        &wrong_type,
        422,
        "Invalid",
        "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
    );
    let too_big = api.post(path, &widget(json!({"size": 11}))).await;
    assert_status(&too_big, 422, "Invalid", "should be less than or equal to 10");
    let missing = api.post(path, &widget(json!({"color": "red"}))).await;
    assert_status(&missing, 422, "Invalid", "spec.size: Required value");
    let pink = api.post(path, &widget(json!({"size": 1, "color": "pink"}))).await;
    assert_status(
        &pink,
        422,
        "Invalid",
        "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
    );
    assert_eq!(api.get(path).await.body["items"], json!([]));
    // fieldValidation: Strict refuses unknown fields, a bad value is 422, the default (Warn)
    // prunes them with a Warning header each.
    let strict = api.post(&format!("{path}?fieldValidation=Strict"), &widget(json!({"size": 1, "extra": true}))).await;
    assert_status(&strict, 400, "BadRequest", "strict decoding error: unknown field \"spec.extra\"");
    let bad = api.post(&format!("{path}?fieldValidation=Loud"), &widget(json!({"size": 1}))).await;
    assert_status(&bad, 422, "Invalid", "fieldValidation: Unsupported value: \"Loud\"");
    let response = api
        .client
        .post(format!("{}{path}", api.base))
        .json(&widget(json!({"size": 1, "extra": true})))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
    let warnings: Vec<String> =
        response.headers().get_all("warning").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    assert_eq!(warnings, ["299 - \"unknown field \\\"spec.extra\\\"\""], "{warnings:?}");
    let pruned: Value = response.json().await.expect("JSON");
    assert_eq!(pruned["spec"], json!({"size": 1}));
    // Strategic merge patch is not served for custom resources.
    let strategic = api.patch(&format!("{path}/w"), "application/strategic-merge-patch+json", "{}").await;
    assert_status(&strategic, 415, "UnsupportedMediaType", "application/merge-patch+json");
    // Deleting the CRD deletes its objects and stops serving them.
    let deleted = api.delete(&format!("{CRDS}/widgets.example.com"), None).await;
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while api.get(&format!("{CRDS}/widgets.example.com")).await.code != StatusCode::NOT_FOUND {
        assert!(std::time::Instant::now() < deadline, "the CRD is not removed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_status(&api.get(path).await, 404, "NotFound", "could not find");
}

/// The value of the gauge `name{resource="<resource>"}` in a `/metrics` exposition.
fn cache_gauge(metrics: &str, name: &str, resource: &str) -> Option<i64> {
    let series = format!("{name}{{resource=\"{resource}\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&series)).and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn watch_cache_memory_budgets_from_the_storage_config_show_on_metrics() {
    let config = tempfile::tempdir().expect("config dir");
    let path = config.path().join("storage.toml");
    std::fs::write(&path, "[watch_cache]\nmemory_budget_bytes = 50000000\nmemory_budgets = [\"secrets#3000\"]\n")
        .expect("storage config");
    let server = Server::start(&["--storage-config", path.to_str().expect("utf-8 path")]);
    let api = Api::new(&server);
    for name in ["a", "b", "c"] {
        assert_eq!(api.post(CM, &configmap(name)).await.code, StatusCode::CREATED);
    }
    // A secret larger than the secrets' own budget: that cache gives up and says so.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big"},
        "stringData": {"filler": "x".repeat(4_000)}});
    let created = api.post("/api/v1/namespaces/default/secrets", &secret).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = api.get("/metrics").await.body.as_str().expect("text").to_owned();
        let settled = cache_gauge(&metrics, "apistore_watch_cache_objects", "configmaps") == Some(3)
            && cache_gauge(&metrics, "apistore_watch_cache_bypassed", "secrets") == Some(1);
        if settled {
            break metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "the cache gauges did not settle:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gauge = |name: &str, resource: &str| cache_gauge(&metrics, name, resource);
    assert_eq!(gauge("apistore_watch_cache_memory_budget_bytes", "configmaps"), Some(50_000_000), "{metrics}");
    assert_eq!(gauge("apistore_watch_cache_memory_budget_bytes", "secrets"), Some(3_000), "{metrics}");
    assert_eq!(gauge("apistore_watch_cache_bypassed", "configmaps"), Some(0), "{metrics}");
    let bytes = gauge("apistore_watch_cache_bytes", "configmaps").expect("configmaps bytes");
    assert!(bytes > 3 * 100 && bytes < 50_000_000, "{bytes} bytes for 3 configmaps");
    assert_eq!(gauge("apistore_watch_cache_bytes", "secrets"), Some(0), "a bypassed cache holds nothing");
    assert_eq!(gauge("apistore_watch_cache_objects", "secrets"), Some(0));
    assert!(gauge("apistore_watch_cache_bytes", "events").is_none(), "events have no watch cache");
    // The bypassed resource is still served, from storage.
    let listed = api.get("/api/v1/namespaces/default/secrets?resourceVersion=0").await;
    assert_eq!(listed.code, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1), "{}", listed.body);
}

/// The budgets from the command line (over the config file's), on `/metrics`; the cache's byte
/// gauge grows when a LIST makes the items' Table cells and YAML (kept with the cached
/// objects) and stays when the next LIST reuses them; a bad budget flag stops the server
/// with a message naming the flag.
#[tokio::test]
async fn watch_cache_budget_flags_and_derived_representations_show_on_metrics() {
    let config = tempfile::tempdir().expect("config dir");
    let path = config.path().join("storage.toml");
    std::fs::write(&path, "[watch_cache]\nmemory_budget_bytes = 1000\nmemory_budgets = [\"secrets#10\"]\n")
        .expect("storage config");
    let server = Server::start(&[
        "--storage-config",
        path.to_str().expect("utf-8 path"),
        "--watch-cache-memory-budget=50000000",
        "--watch-cache-memory-budgets=secrets#3000,deployments.apps#70000",
    ]);
    let api = Api::new(&server);
    for name in ["a", "b", "c"] {
        assert_eq!(api.post(CM, &configmap(name)).await.code, StatusCode::CREATED);
    }
    let metrics = || async { api.get("/metrics").await.body.as_str().expect("text").to_owned() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let before = loop {
        let text = metrics().await;
        if cache_gauge(&text, "apistore_watch_cache_objects", "configmaps") == Some(3) {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "the cache gauges did not settle:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gauge = |text: &str, name: &str, resource: &str| cache_gauge(text, name, resource);
    assert_eq!(gauge(&before, "apistore_watch_cache_memory_budget_bytes", "configmaps"), Some(50_000_000));
    assert_eq!(gauge(&before, "apistore_watch_cache_memory_budget_bytes", "secrets"), Some(3_000));
    assert_eq!(gauge(&before, "apistore_watch_cache_memory_budget_bytes", "deployments.apps"), Some(70_000));
    let objects_only = gauge(&before, "apistore_watch_cache_bytes", "configmaps").expect("bytes");

    let list = |accept: &'static str| {
        let request = api.client.get(format!("{}{CM}?resourceVersion=0", api.base)).header("accept", accept);
        async move {
            let response = request.send().await.expect("list");
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.expect("body")
        }
    };
    const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let table = list(TABLE).await;
    let with_cells = gauge(&metrics().await, "apistore_watch_cache_bytes", "configmaps").expect("bytes");
    assert!(with_cells > objects_only, "Table cells kept: {objects_only} → {with_cells}");
    assert_eq!(list(TABLE).await.len(), table.len());
    let again = gauge(&metrics().await, "apistore_watch_cache_bytes", "configmaps").expect("bytes");
    assert_eq!(again, with_cells, "the second Table LIST reuses the kept cells");
    let yaml = list("application/yaml").await;
    let with_yaml = gauge(&metrics().await, "apistore_watch_cache_bytes", "configmaps").expect("bytes");
    assert!(
        with_yaml >= with_cells + yaml.len() as i64 - 200,
        "the items' YAML ({} bytes listed) is counted: {with_cells} → {with_yaml}",
        yaml.len()
    );

    let (status, log) = Server::run_to_exit(&["--watch-cache-memory-budgets=pods#lots"]);
    assert!(!status.success(), "{log}");
    assert!(log.contains("--watch-cache-memory-budgets") && log.contains("pods#lots"), "{log}");
}
