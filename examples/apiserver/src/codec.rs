//! Request bodies in, responses out: the decoding and encoding half of kube-apiserver's
//! request handling (k8s.io/apiserver `pkg/endpoints/handlers/create.go`, `update.go`,
//! `rest.go`; apimachinery `runtime/serializer/json`).
//!
//! A body is decoded once, in the format its `Content-Type` names, into a JSON value. The
//! endpoint's group/version/kind is the decode default: a missing `apiVersion` or `kind` is
//! filled from the URL (so `{"metadata":{"name":"x"},"data":{...}}` creates a ConfigMap, as
//! every official client relies on), and one that names another type is a 400 worded as kube
//! words it. Custom resources decode as kube's unstructured objects: they must name their kind.

use apistore::Object;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::negotiation::Format;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};
use crate::validation::FieldError;

/// The group/version/kind an endpoint decodes and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gvk<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Version, e.g. `v1`.
    pub version: &'a str,
    /// Kind, e.g. `ConfigMap`.
    pub kind: &'a str,
}

impl Gvk<'_> {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Parses a request body in `format` into a JSON value.
///
/// Errors: 400 naming the parse failure (`couldn't get version/kind; json parse error: ...`,
/// as kube's decoder reports it; YAML errors name line and column).
pub fn parse(body: &[u8], format: Format) -> ApiResult<Value> {
    match format {
        Format::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))),
        Format::Yaml => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))),
    }
}

/// Splits `apiVersion` into group and version (`v1` → ("", "v1")).
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// The internal API group kube converts a built-in type to (`core` for the legacy group),
/// used in its conversion error message.
fn internal_group(group: &str) -> &str {
    match group {
        "" => "core",
        other => other.split('.').next().unwrap_or(other),
    }
}

/// Decodes an object body for `resource`: a JSON object whose `apiVersion` and `kind`
/// default to the endpoint's and must match it when set.
///
/// Errors (kube's wording, k8s.io/apiserver `handlers/rest.go` `transformDecodeError`):
/// - not an object: 400;
/// - built-in resource, another kind: 400 `<Kind> in version "<v>" cannot be handled as a
///   <Expected>: converting (<v>.<Kind>) to (<group>.<Expected>): unknown conversion`;
/// - built-in resource, same kind in another version of the group: 400 `the API version in
///   the data (<x>) does not match the expected API version (<y>)`;
/// - built-in resource, a version the server does not know: 400 `... no kind "<Kind>" is
///   registered for version "<x>" in scheme ...`;
/// - custom resource without `kind`: 400 `Object 'Kind' is missing in '<body>'`; with another
///   kind: 422 `kind: Invalid value: "<Kind>": must be <Expected>`.
pub fn decode_object(body: &[u8], format: Format, resource: &Resource) -> ApiResult<Value> {
    let mut value = parse(body, format)?;
    default_and_check_gvk(&mut value, resource, body)?;
    Ok(value)
}

/// Fills and checks `apiVersion` and `kind` of a decoded body (see [`decode_object`]).
pub fn default_and_check_gvk(value: &mut Value, resource: &Resource, body: &[u8]) -> ApiResult<()> {
    let expected = resource.gvk();
    let Some(map) = value.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: the request body is not an object",
            expected.kind, expected.version, expected.kind
        )));
    };
    let string = |map: &serde_json::Map<String, Value>, field: &str| -> ApiResult<String> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: {field} must be a string, got {other}"
            ))),
        }
    };
    let mut kind = string(map, "kind")?;
    let mut api_version = string(map, "apiVersion")?;
    let name = map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_owned();
    default_and_check_type(&mut api_version, &mut kind, &name, resource, body)?;
    map.insert("apiVersion".into(), Value::String(api_version));
    map.insert("kind".into(), Value::String(kind));
    Ok(())
}

/// Decodes an object body straight into an [`Object`] (one parse) and fills and checks its
/// `apiVersion` and `kind` as [`decode_object`] does. A body that does not decode as an
/// object takes [`decode_object`]'s path, so every error reads as kube's.
///
/// Errors: those of [`decode_object`], and 400 when the decoded body does not fit an object.
pub fn decode_typed(body: &[u8], format: Format, resource: &Resource) -> ApiResult<Object> {
    let parsed = match format {
        Format::Json => serde_json::from_slice::<Object>(body).ok(),
        Format::Yaml => serde_yaml::from_slice::<Object>(body).ok(),
    };
    if let Some(mut object) = parsed {
        let name = object.metadata.name.clone();
        default_and_check_type(&mut object.api_version, &mut object.kind, &name, resource, body)?;
        return Ok(object);
    }
    let value = decode_object(body, format, resource)?;
    serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            resource.kind, resource.version, resource.kind
        ))
    })
}

/// Fills and checks a body's `apiVersion` and `kind` (strings, empty when unset) against
/// `resource`; `name` is the body's `metadata.name` (for a 422's target).
fn default_and_check_type(
    api_version: &mut String,
    kind: &mut String,
    name: &str,
    resource: &Resource,
    body: &[u8],
) -> ApiResult<()> {
    let expected = resource.gvk();
    if resource.is_custom() {
        if kind.is_empty() {
            let shown = String::from_utf8_lossy(body);
            return Err(ApiError::bad_request(format!("Object 'Kind' is missing in '{}'", shown.trim())));
        }
        if *kind != expected.kind {
            return Err(ApiError::invalid_fields(
                &resource.target(name),
                &[FieldError::invalid("kind", Value::String(kind.clone()), format!("must be {}", expected.kind))],
            ));
        }
    }
    let (body_group, body_version) =
        if api_version.is_empty() { (expected.group, expected.version) } else { split_api_version(api_version) };
    let body_kind = if kind.is_empty() { expected.kind } else { kind.as_str() };
    let shown_version = if api_version.is_empty() { expected.api_version() } else { api_version.clone() };
    if body_group == expected.group && body_version == expected.version {
        if body_kind != expected.kind {
            return Err(ApiError::bad_request(format!(
                "{body_kind} in version {body_version:?} cannot be handled as a {}: converting ({body_version}.{body_kind}) to ({}.{}): unknown conversion",
                expected.kind,
                internal_group(expected.group),
                expected.kind
            )));
        }
    } else if body_group == expected.group && body_kind == expected.kind && resource.served_version(body_version) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({shown_version}) does not match the expected API version ({})",
            expected.api_version()
        )));
    } else {
        return Err(ApiError::bad_request(format!(
            "{body_kind} in version {body_version:?} cannot be handled as a {}: no kind {body_kind:?} is registered for version {shown_version:?} in scheme \"k8s.io/apiserver/pkg/runtime/scheme.go:100\"",
            expected.kind
        )));
    }
    *api_version = expected.api_version();
    expected.kind.clone_into(kind);
    Ok(())
}

/// Serializes `value` (a JSON value, or an [`Object`] encoded straight) in `format`.
pub fn encode<T: serde::Serialize + ?Sized>(value: &T, format: Format) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(value).unwrap_or_default(),
        Format::Yaml => serde_yaml::to_string(value).map(String::into_bytes).unwrap_or_default(),
    }
}

/// A response of `code` carrying `value` in `format`.
pub fn respond<T: serde::Serialize + ?Sized>(code: StatusCode, value: &T, format: Format) -> Response {
    let body = encode(value, format);
    let mut response = (code, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_parse_to_the_same_value() {
        let json = parse(br#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#, Format::Json).unwrap();
        let yaml = parse(b"metadata:\n  name: a\ndata:\n  k: v\n", Format::Yaml).unwrap();
        assert_eq!(json, yaml);
        let bad = parse(b"metadata: [unclosed", Format::Yaml).unwrap_err();
        assert_eq!(bad.code(), 400);
        assert!(bad.message.contains("line"), "{}", bad.message);
        let bad = parse(b"{not json", Format::Json).unwrap_err();
        assert!(bad.message.starts_with("couldn't get version/kind; json parse error"), "{}", bad.message);
    }

    #[test]
    fn yaml_encoding_round_trips() {
        let value = serde_json::json!({"kind": "ConfigMap", "data": {"a": "1", "b": "x: y"}});
        let yaml = encode(&value, Format::Yaml);
        assert_eq!(parse(&yaml, Format::Yaml).unwrap(), value);
    }
}
