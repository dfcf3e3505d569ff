//! `rbac.authorization.k8s.io/v1` Role, ClusterRole, RoleBinding and ClusterRoleBinding
//! (kubernetes `pkg/registry/rbac/*/strategy.go`, `pkg/apis/rbac/validation`), and the
//! strategy of the create-only self-subject reviews.
//!
//! Defaults as kube's v1 defaulting: `roleRef.apiGroup` and the `apiGroup` of User and Group
//! subjects are `rbac.authorization.k8s.io`. Validation: every rule has verbs; resource rules
//! name api groups and resources; Roles have no non-resource URLs; a binding's roleRef names
//! a Role (RoleBindings only) or ClusterRole and never changes; subjects are User, Group or
//! ServiceAccount with a name.

use apistore::Object;
use serde_json::{json, Value};

use super::{Column, Strategy};
use crate::validation::FieldError;

const GROUP: &str = "rbac.authorization.k8s.io";

/// The strategy of the four RBAC kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbacStrategy {
    /// Namespaced rules.
    Role,
    /// Cluster-wide rules.
    ClusterRole,
    /// Grants a Role or ClusterRole in its namespace.
    RoleBinding,
    /// Grants a ClusterRole everywhere.
    ClusterRoleBinding,
}

impl RbacStrategy {
    fn is_binding(self) -> bool {
        matches!(self, RbacStrategy::RoleBinding | RbacStrategy::ClusterRoleBinding)
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn validate_rules(object: &Object, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let rules = match object.fields.get("rules") {
        None | Some(Value::Null) => return errors,
        Some(Value::Array(rules)) => rules,
        Some(other) => return vec![FieldError::invalid("rules", other.clone(), "must be a list of rules")],
    };
    for (i, rule) in rules.iter().enumerate() {
        let path = |field: &str| format!("rules[{i}].{field}");
        if strings(rule.get("verbs")).is_empty() {
            errors.push(FieldError::required(path("verbs"), "verbs must contain at least one value"));
        }
        let urls = rule.get("nonResourceURLs").cloned().unwrap_or(Value::Null);
        if !strings(Some(&urls)).is_empty() {
            if namespaced {
                errors.push(FieldError::invalid(
                    path("nonResourceURLs"),
                    urls.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !strings(rule.get("apiGroups")).is_empty() || !strings(rule.get("resources")).is_empty() {
                errors.push(FieldError::invalid(
                    path("nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if strings(rule.get("apiGroups")).is_empty() {
            errors.push(FieldError::required(path("apiGroups"), "resource rules must supply at least one api group"));
        }
        if strings(rule.get("resources")).is_empty() {
            errors.push(FieldError::required(path("resources"), "resource rules must supply at least one resource"));
        }
    }
    errors
}

fn validate_binding(object: &Object, cluster: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let role_ref = object.fields.get("roleRef").cloned().unwrap_or(Value::Null);
    let text = |value: &Value, field: &str| value.get(field).and_then(Value::as_str).unwrap_or("").to_owned();
    let group = text(&role_ref, "apiGroup");
    if group != GROUP {
        errors.push(FieldError::not_supported("roleRef.apiGroup", json!(group), &[GROUP]));
    }
    let kind = text(&role_ref, "kind");
    let kinds: &[&str] = if cluster { &["ClusterRole"] } else { &["Role", "ClusterRole"] };
    if !kinds.contains(&kind.as_str()) {
        errors.push(FieldError::not_supported("roleRef.kind", json!(kind), kinds));
    }
    if text(&role_ref, "name").is_empty() {
        errors.push(FieldError::required("roleRef.name", ""));
    }
    let subjects = object.fields.get("subjects").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, subject) in subjects.iter().enumerate() {
        let path = |field: &str| format!("subjects[{i}].{field}");
        if text(subject, "name").is_empty() {
            errors.push(FieldError::required(path("name"), ""));
        }
        let group = text(subject, "apiGroup");
        match text(subject, "kind").as_str() {
            "ServiceAccount" if !group.is_empty() => {
                errors.push(FieldError::not_supported(path("apiGroup"), json!(group), &[""]));
            }
            "User" | "Group" if group != GROUP => {
                errors.push(FieldError::not_supported(path("apiGroup"), json!(group), &[GROUP]));
            }
            "ServiceAccount" | "User" | "Group" => {}
            other => {
                errors.push(FieldError::not_supported(path("kind"), json!(other), &["ServiceAccount", "User", "Group"]))
            }
        }
    }
    errors
}

/// kube's v1 defaults of a binding: the RBAC group on roleRef and User/Group subjects.
fn default_binding(object: &mut Object) {
    if let Some(role_ref) = object.fields.get_mut("roleRef").and_then(Value::as_object_mut) {
        if role_ref.get("apiGroup").and_then(Value::as_str).unwrap_or("").is_empty() {
            role_ref.insert("apiGroup".into(), json!(GROUP));
        }
    }
    if let Some(subjects) = object.fields.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
            let unset = subject.get("apiGroup").and_then(Value::as_str).unwrap_or("").is_empty();
            if unset && matches!(kind, "User" | "Group") {
                subject.insert("apiGroup".into(), json!(GROUP));
            }
        }
    }
}

impl Strategy for RbacStrategy {
    fn prepare_for_create(&self, object: &mut Object) {
        if self.is_binding() {
            default_binding(object);
        }
    }

    fn prepare_for_update(&self, object: &mut Object, _old: &Object) {
        if self.is_binding() {
            default_binding(object);
        }
    }

    fn validate(&self, object: &Object) -> Vec<FieldError> {
        match self {
            RbacStrategy::Role => validate_rules(object, true),
            RbacStrategy::ClusterRole => validate_rules(object, false),
            RbacStrategy::RoleBinding => validate_binding(object, false),
            RbacStrategy::ClusterRoleBinding => validate_binding(object, true),
        }
    }

    fn validate_update(&self, object: &Object, old: &Object) -> Vec<FieldError> {
        let mut errors = self.validate(object);
        if self.is_binding() && object.fields.get("roleRef") != old.fields.get("roleRef") {
            let value = object.fields.get("roleRef").cloned().unwrap_or(Value::Null);
            errors.push(FieldError::invalid("roleRef", value, "cannot change roleRef"));
        }
        errors
    }

    fn columns(&self) -> Vec<Column> {
        if self.is_binding() {
            let wide = |name: &str, description: &str| Column { priority: 1, ..Column::string(name, description) };
            vec![
                Column::string("Role", "RoleRef is the reference to the role granted."),
                wide("Users", "Users in the binding"),
                wide("Groups", "Groups in the binding"),
                wide("ServiceAccounts", "ServiceAccounts in the binding"),
            ]
        } else {
            vec![Column { kind: "date".into(), ..Column::string("Created At", "Timestamp when the role was created.") }]
        }
    }

    fn prints_age(&self) -> bool {
        // Roles print `Created At` instead, as kube's printers do.
        self.is_binding()
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        if !self.is_binding() {
            return vec![json!(object.metadata.creation_timestamp.clone().unwrap_or_default())];
        }
        let role_ref = object.fields.get("roleRef").cloned().unwrap_or(Value::Null);
        let text = |value: &Value, field: &str| value.get(field).and_then(Value::as_str).unwrap_or("").to_owned();
        let subjects = object.fields.get("subjects").and_then(Value::as_array).cloned().unwrap_or_default();
        let of = |kind: &str| {
            let names: Vec<String> = subjects
                .iter()
                .filter(|s| text(s, "kind") == kind)
                .map(|s| {
                    if kind == "ServiceAccount" {
                        format!("{}/{}", text(s, "namespace"), text(s, "name"))
                    } else {
                        text(s, "name")
                    }
                })
                .collect();
            json!(names.join(", "))
        };
        vec![
            json!(format!("{}/{}", text(&role_ref, "kind"), text(&role_ref, "name"))),
            of("User"),
            of("Group"),
            of("ServiceAccount"),
        ]
    }
}

/// SelfSubjectAccessReview and SelfSubjectRulesReview: discovery lists `create` only; the
/// requests never reach the storage (`auth::access_review` answers them).
pub struct AccessReviewStrategy;

impl Strategy for AccessReviewStrategy {
    fn verbs(&self) -> &'static [&'static str] {
        &["create"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, fields: Value) -> Object {
        let mut object = Object::new("rbac.authorization.k8s.io/v1", kind, "team", "x");
        if let Value::Object(map) = fields {
            object.fields = map;
        }
        object
    }

    #[test]
    fn roles_and_bindings_validate_as_kube() {
        let good = object("Role", json!({ "rules": [{ "verbs": ["get"], "apiGroups": [""], "resources": ["pods"] }] }));
        assert!(RbacStrategy::Role.validate(&good).is_empty());
        let bad = object(
            "Role",
            json!({ "rules": [{ "verbs": [], "nonResourceURLs": ["/healthz"] }, { "verbs": ["get"] }] }),
        );
        let errors: Vec<String> = RbacStrategy::Role.validate(&bad).iter().map(|e| e.field.clone()).collect();
        assert_eq!(errors, ["rules[0].verbs", "rules[0].nonResourceURLs", "rules[1].apiGroups", "rules[1].resources"]);
        let paths = object("ClusterRole", json!({ "rules": [{ "verbs": ["get"], "nonResourceURLs": ["/healthz"] }] }));
        assert!(RbacStrategy::ClusterRole.validate(&paths).is_empty());

        let mut binding = object(
            "RoleBinding",
            json!({ "roleRef": { "kind": "Role", "name": "r" }, "subjects": [{ "kind": "User", "name": "alice" }] }),
        );
        RbacStrategy::RoleBinding.prepare_for_create(&mut binding);
        assert_eq!(binding.fields["roleRef"]["apiGroup"], GROUP);
        assert_eq!(binding.fields["subjects"][0]["apiGroup"], GROUP);
        assert!(RbacStrategy::RoleBinding.validate(&binding).is_empty());
        let errors = RbacStrategy::ClusterRoleBinding.validate(&binding);
        assert_eq!(errors[0].field, "roleRef.kind");
        let mut changed = binding.clone();
        changed.fields["roleRef"]["name"] = json!("other");
        let errors = RbacStrategy::RoleBinding.validate_update(&changed, &binding);
        assert_eq!(errors.last().map(|e| e.detail.as_str()), Some("cannot change roleRef"));
        let odd = object(
            "RoleBinding",
            json!({ "roleRef": { "apiGroup": GROUP, "kind": "Role", "name": "r" }, "subjects": [{ "kind": "Robot" }] }),
        );
        let fields: Vec<String> = RbacStrategy::RoleBinding.validate(&odd).iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["subjects[0].name", "subjects[0].kind"]);
        assert_eq!(RbacStrategy::RoleBinding.cells(&binding)[0], json!("Role/r"));
    }
}
