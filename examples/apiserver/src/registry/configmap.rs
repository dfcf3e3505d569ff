//! core/v1 ConfigMap: `data` and `binaryData` are maps of strings.

use apistore::Object;
use serde_json::{json, Value};

use super::{Column, Strategy};
use crate::validation::FieldError;

/// The strategy of configmaps.
pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn validate(&self, object: &Object) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for field in ["data", "binaryData"] {
            match object.fields.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => {
                    for (k, v) in map.iter().filter(|(_, v)| !v.is_string()) {
                        errors.push(FieldError::invalid(format!("{field}[{k}]"), v.clone(), "value must be a string"));
                    }
                }
                Some(other) => errors.push(FieldError::invalid(field, other.clone(), "must be a map of strings")),
            }
        }
        errors
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::string("Data", "Number of data entries")]
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        let count: usize = ["data", "binaryData"]
            .iter()
            .filter_map(|f| object.fields.get(*f).and_then(Value::as_object))
            .map(|m| m.len())
            .sum();
        vec![json!(count)]
    }
}
