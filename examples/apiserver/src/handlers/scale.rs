//! The `scale` subresource's verbs (get, update, patch) over the storage's guaranteed
//! update: only `spec.replicas` of the object changes (see [`crate::scale`]).

use apistore::storage::{GetOptions, Preconditions, ResourceVersion};
use apistore::Object;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::patch::{apply_patch, check_patch_json, PatchKind};
use super::update::build_update;
use super::{check_body_resource_version, respond, uid_precondition, Context};
use crate::codec;
use crate::negotiation::Output;
use crate::patch::PatchType;
use crate::scale;
use crate::status::{ApiError, ApiResult, Reason};

impl Context<'_> {
    /// `GET .../<name>/scale`: the Scale of the object.
    ///
    /// Errors: 404 `deployments/scale.apps "<name>" not found` when the object is missing.
    pub(super) async fn get_scale(&self, name: &str, output: Output) -> ApiResult<Response> {
        let not_found = || ApiError::not_found(&scale::not_found_target(self.resource(), name));
        let key = self.key(name).map_err(|_| not_found())?;
        let resource_version =
            ResourceVersion::parse_read(self.param("resourceVersion")).map_err(self.storage_error(name))?;
        let options = GetOptions { ignore_not_found: true, resource_version };
        let object = self.resource().storage.get(&key, options).await.map_err(self.storage_error(name))?;
        let object = object.ok_or_else(not_found)?;
        let scale = scale::view(&self.resource().served(object), self.resource().strategy.scale_paths().as_ref())?;
        Ok(respond(StatusCode::OK, &serde_json::to_value(scale).unwrap_or_default(), output))
    }

    /// `PUT .../<name>/scale`: sets `spec.replicas` from a Scale body. The body's
    /// resourceVersion (when set) and uid (when set) are preconditions.
    pub(super) async fn update_scale(&self, name: &str, body: &[u8], output: Output) -> ApiResult<Response> {
        let value: Value = codec::parse(body, self.body_format()?)?;
        let mut requested = scale::decode(value)?;
        self.check_namespace(&mut requested)?;
        if requested.metadata.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                requested.metadata.name
            )));
        }
        check_body_resource_version(self.resource(), name, &requested.metadata.resource_version)?;
        let preconditions = uid_precondition(&requested);
        self.scale_update(name, preconditions, &|_current| Ok(requested.clone()), output).await
    }

    /// `PATCH .../<name>/scale`: a merge, JSON or strategic merge patch (server-side apply
    /// counts as the latter) applied to the current Scale; its `spec.replicas` is written.
    pub(super) async fn patch_scale(&self, name: &str, body: &[u8], output: Output) -> ApiResult<Response> {
        let patch_type = match self.patch_kind()? {
            PatchKind::Apply => PatchType::StrategicMerge,
            PatchKind::Patch(patch_type) => patch_type,
        };
        check_patch_json(body)?;
        self.scale_update(
            name,
            None,
            &|current| {
                let patched = apply_patch(patch_type, &current, body, scale::KIND, name)?;
                let patched = scale::decode(patched).map_err(|e| {
                    ApiError::invalid(
                        &scale::invalid_target(name),
                        "",
                        "",
                        &format!("the patched object: {}", e.message),
                    )
                })?;
                if patched.metadata.name != name {
                    return Err(ApiError::invalid(
                        &scale::invalid_target(name),
                        "metadata.name",
                        &patched.metadata.name,
                        "field is immutable",
                    ));
                }
                Ok(patched)
            },
            output,
        )
        .await
    }

    /// Writes the `spec.replicas` of the Scale that `new_scale` computes from the current
    /// Scale, through the storage's guaranteed update (no lost update; every other field of
    /// the object kept), and answers with the resulting Scale.
    ///
    /// Errors: 404 for a missing object, 409 when the new Scale's resourceVersion is stale,
    /// 422 for negative replicas, and what `new_scale` rejects with.
    async fn scale_update(
        &self,
        name: &str,
        preconditions: Option<Preconditions>,
        new_scale: &(dyn Fn(Object) -> ApiResult<Object> + Send + Sync),
        output: Output,
    ) -> ApiResult<Response> {
        let resource = self.resource().clone();
        let paths = resource.strategy.scale_paths();
        let manager = self.manager(Some("scale"))?;
        let updated = self
            .guaranteed_update(name, preconditions, &|existing| {
                let object = resource.served(existing.clone());
                let requested = new_scale(scale::view(&object, paths.as_ref())?)?;
                let replicas = scale::requested_replicas(&requested)?;
                let expected_rv = requested.metadata.resource_version.clone();
                build_update(
                    &resource,
                    existing,
                    scale::set_replicas(object, replicas, paths.as_ref()),
                    &expected_rv,
                    false,
                    Some(&manager),
                )
            })
            .await
            .map_err(|e| {
                if e.reason == Reason::NOT_FOUND {
                    ApiError::not_found(&scale::not_found_target(&resource, name))
                } else {
                    e
                }
            })?;
        let scale = scale::view(&resource.served(updated), paths.as_ref())?;
        Ok(respond(StatusCode::OK, &serde_json::to_value(scale).unwrap_or_default(), output))
    }
}
