//! core/v1 Namespace: DNS-1123 label names (checked by the handlers' name rules),
//! `spec.finalizers` and `status.phase` set on create.

use apistore::Object;
use serde_json::{json, Value};

use super::{str_at, Column, Strategy};

/// The strategy of namespaces.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn prepare_for_create(&self, object: &mut Object) {
        object.fields.insert("spec".into(), json!({ "finalizers": ["kubernetes"] }));
        object.fields.insert("status".into(), json!({ "phase": "Active" }));
    }

    fn prepare_for_update(&self, object: &mut Object, old: &Object) {
        // The namespace controller owns the status; clients cannot change it.
        match old.fields.get("status") {
            Some(status) => object.fields.insert("status".into(), status.clone()),
            None => object.fields.remove("status"),
        };
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::string("Status", "The status of the namespace")]
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        vec![json!(str_at(object, &["status", "phase"]))]
    }
}
