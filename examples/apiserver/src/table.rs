//! Server-side printing: `meta.k8s.io/v1` `Table` responses for `kubectl get`.
//!
//! kubectl asks with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`. Each row
//! carries the object as `PartialObjectMetadata` (default), the full object
//! (`includeObject=Object`) or nothing (`includeObject=None`).

use apistore::Object;
use serde_json::{json, Value};

use crate::clock;
use crate::resources::{Flavor, Resource};

/// True when the `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table"))
}

fn column(name: &str, kind: &str, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({ "name": name, "type": kind, "format": format, "description": description, "priority": 0 })
}

fn columns(resource: &Resource) -> Vec<Value> {
    let mut columns = vec![column("Name", "string", "Name must be unique within a namespace.")];
    match resource.flavor {
        Flavor::Namespace => columns.push(column("Status", "string", "The status of the namespace")),
        Flavor::ConfigMap => columns.push(column("Data", "string", "Number of data entries")),
        Flavor::Secret => {
            columns.push(column("Type", "string", "The type of the secret"));
            columns.push(column("Data", "string", "Number of data entries"));
        }
        Flavor::Deployment => {
            columns.push(column("Ready", "string", "Number of the pod with ready state"));
            columns.push(column(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec",
            ));
            columns.push(column("Available", "string", "Number of available pods"));
        }
        Flavor::CoreEvent | Flavor::EventsV1Event => {
            columns.push(column("Type", "string", "Type of this event"));
            columns.push(column("Reason", "string", "Why the event was generated"));
        }
        Flavor::Custom => {}
    }
    columns.push(column(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ));
    columns
}

fn count(object: &Object, fields: &[&str]) -> usize {
    fields.iter().filter_map(|f| object.fields.get(*f).and_then(Value::as_object)).map(|m| m.len()).sum()
}

fn str_at<'a>(object: &'a Object, path: &[&str]) -> &'a str {
    let mut current = object.fields.get(path[0]);
    for segment in &path[1..] {
        current = current.and_then(|v| v.get(*segment));
    }
    current.and_then(Value::as_str).unwrap_or("")
}

fn int_at(object: &Object, path: &[&str]) -> i64 {
    let mut current = object.fields.get(path[0]);
    for segment in &path[1..] {
        current = current.and_then(|v| v.get(*segment));
    }
    current.and_then(Value::as_i64).unwrap_or(0)
}

fn cells(resource: &Resource, object: &Object) -> Vec<Value> {
    let mut cells = vec![json!(object.metadata.name)];
    match resource.flavor {
        Flavor::Namespace => cells.push(json!(str_at(object, &["status", "phase"]))),
        Flavor::ConfigMap => cells.push(json!(count(object, &["data", "binaryData"]))),
        Flavor::Secret => {
            cells.push(json!(str_at(object, &["type"])));
            cells.push(json!(count(object, &["data"])));
        }
        Flavor::Deployment => {
            let replicas =
                object.fields.get("spec").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(1);
            cells.push(json!(format!("{}/{replicas}", int_at(object, &["status", "readyReplicas"]))));
            cells.push(json!(int_at(object, &["status", "updatedReplicas"])));
            cells.push(json!(int_at(object, &["status", "availableReplicas"])));
        }
        Flavor::CoreEvent | Flavor::EventsV1Event => {
            cells.push(json!(str_at(object, &["type"])));
            cells.push(json!(str_at(object, &["reason"])));
        }
        Flavor::Custom => {}
    }
    cells.push(json!(clock::age(object.metadata.creation_timestamp.as_deref())));
    cells
}

fn row_object(object: &Object, include: &str) -> Value {
    match include {
        "None" => Value::Null,
        "Object" => serde_json::to_value(object).unwrap_or(Value::Null),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": serde_json::to_value(&object.metadata).unwrap_or(Value::Null),
        }),
    }
}

/// A Table of `objects` (already in the served shape) with list metadata `list_meta`.
pub fn table(resource: &Resource, objects: &[Object], include: &str, list_meta: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": cells(resource, o) });
            let object = row_object(o, include);
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(resource),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kubectl_table_requests() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io"));
        assert!(!wants_table(""));
    }
}
