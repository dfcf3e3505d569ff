//! `authorization.k8s.io/v1` SelfSubjectAccessReview and SelfSubjectRulesReview: create-only
//! virtual resources that ask the authorizer about the requesting user (kubernetes
//! `pkg/registry/authorization/selfsubjectaccessreview/rest.go` and
//! `selfsubjectrulesreview/rest.go`). `kubectl auth can-i` posts the first (`--list` the
//! second), in protobuf since client-go prefers it for built-in types: the body is read in
//! JSON, YAML or protobuf, the answer (201) is JSON or YAML.

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::request_info::RequestInfo;
use super::{authorize, rbac, Mode, UserInfo, MASTERS};
use crate::codec;
use crate::negotiation::{self, Endpoint};
use crate::routing::read_body;
use crate::server::App;
use crate::status::{ApiError, ApiResult, Target};

/// The API group of the reviews.
pub const GROUP: &str = "authorization.k8s.io";

/// True for a request to `selfsubjectaccessreviews` or `selfsubjectrulesreviews`.
pub fn is_review(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.api_group == GROUP
        && info.api_version == "v1"
        && matches!(info.resource.as_str(), "selfsubjectaccessreviews" | "selfsubjectrulesreviews")
}

/// Serves a review request: POST to the collection creates (answers) one; anything else is
/// 405.
pub async fn serve(app: &App, user: &UserInfo, info: &RequestInfo, request: Request) -> Response {
    answer(app, user, info, request).await.unwrap_or_else(IntoResponse::into_response)
}

async fn answer(app: &App, user: &UserInfo, info: &RequestInfo, request: Request) -> ApiResult<Response> {
    if *request.method() != Method::POST || !info.name.is_empty() || !info.namespace.is_empty() {
        return Err(ApiError::method_not_allowed());
    }
    let (parts, body) = request.into_parts();
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let output = negotiation::negotiate(&header(header::ACCEPT), Endpoint::Plain)?;
    let content_type = header(header::CONTENT_TYPE);
    let body = read_body(body).await?;
    let rules = info.resource == "selfsubjectrulesreviews";
    let kind = if rules { "SelfSubjectRulesReview" } else { "SelfSubjectAccessReview" };
    let mut review = if negotiation::media_type(&content_type) == "application/vnd.kubernetes.protobuf" {
        super::protobuf::to_json(&body, GROUP, &info.resource).ok_or_else(|| {
            ApiError::bad_request(format!("{kind} in version \"v1\" cannot be handled as a {kind}: invalid protobuf"))
        })?
    } else {
        codec::parse(&body, negotiation::body_format(&content_type)?)?
    };
    let Some(object) = review.as_object_mut() else {
        return Err(ApiError::bad_request(format!("{kind} in version \"v1\" cannot be handled as a {kind}")));
    };
    object.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
    object.insert("kind".into(), json!(kind));
    let metadata = object.entry("metadata").or_insert_with(|| json!({}));
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.entry("creationTimestamp").or_insert(Value::Null);
    }
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = if rules { rules_status(app, user, &spec).await } else { access_status(app, user, &spec).await? };
    object.insert("status".into(), status);
    Ok(codec::respond(StatusCode::CREATED, &review, output.format))
}

fn text(value: &Value, field: &str) -> String {
    value.get(field).and_then(Value::as_str).unwrap_or("").to_owned()
}

async fn access_status(app: &App, user: &UserInfo, spec: &Value) -> ApiResult<Value> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let target = Target {
        resource: "SelfSubjectAccessReview".into(),
        group: GROUP.into(),
        kind: "SelfSubjectAccessReview".into(),
        name: String::new(),
    };
    let info = match (resource, non_resource) {
        (Some(_), Some(other)) => {
            return Err(ApiError::invalid_value(
                &target,
                "spec.nonResourceAttributes",
                other,
                "cannot be specified in combination with resourceAttributes",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid_value(
                &target,
                "spec.resourceAttributes",
                &Value::Null,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ))
        }
        (Some(r), None) => RequestInfo {
            is_resource_request: true,
            verb: text(r, "verb"),
            api_group: text(r, "group"),
            api_version: text(r, "version"),
            namespace: text(r, "namespace"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            name: text(r, "name"),
            ..Default::default()
        },
        (None, Some(n)) => RequestInfo { verb: text(n, "verb"), path: text(n, "path"), ..Default::default() },
    };
    let decision = authorize(app, user, &info).await;
    let mut status = Map::new();
    status.insert("allowed".into(), json!(decision.allowed));
    if decision.denied {
        status.insert("denied".into(), json!(true));
    }
    if !decision.reason.is_empty() {
        status.insert("reason".into(), json!(decision.reason));
    }
    if let Some(error) = decision.evaluation_error {
        status.insert("evaluationError".into(), json!(error));
    }
    Ok(Value::Object(status))
}

async fn rules_status(app: &App, user: &UserInfo, spec: &Value) -> Value {
    let namespace = text(spec, "namespace");
    let everything = || {
        json!({
            "resourceRules": [{ "verbs": ["*"], "apiGroups": ["*"], "resources": ["*"] }],
            "nonResourceRules": [{ "verbs": ["*"], "nonResourceURLs": ["*"] }],
            "incomplete": false,
        })
    };
    if user.groups.iter().any(|g| g == MASTERS) {
        return everything();
    }
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let mut errors = Vec::new();
    for mode in &app.security.config.authorization_modes {
        match mode {
            Mode::AlwaysAllow => return everything(),
            Mode::AlwaysDeny => {}
            Mode::Rbac => match rbac::load_policy(app, &namespace).await {
                Err(e) => errors.push(e),
                Ok(policy) => {
                    let (rules, rule_errors) = policy.rules_for(user, &namespace);
                    errors.extend(rule_errors);
                    for rule in rules {
                        if !rule.resources.is_empty() {
                            resource_rules.push(json!({
                                "verbs": rule.verbs, "apiGroups": rule.api_groups,
                                "resources": rule.resources, "resourceNames": rule.resource_names,
                            }));
                        }
                        if !rule.non_resource_urls.is_empty() {
                            non_resource_rules
                                .push(json!({ "verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls }));
                        }
                    }
                }
            },
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(rbac::aggregate(&errors));
    }
    status
}
