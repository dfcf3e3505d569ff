//! Field errors, as k8s.io/apimachinery `pkg/util/validation/field` words them: each names
//! the field path, the kind of problem and the offending value, and a list of them makes a
//! 422 Invalid `Status` whose `details.causes` carry one cause per error.

use serde_json::Value;

/// The kind of a field error (`field.ErrorType`), with its `Status` cause reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// `Invalid value` (FieldValueInvalid).
    Invalid,
    /// `Required value` (FieldValueRequired).
    Required,
    /// `Unsupported value` (FieldValueNotSupported).
    NotSupported,
    /// `Duplicate value` (FieldValueDuplicate).
    Duplicate,
    /// `Forbidden` (FieldValueForbidden).
    Forbidden,
    /// `Too long` (FieldValueTooLong).
    TooLong,
    /// `Too many` (FieldValueTooMany).
    TooMany,
    /// `Internal error` (InternalError).
    Internal,
}

impl ErrorType {
    /// The words kube prints (`Invalid value`, `Required value`, ...).
    pub fn words(self) -> &'static str {
        match self {
            ErrorType::Invalid => "Invalid value",
            ErrorType::Required => "Required value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }

    /// The `Status` cause type (`FieldValueInvalid`, ...).
    pub fn cause(self) -> &'static str {
        match self {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
        }
    }
}

/// One field error (`field.Error`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The problem.
    pub kind: ErrorType,
    /// The field path, e.g. `spec.replicas` or `spec.containers[0].name`.
    pub field: String,
    /// The offending value (None: not printed, as for Required and Forbidden).
    pub value: Option<Value>,
    /// What is wrong, e.g. `must be greater than or equal to 0`.
    pub detail: String,
}

impl FieldError {
    /// `field: Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Invalid, field: field.into(), value: Some(value), detail: detail.into() }
    }

    /// `field: Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Required, field: field.into(), value: None, detail: detail.into() }
    }

    /// `field: Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            kind: ErrorType::NotSupported,
            field: field.into(),
            value: Some(value),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Forbidden, field: field.into(), value: None, detail: detail.into() }
    }

    /// `field: Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        FieldError { kind: ErrorType::Duplicate, field: field.into(), value: Some(value), detail: String::new() }
    }

    /// The error without its field path: `Invalid value: "x": detail` (a `Status` cause's
    /// message).
    pub fn body(&self) -> String {
        let mut text = self.kind.words().to_owned();
        if let Some(value) = &self.value {
            text.push_str(": ");
            text.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            text.push_str(": ");
            text.push_str(&self.detail);
        }
        text
    }
}

impl std::fmt::Display for FieldError {
    /// `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

/// A value as kube prints it in a field error: strings quoted, other scalars bare, objects
/// and lists as JSON.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Several field errors in one message, as kube's `ToAggregate`: one error alone, several
/// as `[a, b]`.
pub fn aggregate(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!("[{}]", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_read_like_kube() {
        let e = FieldError::invalid("spec.replicas", json!(-1), "must be greater than or equal to 0");
        assert_eq!(e.to_string(), "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
        let r = FieldError::required("spec.x", "");
        assert_eq!(r.to_string(), "spec.x: Required value");
        let n = FieldError::not_supported("spec.color", json!("pink"), &["red", "blue"]);
        assert_eq!(n.to_string(), "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"");
        assert_eq!(aggregate(&[r.clone(), n.clone()]), format!("[{r}, {n}]"));
        assert_eq!(n.kind.cause(), "FieldValueNotSupported");
    }
}
