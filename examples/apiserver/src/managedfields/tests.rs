//! The kube documentation scenarios (https://kubernetes.io/docs/reference/using-api/server-side-apply/)
//! and kube's field manager rules, end to end over [`update`] and [`apply`].

use super::schema::builtin;
use super::*;
use serde_json::{json, Value};

const T1: &str = "2001-02-03T04:05:06Z";
const T2: &str = "2001-02-03T04:05:07Z";
const T3: &str = "2001-02-03T04:05:08Z";

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn configmap(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": data})
}

fn deploy_schema() -> schema::Node {
    builtin("apps/v1", "Deployment")
}

fn cm_schema() -> schema::Node {
    builtin("v1", "ConfigMap")
}

/// Stored objects have a uid (what makes an update of an untracked object untracked).
fn stored(mut v: Value) -> Value {
    v["metadata"]["uid"] = json!("1234");
    v["metadata"]["resourceVersion"] = json!("7");
    v
}

fn entries_of(obj: &Value) -> Vec<ManagedFieldsEntry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| l.iter().map(|e| serde_json::from_value(e.clone()).expect("entry")).collect())
        .unwrap_or_default()
}

/// The manager's entry's fieldsV1 as SMD's text, or None.
fn fields_of(obj: &Value, manager: &str, op: Operation) -> Option<String> {
    let e = entries_of(obj).into_iter().find(|e| e.manager == manager && e.operation == op)?;
    Some(Set::from_fields_v1(e.fields_v1.as_ref()?).expect("fieldsV1").to_fields_v1_string())
}

fn apply_ok(
    live: Option<&Value>,
    config: &Value,
    who: &str,
    api: &str,
    time: &str,
    force: bool,
    schema: &schema::Node,
) -> Value {
    stored(apply(live, config, &Manager::new(who, api, time), force, schema).expect("apply succeeds"))
}

#[test]
fn managedfields_apply_twice_changes_and_prunes() {
    let s = cm_schema();
    let v1 = apply_ok(None, &configmap(json!({"a": "1", "b": "2"})), "alice", "v1", T1, false, &s);
    assert_eq!(fields_of(&v1, "alice", Operation::Apply).as_deref(), Some(r#"{"f:data":{"f:a":{},"f:b":{}}}"#));
    let v2 = apply_ok(Some(&v1), &configmap(json!({"a": "3"})), "alice", "v1", T2, false, &s);
    assert_eq!(v2["data"], json!({"a": "3"}), "b was applied before, is omitted now and nobody else owns it: pruned");
    assert_eq!(fields_of(&v2, "alice", Operation::Apply).as_deref(), Some(r#"{"f:data":{"f:a":{}}}"#));
    let e = &entries_of(&v2)[0];
    assert_eq!((e.api_version.as_str(), e.time.as_deref(), e.fields_type.as_str()), ("v1", Some(T2), "FieldsV1"));
    assert_eq!(e.subresource, None);
}

#[test]
fn managedfields_conflicting_apply_gets_kubes_409() {
    let s = deploy_schema();
    let v1 = apply_ok(None, &deployment(json!({"replicas": 3})), "alice", "apps/v1", T1, false, &s);
    let err = apply(Some(&v1), &deployment(json!({"replicas": 5})), &Manager::new("bob", "apps/v1", T2), false, &s)
        .expect_err("bob conflicts with alice");
    assert_eq!(err.code(), 409);
    assert_eq!(err.message(), r#"Apply failed with 1 conflict: conflict with "alice": .spec.replicas"#);
    let causes = err.causes();
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (causes[0].reason, causes[0].message.as_str(), causes[0].field.as_str()),
        ("FieldManagerConflict", r#"conflict with "alice""#, ".spec.replicas")
    );

    // An Update manager prints with its apiVersion; several conflicts are grouped per manager.
    let edited = stored(
        update(
            Some(&v1),
            &deployment(json!({"replicas": 4, "paused": true})),
            &Manager::new("kubectl-edit", "apps/v1", T2),
            &s,
        )
        .expect("update"),
    );
    let mut labelled = deployment(json!({"replicas": 6, "paused": false}));
    labelled["metadata"]["labels"] = json!({"app": "web"});
    let err = apply(Some(&edited), &labelled, &Manager::new("carol", "apps/v1", T3), false, &s).expect_err("conflicts");
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.paused\n- .spec.replicas"
    );
}

#[test]
fn managedfields_equal_values_share_ownership() {
    let s = deploy_schema();
    let v1 = apply_ok(None, &deployment(json!({"replicas": 3, "paused": false})), "alice", "apps/v1", T1, false, &s);
    let v2 = apply_ok(Some(&v1), &deployment(json!({"replicas": 3})), "bob", "apps/v1", T2, false, &s);
    assert_eq!(fields_of(&v2, "bob", Operation::Apply).as_deref(), Some(r#"{"f:spec":{"f:replicas":{}}}"#));
    assert!(fields_of(&v2, "alice", Operation::Apply).is_some_and(|f| f.contains("f:replicas")));
    assert_eq!(
        entries_of(&v2).iter().find(|e| e.manager == "bob").and_then(|e| e.time.clone()),
        None,
        "the object did not change: no time"
    );
    // Alice stops applying replicas: bob still owns it, so it stays; paused (hers alone) goes.
    let v3 = apply_ok(Some(&v2), &deployment(json!({"minReadySeconds": 1})), "alice", "apps/v1", T3, false, &s);
    assert_eq!(v3["spec"], json!({"replicas": 3, "minReadySeconds": 1}));
    assert_eq!(fields_of(&v3, "alice", Operation::Apply).as_deref(), Some(r#"{"f:spec":{"f:minReadySeconds":{}}}"#));
    assert_eq!(fields_of(&v3, "bob", Operation::Apply).as_deref(), Some(r#"{"f:spec":{"f:replicas":{}}}"#));
}

#[test]
fn managedfields_force_takes_ownership() {
    let s = deploy_schema();
    let v1 = apply_ok(None, &deployment(json!({"replicas": 3, "paused": true})), "alice", "apps/v1", T1, false, &s);
    let v2 = apply_ok(Some(&v1), &deployment(json!({"replicas": 5})), "bob", "apps/v1", T2, true, &s);
    assert_eq!(v2["spec"]["replicas"], json!(5));
    assert_eq!(fields_of(&v2, "bob", Operation::Apply).as_deref(), Some(r#"{"f:spec":{"f:replicas":{}}}"#));
    assert_eq!(fields_of(&v2, "alice", Operation::Apply).as_deref(), Some(r#"{"f:spec":{"f:paused":{}}}"#));
    // Alice re-applying her old value now conflicts with bob.
    let err = apply(
        Some(&v2),
        &deployment(json!({"replicas": 3, "paused": true})),
        &Manager::new("alice", "apps/v1", T3),
        false,
        &s,
    );
    assert!(matches!(err, Err(ApplyError::Conflicts(ref c)) if c.len() == 1 && c[0].manager == "bob"));
}

fn containers(list: Value) -> Value {
    deployment(json!({"template": {"spec": {"containers": list}}}))
}

#[test]
fn managedfields_containers_merge_by_name() {
    let s = deploy_schema();
    let v1 =
        apply_ok(None, &containers(json!([{"name": "web", "image": "nginx:1"}])), "alice", "apps/v1", T1, false, &s);
    let v2 = apply_ok(
        Some(&v1),
        &containers(json!([{"name": "sidecar", "image": "envoy"}])),
        "bob",
        "apps/v1",
        T2,
        false,
        &s,
    );
    assert_eq!(
        v2["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy"}])
    );
    assert_eq!(
        fields_of(&v2, "bob", Operation::Apply).as_deref(),
        Some(
            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        )
    );
    // Alice changes her image: bob's container is untouched.
    let v3 = apply_ok(
        Some(&v2),
        &containers(json!([{"name": "web", "image": "nginx:2"}])),
        "alice",
        "apps/v1",
        T3,
        false,
        &s,
    );
    assert_eq!(
        v3["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:2"}, {"name": "sidecar", "image": "envoy"}])
    );
    // Bob drops his container: pruned, alice's stays.
    let v4 = apply_ok(Some(&v3), &containers(json!([])), "bob", "apps/v1", T3, false, &s);
    assert_eq!(v4["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx:2"}]));
}

#[test]
fn managedfields_update_after_apply_takes_the_changed_field() {
    let s = deploy_schema();
    let v1 = apply_ok(None, &deployment(json!({"replicas": 3, "paused": false})), "alice", "apps/v1", T1, false, &s);
    let mut edited = v1.clone();
    edited["spec"]["replicas"] = json!(4);
    let v2 = stored(update(Some(&v1), &edited, &Manager::new("kubectl-edit", "apps/v1", T2), &s).expect("update"));
    assert_eq!(v2["spec"]["replicas"], json!(4));
    assert_eq!(fields_of(&v2, "alice", Operation::Apply).as_deref(), Some(r#"{"f:spec":{"f:paused":{}}}"#));
    assert_eq!(fields_of(&v2, "kubectl-edit", Operation::Update).as_deref(), Some(r#"{"f:spec":{"f:replicas":{}}}"#));
    let entries = entries_of(&v2);
    assert_eq!(
        entries.iter().map(|e| e.manager.as_str()).collect::<Vec<_>>(),
        vec!["alice", "kubectl-edit"],
        "Apply entries first"
    );
    assert_eq!(entries[1].time.as_deref(), Some(T2));
    // A write that changes nothing leaves the entry (and its time) alone.
    let v3 = update(Some(&v2), &v2, &Manager::new("kubectl-edit", "apps/v1", T3), &s).expect("update");
    assert_eq!(entries_of(&v3), entries);
}

#[test]
fn managedfields_create_records_an_update_entry() {
    let s = cm_schema();
    let mut cm = configmap(json!({"key": "value"}));
    cm["metadata"]["labels"] = json!({"app": "web"});
    let created = update(None, &cm, &Manager::new("kubectl-create", "v1", T1), &s).expect("create");
    let entries = entries_of(&created);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (e.manager.as_str(), e.operation, e.api_version.as_str(), e.time.as_deref()),
        ("kubectl-create", Operation::Update, "v1", Some(T1))
    );
    assert_eq!(
        fields_of(&created, "kubectl-create", Operation::Update).as_deref(),
        Some(r#"{"f:data":{".":{},"f:key":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}"#)
    );

    // A Deployment: zero structs (spec, template) are not created by the write, items are.
    let d = containers(json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]));
    let created = update(None, &d, &Manager::new("kubectl-create", "apps/v1", T1), &deploy_schema()).expect("create");
    assert_eq!(
        fields_of(&created, "kubectl-create", Operation::Update).as_deref(),
        Some(concat!(
            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{},"#,
            r#""f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
        ))
    );
}

#[test]
fn managedfields_config_with_managed_fields_is_rejected() {
    let mut cm = configmap(json!({"a": "1"}));
    cm["metadata"]["managedFields"] = json!([]);
    let err = apply(None, &cm, &Manager::new("alice", "v1", T1), false, &cm_schema()).expect_err("must be nil");
    assert_eq!(err, ApplyError::ManagedFieldsMustBeNil);
    assert_eq!((err.code(), err.message().as_str()), (400, "metadata.managedFields must be nil"));
    let err =
        apply(None, &json!([1]), &Manager::new("alice", "v1", T1), false, &cm_schema()).expect_err("not an object");
    assert_eq!(err.code(), 400);
}

#[test]
fn managedfields_first_apply_on_untracked_object_and_untracked_updates() {
    let s = cm_schema();
    let live = stored(configmap(json!({"a": "1", "b": "2"})));
    // An update of an object nobody tracks stays untracked.
    let updated = update(Some(&live), &configmap(json!({"a": "1", "b": "3"})), &Manager::new("kubectl", "v1", T1), &s)
        .expect("update");
    assert!(updated["metadata"].get("managedFields").is_none());
    // The first apply gives the existing fields to before-first-apply, then takes what it applies.
    let v = apply_ok(Some(&live), &configmap(json!({"a": "9"})), "alice", "v1", T2, true, &s);
    assert_eq!(v["data"], json!({"a": "9", "b": "2"}));
    assert_eq!(
        fields_of(&v, "before-first-apply", Operation::Update).as_deref(),
        Some(r#"{"f:data":{".":{},"f:b":{}}}"#)
    );
    assert_eq!(fields_of(&v, "alice", Operation::Apply).as_deref(), Some(r#"{"f:data":{"f:a":{}}}"#));
    let err = apply(Some(&live), &configmap(json!({"a": "9"})), &Manager::new("alice", "v1", T2), false, &s)
        .expect_err("conflict");
    assert_eq!(err.message(), r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a"#);
}

#[test]
fn managedfields_update_keeps_resets_or_takes_submitted_managed_fields() {
    let s = cm_schema();
    let v1 = apply_ok(None, &configmap(json!({"a": "1"})), "alice", "v1", T1, false, &s);
    // No managedFields in the body: the live ones are kept.
    let body = configmap(json!({"a": "1", "b": "2"}));
    let kept = update(Some(&v1), &body, &Manager::new("bob", "v1", T2), &s).expect("update");
    assert_eq!(entries_of(&kept).len(), 2);
    // `[]` resets: the object is stripped of managed fields entirely (and stays untracked).
    let mut reset = body.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let after = update(Some(&v1), &reset, &Manager::new("bob", "v1", T2), &s).expect("update");
    assert!(after["metadata"].get("managedFields").is_none());
    // Valid submitted entries replace the live ones.
    let mut submitted = configmap(json!({"a": "1", "b": "2"}));
    submitted["metadata"]["managedFields"] = json!([{"manager": "carol", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]);
    let after = update(Some(&v1), &submitted, &Manager::new("bob", "v1", T2), &s).expect("update");
    assert_eq!(entries_of(&after).iter().map(|e| e.manager.as_str()).collect::<Vec<_>>(), vec!["carol", "bob"]);
    // Garbage in the body falls back to the live entries, as kube's decodeLiveOrNew.
    let mut garbage = body;
    garbage["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Sideways"}]);
    let after = update(Some(&v1), &garbage, &Manager::new("bob", "v1", T2), &s).expect("update");
    assert_eq!(entries_of(&after).len(), 2);
}

#[test]
fn managedfields_bad_live_managed_fields_name_the_entry() {
    let mut live = stored(configmap(json!({"a": "1"})));
    live["metadata"]["managedFields"] = json!([
        {"manager": "ok", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}},
        {"manager": "broken", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": 3}}
    ]);
    let err = apply(Some(&live), &configmap(json!({"a": "2"})), &Manager::new("alice", "v1", T1), false, &cm_schema())
        .expect_err("bad");
    assert_eq!(err.code(), 500);
    match err {
        ApplyError::InvalidLiveManagedFields(ManagedFieldsError::InvalidFieldsV1 { index, manager, .. }) => {
            assert_eq!((index, manager.as_str()), (1, "broken"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn managedfields_lists_sets_and_atomics_merge_by_schema() {
    let s = deploy_schema();
    let mut v1 =
        containers(json!([{"name": "web", "image": "a", "command": ["x", "y"], "env": [{"name": "A", "value": "1"}]}]));
    v1["metadata"]["finalizers"] = json!(["f1"]);
    let live = apply_ok(None, &v1, "alice", "apps/v1", T1, false, &s);
    let mut v2 = containers(json!([{"name": "web", "command": ["z"], "env": [{"name": "B", "value": "2"}]}]));
    v2["metadata"]["finalizers"] = json!(["f2"]);
    let merged = apply_ok(Some(&live), &v2, "bob", "apps/v1", T2, true, &s);
    let web = &merged["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["command"], json!(["z"]), "atomic list replaced");
    assert_eq!(
        web["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        "map list merged by name"
    );
    assert_eq!(web["image"], json!("a"));
    assert_eq!(merged["metadata"]["finalizers"], json!(["f1", "f2"]), "sets unioned");
    assert!(
        fields_of(&merged, "bob", Operation::Apply).is_some_and(|f| f.contains(r#""f:finalizers":{"v:\"f2\"":{}}"#))
    );
    // Duplicate keys in a configuration are refused as kube refuses them.
    let dup = containers(json!([{"name": "a"}, {"name": "a"}]));
    let err = apply(None, &dup, &Manager::new("alice", "apps/v1", T1), false, &s).expect_err("duplicates");
    assert_eq!(err.code(), 500);
    assert!(
        err.message().contains(r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#),
        "{}",
        err.message()
    );
}

#[test]
fn managedfields_update_entries_are_capped_into_ancient_changes() {
    let s = cm_schema();
    let mut obj = stored(
        update(None, &configmap(json!({"k0": "v"})), &Manager::new("m0", "v1", "2001-01-01T00:00:00Z"), &s)
            .expect("create"),
    );
    for i in 1..=11 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let time = format!("2001-01-01T00:00:{i:02}Z");
        obj = stored(update(Some(&obj), &next, &Manager::new(&format!("m{i}"), "v1", &time), &s).expect("update"));
    }
    let entries = entries_of(&obj);
    assert_eq!(entries.len(), 10);
    let ancient = entries.iter().find(|e| e.manager == "ancient-changes").expect("bucket");
    assert_eq!(
        Set::from_fields_v1(ancient.fields_v1.as_ref().expect("fields")).expect("set").to_fields_v1_string(),
        r#"{"f:data":{".":{},"f:k0":{},"f:k1":{},"f:k2":{}}}"#
    );
    assert!(!entries.iter().any(|e| ["m0", "m1", "m2"].contains(&e.manager.as_str())));
}

/// What `update` writes into `metadata.managedFields` (None: absent).
fn written_list(obj: &Value) -> Option<Vec<Value>> {
    obj["metadata"].get("managedFields").and_then(Value::as_array).cloned()
}

#[test]
fn managedfields_list_alone_is_what_update_writes() {
    let s = cm_schema();
    let v1 = apply_ok(None, &configmap(json!({"a": "1"})), "alice", "v1", T1, false, &s);
    let mut reset = configmap(json!({"a": "1"}));
    reset["metadata"]["managedFields"] = json!([]);
    let mut with_timestamp = configmap(json!({"k": "v"}));
    with_timestamp["metadata"]["creationTimestamp"] = json!(T1);
    let untracked_live = stored(configmap(json!({"a": "1"})));
    let d = containers(json!([{"name": "web", "image": "nginx"}]));
    let cases: Vec<(Option<&Value>, Value, schema::Node, &str)> = vec![
        // Creates: without the kind's zero fields (filled in place), with them, a Deployment.
        (None, configmap(json!({"k": "v"})), cm_schema(), "v1"),
        (None, with_timestamp, cm_schema(), "v1"),
        (None, d, deploy_schema(), "apps/v1"),
        // An update taking a field from another manager; one resetting the list (untracked).
        (Some(&v1), configmap(json!({"a": "2", "b": "3"})), cm_schema(), "v1"),
        (Some(&v1), reset, cm_schema(), "v1"),
        // An update of an object nobody tracks stays untracked.
        (Some(&untracked_live), configmap(json!({"a": "9"})), cm_schema(), "v1"),
    ];
    let mut untracked = 0;
    for (live, new, schema, api) in cases {
        let manager = Manager::new("bob", api, T2);
        let whole = update(live, &new, &manager, &schema).expect("update");
        let list = fieldmanager::updated_managed_fields(live, new.clone(), &manager, &schema).expect("list");
        match list {
            Some(list) if list.is_empty() => assert_eq!(written_list(&whole), None, "{new}"),
            Some(list) => assert_eq!(written_list(&whole), Some(list), "{new}"),
            None => {
                untracked += 1;
                assert_eq!(written_list(&whole), None, "{new}");
            }
        }
        // Everything else in the result is the body as sent.
        let mut rest = whole.clone();
        if let Some(meta) = rest["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
        let mut sent = new;
        if let Some(meta) = sent["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
        assert_eq!(rest, sent);
    }
    assert_eq!(untracked, 2, "the reset and the update of the untracked object stay untracked");
}
