//! The `scale` subresource of deployments: an autoscaling/v1 `Scale` view of a deployment,
//! as kube-apiserver's `ScaleREST` (pkg/registry/apps/deployment/storage) serves it.
//!
//! A Scale carries the deployment's name, namespace, uid, resourceVersion and
//! creationTimestamp, `spec.replicas` (1 when the deployment has none, Kubernetes'
//! defaulting), `status.replicas` and `status.selector` (the deployment's label selector in
//! selector syntax). Writing a Scale changes only the deployment's `spec.replicas`; its
//! `metadata.resourceVersion`, when set, is the deployment's expected resourceVersion.

use apistore::selector::{LabelOp, LabelRequirement, LabelSelector};
use apistore::{Object, ObjectMeta};
use serde_json::{json, Map, Value};

use crate::resources::Resource;
use crate::status::{ApiError, ApiResult, Target};

/// The API version of the served Scale.
pub const API_VERSION: &str = "autoscaling/v1";

/// The kind of the served Scale.
pub const KIND: &str = "Scale";

/// `spec.replicas` of a deployment that has none (Kubernetes defaults it to 1).
pub const DEFAULT_REPLICAS: i64 = 1;

/// The target of "not found" answers: `deployments/scale.apps "web" not found`, as
/// kube-apiserver words them.
pub fn not_found_target(resource: &Resource, name: &str) -> Target {
    Target {
        resource: format!("{}/scale", resource.plural),
        group: resource.group.clone(),
        kind: KIND.into(),
        name: name.to_owned(),
    }
}

/// The target of validation answers about a Scale (`Scale "web" is invalid: ...`).
pub fn invalid_target(name: &str) -> Target {
    Target { resource: KIND.into(), group: "autoscaling".into(), kind: KIND.into(), name: name.to_owned() }
}

/// `spec.replicas` of a deployment (API shape): [`DEFAULT_REPLICAS`] when absent.
///
/// Errors: 500 when the stored value is not an integer (the API never stores one).
fn deployment_replicas(deployment: &Object) -> ApiResult<i64> {
    match deployment.fields.get("spec").and_then(|spec| spec.get("replicas")) {
        None | Some(Value::Null) => Ok(DEFAULT_REPLICAS),
        Some(value) => value.as_i64().ok_or_else(|| {
            ApiError::internal(format!(
                "deployment {:?} has a non-integer spec.replicas: {value}",
                deployment.metadata.name
            ))
        }),
    }
}

/// The deployment's `spec.selector` in label-selector syntax (`app=web,tier in (a,b)`),
/// requirements sorted by key as Kubernetes' `LabelSelectorAsSelector(...).String()`; ""
/// when there is no selector.
///
/// Errors: 400 for a selector that is not a valid `LabelSelector` (unknown operator,
/// `In`/`NotIn` without values, invalid keys or values).
pub fn selector_string(deployment: &Object) -> ApiResult<String> {
    let selector = match deployment.fields.get("spec").and_then(|spec| spec.get("selector")) {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::Object(selector)) => selector,
        Some(other) => return Err(ApiError::bad_request(format!("invalid label selector {other}: not an object"))),
    };
    let bad = |why: String| ApiError::bad_request(format!("invalid label selector: {why}"));
    let mut requirements = Vec::new();
    match selector.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (key, value) in labels {
                let value = value.as_str().ok_or_else(|| bad(format!("matchLabels[{key}] is not a string")))?;
                requirements.push(LabelRequirement { key: key.clone(), op: LabelOp::In(vec![value.to_owned()]) });
            }
        }
        Some(_) => return Err(bad("matchLabels is not a map of strings".into())),
    }
    let expressions = match selector.get("matchExpressions") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(expressions)) => expressions,
        Some(_) => return Err(bad("matchExpressions is not a list".into())),
    };
    for expression in expressions {
        let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
        let operator = expression.get("operator").and_then(Value::as_str).unwrap_or_default();
        let mut values: Vec<String> = match expression.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| bad(format!("a value of {key:?} is not a string")))
                })
                .collect::<ApiResult<_>>()?,
            Some(_) => return Err(bad(format!("the values of {key:?} are not a list"))),
        };
        values.sort();
        let op = match (operator, values.is_empty()) {
            ("In", false) => LabelOp::In(values),
            ("NotIn", false) => LabelOp::NotIn(values),
            ("Exists", true) => LabelOp::Exists,
            ("DoesNotExist", true) => LabelOp::DoesNotExist,
            ("In" | "NotIn", true) => return Err(bad(format!("{key:?}: values must be non-empty for {operator}"))),
            ("Exists" | "DoesNotExist", false) => {
                return Err(bad(format!("{key:?}: values must be empty for {operator}")))
            }
            (other, _) => return Err(bad(format!("{other:?} is not a valid label selector operator"))),
        };
        requirements.push(LabelRequirement { key: key.to_owned(), op });
    }
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    let text = LabelSelector { requirements }.to_string();
    // The selector parser checks keys and values as Kubernetes does.
    LabelSelector::parse(&text).map_err(|e| bad(e.to_string()))?;
    Ok(text)
}

/// A Scale's metadata: the scaled object's name, namespace, uid, resourceVersion and
/// creationTimestamp.
fn scale_metadata(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        creation_timestamp: meta.creation_timestamp.clone(),
        ..ObjectMeta::default()
    }
}

/// The Scale of a deployment (API shape).
///
/// Errors: 400 for an invalid `spec.selector`, 500 for a non-integer `spec.replicas`.
pub fn from_deployment(deployment: &Object) -> ApiResult<Object> {
    let replicas = deployment_replicas(deployment)?;
    let status_replicas =
        deployment.fields.get("status").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(0);
    Ok(scale_object(&deployment.metadata, replicas, status_replicas, &selector_string(deployment)?))
}

/// An autoscaling/v1 Scale; a zero `spec.replicas` and an empty selector are omitted
/// (`omitempty`).
fn scale_object(scaled: &ObjectMeta, replicas: i64, status_replicas: i64, selector: &str) -> Object {
    let metadata = scale_metadata(scaled);
    let mut spec = Map::new();
    if replicas != 0 {
        spec.insert("replicas".into(), json!(replicas));
    }
    let mut status = Map::new();
    status.insert("replicas".into(), json!(status_replicas));
    if !selector.is_empty() {
        status.insert("selector".into(), json!(selector));
    }
    let mut fields = Map::new();
    fields.insert("spec".into(), Value::Object(spec));
    fields.insert("status".into(), Value::Object(status));
    Object { api_version: API_VERSION.into(), kind: KIND.into(), metadata, fields }
}

/// Where a custom resource keeps what its Scale shows (a CRD's `subresources.scale`):
/// dotted JSON paths such as `.spec.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// `specReplicasPath`.
    pub spec_replicas: String,
    /// `statusReplicasPath`.
    pub status_replicas: String,
    /// `labelSelectorPath` (a string field holding the selector), if any.
    pub label_selector: Option<String>,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').filter(|s| !s.is_empty())
}

fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path).try_fold(object, |v, segment| v.get(segment))
}

/// The Scale of `object` (API shape): a deployment's, or a custom resource's through `paths`.
///
/// Errors: as [`from_deployment`]; 500 when a custom resource's replicas are not integers.
pub fn view(object: &Object, paths: Option<&ScalePaths>) -> ApiResult<Object> {
    let Some(paths) = paths else { return from_deployment(object) };
    let value = serde_json::to_value(object).map_err(|e| ApiError::internal(e.to_string()))?;
    let integer = |path: &str| -> ApiResult<i64> {
        match value_at(&value, path) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::internal(format!("{:?} has a non-integer {path}: {v}", object.metadata.name))),
        }
    };
    let selector = paths.label_selector.as_deref().and_then(|p| value_at(&value, p)).and_then(Value::as_str);
    Ok(scale_object(
        &object.metadata,
        integer(&paths.spec_replicas)?,
        integer(&paths.status_replicas)?,
        selector.unwrap_or_default(),
    ))
}

/// `object` (API shape) with its replicas set: a deployment's `spec.replicas`, or a custom
/// resource's at `paths.spec_replicas`; every other field untouched.
pub fn set_replicas(object: Object, replicas: i64, paths: Option<&ScalePaths>) -> Object {
    let Some(paths) = paths else { return with_replicas(object, replicas) };
    let Ok(mut value) = serde_json::to_value(&object) else { return object };
    let path: Vec<&str> = segments(&paths.spec_replicas).collect();
    let Some((last, parents)) = path.split_last() else { return object };
    let mut node = &mut value;
    for segment in parents {
        if !node.get(*segment).is_some_and(Value::is_object) {
            node[*segment] = json!({});
        }
        node = &mut node[*segment];
    }
    node[*last] = json!(replicas);
    serde_json::from_value(value).unwrap_or(object)
}

/// Decodes a Scale from a JSON value (a request body or a patch result).
///
/// Errors: 400 when it is not a JSON object, or its apiVersion or kind is not
/// autoscaling/v1 Scale.
pub fn decode(value: Value) -> ApiResult<Object> {
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    let scale: Object = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("unable to decode the request body as a {KIND}: {e}")))?;
    if scale.kind.is_empty() {
        return Err(ApiError::bad_request("Object 'Kind' is missing in the request body"));
    }
    if scale.kind != KIND || scale.api_version != API_VERSION {
        return Err(ApiError::bad_request(format!(
            "the body is a {} {}, expected a {API_VERSION} {KIND}",
            scale.api_version, scale.kind
        )));
    }
    Ok(scale)
}

/// The `spec.replicas` a Scale asks for: 0 when absent (Go's zero value, as kube decodes it).
///
/// Errors: 400 when it is not an int32 (kube's decoding error), 422 when it is negative
/// (`spec.replicas: Invalid value: -1: must be greater than or equal to 0`).
pub fn requested_replicas(scale: &Object) -> ApiResult<i64> {
    let value = match scale.fields.get("spec") {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Object(spec)) => spec.get("replicas").cloned().unwrap_or(Value::Null),
        Some(other) => return Err(ApiError::bad_request(format!("{KIND} spec must be an object, got {other}"))),
    };
    if value.is_null() {
        return Ok(0);
    }
    let replicas = value
        .as_i64()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| ApiError::bad_request(format!("{KIND} spec.replicas must be a 32-bit integer, got {value}")))?;
    if replicas < 0 {
        return Err(ApiError::invalid_value(
            &invalid_target(&scale.metadata.name),
            "spec.replicas",
            &value,
            "must be greater than or equal to 0",
        ));
    }
    Ok(replicas)
}

/// The deployment (API shape) with `spec.replicas` set; every other field untouched.
pub fn with_replicas(mut deployment: Object, replicas: i64) -> Object {
    let spec = deployment.fields.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["replicas"] = json!(replicas);
    deployment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(fields: Value) -> Object {
        let mut d = Object::new("apps/v1", "Deployment", "default", "web");
        d.metadata.uid = "u-1".into();
        d.metadata.resource_version = "7".into();
        d.metadata.creation_timestamp = Some("2026-11-27T00:00:00Z".into());
        d.metadata.labels.insert("app".into(), "web".into());
        if let Value::Object(map) = fields {
            d.fields = map;
        }
        d
    }

    #[test]
    fn scale_of_a_deployment() {
        let d = deployment(json!({
            "spec": {"replicas": 3, "selector": {"matchLabels": {"tier": "front", "app": "web"}}},
            "status": {"replicas": 2},
        }));
        let scale = serde_json::to_value(from_deployment(&d).expect("scale")).expect("json");
        assert_eq!(
            scale,
            json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
                             "creationTimestamp": "2026-11-27T00:00:00Z"},
                "spec": {"replicas": 3},
                "status": {"replicas": 2, "selector": "app=web,tier=front"},
            })
        );
    }

    #[test]
    fn defaults_and_zero() {
        let scale = from_deployment(&deployment(json!({"spec": {}}))).expect("scale");
        assert_eq!(scale.fields["spec"], json!({"replicas": 1}), "absent spec.replicas defaults to 1");
        assert_eq!(scale.fields["status"], json!({"replicas": 0}), "no status, no selector");
        let zero = from_deployment(&deployment(json!({"spec": {"replicas": 0}}))).expect("scale");
        assert_eq!(zero.fields["spec"], json!({}), "autoscaling/v1 omits a zero spec.replicas");
        assert_eq!(requested_replicas(&zero).expect("zero"), 0);
        let broken = from_deployment(&deployment(json!({"spec": {"replicas": "x"}})));
        assert_eq!(broken.expect_err("non-integer").code(), 500);
    }

    #[test]
    fn selector_expressions_render_sorted() {
        let d = deployment(json!({"spec": {"selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["dev", "ci"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
            ],
        }}}));
        assert_eq!(selector_string(&d).expect("selector"), "app=web,!canary,env notin (ci,dev),tier in (a,b),zone");
        let bad_op =
            deployment(json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}}));
        assert_eq!(selector_string(&bad_op).expect_err("bad operator").code(), 400);
        let no_values =
            deployment(json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}));
        assert_eq!(selector_string(&no_values).expect_err("In without values").code(), 400);
        let bad_key = deployment(json!({"spec": {"selector": {"matchLabels": {"-a": "b"}}}}));
        assert_eq!(selector_string(&bad_key).expect_err("invalid key").code(), 400);
    }

    #[test]
    fn requested_replicas_are_validated() {
        let scale = |spec: Value| {
            decode(json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": spec}))
                .expect("a Scale")
        };
        assert_eq!(requested_replicas(&scale(json!({"replicas": 4}))).expect("4"), 4);
        assert_eq!(requested_replicas(&scale(json!({}))).expect("absent"), 0);
        let negative = requested_replicas(&scale(json!({"replicas": -1}))).expect_err("negative");
        assert_eq!(negative.code(), 422);
        assert_eq!(
            negative.message,
            "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        for bad in [json!({"replicas": "3"}), json!({"replicas": 1.5}), json!({"replicas": 3_000_000_000_i64})] {
            assert_eq!(requested_replicas(&scale(bad.clone())).expect_err("not an int32").code(), 400, "{bad}");
        }
        assert_eq!(decode(json!({"apiVersion": "apps/v1", "kind": "Deployment"})).expect_err("kind").code(), 400);
        assert_eq!(decode(json!({"apiVersion": "autoscaling/v1"})).expect_err("no kind").code(), 400);
        assert_eq!(decode(json!([1])).expect_err("not an object").code(), 400);
    }

    #[test]
    fn with_replicas_touches_only_spec_replicas() {
        let d = deployment(json!({"spec": {"replicas": 2, "template": {"x": 1}}, "status": {"replicas": 2}}));
        let scaled = with_replicas(d.clone(), 5);
        assert_eq!(scaled.fields["spec"], json!({"replicas": 5, "template": {"x": 1}}));
        assert_eq!(scaled.fields["status"], d.fields["status"]);
        assert_eq!(scaled.metadata, d.metadata);
        let bare = with_replicas(deployment(json!({})), 0);
        assert_eq!(bare.fields["spec"], json!({"replicas": 0}));
    }
}
