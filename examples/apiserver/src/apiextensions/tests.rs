//! Behaviour tests of the CRD logic against kube's exact texts.

use serde_json::{json, Value};

use super::crd::{self, Crd, Scope};
use super::schema::{SchemaOptions, StructuralSchema};
use super::status::{self, NamesInUse, Terminating};
use crate::managedfields::schema::{ListKind, Node};
use crate::validation::FieldError;

fn texts(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn widget_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["x"],
                "properties": {
                    "x": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 10, "maximum": 20, "exclusiveMaximum": true},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                    "name": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
                    "note": {"type": "string", "nullable": true},
                    "count32": {"type": "integer", "format": "int32"},
                    "when": {"type": "string", "format": "date-time"},
                    "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "port": {"x-kubernetes-int-or-string": true},
                    "ratio": {"type": "number", "minimum": 0.5}
                }
            },
            "status": {"type": "object", "properties": {"num": {"type": "integer", "maximum": 10}}}
        }
    })
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": widget_schema()},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]
            }]
        }
    })
}

/// Defaults, prepares and validates a CRD as a create does.
fn create_errors(mut crd: Value) -> Vec<String> {
    crd::set_defaults(&mut crd);
    crd::prepare_for_create(&mut crd);
    texts(&crd::validate(&crd))
}

fn schema(s: Value) -> StructuralSchema {
    StructuralSchema::parse(&s, "schema", SchemaOptions::default())
        .unwrap_or_else(|e| panic!("{}", texts(&e).join("\n")))
}

#[test]
fn a_valid_crd_is_defaulted_and_read() {
    let mut crd = widget_crd();
    crd::set_defaults(&mut crd);
    crd::prepare_for_create(&mut crd);
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(crd["status"], json!({"storedVersions": ["v1"]}));
    assert_eq!(crd["metadata"]["generation"], 1);
    let parsed = Crd::parse(&crd).unwrap_or_else(|e| panic!("{}", texts(&e).join("\n")));
    assert_eq!(parsed.scope, Scope::Namespaced);
    assert_eq!(parsed.names.short_names, ["wd"]);
    let v1 = parsed.storage_version().unwrap_or_else(|| panic!("no storage version"));
    assert!(v1.served && v1.subresources.status);
    assert_eq!(v1.subresources.scale.as_ref().map(|s| s.spec_replicas_path.as_str()), Some(".spec.replicas"));
    assert_eq!(v1.additional_printer_columns[0].json_path, ".spec.replicas");
    assert_eq!(v1.deprecation_message("example.com", "Widget"), None);
}

#[test]
fn crd_name_must_be_plural_dot_group() {
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("x");
    assert_eq!(create_errors(crd), [r#"metadata.name: Invalid value: "x": must be spec.names.plural+"."+spec.group"#]);
}

#[test]
fn exactly_one_storage_version() {
    let mut crd = widget_crd();
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    crd["spec"]["versions"].as_array_mut().unwrap_or_else(|| panic!()).push(v2);
    let errs = create_errors(crd.clone());
    assert_eq!(errs.len(), 2, "{errs:?}");
    // kube also notices that the second storage version is missing from storedVersions.
    assert_eq!(errs[1], r#"status.storedVersions: Invalid value: ["v1"]: must have the storage version v2"#);
    assert!(errs[0].starts_with("spec.versions: Invalid value: [{"), "{}", errs[0]);
    assert!(errs[0].ends_with(": must have exactly one version marked as storage version"), "{}", errs[0]);

    crd["spec"]["versions"][1]["storage"] = json!(false);
    crd["spec"]["versions"][1]["name"] = json!("v1");
    let errs = create_errors(crd);
    assert!(errs.iter().any(|e| e.ends_with(": must contain unique version names")), "{errs:?}");
}

#[test]
fn spec_fields_are_checked_with_kube_messages() {
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("widgets.example");
    crd["spec"]["group"] = json!("example");
    crd["spec"]["scope"] = json!("Global");
    assert_eq!(
        create_errors(crd),
        [
            r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
        ]
    );

    let mut crd = widget_crd();
    crd["spec"]["names"] = json!({"plural": "widgets"});
    let errs = create_errors(crd);
    assert!(errs.contains(&"spec.names.kind: Required value".to_owned()), "{errs:?}");
    assert!(errs.contains(&"spec.names.listKind: Required value".to_owned()), "{errs:?}");

    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["name"] = json!("V1");
    let errs = create_errors(crd);
    assert!(
        errs[0].starts_with(r#"spec.versions[0].name: Invalid value: "V1": a DNS-1035 label must consist"#),
        "{errs:?}"
    );
    assert!(errs[1].starts_with(r#"spec.version: Invalid value: "V1": a DNS-1035 label"#), "{errs:?}");

    let mut crd = widget_crd();
    crd["spec"]["versions"][0].as_object_mut().map(|v| v.remove("schema"));
    assert_eq!(create_errors(crd), ["spec.versions[0].schema.openAPIV3Schema: Required value"]);

    let mut crd = widget_crd();
    crd["spec"]["preserveUnknownFields"] = json!(true);
    assert!(create_errors(crd)
        .contains(&"spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead".to_owned()));
}

#[test]
fn subresources_and_printer_columns_are_checked() {
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["subresources"]["scale"] =
        json!({"specReplicasPath": "spec.replicas", "statusReplicasPath": ".spec.replicas"});
    crd["spec"]["versions"][0]["additionalPrinterColumns"] =
        json!([{"name": "C", "type": "color", "jsonPath": ".spec.color"}, {"name": "D", "type": "string"}]);
    // A single version's subresources and columns are checked at the top level, as kube's
    // internal conversion hoists identical per-version fields.
    assert_eq!(
        create_errors(crd),
        [
            r#"spec.subresources.scale.specReplicasPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#,
            r#"spec.subresources.scale.statusReplicasPath: Invalid value: ".spec.replicas": should be a json path under .status"#,
            r#"spec.additionalPrinterColumns[0].type: Invalid value: "color": must be one of boolean,date,integer,number,string"#,
            "spec.additionalPrinterColumns[1].JSONPath: Required value",
        ]
    );
}

#[test]
fn non_structural_schemas_are_refused() {
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
        "type": "object",
        "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "status": {"type": "object", "properties": {"p": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "extra": {"type": "object", "anyOf": [{"type": "string"}]}
        }
    });
    let errs = create_errors(crd.clone());
    let p = "spec.validation.openAPIV3Schema";
    for want in [
        format!("{p}.properties[extra].anyOf[0].type: Forbidden: must be empty to be structural"),
        format!("{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"),
        format!("{p}.properties[spec].type: Required value: must not be empty for specified object fields"),
        format!("{p}.properties[status].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
    ] {
        assert!(errs.contains(&want), "missing {want}\nin {errs:#?}");
    }

    // Two versions with different schemas are checked each at its own path.
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    v2["schema"]["openAPIV3Schema"] = json!({"type": "object", "properties": {"x": {"type": "array"}}});
    crd["spec"]["versions"].as_array_mut().unwrap_or_else(|| panic!()).push(v2);
    let errs = create_errors(crd);
    assert!(
        errs.contains(
            &"spec.versions[1].schema.openAPIV3Schema.properties[x].items: Required value: must be specified"
                .to_owned()
        ),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("spec.versions[0].schema.openAPIV3Schema.properties[spec].type")),
        "{errs:#?}"
    );

    let root =
        StructuralSchema::parse(&json!({"properties": {}}), "s", SchemaOptions::default()).err().unwrap_or_default();
    assert_eq!(texts(&root), ["s.type: Required value: must not be empty at the root"]);
    let lists = StructuralSchema::parse(
        &json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}}),
        "s",
        SchemaOptions::default(),
    )
    .err()
    .unwrap_or_default();
    assert_eq!(
        texts(&lists),
        [
            "s.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
        ]
    );
    let bad_default = StructuralSchema::parse(
        &json!({"type": "object", "properties": {"n": {"type": "integer", "default": "x"}}}),
        "s",
        SchemaOptions::default(),
    )
    .err()
    .unwrap_or_default();
    assert_eq!(
        texts(&bad_default),
        [r#"s.properties[n].default: Invalid value: "string":  in body must be of type integer: "string""#]
    );
}

fn widget() -> StructuralSchema {
    schema(widget_schema())
}

fn check(object: Value) -> Vec<String> {
    texts(&widget().validate(&object))
}

#[test]
fn custom_resources_get_kube_validation_messages() {
    let s = |spec: Value| check(json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": spec}));
    assert_eq!(s(json!({"x": "a"})), Vec::<String>::new());
    assert_eq!(s(json!({})), ["spec.x: Required value"]);
    assert_eq!(
        s(json!({"x": "a", "replicas": "string"})),
        [r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#]
    );
    assert_eq!(
        s(json!({"x": "a", "color": "pink"})),
        [r#"spec.color: Unsupported value: "pink": supported values: "red", "blue""#]
    );
    assert_eq!(
        s(json!({"x": "a", "replicas": 5})),
        ["spec.replicas: Invalid value: 5: spec.replicas in body should be greater than or equal to 10"]
    );
    assert_eq!(
        s(json!({"x": "a", "replicas": 20})),
        ["spec.replicas: Invalid value: 20: spec.replicas in body should be less than 20"]
    );
    assert_eq!(
        s(json!({"x": "a", "ratio": 0.25})),
        ["spec.ratio: Invalid value: 0.25: spec.ratio in body should be greater than or equal to 0.5"]
    );
    assert_eq!(
        s(json!({"x": "a", "name": "ABC"})),
        [r#"spec.name: Invalid value: "ABC": spec.name in body should match '^[a-z]+$'"#]
    );
    assert_eq!(
        s(json!({"x": "a", "name": "a"})),
        [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
    assert_eq!(s(json!({"x": "a", "name": "abcdef"})), ["spec.name: Too long: may not be more than 5 bytes"]);
    assert_eq!(
        s(json!({"x": "a", "tags": []})),
        ["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
    );
    assert_eq!(s(json!({"x": "a", "tags": ["a", "b", "c"]})), ["spec.tags: Too many: 3: must have at most 2 items"]);
    assert_eq!(
        s(json!({"x": "a", "tags": ["a", 1]})),
        [r#"spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer""#]
    );
    assert_eq!(s(json!({"x": "a", "note": null})), Vec::<String>::new());
    assert_eq!(
        s(json!({"x": null})),
        [r#"spec.x: Invalid value: "null": spec.x in body must be of type string: "null""#]
    );
    assert_eq!(
        s(json!({"x": "a", "count32": 3_000_000_000_i64})),
        [r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.count32"#]
    );
    assert_eq!(s(json!({"x": "a", "count32": 7})), Vec::<String>::new());
    assert_eq!(s(json!({"x": "a", "when": "2026-11-27T16:27:00Z"})), Vec::<String>::new());
    assert_eq!(
        s(json!({"x": "a", "when": "yesterday"})),
        [r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#]
    );
    assert_eq!(
        s(json!({"x": "a", "labels": {"a": 1, "b": "two"}})),
        [r#"spec.labels.b: Invalid value: "string": spec.labels.b in body must be of type integer: "string""#]
    );
    assert_eq!(s(json!({"x": "a", "port": 80})), Vec::<String>::new());
    assert_eq!(s(json!({"x": "a", "port": "http"})), Vec::<String>::new());
    assert_eq!(
        s(json!({"x": "a", "port": true})),
        [r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#]
    );
    assert_eq!(s(json!({"x": "a", "replicas": 12.0})), Vec::<String>::new(), "a whole float is an integer");

    let status = widget().validate_status(&json!({"status": {"num": 15}}));
    assert_eq!(texts(&status), ["status.num: Invalid value: 15: num in body should be less than or equal to 10"]);
}

#[test]
fn junctors_and_list_types_validate() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "v": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}
        }
    }));
    assert_eq!(texts(&s.validate(&json!({"v": "apple"}))), Vec::<String>::new());
    assert_eq!(
        texts(&s.validate(&json!({"v": "cherry"}))),
        [
            r#"<nil>: Invalid value: "": "v" must validate at least one schema (anyOf)"#,
            r#"v: Invalid value: "cherry": v in body should match '^a'"#,
        ]
    );
    assert_eq!(
        texts(&s.validate(&json!({"set": ["a", "b", "a", "a"], "map": [{"name": "x"}, {"name": "x"}]}))),
        [r#"map[1]: Duplicate value: {"name":"x"}"#, r#"set[2]: Duplicate value: "a""#]
    );
}

#[test]
fn pruning_drops_unknown_fields_unless_preserved() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "keep": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
            }}
        }
    }));
    let mut obj = json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {
            "keep": "k", "foo": 1,
            "items": [{"a": 1, "b": 2}],
            "free": {"anything": {"deep": true}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "junk": 1}
        },
        "status": {"phase": "x"}
    });
    let pruned = s.prune(&mut obj);
    assert_eq!(pruned, ["spec.foo", "spec.items[0].b", "spec.template.junk", "spec.template.spec.x", "status"]);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {
                "keep": "k",
                "items": [{"a": 1}],
                "free": {"anything": {"deep": true}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
            }
        })
    );

    let preserving = schema(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}));
    let mut obj = json!({"other": {"x": 1}, "spec": {"a": "x", "b": 1}});
    assert_eq!(preserving.prune(&mut obj), ["spec.b"]);
    assert_eq!(obj, json!({"other": {"x": 1}, "spec": {"a": "x"}}));
}

#[test]
fn defaults_apply_nested_and_nulls_are_pruned() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {"type": "object", "default": {"type": "Rolling"}, "properties": {
                    "type": {"type": "string"},
                    "maxSurge": {"type": "integer", "default": 25}
                }},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}, "port": {"type": "integer"}
                }}},
                "gone": {"type": "string"},
                "kept": {"type": "string", "nullable": true}
            }}
        }
    }));
    let mut obj = json!({"apiVersion": "example.com/v1", "kind": "W"});
    s.default(&mut obj);
    assert_eq!(obj["spec"], json!({"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": 25}}));

    let mut obj =
        json!({"spec": {"replicas": null, "ports": [{"port": 80}], "gone": null, "kept": null, "unknown": 1}});
    let pruned = s.coerce(&mut obj);
    assert_eq!(pruned, ["spec.unknown"]);
    assert_eq!(
        obj["spec"],
        json!({"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": 25}, "ports": [{"port": 80, "protocol": "TCP"}], "kept": null})
    );
}

#[test]
fn smd_node_follows_list_and_map_types() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "atomic": {"type": "array", "items": {"type": "string"}},
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "proto"],
                        "items": {"type": "object", "required": ["name", "proto"], "properties": {"name": {"type": "string"}, "proto": {"type": "string"}}}},
                "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "n": {"x-kubernetes-int-or-string": true}
            }}
        }
    }));
    let node = s.smd_node();
    let spec = node.field("spec");
    assert_eq!(spec.field("atomic"), &Node::atomic_list(Node::Scalar));
    assert_eq!(spec.field("set"), &Node::set());
    match spec.field("map") {
        Node::List { kind: ListKind::Map(keys), .. } => assert_eq!(keys, &["name", "proto"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(spec.field("sel"), Node::Map { atomic: true, .. }));
    assert_eq!(spec.field("labels"), &Node::map_of(Node::Scalar));
    assert_eq!(spec.field("free"), &Node::map([]));
    assert_eq!(spec.field("n"), &Node::Deduced);
    assert_eq!(node.field("metadata").field("finalizers"), &Node::set());
    assert_eq!(node.field("metadata").field("ownerReferences"), &Node::keyed_list(&["uid"], Node::Deduced));
}

#[test]
fn status_names_and_conditions() {
    let now = "2026-11-27T16:27:00Z";
    let mut crd = widget_crd();
    crd::set_defaults(&mut crd);
    status::reconcile(&mut crd, &NamesInUse::default(), now);
    assert_eq!(
        crd["status"]["acceptedNames"],
        json!({"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"]})
    );
    let conditions = &crd["status"]["conditions"];
    assert_eq!(
        conditions[0],
        json!({"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"})
    );
    assert_eq!(
        conditions[1],
        json!({"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"})
    );
    assert!(status::is_condition_true(&crd, "Established"));

    // Another CRD of the group already serves the plural.
    let mut other = widget_crd();
    other["metadata"]["name"] = json!("gadgets.example.com");
    other["status"] = json!({"acceptedNames": {"plural": "widgets", "kind": "Gadget", "listKind": "GadgetList"}});
    let used = NamesInUse::from_crds("example.com", "widgets.example.com", [&other]);
    let mut fresh = widget_crd();
    crd::set_defaults(&mut fresh);
    let (names, accepted, established) = status::calculate_names(&fresh, &used);
    assert_eq!((accepted.status.as_str(), accepted.reason.as_str()), ("False", "PluralConflict"));
    assert_eq!(accepted.message, r#""widgets" is already in use"#);
    assert_eq!(names.plural, "");
    assert_eq!(names.kind, "Widget");
    assert_eq!((established.status.as_str(), established.reason.as_str()), ("False", "NotAccepted"));

    // lastTransitionTime moves only when the status changes.
    let later = "2026-11-27T17:00:00Z";
    let mut st = crd["status"].clone();
    status::set_condition(&mut st, status::established(), later);
    assert_eq!(st["conditions"][1]["lastTransitionTime"], now);

    assert!(status::mark_for_deletion(&mut crd, later));
    assert!(!status::mark_for_deletion(&mut crd, later));
    assert_eq!(crd["metadata"]["finalizers"], json!([status::CLEANUP_FINALIZER]));
    let terminating = status::find_condition(&crd, "Terminating").cloned().unwrap_or_default();
    assert_eq!(terminating["reason"], "InstanceDeletionPending");
    assert!(status::is_terminating(&crd));
    assert_eq!(status::terminating(&Terminating::Completed).reason, "InstanceDeletionCompleted");
    status::remove_cleanup_finalizer(&mut crd);
    assert_eq!(crd["metadata"]["finalizers"], json!([]));
}

#[test]
fn updates_keep_names_and_bump_generation() {
    let now = "2026-11-27T16:27:00Z";
    let mut old = widget_crd();
    crd::set_defaults(&mut old);
    crd::prepare_for_create(&mut old);
    status::reconcile(&mut old, &NamesInUse::default(), now);
    let mut new = old.clone();
    new["spec"]["group"] = json!("other.com");
    new["metadata"]["name"] = json!("widgets.other.com");
    new["spec"]["scope"] = json!("Cluster");
    crd::prepare_for_update(&mut new, &old);
    assert_eq!(new["metadata"]["generation"], 2);
    assert_eq!(new["status"], old["status"]);
    let errs = texts(&crd::validate_update(&new, &old));
    assert_eq!(
        errs,
        [
            r#"spec.scope: Invalid value: "Cluster": field is immutable"#,
            r#"spec.group: Invalid value: "other.com": field is immutable"#
        ]
    );
}
