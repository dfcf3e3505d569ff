//! core/v1 Secret: `stringData` folds into base64 `data` (kube does it in conversion);
//! `type` defaults to `Opaque`; `data` values are base64.

use apistore::Object;
use base64::Engine;
use serde_json::{json, Value};

use super::{str_at, Column, Strategy};
use crate::validation::FieldError;

/// The strategy of secrets.
pub struct SecretStrategy;

fn fold_string_data(object: &mut Object) {
    let Some(Value::Object(string_data)) = object.fields.get("stringData") else {
        if object.fields.get("stringData").is_some_and(Value::is_null) {
            object.fields.remove("stringData");
        }
        return;
    };
    if string_data.values().any(|v| !v.is_string()) {
        return; // validation reports it
    }
    let Some(Value::Object(string_data)) = object.fields.remove("stringData") else { return };
    let data = object.fields.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

fn default_type(object: &mut Object) {
    if object.fields.get("type").is_none_or(|t| t.as_str().is_none_or(str::is_empty)) {
        object.fields.insert("type".into(), json!("Opaque"));
    }
}

impl Strategy for SecretStrategy {
    fn selectable_field(&self, field: &str) -> bool {
        field == "type"
    }

    fn prepare_for_create(&self, object: &mut Object) {
        fold_string_data(object);
        default_type(object);
    }

    fn prepare_for_update(&self, object: &mut Object, _old: &Object) {
        fold_string_data(object);
        default_type(object);
    }

    fn validate(&self, object: &Object) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match object.fields.get("data") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
                    if !ok {
                        errors.push(FieldError::invalid(
                            format!("data[{k}]"),
                            v.clone(),
                            "must be a base64-encoded string",
                        ));
                    }
                }
            }
            Some(other) => errors.push(FieldError::invalid("data", other.clone(), "must be a map of base64 strings")),
        }
        match object.fields.get("stringData") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map.iter().filter(|(_, v)| !v.is_string()) {
                    errors.push(FieldError::invalid(format!("stringData[{k}]"), v.clone(), "must be a string"));
                }
            }
            Some(other) => errors.push(FieldError::invalid("stringData", other.clone(), "must be a map of strings")),
        }
        if !object.fields.get("type").is_none_or(Value::is_string) {
            errors.push(FieldError::invalid("type", object.fields["type"].clone(), "must be a string"));
        }
        errors
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::string("Type", "The type of the secret"), Column::string("Data", "Number of data entries")]
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        let count = object.fields.get("data").and_then(Value::as_object).map_or(0, |m| m.len());
        vec![json!(str_at(object, &["type"])), json!(count)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_folds_into_base64_data() {
        let mut secret = Object::new("v1", "Secret", "default", "s");
        secret.fields.insert("stringData".into(), json!({"password": "hunter2"}));
        SecretStrategy.prepare_for_create(&mut secret);
        assert_eq!(secret.fields["data"]["password"], "aHVudGVyMg==");
        assert_eq!(secret.fields["type"], "Opaque");
        assert!(!secret.fields.contains_key("stringData"));
        assert!(SecretStrategy.validate(&secret).is_empty());
        secret.fields.insert("data".into(), json!({"x": "not base64!"}));
        assert_eq!(SecretStrategy.validate(&secret)[0].field, "data[x]");
    }
}
