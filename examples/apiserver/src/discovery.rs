//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`, and the
//! OpenAPI endpoints kubectl probes.
//!
//! Discovery answers with the legacy (non-aggregated) documents as `application/json`;
//! kubectl falls back to them when it does not get the aggregated `apidiscovery.k8s.io`
//! type. `/openapi/v2` answers with an empty OpenAPI document (an empty protobuf message
//! for kubectl): kubectl then knows no schema and skips client-side validation, so plain
//! `kubectl create/apply` work. `/openapi/v3` is 404, which makes kubectl fall back to v2.

use serde_json::{json, Value};

use crate::resources::{Resource, ResourceTable};

/// The Kubernetes version this server speaks (kubectl picks its client by the minor).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "30",
        "gitVersion": concat!("v1.30.0-apistore.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-27T00:00:00Z",
        "goVersion": "n/a (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v })).collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`: every served group.
pub fn group_list(table: &ResourceTable) -> Value {
    let groups: Vec<Value> = table.groups().iter().map(|(name, versions)| group_doc(name, versions)).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`; None when the group is not served.
pub fn group(table: &ResourceTable, name: &str) -> Option<Value> {
    let groups = table.groups();
    let (_, versions) = groups.iter().find(|(g, _)| g == name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn resource_doc(r: &Resource) -> Value {
    let mut doc = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.strategy.verbs(),
    });
    if !r.short_names.is_empty() {
        doc["shortNames"] = json!(r.short_names);
    }
    let categories = r.strategy.categories();
    if !categories.is_empty() {
        doc["categories"] = json!(categories);
    }
    doc
}

/// `/api/v1` or `/apis/<group>/<version>`; None when nothing is served there.
pub fn resource_list(table: &ResourceTable, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in table.in_group_version(group, version) {
        let r = r.as_ref();
        resources.push(resource_doc(r));
        if r.has_scale() {
            // As kube-apiserver lists it: the Scale kind lives in autoscaling/v1.
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.has_status() {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources }),
    )
}

/// The JSON form of the (empty) OpenAPI v2 document.
pub fn openapi_v2_json() -> Value {
    json!({
        "swagger": "2.0",
        "info": { "title": "apistore example apiserver", "version": "v1.30.0" },
        "paths": {},
        "definitions": {},
    })
}
