//! apps/v1 Deployment: generation, `status` and `scale` subresources, `spec` required,
//! `spec.replicas` a non-negative 32-bit integer.

use apistore::Object;
use serde_json::{json, Value};

use super::{int_at, Column, Strategy};
use crate::validation::FieldError;

/// The strategy of deployments.
pub struct DeploymentStrategy;

impl Strategy for DeploymentStrategy {
    fn has_status(&self) -> bool {
        true
    }

    fn has_scale(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn categories(&self) -> Vec<String> {
        vec!["all".into()]
    }

    fn validate(&self, object: &Object) -> Vec<FieldError> {
        let Some(spec) = object.fields.get("spec").filter(|spec| spec.is_object()) else {
            return vec![FieldError::required("spec", "")];
        };
        match spec.get("replicas") {
            None | Some(Value::Null) => Vec::new(),
            Some(replicas) => match replicas.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
                Some(n) if n < 0 => {
                    vec![FieldError::invalid("spec.replicas", replicas.clone(), "must be greater than or equal to 0")]
                }
                Some(_) => Vec::new(),
                None => vec![FieldError::invalid("spec.replicas", replicas.clone(), "must be a 32-bit integer")],
            },
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::string("Ready", "Number of the pod with ready state"),
            Column::string(
                "Up-to-date",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec",
            ),
            Column::string("Available", "Number of available pods"),
        ]
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        let replicas = object.fields.get("spec").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(1);
        vec![
            json!(format!("{}/{replicas}", int_at(object, &["status", "readyReplicas"]))),
            json!(int_at(object, &["status", "updatedReplicas"])),
            json!(int_at(object, &["status", "availableReplicas"])),
        ]
    }
}
