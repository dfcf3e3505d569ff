//! Objects of a CustomResourceDefinition's version (apiextensions-apiserver
//! `pkg/registry/customresource`): pruned, defaulted and validated by the version's
//! structural schema, `status` and `scale` subresources when declared, printer columns.

use apistore::Object;
use serde_json::Value;

use super::{Column, Strategy};
use crate::apiextensions::columns::TableConvertor;
use crate::apiextensions::crd::{Crd, Scale, Version};
use crate::apiextensions::schema::StructuralSchema;
use crate::clock;
use crate::managedfields::schema::Node;
use crate::scale::ScalePaths;
use crate::validation::FieldError;

/// The strategy of one served version of a CRD.
pub struct CustomResourceStrategy {
    schema: StructuralSchema,
    status: bool,
    scale: Option<Scale>,
    columns: TableConvertor,
    categories: Vec<String>,
    storage_api_version: String,
    deprecation: Option<String>,
}

impl CustomResourceStrategy {
    /// The strategy of `version` of `crd`, whose objects are stored as `storage_version`.
    ///
    /// Errors: a printer column whose JSONPath does not parse (kube's message).
    pub fn new(crd: &Crd, version: &Version, storage_version: &str) -> Result<Self, String> {
        Ok(CustomResourceStrategy {
            schema: version.schema.clone(),
            status: version.subresources.status,
            scale: version.subresources.scale.clone(),
            columns: TableConvertor::new(&version.additional_printer_columns)?,
            categories: crd.names.categories.clone(),
            storage_api_version: format!("{}/{storage_version}", crd.group),
            deprecation: version.deprecation_message(&crd.group, &crd.names.kind),
        })
    }

    /// Prunes unknown fields and applies defaults, as kube does on decode.
    fn coerce(&self, object: &mut Object) {
        let Ok(mut value) = serde_json::to_value(&*object) else { return };
        self.schema.coerce(&mut value);
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

    fn unknown_fields(&self, object: &Object) -> Vec<String> {
        let Ok(mut value) = serde_json::to_value(object) else { return Vec::new() };
        self.schema.prune(&mut value)
    }

    fn warnings(&self) -> Vec<String> {
        self.deprecation.iter().cloned().collect()
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

    fn merge_schema(&self) -> Option<Node> {
        Some(self.schema.smd_node())
    }

    fn columns(&self) -> Vec<Column> {
        // The convertor's definitions start with `Name`, which the Table adds itself.
        let column = |d: &Value| Column {
            name: d["name"].as_str().unwrap_or_default().to_owned(),
            kind: d["type"].as_str().unwrap_or("string").to_owned(),
            format: d["format"].as_str().unwrap_or_default().to_owned(),
            description: d["description"].as_str().unwrap_or_default().to_owned(),
            priority: d["priority"].as_i64().unwrap_or(0),
        };
        self.columns.column_definitions().iter().skip(1).map(column).collect()
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        self.columns.cells(&value, clock::now_seconds()).into_iter().skip(1).collect()
    }

    fn prints_age(&self) -> bool {
        // The convertor prints `Age` itself when the CRD declares no columns.
        false
    }

    fn to_storage(&self, mut object: Object) -> Object {
        object.api_version.clone_from(&self.storage_api_version);
        object
    }
}
