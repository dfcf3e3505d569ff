//! The `http_body` fuzz target: generated requests sent to a real API server over loopback
//! HTTP — object bodies (JSON and YAML, random and nearly valid ConfigMaps) created and
//! replaced, patch bodies (merge, JSON, strategic merge, apply), and lists and gets with bad
//! query parameters (labelSelector, fieldSelector, resourceVersion, resourceVersionMatch,
//! limit, continue). Every answer must be a success or a 4xx Kubernetes `Status` (never a
//! 5xx, never a dropped connection or no answer), a failed request must change nothing (the
//! namespace's ConfigMaps are listed before and after), and the server must still be up and
//! ready at the end. The server is this binary (`current_exe`), started with a fresh data
//! directory on a free loopback port, with the default backend (sled).

use std::cell::Cell;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apistore::testing::audit::fuzz::{test_runner, text, FuzzStats, FuzzTarget};
use axum::body::Body;
use axum::http::{self, Method};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use crate::handlers::patch_fuzz::{body, json_patch_body, json_value};

apistore::inventory::submit! {
    FuzzTarget {
        name: "http_body",
        about: "bodies, patches and bad query parameters sent to a running server: 2xx or a 4xx Status, a failure changes nothing",
        run: http_bodies,
    }
}

const COLLECTION: &str = "/api/v1/namespaces/default/configmaps";

/// One generated request.
#[derive(Clone, Debug)]
enum Input {
    /// POST to the collection.
    Create { content_type: &'static str, body: Vec<u8> },
    /// PUT to an object (`cm`, which exists, or `missing`).
    Replace { name: &'static str, content_type: &'static str, body: Vec<u8> },
    /// PATCH of an object with a patch content type and query.
    Patch { name: &'static str, content_type: &'static str, query: String, body: Vec<u8> },
    /// GET of the collection or of `cm` with query parameters.
    Read { path: &'static str, query: String },
}

impl Input {
    fn is_write(&self) -> bool {
        !matches!(self, Input::Read { .. })
    }

    fn request(&self) -> (Method, String, Option<&'static str>, Vec<u8>) {
        match self {
            Input::Create { content_type, body } => {
                (Method::POST, COLLECTION.to_owned(), Some(content_type), body.clone())
            }
            Input::Replace { name, content_type, body } => {
                (Method::PUT, format!("{COLLECTION}/{name}"), Some(content_type), body.clone())
            }
            Input::Patch { name, content_type, query, body } => {
                (Method::PATCH, format!("{COLLECTION}/{name}?{query}"), Some(content_type), body.clone())
            }
            Input::Read { path, query } => (Method::GET, format!("{path}?{query}"), None, Vec::new()),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn query(params: Vec<(&'static str, String)>) -> String {
    params.into_iter().map(|(k, v)| format!("{k}={}", encode(&v))).collect::<Vec<_>>().join("&")
}

/// A parameter value: selector-like text, a number, or a plausible resourceVersion.
fn param_value() -> BoxedStrategy<String> {
    prop_oneof![
        text(),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("0".to_owned()),
        Just(String::new()),
        Just("NotOlderThan".to_owned()),
        Just("Exact".to_owned()),
        Just("app=x".to_owned()),
        Just("metadata.name=cm".to_owned()),
    ]
    .boxed()
}

fn read_query() -> BoxedStrategy<String> {
    let name = prop_oneof![
        Just("labelSelector"),
        Just("fieldSelector"),
        Just("resourceVersion"),
        Just("resourceVersionMatch"),
        Just("limit"),
        Just("continue"),
        Just("allowWatchBookmarks"),
        Just("sendInitialEvents"),
    ];
    proptest::collection::vec((name, param_value()), 0..4).prop_map(query).boxed()
}

fn patch_query() -> BoxedStrategy<String> {
    let name = prop_oneof![Just("fieldManager"), Just("force"), Just("dryRun"), Just("fieldValidation")];
    let value = prop_oneof![Just("fuzz".to_owned()), Just("true".to_owned()), Just("All".to_owned()), text()];
    (proptest::collection::vec((name, value), 0..3), any::<bool>())
        .prop_map(|(mut params, manager)| {
            if manager {
                params.push(("fieldManager", "fuzz".to_owned()));
            }
            query(params)
        })
        .boxed()
}

/// ConfigMaps with random parts: names from a small set (so creates conflict) or random,
/// random labels, data and extra fields, sometimes a resourceVersion.
fn nearly_valid_object() -> BoxedStrategy<Value> {
    let name = prop_oneof![Just("cm".to_owned()), Just("cm-a".to_owned()), "[a-z0-9.-]{0,12}", text()];
    let namespace = prop_oneof![Just(None), Just(Some("default".to_owned())), Just(Some("other".to_owned()))];
    let labels = proptest::collection::btree_map("[a-z/.-]{0,10}", "[a-zA-Z0-9._-]{0,10}", 0..3);
    let resource_version = prop_oneof![Just(None), "[0-9]{1,4}".prop_map(Some), text().prop_map(Some)];
    let api_version = prop_oneof![Just("v1".to_owned()), Just("apps/v1".to_owned()), text()];
    let kind = prop_oneof![Just("ConfigMap".to_owned()), Just("Pod".to_owned()), text()];
    (api_version, kind, name, namespace, labels, resource_version, json_value(), json_value())
        .prop_map(|(api_version, kind, name, namespace, labels, rv, data, extra)| {
            let mut metadata = json!({ "name": name, "labels": labels });
            if let Some(ns) = namespace {
                metadata["namespace"] = Value::from(ns);
            }
            if let Some(rv) = rv {
                metadata["resourceVersion"] = Value::from(rv);
            }
            let mut object = json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata, "data": data });
            if let (Value::Object(fields), Value::Object(extra)) = (&mut object, extra) {
                for (k, v) in extra {
                    fields.entry(k).or_insert(v);
                }
            }
            object
        })
        .boxed()
}

/// An object body in JSON or YAML (or bytes the content type does not describe).
fn object_body() -> BoxedStrategy<(&'static str, Vec<u8>)> {
    let json_bytes = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    prop_oneof![
        nearly_valid_object().prop_map(move |v| ("application/json", json_bytes(v))),
        nearly_valid_object()
            .prop_map(|v| ("application/yaml", serde_yaml::to_string(&v).unwrap_or_default().into_bytes())),
        body().prop_map(|b| ("application/json", b)),
        body().prop_map(|b| ("application/yaml", b)),
        body().prop_map(|b| ("text/plain", b)),
    ]
    .boxed()
}

fn patch_body() -> BoxedStrategy<(&'static str, Vec<u8>)> {
    let content_type = prop_oneof![
        Just("application/merge-patch+json"),
        Just("application/json-patch+json"),
        Just("application/strategic-merge-patch+json"),
        Just("application/apply-patch+yaml"),
        Just("application/json"),
    ];
    let bytes = prop_oneof![
        body(),
        json_patch_body().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        nearly_valid_object().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        json_value().prop_map(|v| serde_json::to_vec(&json!({ "data": v })).unwrap_or_default()),
    ];
    (content_type, bytes).boxed()
}

fn input() -> BoxedStrategy<Input> {
    let name = prop_oneof![4 => Just("cm"), 1 => Just("missing")];
    prop_oneof![
        1 => object_body().prop_map(|(content_type, body)| Input::Create { content_type, body }),
        1 => (name.clone(), object_body())
            .prop_map(|(name, (content_type, body))| Input::Replace { name, content_type, body }),
        2 => (name, patch_body(), patch_query())
            .prop_map(|(name, (content_type, body), query)| Input::Patch { name, content_type, query, body }),
        1 => (prop_oneof![Just(COLLECTION), Just("/api/v1/configmaps"), Just("/api/v1/namespaces/default/configmaps/cm")], read_query())
            .prop_map(|(path, query)| Input::Read { path, query }),
    ]
    .boxed()
}

/// The server under test: this binary, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("harness: tempdir: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("harness: a free port: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("harness: current_exe: {e}"))?;
        let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| format!("harness: log: {e}"))?;
        let child = Command::new(exe)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("harness: starting the server: {e}"))?;
        Ok(Server { child, port, dir })
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("the server exited ({status}); its log:\n{}", self.log())),
            _ => None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: status code and body.
type Answer = (u16, Vec<u8>);

/// Sends one request on a new connection; Err when the connection failed or dropped or no
/// answer came within 10 s.
async fn send(
    port: u16,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Answer, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| format!("handshake: {e}"))?;
        let connection = tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .header(http::header::ACCEPT, "application/json");
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(body)).map_err(|e| format!("building the request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("the connection dropped: {e}"))?;
        let code = response.status().as_u16();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 64 << 20)
            .await
            .map_err(|e| format!("the answer's body broke off: {e}"))?;
        drop(sender);
        let _ = connection.await;
        Ok((code, bytes.to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.map_err(|_| "no answer within 10 s".to_owned())?
}

/// Is `answer` a success or a 4xx Kubernetes Status whose code is the HTTP status? The one
/// 5xx that passes is Kubernetes' own answer to a resourceVersion the store has not reached:
/// 504 Timeout with the cause `ResourceVersionTooLarge` (clients wait and retry).
fn judge(answer: &Answer) -> Result<(), String> {
    let (code, body) = answer;
    if (200..300).contains(code) {
        return Ok(());
    }
    let text = || String::from_utf8_lossy(body).into_owned();
    let status: Value = match serde_json::from_slice(body) {
        Ok(status) if (400..500).contains(code) || *code == 504 => status,
        _ => return Err(format!("answered {code}: {:?}", text())),
    };
    let is_status = status["kind"] == "Status"
        && status["apiVersion"] == "v1"
        && status["status"] == "Failure"
        && status["code"].as_u64() == Some(u64::from(*code));
    let too_large =
        status["reason"] == "Timeout" && status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge";
    if is_status && (*code != 504 || too_large) {
        Ok(())
    } else {
        Err(format!("answered {code} with a body that is not a Failure Status of that code: {}", text()))
    }
}

/// The namespace's ConfigMaps as stored (names, resourceVersions, contents).
async fn snapshot(port: u16) -> Result<Value, String> {
    let (code, body) = send(port, Method::GET, COLLECTION, None, Vec::new()).await?;
    if code != 200 {
        return Err(format!("listing the ConfigMaps answered {code}: {}", String::from_utf8_lossy(&body)));
    }
    let list: Value = serde_json::from_slice(&body).map_err(|e| format!("the list is not JSON: {e}"))?;
    Ok(list["items"].clone())
}

fn http_bodies(iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("harness: runtime: {e}"))?;
    let mut server = Server::start()?;
    let port = server.port;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = server.exited() {
            return Err(exit);
        }
        if matches!(runtime.block_on(send(port, Method::GET, "/readyz", None, Vec::new())), Ok((200, _))) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the server was not ready in 30 s; its log:\n{}", server.log()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seed_object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "cm", "labels": { "app": "x" } },
        "data": { "a": "1" },
    });
    let created = runtime.block_on(send(
        port,
        Method::POST,
        COLLECTION,
        Some("application/json"),
        serde_json::to_vec(&seed_object).unwrap_or_default(),
    ))?;
    if created.0 != 201 {
        return Err(format!("creating the ConfigMap cm answered {}", created.0));
    }
    let accepted = Cell::new(0u64);
    // The stored state before the next input (None: to be listed again after a write).
    let state: Cell<Option<Value>> = Cell::new(None);
    let result = test_runner(iterations, seed, 64).run(&input(), |input| {
        runtime.block_on(async {
            let before = match state.take() {
                Some(state) => state,
                None => snapshot(port).await.map_err(TestCaseError::fail)?,
            };
            let (method, path, content_type, bytes) = input.request();
            let answer = send(port, method.clone(), &path, content_type, bytes)
                .await
                .map_err(|e| TestCaseError::fail(format!("{method} {path} ({content_type:?}): {e}")))?;
            judge(&answer).map_err(|e| TestCaseError::fail(format!("{method} {path} ({content_type:?}): {e}")))?;
            let (code, body) = answer;
            if (200..300).contains(&code) {
                accepted.set(accepted.get() + 1);
                if input.is_write() {
                    // Keep the namespace small: what a create or a PUT made (other than cm) goes.
                    let name = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|o| o["metadata"]["name"].as_str().map(str::to_owned));
                    if let Some(name) = name.filter(|n| n != "cm") {
                        let path = format!("{COLLECTION}/{}", encode(&name));
                        let (code, _) =
                            send(port, Method::DELETE, &path, None, Vec::new()).await.map_err(TestCaseError::fail)?;
                        prop_assert!(code == 200 || code == 202 || code == 404, "deleting {name} answered {code}");
                    }
                    return Ok(());
                }
            } else if input.is_write() {
                let after = snapshot(port).await.map_err(TestCaseError::fail)?;
                prop_assert_eq!(
                    &after,
                    &before,
                    "{} {} answered {} and changed the stored ConfigMaps",
                    method,
                    path,
                    code
                );
            }
            state.set(Some(before));
            Ok(())
        })
    });
    let alive = match server.exited() {
        Some(exit) => Err(exit),
        None => match runtime.block_on(send(port, Method::GET, "/readyz", None, Vec::new())) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("the server is not ready after the run: {other:?}; its log:\n{}", server.log())),
        },
    };
    result.map_err(|e| format!("{e}; server log:\n{}", server.log()))?;
    alive?;
    Ok(FuzzStats { inputs: u64::from(iterations), accepted: accepted.get(), elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn only_a_success_or_a_4xx_status_of_the_same_code_passes() {
        let status = |code: u16| {
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}).to_string()
        };
        assert!(judge(&(200, b"{}".to_vec())).is_ok());
        assert!(judge(&(422, status(422).into_bytes())).is_ok());
        assert!(judge(&(500, status(500).into_bytes())).is_err(), "a 5xx is a finding");
        assert!(judge(&(504, status(504).into_bytes())).is_err(), "a 504 without kube's cause is a finding");
        let too_large = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 504,
            "reason": "Timeout", "details": {"causes": [{"reason": "ResourceVersionTooLarge"}]}});
        assert!(judge(&(504, too_large.to_string().into_bytes())).is_ok(), "kube's answer to a future resourceVersion");
        assert!(judge(&(400, status(422).into_bytes())).is_err(), "the Status code must be the HTTP status");
        assert!(judge(&(415, b"Unsupported Media Type".to_vec())).is_err(), "a plain-text 4xx is a finding");
    }
}
