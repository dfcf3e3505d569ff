//! Kubernetes `Status` error bodies: every failure the server answers with.
//!
//! [`ApiError`] carries the HTTP code, the `Status.reason`, a kube-style message and the
//! `details` (name, group, kind, causes). [`ApiError::from_storage`] turns an
//! [`apistore::Error`] into the message kube-apiserver would send for the same failure.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use apistore::{Error, StatusReason};

use crate::validation::{self, FieldError};

/// What a request is about, for error messages (`configmaps "x" not found`).
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// Plural resource name, e.g. `configmaps`.
    pub resource: String,
    /// API group ("" for core).
    pub group: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Object name ("" for collections).
    pub name: String,
}

impl Target {
    /// `configmaps` or `deployments.apps`: kube's qualified resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// The `Status.reason` of a failure: apistore's storage reasons plus those only the HTTP
/// edge produces. Each maps to one HTTP code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A storage-level reason (NotFound, AlreadyExists, Conflict, Invalid, BadRequest, ...).
    Storage(StatusReason),
    /// 401: the request carries no valid credentials.
    Unauthorized,
    /// 403: the request is not allowed.
    Forbidden,
    /// 405: the method is not served on this path.
    MethodNotAllowed,
    /// 406: no acceptable response media type.
    NotAcceptable,
    /// 415: the body's media type is not understood.
    UnsupportedMediaType,
}

impl Reason {
    /// 404 NotFound.
    pub const NOT_FOUND: Reason = Reason::Storage(StatusReason::NotFound);
    /// 409 AlreadyExists.
    pub const ALREADY_EXISTS: Reason = Reason::Storage(StatusReason::AlreadyExists);
    /// 409 Conflict.
    pub const CONFLICT: Reason = Reason::Storage(StatusReason::Conflict);
    /// 400 BadRequest.
    pub const BAD_REQUEST: Reason = Reason::Storage(StatusReason::BadRequest);
    /// 422 Invalid.
    pub const INVALID: Reason = Reason::Storage(StatusReason::Invalid);
    /// 500 InternalError.
    pub const INTERNAL: Reason = Reason::Storage(StatusReason::InternalError);

    /// The reason as `Status.reason` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Storage(reason) => reason.as_str(),
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
        }
    }

    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Reason::Storage(reason) => reason.code(),
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::UnsupportedMediaType => 415,
        }
    }
}

/// A failed request, rendered as a Kubernetes `Status`.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// `Status.reason` (and with it the HTTP code).
    pub reason: Reason,
    /// `Status.message`.
    pub message: String,
    /// `Status.details` (omitted when None).
    pub details: Option<Value>,
    /// `Retry-After` seconds, when the client should retry.
    pub retry_after: Option<u32>,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with this reason and message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError { reason, message: message.into(), details: None, retry_after: None }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(Reason::BAD_REQUEST, message)
    }

    /// 500 InternalError (a bug or an unexpected failure of the server itself).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(Reason::INTERNAL, message)
    }

    /// 404 NotFound for a path the server does not serve.
    pub fn not_found_path() -> Self {
        ApiError::new(Reason::NOT_FOUND, "the server could not find the requested resource")
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        ApiError::new(Reason::MethodNotAllowed, "the server does not allow this method on the requested resource")
    }

    /// 403 Forbidden with kube's message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Forbidden, message)
    }

    /// 406 NotAcceptable, naming the media types served.
    pub fn not_acceptable(served: &str) -> Self {
        ApiError::new(Reason::NotAcceptable, format!("only the following media types are accepted: {served}"))
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            Reason::Storage(StatusReason::RequestEntityTooLarge),
            format!("the request body is too large: limit is {limit} bytes"),
        )
    }

    /// 415 UnsupportedMediaType listing what is accepted, as kube's negotiation words it.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 404 `<resource> "<name>" not found`.
    pub fn not_found(target: &Target) -> Self {
        ApiError::new(Reason::NOT_FOUND, format!("{} {:?} not found", target.qualified(), target.name))
            .with_details(target, None)
    }

    /// 409 Conflict `Operation cannot be fulfilled on <resource> "<name>": <why>`.
    pub fn conflict(target: &Target, why: &str) -> Self {
        ApiError::new(
            Reason::CONFLICT,
            format!("Operation cannot be fulfilled on {} {:?}: {why}", target.qualified(), target.name),
        )
        .with_details(target, None)
    }

    /// 422 Invalid `<Kind> "<name>" is invalid: <field>: Invalid value: "<value>": <why>`.
    pub fn invalid(target: &Target, field: &str, value: &str, why: &str) -> Self {
        ApiError::invalid_value(target, field, &Value::String(value.to_owned()), why)
    }

    /// 422 Invalid with a value of any JSON type, rendered as kube renders field values:
    /// strings quoted, numbers and booleans bare (`Invalid value: -1: ...`).
    pub fn invalid_value(target: &Target, field: &str, value: &Value, why: &str) -> Self {
        ApiError::invalid_fields(target, &[FieldError::invalid(field, value.clone(), why)])
    }

    /// 422 Invalid for field errors: `<Kind> "<name>" is invalid: <errors>` (several as
    /// `[a, b]`), one `details.causes` entry per error. The kind is qualified with the group
    /// (`CronTab.stable.example.com`) as kube's `NewInvalid` does.
    pub fn invalid_fields(target: &Target, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> =
            errors.iter().map(|e| json!({ "reason": e.kind.cause(), "message": e.body(), "field": e.field })).collect();
        let qualified_kind =
            if target.group.is_empty() { target.kind.clone() } else { format!("{}.{}", target.kind, target.group) };
        let details = Target { resource: target.kind.clone(), ..target.clone() };
        ApiError::new(
            Reason::INVALID,
            format!("{qualified_kind} {:?} is invalid: {}", target.name, validation::aggregate(errors)),
        )
        .with_details(&details, Some(Value::Array(causes)))
    }

    fn with_details(mut self, target: &Target, causes: Option<Value>) -> Self {
        let mut details = json!({ "name": target.name, "kind": target.resource });
        if !target.group.is_empty() {
            details["group"] = json!(target.group);
        }
        if let Some(causes) = causes {
            details["causes"] = causes;
        }
        self.details = Some(details);
        self
    }

    /// The Status kube-apiserver sends for a storage failure on `target`.
    pub fn from_storage(err: Error, target: &Target) -> Self {
        let reason = Reason::Storage(err.reason());
        let retry_after = err.retry_after_seconds();
        let mut api = match &err {
            Error::NotFound { .. } => ApiError::not_found(target),
            Error::AlreadyExists { .. } => {
                ApiError::new(reason, format!("{} {:?} already exists", target.qualified(), target.name))
                    .with_details(target, None)
            }
            Error::Conflict { message, .. } => ApiError::conflict(target, message),
            Error::InvalidObject { message, .. } => ApiError::conflict(target, message),
            Error::Invalid { field, value, message } => ApiError::invalid(target, field, value, message),
            Error::TooLarge { size, limit, .. } => ApiError::new(
                reason,
                format!(
                    "{} {:?} is too large: {size} bytes exceeds the limit of {limit} bytes",
                    target.qualified(),
                    target.name
                ),
            ),
            _ => ApiError::new(reason, err.to_string()),
        };
        if let Error::Expired { continue_token: Some(token), .. } = &err {
            api.details = Some(json!({ "continue": token }));
        }
        if let Error::TooLargeResourceVersion { .. } = &err {
            // kube's NewTooLargeResourceVersionError: the cause client-go's reflector looks
            // for (`apierrors.HasStatusCause(err, ResourceVersionTooLarge)`) before relisting.
            api.details = Some(json!({
                "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }],
            }));
        }
        api.retry_after = retry_after;
        api
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(seconds) = self.retry_after {
            let details = status.get_mut("details").filter(|d| d.is_object());
            match details {
                Some(d) => d["retryAfterSeconds"] = json!(seconds),
                None => status["details"] = json!({ "retryAfterSeconds": seconds }),
            }
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// A `Status` of success (delete answers), e.g. `{"status":"Success","details":{...}}`.
pub fn success_status(target: &Target, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": target.name, "group": target.group, "kind": target.resource, "uid": uid },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target { resource: "configmaps".into(), group: String::new(), kind: "ConfigMap".into(), name: "demo".into() }
    }

    #[test]
    fn storage_errors_read_like_kube_apiserver() {
        let t = target();
        let not_found = ApiError::from_storage(Error::NotFound { key: "/configmaps/default/demo".into() }, &t);
        assert_eq!((not_found.code(), not_found.reason.as_str()), (404, "NotFound"));
        assert_eq!(not_found.message, "configmaps \"demo\" not found");
        let exists = ApiError::from_storage(Error::AlreadyExists { key: "k".into() }, &t);
        assert_eq!((exists.code(), exists.message.as_str()), (409, "configmaps \"demo\" already exists"));
        let precondition = ApiError::from_storage(
            Error::InvalidObject { key: "k".into(), message: "Precondition failed: x".into() },
            &t,
        );
        assert_eq!(precondition.code(), 409);
        assert_eq!(
            precondition.message,
            "Operation cannot be fulfilled on configmaps \"demo\": Precondition failed: x"
        );
        let invalid = ApiError::from_storage(Error::invalid("metadata.name", "A", "bad"), &t);
        assert_eq!(invalid.code(), 422);
        assert_eq!(invalid.message, "ConfigMap \"demo\" is invalid: metadata.name: Invalid value: \"A\": bad");
        let status = invalid.to_status();
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(status["status"], "Failure");
        let gone = ApiError::from_storage(
            Error::Expired { message: "too old".into(), continue_token: Some("tok".into()) },
            &t,
        );
        assert_eq!((gone.code(), gone.reason.as_str()), (410, "Expired"));
        assert_eq!(gone.to_status()["details"]["continue"], "tok");
        let busy = ApiError::from_storage(Error::unavailable("down"), &t);
        assert_eq!(busy.code(), 503);
        assert_eq!(busy.to_status()["details"]["retryAfterSeconds"], 1);
    }

    /// Found by the `http_body` fuzz target: a read at a resourceVersion the store has not
    /// reached answered 504 without the cause kube sends.
    #[test]
    fn a_too_large_resource_version_is_a_timeout_with_kubes_cause() {
        let error = Error::TooLargeResourceVersion { requested: 37, current: 9, retry_after_seconds: 1 };
        let status = ApiError::from_storage(error, &target()).to_status();
        assert_eq!((status["code"].as_u64(), status["reason"].as_str()), (Some(504), Some("Timeout")));
        assert_eq!(status["message"], "Too large resource version: 37, current: 9");
        assert_eq!(status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
        assert_eq!(status["details"]["causes"][0]["message"], "Too large resource version");
        assert_eq!(status["details"]["retryAfterSeconds"], 1);
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let t = Target { group: "apps".into(), resource: "deployments".into(), ..target() };
        assert_eq!(ApiError::not_found(&t).message, "deployments.apps \"demo\" not found");
        assert_eq!(ApiError::not_found(&t).to_status()["details"]["group"], "apps");
    }
}
