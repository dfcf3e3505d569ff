//! Kubernetes' scoped list and watch tables, case for case: `RunTestNamespaceScopedList` (17
//! cases), `RunTestClusterScopedWatch` (6) and `RunTestNamespaceScopedWatch` (17). The request
//! namespace/name become the key (`/pods/<ns>[/<name>]`), field selectors the predicate.
//!
//! Pods are "base" (no node), "updated" (a label added) or "assigned" (`spec.nodeName` set),
//! like Kubernetes' `baseNamespacedPod`, `baseNamespacedPodUpdated` and
//! `baseNamespacedPodAssigned`. Every case runs on its own backend; the cases of a table run
//! concurrently (like Kubernetes' parallel sub-tests), which keeps each behaviour short.

use std::sync::Arc;

use futures::future::join_all;

use crate::object::Object;
use crate::storage::{ListOptions, Predicate, ResourceVersion};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// One pod of a table: `('b' | 'u' | 'a', namespace, name, node)`.
type PodSpec = (char, &'static str, &'static str, &'static str);

/// A watch table row: `(case, watch key, recursive, field selector, writes with the event each
/// is expected to produce)`.
type WatchCase = (&'static str, &'static str, bool, &'static str, Vec<(PodSpec, Option<&'static str>)>);

/// The pod a table row stands for (namespace "" for cluster-scoped keys `/pods/<name>`).
fn table_pod((kind, namespace, name, node): PodSpec) -> Object {
    let mut object = pod_on_node(namespace, name, if kind == 'a' { node } else { "" });
    if kind == 'u' {
        object = object.with_label("updated", "true");
    }
    if namespace.is_empty() {
        object.metadata.namespace.clear();
    }
    object
}

fn selector(field: &str) -> Predicate {
    if field.is_empty() {
        Predicate::default()
    } else {
        field_predicate(field)
    }
}

/// Watches `watch_key` from the current revision with `field`; writes every pod in order
/// (`guaranteed_update`, creating or replacing it) and expects, for each write, the given event
/// type or none (a DELETED event carries the previous object with the write's RV); then no
/// further event.
async fn watch_case(
    fixture: &Arc<dyn BackendFixture>,
    case: &str,
    watch_key: &str,
    recursive: bool,
    field: &str,
    writes: &[(PodSpec, Option<&'static str>)],
) {
    let h = Harness::new(fixture).await;
    let start = ResourceVersion::at(h.current_revision().await);
    let options =
        ListOptions { resource_version: start, recursive, predicate: selector(field), ..ListOptions::default() };
    let mut watch = h.watch(watch_key, options).await;
    let mut current: std::collections::HashMap<String, Object> = std::collections::HashMap::new();
    for (spec, expect) in writes {
        let object = table_pod(*spec);
        let id = key_of(&object);
        let out = h.put(object).await;
        let previous = current.insert(id, out.clone());
        if let Some(expected_type) = expect {
            let expected = if *expected_type == "DELETED" {
                let mut last = previous.unwrap_or_else(|| panic!("{case}: a DELETED transition follows a write"));
                last.metadata.resource_version.clone_from(&out.metadata.resource_version);
                last
            } else {
                out
            };
            let event = next_event(&mut watch).await;
            assert_eq!(event.type_name(), *expected_type, "{case}: {event:?}");
            assert_eq!(event.object(), Some(&expected), "{case}: object of the {expected_type} event");
        }
    }
    expect_no_event(&mut watch, true).await;
}

/// `RunTestClusterScopedWatch`: cluster-scoped keys (`/pods/<name>`) watched whole or by name
/// (key + `metadata.name`), with `spec.nodeName` selectors matching and filtering out (the
/// transition out is a DELETED event).
pub async fn cluster_scoped_watch_filters_by_name_and_node(fixture: Arc<dyn BackendFixture>) {
    let cases: Vec<WatchCase> = vec![
        (
            "without name, without field selector",
            "/pods/",
            true,
            "",
            vec![
                (('b', "", "t1-foo1", ""), Some("ADDED")),
                (('u', "", "t1-foo1", ""), Some("MODIFIED")),
                (('a', "", "t1-foo2", "t1-bar1"), Some("ADDED")),
            ],
        ),
        (
            "without name, spec.nodeName",
            "/pods/",
            true,
            "spec.nodeName=t2-bar1",
            vec![(('b', "", "t2-foo1", ""), None), (('a', "", "t2-foo1", "t2-bar1"), Some("ADDED"))],
        ),
        (
            "without name, spec.nodeName filtering out",
            "/pods/",
            true,
            "spec.nodeName!=t3-bar1",
            vec![
                (('b', "", "t3-foo1", ""), Some("ADDED")),
                (('b', "", "t3-foo2", ""), Some("ADDED")),
                (('u', "", "t3-foo1", ""), Some("MODIFIED")),
                (('a', "", "t3-foo1", "t3-bar1"), Some("DELETED")),
            ],
        ),
        (
            "with name, metadata.name",
            "/pods/t4-foo1",
            false,
            "metadata.name=t4-foo1",
            vec![
                (('b', "", "t4-foo1", ""), Some("ADDED")),
                (('b', "", "t4-foo2", ""), None),
                (('u', "", "t4-foo1", ""), Some("MODIFIED")),
                (('u', "", "t4-foo2", ""), None),
            ],
        ),
        (
            "with name, metadata.name and spec.nodeName",
            "/pods/t5-foo1",
            false,
            "metadata.name=t5-foo1,spec.nodeName=t5-bar1",
            vec![
                (('b', "", "t5-foo1", ""), None),
                (('b', "", "t5-foo2", ""), None),
                (('u', "", "t5-foo1", ""), None),
                (('u', "", "t5-foo2", ""), None),
                (('a', "", "t5-foo1", "t5-bar1"), Some("ADDED")),
            ],
        ),
        (
            "with name, metadata.name, spec.nodeName filtering out",
            "/pods/t6-foo1",
            false,
            "spec.nodeName!=t6-bar1,metadata.name=t6-foo1",
            vec![
                (('b', "", "t6-foo1", ""), Some("ADDED")),
                (('b', "", "t6-foo2", ""), None),
                (('u', "", "t6-foo1", ""), Some("MODIFIED")),
                (('a', "", "t6-foo1", "t6-bar1"), Some("DELETED")),
                (('a', "", "t6-foo2", "t6-bar1"), None),
            ],
        ),
    ];
    join_all(
        cases
            .iter()
            .map(|(case, key, recursive, field, writes)| watch_case(&fixture, case, key, *recursive, field, writes)),
    )
    .await;
}

/// `RunTestNamespaceScopedWatch`: every combination of request namespace (key), request name
/// (key or `metadata.name`) and `metadata.namespace` / `spec.nodeName` selectors, including a
/// selector on another namespace (nothing) and transitions out of the selector (DELETED).
pub async fn namespace_scoped_watch_filters_by_namespace_name_and_node(fixture: Arc<dyn BackendFixture>) {
    let cases: Vec<WatchCase> = vec![
        (
            "t1: no name, no namespace, no selector",
            "/pods/",
            true,
            "",
            vec![
                (('b', "t1-ns1", "t1-foo1", ""), Some("ADDED")),
                (('b', "t1-ns2", "t1-foo2", ""), Some("ADDED")),
                (('u', "t1-ns1", "t1-foo1", ""), Some("MODIFIED")),
                (('u', "t1-ns2", "t1-foo2", ""), Some("MODIFIED")),
            ],
        ),
        (
            "t2: no name, no namespace, metadata.namespace",
            "/pods/",
            true,
            "metadata.namespace=t2-ns1",
            vec![
                (('b', "t2-ns1", "t2-foo1", ""), Some("ADDED")),
                (('b', "t2-ns2", "t2-foo1", ""), None),
                (('u', "t2-ns1", "t2-foo1", ""), Some("MODIFIED")),
                (('u', "t2-ns2", "t2-foo1", ""), None),
            ],
        ),
        (
            "t3: no name, no namespace, spec.nodeName",
            "/pods/",
            true,
            "spec.nodeName=t3-bar1",
            vec![
                (('b', "t3-ns1", "t3-foo1", ""), None),
                (('b', "t3-ns2", "t3-foo2", ""), None),
                (('a', "t3-ns1", "t3-foo1", "t3-bar1"), Some("ADDED")),
                (('a', "t3-ns2", "t3-foo2", "t3-bar1"), Some("ADDED")),
            ],
        ),
        (
            "t4: no name, no namespace, spec.nodeName filtering out",
            "/pods/",
            true,
            "spec.nodeName!=t4-bar1",
            vec![
                (('b', "t4-ns1", "t4-foo1", ""), Some("ADDED")),
                (('b', "t4-ns1", "t4-foo2", ""), Some("ADDED")),
                (('u', "t4-ns1", "t4-foo1", ""), Some("MODIFIED")),
                (('a', "t4-ns1", "t4-foo1", "t4-bar1"), Some("DELETED")),
            ],
        ),
        (
            "t5: no name, namespace, no selector",
            "/pods/t5-ns1",
            true,
            "",
            vec![
                (('b', "t5-ns1", "t5-foo1", ""), Some("ADDED")),
                (('b', "t5-ns2", "t5-foo1", ""), None),
                (('b', "t5-ns1", "t5-foo2", ""), Some("ADDED")),
                (('u', "t5-ns1", "t5-foo1", ""), Some("MODIFIED")),
                (('u', "t5-ns2", "t5-foo1", ""), None),
            ],
        ),
        (
            "t6: no name, namespace, matching metadata.namespace",
            "/pods/t6-ns1",
            true,
            "metadata.namespace=t6-ns1",
            vec![
                (('b', "t6-ns1", "t6-foo1", ""), Some("ADDED")),
                (('b', "t6-ns2", "t6-foo1", ""), None),
                (('u', "t6-ns1", "t6-foo1", ""), Some("MODIFIED")),
            ],
        ),
        (
            "t7: no name, namespace, other metadata.namespace",
            "/pods/t7-ns1",
            true,
            "metadata.namespace=t7-ns2",
            vec![
                (('b', "t7-ns1", "t7-foo1", ""), None),
                (('b', "t7-ns2", "t7-foo1", ""), None),
                (('u', "t7-ns1", "t7-foo1", ""), None),
                (('u', "t7-ns2", "t7-foo1", ""), None),
            ],
        ),
        (
            "t8: no name, namespace, spec.nodeName",
            "/pods/t8-ns1",
            true,
            "spec.nodeName=t8-bar2",
            vec![
                (('b', "t8-ns1", "t8-foo1", ""), None),
                (('a', "t8-ns1", "t8-foo1", "t8-bar1"), None),
                (('a', "t8-ns2", "t8-foo1", "t8-bar2"), None),
                (('a', "t8-ns1", "t8-foo1", "t8-bar2"), Some("ADDED")),
            ],
        ),
        (
            "t9: no name, namespace, spec.nodeName filtering out",
            "/pods/t9-ns2",
            true,
            "spec.nodeName!=t9-bar1",
            vec![
                (('b', "t9-ns1", "t9-foo1", ""), None),
                (('b', "t9-ns2", "t9-foo1", ""), Some("ADDED")),
                (('a', "t9-ns2", "t9-foo1", "t9-bar1"), Some("DELETED")),
                (('a', "t9-ns2", "t9-foo1", "t9-bar2"), Some("ADDED")),
            ],
        ),
        (
            "t10: name, no namespace, metadata.name",
            "/pods/",
            true,
            "metadata.name=t10-foo1",
            vec![
                (('b', "t10-ns1", "t10-foo1", ""), Some("ADDED")),
                (('b', "t10-ns2", "t10-foo1", ""), Some("ADDED")),
                (('b', "t10-ns1", "t10-foo2", ""), None),
                (('u', "t10-ns1", "t10-foo1", ""), Some("MODIFIED")),
                (('a', "t10-ns1", "t10-foo1", "t10-bar1"), Some("MODIFIED")),
            ],
        ),
        (
            "t11: name, no namespace, metadata.name and namespace",
            "/pods/",
            true,
            "metadata.name=t11-foo1,metadata.namespace=t11-ns1",
            vec![
                (('b', "t11-ns1", "t11-foo1", ""), Some("ADDED")),
                (('b', "t11-ns1", "t11-foo2", ""), None),
                (('b', "t11-ns2", "t11-foo1", ""), None),
                (('u', "t11-ns1", "t11-foo1", ""), Some("MODIFIED")),
                (('a', "t11-ns1", "t11-foo1", "t11-bar1"), Some("MODIFIED")),
            ],
        ),
        (
            "t12: name, no namespace, metadata.name and spec.nodeName",
            "/pods/",
            true,
            "metadata.name=t12-foo1,spec.nodeName=t12-bar1",
            vec![
                (('b', "t12-ns1", "t12-foo1", ""), None),
                (('u', "t12-ns1", "t12-foo1", ""), None),
                (('a', "t12-ns1", "t12-foo1", "t12-bar1"), Some("ADDED")),
            ],
        ),
        (
            "t15: name, no namespace, metadata.name, spec.nodeName filtering out",
            "/pods/",
            true,
            "spec.nodeName!=t15-bar1,metadata.name=t15-foo1",
            vec![
                (('b', "t15-ns1", "t15-foo1", ""), Some("ADDED")),
                (('b', "t15-ns1", "t15-foo2", ""), None),
                (('u', "t15-ns1", "t15-foo1", ""), Some("MODIFIED")),
                (('a', "t15-ns1", "t15-foo1", "t15-bar1"), Some("DELETED")),
                (('a', "t15-ns1", "t15-foo1", "t15-bar2"), Some("ADDED")),
            ],
        ),
        (
            "t16: name, namespace, metadata.name",
            "/pods/t16-ns1/t16-foo1",
            false,
            "metadata.name=t16-foo1",
            vec![
                (('b', "t16-ns1", "t16-foo1", ""), Some("ADDED")),
                (('b', "t16-ns1", "t16-foo2", ""), None),
                (('u', "t16-ns1", "t16-foo1", ""), Some("MODIFIED")),
                (('a', "t16-ns1", "t16-foo1", "t16-bar1"), Some("MODIFIED")),
            ],
        ),
        (
            "t17: name, namespace, metadata.name and namespace",
            "/pods/t17-ns1/t17-foo2",
            false,
            "metadata.name=t17-foo2,metadata.namespace=t17-ns1",
            vec![
                (('b', "t17-ns1", "t17-foo1", ""), None),
                (('b', "t17-ns1", "t17-foo2", ""), Some("ADDED")),
                (('u', "t17-ns1", "t17-foo1", ""), None),
                (('a', "t17-ns1", "t17-foo2", "t17-bar1"), Some("MODIFIED")),
            ],
        ),
        (
            "t18: name, namespace, metadata.name, namespace and spec.nodeName",
            "/pods/t18-ns1/t18-foo1",
            false,
            "metadata.name=t18-foo1,metadata.namespace=t18-ns1,spec.nodeName=t18-bar1",
            vec![
                (('b', "t18-ns1", "t18-foo1", ""), None),
                (('b', "t18-ns1", "t18-foo2", ""), None),
                (('b', "t18-ns2", "t18-foo1", ""), None),
                (('u', "t18-ns1", "t18-foo1", ""), None),
                (('a', "t18-ns1", "t18-foo1", "t18-bar1"), Some("ADDED")),
            ],
        ),
        (
            "t19: name, namespace, metadata.name, namespace, spec.nodeName filtering out",
            "/pods/t19-ns1/t19-foo2",
            false,
            "spec.nodeName!=t19-bar1,metadata.name=t19-foo2,metadata.namespace=t19-ns1",
            vec![
                (('b', "t19-ns1", "t19-foo1", ""), None),
                (('b', "t19-ns2", "t19-foo2", ""), None),
                (('b', "t19-ns1", "t19-foo2", ""), Some("ADDED")),
                (('u', "t19-ns1", "t19-foo2", ""), Some("MODIFIED")),
                (('a', "t19-ns1", "t19-foo2", "t19-bar1"), Some("DELETED")),
            ],
        ),
    ];
    assert_eq!(cases.len(), 17, "Kubernetes' table has 17 cases");
    join_all(
        cases
            .iter()
            .map(|(case, key, recursive, field, writes)| watch_case(&fixture, case, key, *recursive, field, writes)),
    )
    .await;
}

/// `RunTestNamespaceScopedList`: the request namespace in the key and `metadata.namespace`,
/// `metadata.name` and `spec.nodeName` field selectors return exactly the matching pods, in key
/// order, in all 17 of Kubernetes' cases (each case's pods under its own namespace prefix, one
/// backend for the table).
pub async fn namespace_scoped_list_filters_by_path_and_field_selectors(fixture: Arc<dyn BackendFixture>) {
    type Case = (&'static str, &'static str, Vec<PodSpec>, Vec<(&'static str, &'static str)>);
    // (request namespace, field selector, pods, expected (namespace, name)); "{p}" is the case's
    // namespace prefix `t<i>-`.
    let cases: Vec<Case> = vec![
        ("", "", vec![('b', "ns1", "foo1", ""), ('b', "ns2", "foo2", "")], vec![("ns1", "foo1"), ("ns2", "foo2")]),
        (
            "",
            "metadata.namespace={p}ns1",
            vec![('b', "{p}ns1", "foo1", ""), ('b', "{p}ns2", "foo1", "")],
            vec![("{p}ns1", "foo1")],
        ),
        (
            "",
            "spec.nodeName=bar1",
            vec![('a', "{p}ns1", "foo1", "bar1"), ('a', "{p}ns2", "foo2", "bar2")],
            vec![("{p}ns1", "foo1")],
        ),
        (
            "",
            "spec.nodeName!=bar1",
            vec![('a', "{p}ns1", "foo1", "bar1"), ('a', "{p}ns2", "foo2", "bar2")],
            vec![("{p}ns2", "foo2")],
        ),
        (
            "ns1",
            "",
            vec![('b', "{p}ns1", "foo1", ""), ('b', "{p}ns2", "foo1", ""), ('b', "{p}ns1", "foo2", "")],
            vec![("{p}ns1", "foo1"), ("{p}ns1", "foo2")],
        ),
        (
            "ns1",
            "metadata.namespace={p}ns1",
            vec![('b', "{p}ns1", "foo1", ""), ('b', "{p}ns2", "foo1", "")],
            vec![("{p}ns1", "foo1")],
        ),
        (
            "ns1",
            "metadata.namespace={p}ns2",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns2", "foo1", ""),
                ('u', "{p}ns1", "foo2", ""),
                ('u', "{p}ns2", "foo2", ""),
            ],
            vec![],
        ),
        (
            "ns1",
            "spec.nodeName=bar2",
            vec![('a', "{p}ns1", "foo1", "bar1"), ('a', "{p}ns2", "foo1", "bar2"), ('a', "{p}ns1", "foo2", "bar2")],
            vec![("{p}ns1", "foo2")],
        ),
        (
            "ns2",
            "spec.nodeName!=bar1",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns2", "foo1", ""),
                ('a', "{p}ns2", "foo3", "bar1"),
                ('a', "{p}ns2", "foo2", "bar2"),
            ],
            vec![("{p}ns2", "foo1"), ("{p}ns2", "foo2")],
        ),
        (
            "",
            "metadata.name=foo1",
            vec![('b', "{p}ns1", "foo1", ""), ('b', "{p}ns2", "foo1", ""), ('b', "{p}ns1", "foo2", "")],
            vec![("{p}ns1", "foo1"), ("{p}ns2", "foo1")],
        ),
        (
            "",
            "metadata.name=foo1,metadata.namespace={p}ns1",
            vec![('b', "{p}ns1", "foo1", ""), ('b', "{p}ns1", "foo2", ""), ('b', "{p}ns2", "foo1", "")],
            vec![("{p}ns1", "foo1")],
        ),
        ("", "metadata.name=foo1,spec.nodeName=bar1", vec![('a', "{p}ns1", "foo1", "bar1")], vec![("{p}ns1", "foo1")]),
        (
            "",
            "spec.nodeName!=bar1,metadata.name=foo1",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns1", "foo2", ""),
                ('a', "{p}ns2", "foo1", "bar1"),
                ('a', "{p}ns2", "foo2", "bar1"),
                ('a', "{p}ns3", "foo1", "bar2"),
                ('a', "{p}ns3", "foo2", "bar2"),
            ],
            vec![("{p}ns1", "foo1"), ("{p}ns3", "foo1")],
        ),
        (
            "ns1",
            "metadata.name=foo1",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns1", "foo2", ""),
                ('b', "{p}ns2", "foo1", ""),
                ('b', "{p}ns2", "foo2", ""),
            ],
            vec![("{p}ns1", "foo1")],
        ),
        (
            "ns1",
            "metadata.name=foo1,metadata.namespace={p}ns1",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns1", "foo2", ""),
                ('b', "{p}ns2", "foo1", ""),
                ('b', "{p}ns2", "foo2", ""),
            ],
            vec![("{p}ns1", "foo1")],
        ),
        (
            "ns2",
            "metadata.name=foo2,metadata.namespace={p}ns2,spec.nodeName=bar1",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns1", "foo2", ""),
                ('b', "{p}ns2", "foo1", ""),
                ('a', "{p}ns2", "foo2", "bar1"),
                ('a', "{p}ns3", "foo1", "bar1"),
                ('a', "{p}ns3", "foo2", "bar1"),
            ],
            vec![("{p}ns2", "foo2")],
        ),
        (
            "ns2",
            "spec.nodeName!=bar2,metadata.name=foo1,metadata.namespace={p}ns2",
            vec![
                ('b', "{p}ns1", "foo1", ""),
                ('b', "{p}ns1", "foo2", ""),
                ('a', "{p}ns2", "foo1", "bar1"),
                ('a', "{p}ns2", "foo2", "bar2"),
                ('a', "{p}ns3", "foo1", "bar2"),
            ],
            vec![("{p}ns2", "foo1")],
        ),
    ];
    assert_eq!(cases.len(), 17, "Kubernetes' table has 17 cases");
    let h = Harness::new(&fixture).await;
    let mut written = Vec::new();
    for (i, (_, _, pods, _)) in cases.iter().enumerate() {
        let prefix = format!("t{i}-");
        for (kind, namespace, name, node) in pods {
            let namespace = namespace.replace("{p}", &prefix);
            let mut object = pod_on_node(&namespace, name, if *kind == 'a' { node } else { "" });
            if *kind == 'u' {
                object = object.with_label("updated", "true");
            }
            written.push(h.create(object).await);
        }
    }
    let last = written.iter().map(rv).max().unwrap_or(0);
    h.sync_reads(last).await;
    for (i, (namespace, field, pods, expected)) in cases.iter().enumerate() {
        let prefix = format!("t{i}-");
        let own: std::collections::BTreeSet<String> =
            pods.iter().map(|(_, ns, name, _)| key(&ns.replace("{p}", &prefix), name)).collect();
        let path = if namespace.is_empty() { "/pods/".to_owned() } else { format!("/pods/{prefix}{namespace}") };
        let mut options = recursive("");
        options.predicate = selector(&field.replace("{p}", &prefix));
        let list = h.list(&path, options).await;
        let got: Vec<(String, String)> = list
            .items
            .iter()
            .filter(|o| own.contains(&key_of(o)))
            .map(|o| (o.metadata.namespace.clone(), o.metadata.name.clone()))
            .collect();
        let want: Vec<(String, String)> =
            expected.iter().map(|(ns, name)| (ns.replace("{p}", &prefix), (*name).to_owned())).collect();
        assert_eq!(got, want, "case {i}: {path} with {field:?}");
        for object in list.items.iter().filter(|o| own.contains(&key_of(o))) {
            let stored = written.iter().find(|w| key_of(w) == key_of(object)).expect("listed object was written");
            assert_eq!(object, stored, "case {i}: listed object equals the stored one");
        }
    }
}
