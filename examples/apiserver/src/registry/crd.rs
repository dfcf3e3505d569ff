//! apiextensions.k8s.io/v1 CustomResourceDefinition itself (apiextensions-apiserver
//! `pkg/registry/customresourcedefinition`): defaulted and validated on every write, its
//! `status` a subresource written by the CRD controller ([`crate::crds`]).

use apistore::Object;
use serde_json::{json, Value};

use super::{Column, Strategy};
use crate::apiextensions::crd;
use crate::apiextensions::status as crd_status;
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

    fn prepare_for_delete(&self, object: &mut Object) -> bool {
        let now = crate::clock::rfc3339(crate::clock::now_seconds());
        with_value(object, |crd| {
            crd_status::mark_for_deletion(crd, &now);
        });
        true
    }

    fn prepare_for_create(&self, object: &mut Object) {
        with_value(object, |crd| {
            crd::set_defaults(crd);
            crd::prepare_for_create(crd);
        });
    }

    fn prepare_for_update(&self, object: &mut Object, old: &Object) {
        let old = serde_json::to_value(old).unwrap_or(Value::Null);
        with_value(object, |crd| {
            crd::set_defaults(crd);
            crd::prepare_for_update(crd, &old);
        });
    }

    fn validate(&self, object: &Object) -> Vec<FieldError> {
        crd::validate(&serde_json::to_value(object).unwrap_or(Value::Null))
    }

    fn validate_update(&self, object: &Object, old: &Object) -> Vec<FieldError> {
        let old = serde_json::to_value(old).unwrap_or(Value::Null);
        crd::validate_update(&serde_json::to_value(object).unwrap_or(Value::Null), &old)
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
