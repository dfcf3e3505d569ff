//! kubectl against the example API server: the real kubectl binary, only `--server`.
//!
//! Needs `kubectl` on PATH (or `KUBECTL=/path/to/kubectl`); fails with a clear message
//! otherwise. Each test starts its own server on a free loopback port.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::kubectl::{write_file, Kubectl};
use support::Server;

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  labels:
    app: demo
data:
  greeting: hello
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
";

#[test]
fn version_and_discovery() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    let version = k.ok(&["version", "-o", "json"]);
    let version: Value = serde_json::from_str(&version).expect("version JSON");
    assert_eq!(version["serverVersion"]["major"], "1", "{version}");
    assert_eq!(version["serverVersion"]["minor"], "30", "{version}");
    let resources = k.ok(&["api-resources"]);
    for expected in ["configmaps", "namespaces", "secrets", "events", "deployments"] {
        assert!(resources.contains(expected), "api-resources lacks {expected}:\n{resources}");
    }
    assert!(resources.contains("events.k8s.io/v1"), "{resources}");
    let namespaces = k.ok(&["get", "namespaces"]);
    assert!(namespaces.contains("default") && namespaces.contains("Active"), "{namespaces}");
}

#[test]
fn create_get_and_output_formats() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    let dir = tempfile::tempdir().expect("manifests");
    let file = write_file(&dir, "cm.yaml", CONFIGMAP);
    assert!(k.ok(&["create", "-f", &file]).contains("configmap/demo created"));
    let stderr = k.fails(&["create", "-f", &file], None);
    assert!(stderr.contains("AlreadyExists") && stderr.contains("already exists"), "{stderr}");

    let table = k.ok(&["get", "configmaps"]);
    let header = table.lines().next().expect("a header line");
    assert!(header.contains("NAME") && header.contains("DATA") && header.contains("AGE"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("demo ") && l.contains(" 1 ")), "{table}");

    let object = k.json(&["get", "configmap", "demo"]);
    assert_eq!(object["data"]["greeting"], "hello");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert!(!object["metadata"]["uid"].as_str().unwrap_or("").is_empty(), "uid set: {object}");
    assert!(object["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{object}");
    assert!(object["metadata"]["resourceVersion"].as_str().is_some_and(|rv| rv.parse::<u64>().is_ok()));

    let yaml = k.ok(&["get", "cm", "demo", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("greeting: hello") && yaml.contains("name: demo"),
        "{yaml}"
    );

    let name_only = k.ok(&["get", "cm", "-o", "name"]);
    assert_eq!(name_only.trim(), "configmap/demo");

    let missing = k.fails(&["get", "cm", "nope"], None);
    assert!(missing.contains("NotFound") && missing.contains("configmaps \"nope\" not found"), "{missing}");
}

#[test]
fn apply_twice_creates_then_updates() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    let dir = tempfile::tempdir().expect("manifests");
    let file = write_file(&dir, "web.yaml", DEPLOYMENT);
    assert!(k.ok(&["apply", "-f", &file]).contains("deployment.apps/web created"));
    let first = k.json(&["get", "deployment", "web"]);
    assert_eq!(first["metadata"]["generation"], 1);

    write_file(&dir, "web.yaml", &DEPLOYMENT.replace("nginx:1.25", "nginx:1.26").replace("replicas: 2", "replicas: 3"));
    assert!(k.ok(&["apply", "-f", &file]).contains("deployment.apps/web configured"));
    let second = k.json(&["get", "deployment", "web"]);
    let container = &second["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.26");
    assert_eq!(container["ports"][0]["containerPort"], 80, "strategic merge kept the ports: {second}");
    assert_eq!(second["spec"]["replicas"], 3);
    assert_eq!(second["metadata"]["generation"], 2);
    assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);
    assert!(second["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());

    // Applying the same file again changes nothing.
    assert!(k.ok(&["apply", "-f", &file]).contains("unchanged"));
    let third = k.json(&["get", "deployment", "web"]);
    assert_eq!(third["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"]);

    // A configmap through apply from stdin, in another namespace.
    k.ok(&["create", "namespace", "team-a"]);
    let out = k.ok_stdin(&["apply", "-n", "team-a", "-f", "-"], Some(CONFIGMAP));
    assert!(out.contains("configmap/demo created"), "{out}");
    assert_eq!(k.json(&["get", "cm", "demo", "-n", "team-a"])["data"]["greeting"], "hello");

    // Server-side apply: creates, then updates.
    for value in ["one", "two"] {
        let manifest = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  value: {value}\n");
        let out = k.ok_stdin(&["apply", "--server-side", "-f", "-"], Some(&manifest));
        assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
        assert_eq!(k.json(&["get", "cm", "ssa"])["data"]["value"], value);
    }

    // kubectl scale goes through the deployments/scale subresource (in this test to spare
    // a server start).
    let api = DEPLOYMENT.replace("web", "api");
    assert!(k.ok_stdin(&["apply", "-f", "-"], Some(&api)).contains("deployment.apps/api created"));
    let scaled = k.run_with_stdin(&["scale", "deployment", "api", "--replicas=3", "-v=6"], None);
    let (stdout, stderr) = (String::from_utf8_lossy(&scaled.stdout), String::from_utf8_lossy(&scaled.stderr));
    assert!(scaled.status.success() && stdout.contains("deployment.apps/api scaled"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("PATCH") && stderr.contains("/deployments/api/scale 200"),
        "kubectl patched the scale subresource:\n{stderr}"
    );
    assert_eq!(k.ok(&["get", "deployment", "api", "-o", "jsonpath={.spec.replicas}"]), "3");
    let precondition = k.fails(&["scale", "deployment", "api", "--current-replicas=2", "--replicas=5"], None);
    assert!(precondition.contains("Expected replicas to be 2, was 3"), "{precondition}");
    assert_eq!(k.ok(&["get", "deployment", "api", "-o", "jsonpath={.spec.replicas}"]), "3");
    let scaled = k.json(&["get", "deployment", "api"]);
    assert_eq!(scaled["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25", "{scaled}");
    assert_eq!(scaled["spec"]["selector"]["matchLabels"]["app"], "api", "{scaled}");
}

#[test]
fn selectors_and_chunked_lists() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    for i in 0..7 {
        let name = format!("cm-{i}");
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        k.ok(&["create", "configmap", &name, "--from-literal=i=x"]);
        k.ok(&["label", "configmap", &name, &format!("tier={tier}")]);
    }
    let even = k.ok(&["get", "cm", "-l", "tier=even", "-o", "name"]);
    assert_eq!(
        even.lines().collect::<Vec<_>>(),
        ["configmap/cm-0", "configmap/cm-2", "configmap/cm-4", "configmap/cm-6"]
    );
    let not_even = k.ok(&["get", "cm", "-l", "tier!=even", "-o", "name"]);
    assert_eq!(not_even.lines().count(), 3, "{not_even}");
    let by_name = k.ok(&["get", "cm", "--field-selector", "metadata.name=cm-3", "-o", "name"]);
    assert_eq!(by_name.trim(), "configmap/cm-3");
    let bad = k.fails(&["get", "cm", "--field-selector", "spec.nope=x"], None);
    assert!(bad.contains("field label not supported"), "{bad}");

    let chunked = k.ok(&["get", "cm", "--chunk-size=2", "-o", "name", "-v=6"]);
    assert_eq!(chunked.lines().count(), 7, "{chunked}");
    let log = k.run_with_stdin(&["get", "cm", "--chunk-size=2", "-v=6"], None);
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert!(stderr.matches("limit=2").count() >= 4, "kubectl paged with limit=2:\n{stderr}");
    assert!(stderr.contains("continue="), "kubectl used continue tokens:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().filter(|l| l.starts_with("cm-")).count(), 7);

    let all_ns = k.ok(&["get", "cm", "-A", "-o", "name"]);
    assert_eq!(all_ns.lines().count(), 7, "{all_ns}");
}

#[test]
fn label_annotate_patch_replace_delete() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    let dir = tempfile::tempdir().expect("manifests");
    k.ok_stdin(&["create", "-f", "-"], Some(CONFIGMAP));

    k.ok(&["label", "cm", "demo", "tier=frontend"]);
    k.ok(&["annotate", "cm", "demo", "owner=team-a"]);
    k.ok(&["patch", "cm", "demo", "--type", "merge", "-p", r#"{"data":{"merged":"yes"}}"#]);
    k.ok(&["patch", "cm", "demo", "--type", "json", "-p", r#"[{"op":"add","path":"/data/json","value":"yes"}]"#]);
    k.ok(&["patch", "cm", "demo", "-p", r#"{"data":{"strategic":"yes"}}"#]);
    let object = k.json(&["get", "cm", "demo"]);
    assert_eq!(object["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(object["metadata"]["labels"]["app"], "demo");
    assert_eq!(object["metadata"]["annotations"]["owner"], "team-a");
    for key in ["greeting", "merged", "json", "strategic"] {
        assert!(object["data"][key].is_string(), "data.{key} missing: {object}");
    }
    k.ok(&["label", "cm", "demo", "tier-"]);
    assert!(k.json(&["get", "cm", "demo"])["metadata"]["labels"].get("tier").is_none());

    let failed =
        k.fails(&["patch", "cm", "demo", "--type", "json", "-p", r#"[{"op":"remove","path":"/data/nope"}]"#], None);
    assert!(failed.contains("does not exist"), "{failed}");

    // replace with the current resourceVersion works; replaying the stale one conflicts.
    let current = k.ok(&["get", "cm", "demo", "-o", "yaml"]);
    let file = write_file(&dir, "replace.yaml", &current.replace("greeting: hello", "greeting: replaced"));
    assert!(k.ok(&["replace", "-f", &file]).contains("configmap/demo replaced"));
    assert_eq!(k.json(&["get", "cm", "demo"])["data"]["greeting"], "replaced");
    let conflict = k.fails(&["replace", "-f", &file], None);
    assert!(
        conflict
            .contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{conflict}"
    );

    assert!(k.ok(&["delete", "cm", "demo"]).contains("configmap \"demo\" deleted"));
    let gone = k.fails(&["get", "cm", "demo"], None);
    assert!(gone.contains("not found"), "{gone}");
}

#[test]
fn watch_streams_changes() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    k.ok(&["create", "configmap", "before", "--from-literal=a=b"]);
    let mut watcher = k
        .command(&["get", "configmaps", "-w", "-o", "json", "--output-watch-events", "--request-timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watcher.stdout.take().expect("watch stdout");
    let (sender, events) = std::sync::mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        for event in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
            let Ok(event) = event else { break };
            if sender.send(event).is_err() {
                break;
            }
        }
    });
    let next = || events.recv_timeout(Duration::from_secs(30)).expect("a watch event within 30 s");
    let first = next();
    assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("before")));
    k.ok(&["create", "configmap", "during", "--from-literal=a=b"]);
    k.ok(&["label", "configmap", "during", "seen=yes"]);
    k.ok(&["delete", "configmap", "during"]);
    let rest: Vec<Value> = (0..3).map(|_| next()).collect();
    let summary: Vec<(&str, &str)> = rest
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or(""), e["object"]["metadata"]["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(summary, [("ADDED", "during"), ("MODIFIED", "during"), ("DELETED", "during")]);
    assert_eq!(rest[1]["object"]["metadata"]["labels"]["seen"], "yes");
    let _ = watcher.kill();
    let _ = watcher.wait();
    let _ = reader.join();

    // With a request timeout, kubectl's watch ends by itself.
    let started = std::time::Instant::now();
    let out = k.run_with_stdin(&["get", "configmaps", "-w", "--request-timeout=2s"], None);
    assert!(started.elapsed() < Duration::from_secs(30), "the watch ended at its timeout");
    assert!(String::from_utf8_lossy(&out.stdout).contains("before"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn namespaces_secrets_and_events() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    let missing = k.fails(&["create", "configmap", "x", "-n", "nowhere"], None);
    assert!(missing.contains("namespaces \"nowhere\" not found"), "{missing}");
    k.ok(&["create", "namespace", "team-b"]);
    k.ok(&["create", "secret", "generic", "creds", "-n", "team-b", "--from-literal=password=s3cret"]);
    let secret = k.json(&["get", "secret", "creds", "-n", "team-b"]);
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["password"], "czNjcmV0");
    let invalid = k.fails(&["create", "namespace", "Bad_Name"], None);
    assert!(invalid.contains("is invalid") && invalid.contains("RFC 1123"), "{invalid}");

    let event = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"ev1","namespace":"team-b"},
        "involvedObject":{"kind":"Secret","name":"creds","namespace":"team-b"},"reason":"Tested","message":"hello events","type":"Normal"}"#;
    k.ok_stdin(&["create", "-f", "-"], Some(event));
    let as_v1 = k.json(&["get", "events.v1.events.k8s.io", "ev1", "-n", "team-b"]);
    assert_eq!(as_v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(as_v1["note"], "hello events");
    assert_eq!(as_v1["regarding"]["name"], "creds");

    let forbidden = k.fails(&["delete", "namespace", "default"], None);
    assert!(forbidden.contains("this namespace may not be deleted"), "{forbidden}");

    // Deleting the namespace removes what it contains.
    k.ok(&["delete", "namespace", "team-b"]);
    k.ok(&["create", "namespace", "team-b"]);
    let empty = k.run_with_stdin(&["get", "secrets", "-n", "team-b", "-o", "name"], None);
    assert!(String::from_utf8_lossy(&empty.stdout).trim().is_empty());
}

#[test]
fn custom_resources_from_the_config() {
    let dir = tempfile::tempdir().expect("config dir");
    let config = write_file(
        &dir,
        "apiserver.toml",
        "[[custom_resources]]\ngroup = \"stable.example.com\"\nversion = \"v1\"\nkind = \"CronTab\"\nplural = \"crontabs\"\nshort_names = [\"ct\"]\n",
    );
    let server = Server::start(&["--config", &config]);
    let k = Kubectl::new(&server);
    let resources = k.ok(&["api-resources", "--api-group", "stable.example.com"]);
    assert!(resources.contains("crontabs") && resources.contains("ct") && resources.contains("CronTab"), "{resources}");
    let manifest = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: nightly\nspec:\n  cronSpec: \"0 0 * * *\"\n";
    assert!(k.ok_stdin(&["apply", "-f", "-"], Some(manifest)).contains("crontab.stable.example.com/nightly created"));
    let updated = manifest.replace("0 0 * * *", "30 1 * * *");
    assert!(k.ok_stdin(&["apply", "-f", "-"], Some(&updated)).contains("configured"));
    let object = k.json(&["get", "ct", "nightly"]);
    assert_eq!(object["spec"]["cronSpec"], "30 1 * * *");
    assert_eq!(object["metadata"]["generation"], 2);
    let listed = k.ok(&["get", "crontabs"]);
    assert!(listed.contains("nightly"), "{listed}");
    assert!(k.ok(&["delete", "ct", "nightly"]).contains("deleted"));
}
