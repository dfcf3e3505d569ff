//! Server-side transformations: `meta.k8s.io/v1` `Table` (kubectl's printing) and
//! `PartialObjectMetadata`, as k8s.io/apiserver `pkg/endpoints/handlers/response.go` builds
//! them.
//!
//! A Table's columns are `Name`, the kind's own ([`crate::registry::Strategy::columns`]) and
//! `Age`. Each row carries the object as `PartialObjectMetadata` (default), the full object
//! (`includeObject=Object`) or nothing (`includeObject=None`).

use apistore::Object;
use serde_json::{json, Value};

use crate::clock;
use crate::registry::Column;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

/// What a Table row carries of its object (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    /// `PartialObjectMetadata` (the default, `includeObject=Metadata`).
    Metadata,
    /// The whole object.
    Object,
    /// Nothing.
    None,
}

/// Parses `includeObject`.
///
/// Errors: 400 `Unable to convert to Table as requested: ...` for other values.
pub fn include(param: &str) -> ApiResult<Include> {
    match param {
        "" | "Metadata" => Ok(Include::Metadata),
        "Object" => Ok(Include::Object),
        "None" => Ok(Include::None),
        other => Err(ApiError::bad_request(format!(
            "Unable to convert to Table as requested: includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
        ))),
    }
}

/// The object as `PartialObjectMetadata`.
pub fn partial_metadata(object: &Object) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": serde_json::to_value(&object.metadata).unwrap_or(Value::Null),
    })
}

/// The column definitions of `resource`'s Tables.
pub fn column_definitions(resource: &Resource) -> Vec<Value> {
    let mut columns = vec![Column {
        format: "name".into(),
        ..Column::string("Name", "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
    }];
    columns.extend(resource.strategy.columns());
    if resource.strategy.prints_age() {
        columns.push(Column::string(
            "Age",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ));
    }
    columns.iter().map(Column::definition).collect()
}

/// A row's cells but `Age`: the name and the kind's own columns (the part that does not change
/// with the time of the request for a built-in kind).
pub fn fixed_cells(resource: &Resource, object: &Object) -> Vec<Value> {
    let mut cells = vec![json!(object.metadata.name)];
    cells.extend(resource.strategy.cells(object));
    cells
}

fn cells(resource: &Resource, object: &Object) -> Vec<Value> {
    let mut cells = fixed_cells(resource, object);
    if resource.strategy.prints_age() {
        cells.push(json!(clock::age(object.metadata.creation_timestamp.as_deref())));
    }
    cells
}

/// One Table row of `object` (served shape).
pub fn row(resource: &Resource, object: &Object, include: Include) -> Value {
    let mut row = json!({ "cells": cells(resource, object) });
    match include {
        Include::None => {}
        Include::Object => row["object"] = serde_json::to_value(object).unwrap_or(Value::Null),
        Include::Metadata => row["object"] = partial_metadata(object),
    }
    row
}

/// A Table of `objects` (already in the served shape) with list metadata `list_meta`.
pub fn table(resource: &Resource, objects: &[Object], include: Include, list_meta: Value) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(resource, o, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": column_definitions(resource),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_object_values() {
        assert_eq!(include("").unwrap(), Include::Metadata);
        assert_eq!(include("Object").unwrap(), Include::Object);
        assert_eq!(include("None").unwrap(), Include::None);
        let e = include("All").unwrap_err();
        assert_eq!(e.code(), 400);
        assert!(e.message.starts_with("Unable to convert to Table as requested"), "{}", e.message);
    }
}
