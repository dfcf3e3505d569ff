//! apiextensions.k8s.io/v1 CustomResourceDefinition itself (apiextensions-apiserver
//! `pkg/registry/customresourcedefinition`): defaulted and validated on every write, its
//! `status` a subresource written by the CRD controller ([`crate::crds`]).

use apistore::Object;
use serde_json::{json, Value};

use super::{Column, Strategy};
use crate::apiextensions::crd;
use crate::validation::FieldError;

/// The strategy of CRDs.
pub struct CrdStrategy;

fn with_value(object: &mut Object, change: impl FnOnce(&mut Value)) {
    let Ok(mut value) = serde_json::to_value(&*object) else { return };
    change(&mut value);
    if let Ok(changed) = serde_json::from_value::<Object>(value) {
        *object = changed;
    }
}

impl Strategy for CrdStrategy {
    fn has_status(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn categories(&self) -> Vec<String> {
        vec!["api-extensions".into()]
    }

    fn finalizer_on_delete(&self) -> Option<&'static str> {
        Some(crate::crds::CLEANUP_FINALIZER)
    }

    fn prepare_for_create(&self, object: &mut Object) {
        with_value(object, crd::set_defaults);
        object.fields.insert(
            "status".into(),
            json!({ "acceptedNames": { "plural": "", "kind": "" }, "conditions": [], "storedVersions": [] }),
        );
    }

    fn prepare_for_update(&self, object: &mut Object, _old: &Object) {
        with_value(object, crd::set_defaults);
    }

    fn validate(&self, object: &Object) -> Vec<FieldError> {
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        match crd::Crd::from_value(&value) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column { kind: "date".into(), ..Column::string("Created At", "Creation time of the CRD") }]
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        vec![json!(object.metadata.creation_timestamp.clone().unwrap_or_default())]
    }

    fn prints_age(&self) -> bool {
        false
    }
}
