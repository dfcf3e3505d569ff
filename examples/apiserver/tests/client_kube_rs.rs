//! kube-rs (`kube` + `k8s-openapi`) against the example API server, used the way kube-rs's
//! docs and examples use it: `Client::try_from(Config::new(url))`, typed `Api<K>` handles,
//! `Patch::{Merge, Json, Strategic, Apply}` with `PatchParams::apply`, `watcher` + `reflector`
//! (also with `.streaming_lists()`), `await_condition(.., is_crd_established())`, and
//! `DynamicObject` through discovery. Expectations are kube-apiserver's behaviour.

mod support;

use std::collections::BTreeMap;
use std::future::ready;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
    Preconditions, WatchEvent, WatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use support::Server;

async fn client(server: &Server) -> Client {
    let config = Config::new(server.url.parse().expect("server URL"));
    Client::try_from(config).expect("a kube client")
}

async fn namespace(client: &Client, name: &str) -> String {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    namespaces.create(&PostParams::default(), &ns).await.expect("creating the namespace");
    name.to_owned()
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
        ..Default::default()
    }
}

/// The Status of a failed call.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn version() {
    let server = Server::start(&[]);
    let info = client(&server).await.apiserver_version().await.expect("/version");
    assert_eq!(info.major, "1");
    assert!(info.git_version.starts_with("v1."), "{info:?}");
}

#[tokio::test]
async fn create_get_list_paging_and_conflicts() {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let ns = namespace(&client, "kube-rs").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let created = cms.create(&PostParams::default(), &config_map("demo", &[("greeting", "hello")])).await.unwrap();
    assert!(created.uid().is_some() && created.resource_version().is_some(), "{created:?}");
    assert_eq!(created.namespace().as_deref(), Some(ns.as_str()));
    let got = cms.get("demo").await.unwrap();
    assert_eq!(data(&got), map(&[("greeting", "hello")]));
    let missing = api_error(cms.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, r#"configmaps "nope" not found"#);
    assert_eq!(cms.get_opt("nope").await.unwrap(), None);
    let exists = api_error(cms.create(&PostParams::default(), &config_map("demo", &[])).await);
    assert_eq!((exists.code, exists.reason.as_str()), (409, "AlreadyExists"));

    // Paging.
    for i in 0..6 {
        cms.create(&PostParams::default(), &config_map(&format!("page-{i}"), &[])).await.unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = cms.list(&params).await.unwrap();
        pages += 1;
        assert!(page.metadata.resource_version.as_deref().is_some_and(|rv| !rv.is_empty()));
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().map(|cm| cm.name_any()));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => {
                assert_eq!(page.metadata.remaining_item_count, Some(7 - names.len() as i64));
                params = params.continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = vec!["demo".to_owned()];
    expected.extend((0..6).map(|i| format!("page-{i}")));
    assert_eq!(names, expected);

    // Update with a stale resourceVersion.
    let stale = cms.get("demo").await.unwrap();
    let mut fresh = stale.clone();
    fresh.data = Some(map(&[("greeting", "fresh")]));
    cms.replace("demo", &PostParams::default(), &fresh).await.unwrap();
    let mut outdated = stale.clone();
    outdated.data = Some(map(&[("greeting", "stale")]));
    let conflict = api_error(cms.replace("demo", &PostParams::default(), &outdated).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        r#"Operation cannot be fulfilled on configmaps "demo": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(data(&cms.get("demo").await.unwrap()), map(&[("greeting", "fresh")]));

    // Delete with preconditions.
    let live = cms.get("demo").await.unwrap();
    for (preconditions, text) in [
        (
            Preconditions { uid: Some("00000000-0000-0000-0000-000000000000".into()), resource_version: None },
            "UID in precondition",
        ),
        (Preconditions { uid: None, resource_version: Some("1".into()) }, "ResourceVersion in precondition"),
    ] {
        let params = DeleteParams { preconditions: Some(preconditions), ..Default::default() };
        let failed = api_error(cms.delete("demo", &params).await);
        assert_eq!((failed.code, failed.reason.as_str()), (409, "Conflict"), "{failed:?}");
        assert!(failed.message.contains(&format!("Precondition failed: {text}")), "{failed:?}");
    }
    let matching = Preconditions { uid: live.uid(), resource_version: live.resource_version() };
    cms.delete("demo", &DeleteParams { preconditions: Some(matching), ..Default::default() }).await.unwrap();
    assert_eq!(cms.get_opt("demo").await.unwrap(), None);
}

#[tokio::test]
async fn watch_from_a_resource_version() {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let ns = namespace(&client, "kube-rs-watch").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let rv = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.expect("list RV");
    cms.create(&PostParams::default(), &config_map("w", &[("v", "1")])).await.unwrap();
    cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "2"}}))).await.unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut stream = cms.watch(&WatchParams::default().timeout(10), &rv).await.unwrap().boxed();
    let mut events = Vec::new();
    while let Some(event) =
        tokio::time::timeout(Duration::from_secs(15), stream.try_next()).await.expect("events").unwrap()
    {
        let (kind, cm) = match event {
            WatchEvent::Added(cm) => ("ADDED", cm),
            WatchEvent::Modified(cm) => ("MODIFIED", cm),
            WatchEvent::Deleted(cm) => ("DELETED", cm),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        };
        events.push((kind, cm.name_any(), data(&cm).get("v").cloned().unwrap_or_default()));
        if kind == "DELETED" {
            break;
        }
    }
    let expected: Vec<_> = [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]
        .into_iter()
        .map(|(k, v)| (k, "w".to_owned(), v.to_owned()))
        .collect();
    assert_eq!(events, expected);
}

#[tokio::test]
async fn patch_types_and_server_side_apply() {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let ns = namespace(&client, "kube-rs-patch").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "busybox:1"}
                ]}
            }
        }
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    let strategic = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}});
    let patched = deployments.patch("web", &PatchParams::default(), &Patch::Strategic(strategic)).await.unwrap();
    let containers = patched.spec.unwrap().template.spec.unwrap().containers;
    let names: Vec<_> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "sidecar"], "containers merge by name");
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1.26"));
    assert_eq!(containers[0].ports.as_ref().unwrap()[0].container_port, 80);

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(&PostParams::default(), &config_map("p", &[("a", "1"), ("b", "2")])).await.unwrap();
    let merged =
        cms.patch("p", &PatchParams::default(), &Patch::Merge(json!({"data": {"b": null, "c": "3"}}))).await.unwrap();
    assert_eq!(data(&merged), map(&[("a", "1"), ("c", "3")]));
    let ops: kube_json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "9"}
    ]))
    .unwrap();
    let json_patched = cms.patch("p", &PatchParams::default(), &Patch::Json::<()>(ops)).await.unwrap();
    assert_eq!(data(&json_patched), map(&[("a", "9"), ("c", "3")]));
    let failing: kube_json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/a", "value": "1"}])).unwrap();
    let failed = api_error(cms.patch("p", &PatchParams::default(), &Patch::Json::<()>(failing)).await);
    assert_eq!(failed.code, 422, "{failed:?}");

    // Server-side apply, as kube-rs's docs write it.
    let apply = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    let first = cms.patch("ssa", &PatchParams::apply("mgr"), &Patch::Apply(apply(json!({"a": "1", "b": "2"})))).await;
    assert_eq!(data(&first.unwrap()), map(&[("a", "1"), ("b", "2")]));
    let second = cms.patch("ssa", &PatchParams::apply("mgr"), &Patch::Apply(apply(json!({"a": "1"})))).await.unwrap();
    assert_eq!(data(&second), map(&[("a", "1")]), "the field mgr stopped applying is removed");
    let entry = second.managed_fields().iter().find(|m| m.manager.as_deref() == Some("mgr")).cloned();
    let entry = entry.unwrap_or_else(|| panic!("no managedFields entry for mgr: {:?}", second.managed_fields()));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(entry.fields_v1.map(|f| f.0), Some(json!({"f:data": {"f:a": {}}})));

    let conflict =
        api_error(cms.patch("ssa", &PatchParams::apply("other"), &Patch::Apply(apply(json!({"a": "other"})))).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(conflict.message, r#"Apply failed with 1 conflict: conflict with "mgr": .data.a"#);
    let cause = &conflict.details.as_ref().expect("details").causes[0];
    assert_eq!((cause.reason.as_str(), cause.field.as_str()), ("FieldManagerConflict", ".data.a"));

    let forced = cms
        .patch("ssa", &PatchParams::apply("other").force(), &Patch::Apply(apply(json!({"a": "other"}))))
        .await
        .unwrap();
    assert_eq!(data(&forced), map(&[("a", "other")]));
    let managers: BTreeMap<_, _> = forced
        .managed_fields()
        .iter()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.fields_v1.clone().map(|f| f.0)))
        .collect();
    assert_eq!(managers.get("other"), Some(&Some(json!({"f:data": {"f:a": {}}}))), "{managers:?}");
    assert!(!managers.contains_key("mgr"), "mgr lost its only field: {managers:?}");
}

/// 3 writers × 30 writes while a reflector runs; its store ends equal to a final LIST.
async fn reflector_converges(config: watcher::Config, ns_name: &str) {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let ns = namespace(&client, ns_name).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let (reader, writer) = reflector::store();
    let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel();
    let stream =
        reflector(writer, watcher(cms.clone(), config)).default_backoff().touched_objects().for_each(move |event| {
            if let Err(e) = event {
                let _ = errors_tx.send(e.to_string());
            }
            ready(())
        });
    let task = tokio::spawn(stream);
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap_or_else(|_| panic!("the reflector never became ready; errors: {:?}", drain(&mut errors_rx)))
        .unwrap();

    let writers = (0..3).map(|w| {
        let cms = cms.clone();
        async move {
            for i in 0..10 {
                cms.create(&PostParams::default(), &config_map(&format!("w{w}-{i}"), &[("n", "0")])).await?;
            }
            for i in 0..10 {
                cms.patch(&format!("w{w}-{i}"), &PatchParams::default(), &Patch::Merge(json!({"data": {"n": "1"}})))
                    .await?;
            }
            for i in 0..10 {
                let name = format!("w{w}-{i}");
                if i % 3 == 0 {
                    cms.delete(&name, &DeleteParams::default()).await?;
                } else {
                    cms.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"data": {"n": "2"}}))).await?;
                }
            }
            Ok::<(), kube::Error>(())
        }
    });
    for result in futures::future::join_all(writers).await {
        result.expect("a writer failed");
    }
    let expected: BTreeMap<String, String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|cm| (cm.name_any(), cm.resource_version().unwrap_or_default()))
        .collect();
    assert_eq!(expected.len(), 18);
    let store = || -> BTreeMap<String, String> {
        reader.state().iter().map(|cm| (cm.name_any(), cm.resource_version().unwrap_or_default())).collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector store {:?}\n!= LIST {expected:?}\nwatcher errors: {:?}",
            store(),
            drain(&mut errors_rx)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn reflector_converges_under_concurrent_writes() {
    reflector_converges(watcher::Config::default(), "kube-rs-reflector").await;
}

#[tokio::test]
async fn reflector_with_streaming_lists_converges() {
    reflector_converges(watcher::Config::default().streaming_lists(), "kube-rs-streaming").await;
}

fn crontab_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "cronSpec": {"type": "string"}, "image": {"type": "string"}, "replicas": {"type": "integer"}
                }}}}}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn custom_resource_definition_lifecycle() {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let ns = namespace(&client, "kube-rs-crd").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "crontabs.stable.example.com";
    let establish = || async {
        crds.patch(name, &PatchParams::apply("kube-rs-test"), &Patch::Apply(crontab_crd()))
            .await
            .expect("applying the CRD");
        let established = await_condition(crds.clone(), name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(10), established)
            .await
            .expect("CRD Established within 10 s")
            .expect("watching the CRD");
    };
    establish().await;

    let gvk = GroupVersionKind::gvk("stable.example.com", "v1", "CronTab");
    let (resource, _caps) = kube::discovery::pinned_kind(&client, &gvk).await.expect("discovery finds CronTab");
    assert_eq!(resource.plural, "crontabs");
    let crontabs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let mut nightly = DynamicObject::new("nightly", &resource)
        .data(json!({"spec": {"cronSpec": "* * * * */5", "image": "my-cron-image", "replicas": 1}}));
    nightly.metadata.namespace = Some(ns.clone());
    let created = crontabs.create(&PostParams::default(), &nightly).await.unwrap();
    assert_eq!(created.types.as_ref().map(|t| t.kind.as_str()), Some("CronTab"));
    assert!(created.uid().is_some());
    let listed = crontabs.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(), ["nightly"]);
    let got = crontabs.get("nightly").await.unwrap();
    assert_eq!(got.data["spec"]["replicas"], 1);

    let bad = DynamicObject::new("bad", &resource).data(json!({"spec": {"cronSpec": "x", "replicas": "three"}}));
    let invalid = api_error(crontabs.create(&PostParams::default(), &bad).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"), "{invalid:?}");
    assert!(
        invalid.message.contains(
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ),
        "{invalid:?}"
    );

    let uid = crds.get(name).await.unwrap().uid().unwrap();
    crds.delete(name, &DeleteParams::default()).await.unwrap();
    let deleted = await_condition(crds.clone(), name, conditions::is_deleted(&uid));
    tokio::time::timeout(Duration::from_secs(20), deleted).await.expect("CRD deleted within 20 s").unwrap();
    let no_resource = api_error(crontabs.list(&ListParams::default()).await);
    assert_eq!(no_resource.code, 404, "{no_resource:?}");
    // Recreated, the CRD starts empty: its objects went with it.
    establish().await;
    assert!(crontabs.list(&ListParams::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn yaml_manifests_and_yaml_on_the_wire() {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let ns = namespace(&client, "kube-rs-yaml").await;
    // kube-rs's own examples: serde_yaml documents, applied through discovery.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n---\n\
                    apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nginx\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: nginx}\n  template:\n    metadata:\n      labels: {app: nginx}\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.25\n";
    let discovery = kube::Discovery::new(client.clone()).run().await.expect("discovery");
    for document in serde_yaml::Deserializer::from_str(manifest) {
        let object: DynamicObject = serde::Deserialize::deserialize(document).unwrap();
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).unwrap();
        let (resource, _) = discovery.resolve_gvk(&gvk).unwrap_or_else(|| panic!("discovery lacks {gvk:?}"));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        api.patch(&object.name_any(), &PatchParams::apply("kube-rs-yaml"), &Patch::Apply(&object)).await.unwrap();
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert_eq!(data(&cms.get("from-yaml").await.unwrap()), map(&[("a", "b")]));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert_eq!(deployments.get("nginx").await.unwrap().spec.unwrap().replicas, Some(1));

    // YAML on the wire through the client's raw requests.
    let body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw-yaml\ndata:\n  k: v\n";
    let request = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps"))
        .header("Content-Type", "application/yaml")
        .header("Accept", "application/yaml")
        .body(body.as_bytes().to_vec())
        .unwrap();
    let text = client.request_text(request).await.expect("a YAML create");
    let created: serde_yaml::Value = serde_yaml::from_str(&text).expect("a YAML response");
    assert_eq!(created["kind"], "ConfigMap", "{text}");
    assert_eq!(created["data"]["k"], "v", "{text}");
    let request = http::Request::get(format!("/api/v1/namespaces/{ns}/configmaps/raw-yaml"))
        .header("Accept", "application/yaml")
        .body(Vec::new())
        .unwrap();
    let text = client.request_text(request).await.unwrap();
    let got: serde_yaml::Value = serde_yaml::from_str(&text).expect("a YAML response");
    assert_eq!(got["metadata"]["name"], "raw-yaml", "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err(), "YAML, not JSON: {text}");
}
