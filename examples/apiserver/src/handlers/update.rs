//! `PUT` of an object, and the guaranteed update every write of an existing object goes
//! through: kube's `updateHandler` + `rest.BeforeUpdate`.

use apistore::storage::{allow_all_deletions, DeleteOptions, Preconditions};
use apistore::{Error, Object};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{check_body_resource_version, respond, uid_precondition, Context, MODIFIED_MESSAGE};
use crate::managedfields::Manager;
use crate::negotiation::Output;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

/// What a guaranteed update's builder decided when it did not write.
enum Aborted {
    /// `dryRun=All`: the object that would have been written.
    DryRun(Box<Object>),
    /// The builder rejected the update (validation, conflict, bad patch).
    Rejected(ApiError),
}

impl Context<'_> {
    pub(super) async fn update(
        &self,
        name: &str,
        body: &[u8],
        status_sub: bool,
        output: Output,
    ) -> ApiResult<Response> {
        let resource = self.resource().clone();
        let mut object = self.decode(body)?;
        self.check_unknown_fields(&object, false)?;
        self.check_namespace(&mut object)?;
        if object.metadata.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object.metadata.name
            )));
        }
        let body_rv = object.metadata.resource_version.clone();
        check_body_resource_version(&resource, name, &body_rv)?;
        let preconditions = uid_precondition(&object);
        let manager = self.manager(status_sub.then_some("status"))?;
        let updated = self
            .guaranteed_update(name, preconditions, &|existing| {
                build_update(&resource, existing, object.clone(), &body_rv, status_sub, Some(&manager))
            })
            .await?;
        Ok(respond(StatusCode::OK, &resource.served(updated), output))
    }

    /// Runs an update of `name` whose new state (storage shape) `build` computes from the
    /// stored object (storage shape), retried on conflict by the storage. A rejection of
    /// `build` comes back as it is; with `dryRun=All` nothing is written and the would-be
    /// object is returned with the stored resourceVersion.
    ///
    /// Errors: 404 when the object is missing, storage errors, what `build` rejects with.
    pub(super) async fn guaranteed_update(
        &self,
        name: &str,
        preconditions: Option<Preconditions>,
        build: &(dyn Fn(Object) -> ApiResult<Object> + Send + Sync),
    ) -> ApiResult<Object> {
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let dry_run = self.dry_run()?;
        let mut aborted: Option<Aborted> = None;
        // Every write renews the TTL, as kube's event strategy does.
        let ttl = (self.resource().ttl_seconds > 0).then_some(self.resource().ttl_seconds);
        let result = self
            .resource()
            .storage
            .guaranteed_update(
                &key,
                false,
                preconditions.as_ref(),
                &mut |existing, _meta| {
                    let existing_rv = existing.metadata.resource_version.clone();
                    match build(existing) {
                        Ok(mut updated) if dry_run => {
                            updated.metadata.resource_version = existing_rv;
                            aborted = Some(Aborted::DryRun(Box::new(updated)));
                            Err(Error::Aborted { message: "dry run".into() })
                        }
                        Ok(updated) => Ok((updated, ttl)),
                        Err(rejection) => {
                            aborted = Some(Aborted::Rejected(rejection));
                            Err(Error::Aborted { message: "rejected".into() })
                        }
                    }
                },
                None,
            )
            .await;
        let updated = match (result, aborted) {
            (Err(Error::Aborted { .. }), Some(Aborted::DryRun(object))) => return Ok(*object),
            (Err(Error::Aborted { .. }), Some(Aborted::Rejected(rejection))) => return Err(rejection),
            (result, _) => result.map_err(self.storage_error(name))?,
        };
        let meta = &updated.metadata;
        if meta.deletion_timestamp.is_some() && meta.finalizers.is_empty() {
            // The last finalizer is gone: the object goes (kube's Store.Update
            // `shouldDeleteDuringUpdate`), unless it changed again meanwhile.
            let preconditions = Preconditions { uid: None, resource_version: updated.resource_version().ok() };
            match self
                .resource()
                .storage
                .delete(&key, Some(&preconditions), &allow_all_deletions, None, DeleteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.reason() == apistore::StatusReason::Conflict => {}
                Err(e) => return Err(ApiError::from_storage(e, &self.resource().target(name))),
            }
        }
        Ok(updated)
    }
}

/// The new stored state of an update (kube's `rest.BeforeUpdate`): `new` (API shape) over
/// `existing` (storage shape).
///
/// Keeps what clients may not change (uid, creationTimestamp, deletion fields), keeps status
/// on the main resource and everything but status on `/status`, bumps `generation` on spec
/// changes, runs the kind's `PrepareForUpdate` and validation.
///
/// Errors: 409 Conflict when `expected_rv` is set and stale; 422 from validation.
pub(super) fn build_update(
    resource: &Resource,
    existing: Object,
    new: Object,
    expected_rv: &str,
    status_sub: bool,
    manager: Option<&Manager>,
) -> ApiResult<Object> {
    let target = resource.target(&existing.metadata.name);
    if !expected_rv.is_empty() && expected_rv != existing.metadata.resource_version {
        return Err(ApiError::conflict(&target, MODIFIED_MESSAGE));
    }
    let old = resource.served(existing);
    let mut updated = if status_sub {
        let mut updated = old.clone();
        match new.fields.get("status") {
            Some(status) => updated.fields.insert("status".into(), status.clone()),
            None => updated.fields.remove("status"),
        };
        updated
    } else {
        let mut updated = new;
        if resource.has_status() {
            match old.fields.get("status") {
                Some(status) => updated.fields.insert("status".into(), status.clone()),
                None => updated.fields.remove("status"),
            };
        }
        updated
    };
    let meta = &mut updated.metadata;
    meta.uid.clone_from(&old.metadata.uid);
    meta.name.clone_from(&old.metadata.name);
    meta.namespace.clone_from(&old.metadata.namespace);
    meta.creation_timestamp.clone_from(&old.metadata.creation_timestamp);
    meta.deletion_timestamp.clone_from(&old.metadata.deletion_timestamp);
    meta.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds;
    meta.resource_version.clear();
    meta.self_link.clear();
    meta.generation = old.metadata.generation;
    if !status_sub {
        resource.strategy.prepare_for_update(&mut updated, &old);
    }
    if resource.tracks_generation() {
        let spec = |o: &Object| -> Vec<(String, Value)> {
            o.fields.iter().filter(|(k, _)| k.as_str() != "status").map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        if spec(&updated) != spec(&old) {
            updated.metadata.generation = old.metadata.generation.max(0) + 1;
        }
    }
    resource.validate(&updated, Some(&old))?;
    if let Some(manager) = manager {
        updated = resource.track_write(Some(&old), updated, manager)?;
    }
    Ok(resource.to_storage(updated))
}
