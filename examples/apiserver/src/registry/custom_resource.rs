//! Objects of a CustomResourceDefinition's version (apiextensions-apiserver
//! `pkg/registry/customresource`): pruned, defaulted and validated by the version's
//! structural schema, `status` and `scale` subresources when declared, printer columns.

use apistore::Object;
use serde_json::Value;

use super::{Column, Strategy};
use crate::apiextensions::columns::PrinterColumns;
use crate::apiextensions::crd::{Crd, CrdVersion, ScaleSubresource};
use crate::apiextensions::schema::StructuralSchema;
use crate::scale::ScalePaths;
use crate::validation::FieldError;

/// The strategy of one served version of a CRD.
pub struct CustomResourceStrategy {
    schema: StructuralSchema,
    status: bool,
    scale: Option<ScaleSubresource>,
    columns: PrinterColumns,
    categories: Vec<String>,
    storage_api_version: String,
}

impl CustomResourceStrategy {
    /// The strategy of `version` of `crd`, whose objects are stored as `storage_version`.
    pub fn new(crd: &Crd, version: &CrdVersion, storage_version: &str) -> Self {
        CustomResourceStrategy {
            schema: version.schema.clone(),
            status: version.subresources.status,
            scale: version.subresources.scale.clone(),
            columns: PrinterColumns::new(&version.additional_printer_columns),
            categories: crd.names.categories.clone(),
            storage_api_version: format!("{}/{storage_version}", crd.group),
        }
    }

    /// Prunes unknown fields and applies defaults, as kube does on decode.
    fn coerce(&self, object: &mut Object) {
        let Ok(mut value) = serde_json::to_value(&*object) else { return };
        self.schema.prune(&mut value);
        self.schema.default(&mut value);
        if let Ok(coerced) = serde_json::from_value::<Object>(value) {
            *object = coerced;
        }
    }
}

impl Strategy for CustomResourceStrategy {
    fn has_status(&self) -> bool {
        self.status
    }

    fn has_scale(&self) -> bool {
        self.scale.is_some()
    }

    fn scale_paths(&self) -> Option<ScalePaths> {
        self.scale.as_ref().map(|s| ScalePaths {
            spec_replicas: s.spec_replicas_path.clone(),
            status_replicas: s.status_replicas_path.clone(),
            label_selector: s.label_selector_path.clone(),
        })
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn categories(&self) -> Vec<String> {
        self.categories.clone()
    }

    fn prepare_for_create(&self, object: &mut Object) {
        self.coerce(object);
    }

    fn prepare_for_update(&self, object: &mut Object, _old: &Object) {
        self.coerce(object);
    }

    fn validate(&self, object: &Object) -> Vec<FieldError> {
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        self.schema.validate(&value)
    }

    fn columns(&self) -> Vec<Column> {
        self.columns.definitions()
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        self.columns.cells(&value)
    }

    fn prints_age(&self) -> bool {
        self.columns.is_empty()
    }

    fn to_storage(&self, mut object: Object) -> Object {
        object.api_version.clone_from(&self.storage_api_version);
        object
    }
}
