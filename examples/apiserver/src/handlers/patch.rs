//! `PATCH` of an object: kube's `patchHandler` — JSON patch (RFC 6902), merge patch
//! (RFC 7386), strategic merge patch (built-in kinds only) and server-side apply
//! (`application/apply-patch+yaml`).

use apistore::Object;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::update::build_update;
use super::{respond, Context};
use crate::codec;
use crate::managedfields::{self, ApplyError};
use crate::negotiation::{self, Format, Output};
use crate::patch::{self, PatchError, PatchType};
use crate::status::{ApiError, ApiResult, Reason};
use crate::validation::FieldError;

/// The `Content-Type` of server-side apply.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// How a PATCH body is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PatchKind {
    /// A JSON, merge or strategic merge patch.
    Patch(PatchType),
    /// Server-side apply.
    Apply,
}

impl Context<'_> {
    /// The patch kind of the request's `Content-Type`.
    ///
    /// Errors: 415 listing the patch media types this resource accepts (strategic merge
    /// patch is not served for custom resources, as in kube).
    pub(super) fn patch_kind(&self) -> ApiResult<PatchKind> {
        let media = negotiation::media_type(&self.request.content_type);
        let custom = self.resource().is_custom();
        match media.as_str() {
            APPLY_PATCH => Ok(PatchKind::Apply),
            "application/strategic-merge-patch+json" if custom => Err(self.unsupported_patch()),
            other => PatchType::from_content_type(other).map(PatchKind::Patch).ok_or_else(|| self.unsupported_patch()),
        }
    }

    fn unsupported_patch(&self) -> ApiError {
        let mut accepted = vec!["application/json-patch+json", "application/merge-patch+json"];
        if !self.resource().is_custom() {
            accepted.push("application/strategic-merge-patch+json");
        }
        accepted.push(APPLY_PATCH);
        ApiError::unsupported_media_type(&accepted)
    }

    pub(super) async fn patch(&self, name: &str, body: &[u8], status_sub: bool, output: Output) -> ApiResult<Response> {
        let kind = self.patch_kind()?;
        let force = self.flag("force")?;
        match kind {
            PatchKind::Apply => {
                if self.param("fieldManager").is_empty() {
                    return Err(patch_options_invalid(FieldError::required(
                        "fieldManager",
                        "is required for apply patch",
                    )));
                }
                self.server_side_apply(name, body, force, status_sub, output).await
            }
            PatchKind::Patch(patch_type) => {
                if !self.param("force").is_empty() {
                    return Err(patch_options_invalid(FieldError::forbidden(
                        "force",
                        "may not be specified for non-apply patch",
                    )));
                }
                let updated = self.patch_with(name, patch_type, body, status_sub).await?;
                Ok(respond(StatusCode::OK, &serde_json::to_value(updated).unwrap_or_default(), output))
            }
        }
    }

    /// Applies a JSON, merge or strategic patch to the stored object; returns it as served.
    pub(super) async fn patch_with(
        &self,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        status_sub: bool,
    ) -> ApiResult<Object> {
        let resource = self.resource().clone();
        check_patch_json(body)?;
        let path_namespace = self.target.namespace.clone();
        let manager = self.manager(status_sub.then_some("status"))?;
        let updated = self
            .guaranteed_update(name, None, &|existing| {
                let current = resource.served(existing.clone());
                let patched = apply_patch(patch_type, &current, body, &resource.kind, name)?;
                let patched = self.patched_object(patched, &existing, &path_namespace)?;
                self.check_unknown_fields(&patched, true)?;
                let rv = patched.metadata.resource_version.clone();
                build_update(&resource, existing, patched, &rv, status_sub, Some(&manager))
            })
            .await?;
        Ok(resource.served(updated))
    }

    /// A patch result as an object of this resource whose identity did not change.
    ///
    /// Errors: 400 when apiVersion or kind changed, 422 when name, namespace or uid did.
    fn patched_object(&self, patched: Value, existing: &Object, path_namespace: &str) -> ApiResult<Object> {
        let resource = self.resource();
        let name = &existing.metadata.name;
        let target = resource.target(name);
        let patched: Object = serde_json::from_value(patched).map_err(|e| {
            ApiError::invalid(&target, "", "", &format!("the patched object is not a valid {}: {e}", resource.kind))
        })?;
        if patched.kind != resource.kind || patched.api_version != resource.api_version() {
            return Err(ApiError::bad_request("a patch may not change apiVersion or kind"));
        }
        for (field, now, was) in [
            ("metadata.name", &patched.metadata.name, name),
            ("metadata.uid", &patched.metadata.uid, &existing.metadata.uid),
        ] {
            if now != was {
                return Err(ApiError::invalid(&target, field, now, "field is immutable"));
            }
        }
        if resource.namespaced && patched.metadata.namespace != path_namespace {
            return Err(ApiError::invalid(
                &target,
                "metadata.namespace",
                &patched.metadata.namespace,
                "field is immutable",
            ));
        }
        Ok(patched)
    }

    /// Server-side apply of the configuration in `body` (YAML or JSON) by the request's
    /// field manager: merged into the live object by the kind's schema, fields this manager
    /// applied before and now omits removed unless another manager owns them, another
    /// manager's fields taken only with `force` (else 409 naming them); a missing object is
    /// created (201).
    async fn server_side_apply(
        &self,
        name: &str,
        body: &[u8],
        force: bool,
        status_sub: bool,
        output: Output,
    ) -> ApiResult<Response> {
        let resource = self.resource().clone();
        let config = self.apply_configuration(name, body)?;
        self.check_unknown_fields(&self.object_from(config.clone())?, false)?;
        let manager = self.manager(status_sub.then_some("status"))?;
        let schema = resource.merge_schema();
        if !status_sub && self.current(name).await?.is_none() {
            let applied = managedfields::apply(None, &config, &manager, force, schema).map_err(apply_error)?;
            let mut object = self.object_from(applied)?;
            object.metadata.name = name.to_owned();
            match self.create_object(object, None).await {
                Ok(created) => {
                    return Ok(respond(StatusCode::CREATED, &serde_json::to_value(created).unwrap_or_default(), output))
                }
                // Created meanwhile: apply to it.
                Err(e) if e.reason == Reason::ALREADY_EXISTS => {}
                Err(e) => return Err(e),
            }
        }
        let expected_rv = config
            .get("metadata")
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let path_namespace = self.target.namespace.clone();
        let updated = self
            .guaranteed_update(name, None, &|existing| {
                let live = serde_json::to_value(resource.served(existing.clone()))
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                let applied =
                    managedfields::apply(Some(&live), &config, &manager, force, schema).map_err(apply_error)?;
                let applied = self.patched_object(applied, &existing, &path_namespace)?;
                build_update(&resource, existing, applied, &expected_rv, status_sub, None)
            })
            .await?;
        let updated = resource.served(updated);
        Ok(respond(StatusCode::OK, &serde_json::to_value(updated).unwrap_or_default(), output))
    }

    /// Decodes an apply configuration: YAML (JSON is YAML) naming this resource's apiVersion
    /// and kind, for object `name`.
    ///
    /// Errors: 400 for bad YAML (`error decoding patch: ...`), a wrong version (`Incorrect
    /// version specified in apply patch. Specified patch version: <x>, expected: <y>`), a
    /// wrong kind, a name that differs from the URL's.
    pub(super) fn apply_configuration(&self, name: &str, body: &[u8]) -> ApiResult<Value> {
        let resource = self.resource();
        let config = codec::parse(body, Format::Yaml)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {}", e.message)))?;
        let Some(map) = config.as_object() else {
            return Err(ApiError::bad_request("error decoding patch: the apply configuration must be an object"));
        };
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if api_version != resource.api_version() {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {api_version}, expected: {}",
                resource.api_version()
            )));
        }
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != resource.kind {
            return Err(ApiError::bad_request(format!(
                "Incorrect kind specified in apply patch. Specified patch kind: {kind}, expected: {}",
                resource.kind
            )));
        }
        let config_name = map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
        if !config_name.is_empty() && config_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        Ok(config)
    }
}

/// The Status of a failed apply: 409 Conflict with one `FieldManagerConflict` cause per
/// conflicting field, 400 for a bad configuration, 500 for broken stored managedFields.
fn apply_error(error: ApplyError) -> ApiError {
    let message = error.message();
    match error.code() {
        409 => {
            let causes: Vec<Value> = error
                .causes()
                .into_iter()
                .map(|c| serde_json::json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                .collect();
            let mut e = ApiError::new(Reason::CONFLICT, message);
            e.details = Some(serde_json::json!({ "causes": causes }));
            e
        }
        400 => ApiError::bad_request(message),
        _ => ApiError::internal(message),
    }
}

/// 422 on `PatchOptions.meta.k8s.io`.
fn patch_options_invalid(error: FieldError) -> ApiError {
    super::options_invalid("PatchOptions", error)
}

/// A malformed patch is a 400 whether or not the object exists.
pub(super) fn check_patch_json(body: &[u8]) -> ApiResult<()> {
    serde_json::from_slice::<Value>(body)
        .map(drop)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a patch to `current` (API shape) of kind `kind`.
///
/// Errors: 400 for a malformed patch or a result that is not a JSON object, 422
/// `<kind> "<name>" is invalid` for a patch that does not apply.
pub(super) fn apply_patch(
    patch_type: PatchType,
    current: &Object,
    body: &[u8],
    kind: &str,
    name: &str,
) -> ApiResult<Value> {
    let current = serde_json::to_value(current).map_err(|e| ApiError::internal(e.to_string()))?;
    let patched = patch::apply(patch_type, current, body).map_err(|e| match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::Inapplicable(m) => ApiError::new(Reason::INVALID, format!("{kind} {name:?} is invalid: {m}")),
    })?;
    if !patched.is_object() {
        return Err(ApiError::bad_request("the patched object is not a JSON object"));
    }
    Ok(patched)
}
