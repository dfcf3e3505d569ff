//! `DELETE` of an object (with preconditions in `DeleteOptions`) and of a collection
//! (deletecollection, with the list's selectors).

use apistore::storage::{allow_all_deletions, DeleteOptions, GetOptions, Preconditions};
use apistore::Object;
use apistore::{names, version};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{respond, Context};
use crate::clock;
use crate::codec;
use crate::namespaces;
use crate::negotiation::{Format, Output};
use crate::status::{success_status, ApiError, ApiResult};

/// A delete's preconditions, parsed (the resourceVersion as a revision), and the client's
/// resourceVersion text when it is no revision: then no object matches (Kubernetes compares the
/// texts) and the delete is answered as Kubernetes does, 404 for a missing object and 409
/// Conflict for an existing one ([`Context::unmatchable_precondition`]).
type DeletePreconditions = (Option<Preconditions>, Option<String>);

impl Context<'_> {
    fn delete_preconditions(body: &[u8], format: Format) -> ApiResult<DeletePreconditions> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok((None, None));
        }
        let options: Value = codec::parse(body, format).map_err(|e| {
            ApiError::bad_request(format!("the DeleteOptions body could not be decoded: {}", e.message))
        })?;
        let Some(options) = options.as_object() else {
            return Err(ApiError::bad_request("the DeleteOptions body must be a JSON object"));
        };
        if let Some(kind) = options.get("kind").and_then(Value::as_str) {
            if kind != "DeleteOptions" {
                return Err(ApiError::bad_request(format!("expected a DeleteOptions body, got kind {kind:?}")));
            }
        }
        let Some(pre) = options.get("preconditions").filter(|p| !p.is_null()) else {
            return Ok((None, None));
        };
        let field = |name: &str| -> ApiResult<Option<String>> {
            match pre.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::bad_request(format!("preconditions.{name} must be a string"))),
            }
        };
        let text = field("resourceVersion")?;
        let resource_version = text.as_deref().and_then(version::parse_precondition);
        let unmatchable = text.filter(|_| resource_version.is_none());
        Ok((Some(Preconditions { uid: field("uid")?, resource_version }), unmatchable))
    }

    /// Kubernetes' answer to a delete of `object` (None: missing) whose precondition's
    /// resourceVersion `text` is no revision: 404 for a missing object; else 409 Conflict (its
    /// `BeforeDelete`, which checks a precondition's UID first: "the UID in the precondition
    /// (…) does not match the UID in record (…)", then "the ResourceVersion in the
    /// precondition (…) does not match the ResourceVersion in record (…)").
    fn unmatchable_precondition(
        &self,
        name: &str,
        preconditions: Option<&Preconditions>,
        text: &str,
        object: Option<&Object>,
    ) -> ApiError {
        let target = self.resource().target(name);
        let uid = preconditions.and_then(|p| p.uid.as_deref());
        match object {
            None => ApiError::not_found(&target),
            Some(object) if uid.is_some_and(|uid| uid != object.metadata.uid) => ApiError::conflict(
                &target,
                &format!(
                    "the UID in the precondition ({}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    uid.unwrap_or_default(),
                    object.metadata.uid
                ),
            ),
            Some(object) => ApiError::conflict(
                &target,
                &format!(
                    "the ResourceVersion in the precondition ({text}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    object.metadata.resource_version
                ),
            ),
        }
    }

    pub(super) async fn delete(&self, name: &str, body: &[u8], output: Output) -> ApiResult<Response> {
        let (preconditions, unmatchable) = Self::delete_preconditions(body, self.body_format()?)?;
        if let Some(text) = unmatchable {
            let current = self.current(name).await?;
            return Err(self.unmatchable_precondition(name, preconditions.as_ref(), &text, current.as_ref()));
        }
        if self.resource().is_namespaces() && namespaces::IMMORTAL.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces {name:?} is forbidden: this namespace may not be deleted"
            )));
        }
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        if let Some(terminating) = self.delete_gracefully(name, preconditions.clone()).await? {
            return Ok(respond(StatusCode::OK, &serde_json::to_value(terminating).unwrap_or_default(), output));
        }
        if self.dry_run()? {
            let existing =
                self.resource().storage.get(&key, GetOptions::default()).await.map_err(self.storage_error(name))?;
            if let (Some(pre), Some(existing)) = (&preconditions, &existing) {
                pre.check(&key, existing).map_err(self.storage_error(name))?;
            }
            let uid = existing.map(|o| o.metadata.uid).unwrap_or_default();
            return Ok(respond(StatusCode::OK, &success_status(&self.resource().target(name), &uid), output));
        }
        let deleted = self
            .resource()
            .storage
            .delete(&key, preconditions.as_ref(), &allow_all_deletions, None, DeleteOptions::default())
            .await
            .map_err(self.storage_error(name))?;
        if self.resource().is_namespaces() {
            namespaces::delete_contents(self.app, self.gate, name).await?;
        }
        Ok(respond(StatusCode::OK, &success_status(&self.resource().target(name), &deleted.metadata.uid), output))
    }

    /// kube's graceful deletion with finalizers: an object that has finalizers (or whose kind
    /// adds one on delete, as CRDs do) is not removed but marked — `deletionTimestamp` set,
    /// the kind's finalizer added — and answered as it now is; whoever owns a finalizer
    /// removes it, and the update that removes the last one deletes the object
    /// ([`Context::guaranteed_update`]). None when the object is to be deleted right away.
    async fn delete_gracefully(&self, name: &str, preconditions: Option<Preconditions>) -> ApiResult<Option<Object>> {
        let strategy = self.resource().strategy.clone();
        let Some(mut current) = self.current(name).await? else { return Ok(None) };
        if !strategy.prepare_for_delete(&mut current) && current.metadata.finalizers.is_empty() {
            return Ok(None);
        }
        let marked = self
            .guaranteed_update(name, preconditions, &|mut existing| {
                strategy.prepare_for_delete(&mut existing);
                if existing.metadata.deletion_timestamp.is_none() {
                    existing.metadata.deletion_timestamp = Some(clock::rfc3339(clock::now_seconds()));
                }
                existing.metadata.deletion_grace_period_seconds = Some(0);
                Ok(existing)
            })
            .await?;
        Ok(Some(self.resource().served(marked)))
    }

    pub(super) async fn delete_collection(&self, body: &[u8], output: Output) -> ApiResult<Response> {
        let (preconditions, unmatchable) = Self::delete_preconditions(body, self.body_format()?)?;
        let mut options = self.list_options(None, false)?;
        options.predicate.limit = 0;
        options.predicate.continue_token.clear();
        let key = self.list_key()?;
        let list = self.resource().storage.get_list(&key, options).await.map_err(self.storage_error(""))?;
        if let (Some(text), Some(first)) = (&unmatchable, list.items.first()) {
            // Every object fails the precondition; Kubernetes answers the first failure.
            let name = &first.metadata.name;
            return Err(self.unmatchable_precondition(name, preconditions.as_ref(), text, Some(first)));
        }
        let mut deleted = Vec::new();
        if !self.dry_run()? {
            for object in list.items {
                let name = object.metadata.name.clone();
                if self.resource().is_namespaces() && namespaces::IMMORTAL.contains(&name.as_str()) {
                    continue;
                }
                let object_key = names::object_key(&self.resource().storage_prefix, &object.metadata.namespace, &name)
                    .map_err(self.storage_error(&name))?;
                match self
                    .resource()
                    .storage
                    .delete(&object_key, preconditions.as_ref(), &allow_all_deletions, None, DeleteOptions::default())
                    .await
                {
                    Ok(object) => {
                        if self.resource().is_namespaces() {
                            namespaces::delete_contents(self.app, self.gate, &name).await?;
                        }
                        deleted.push(serde_json::to_value(self.resource().served(object)).unwrap_or_default());
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(ApiError::from_storage(e, &self.resource().target(&name))),
                }
            }
        }
        let list = json!({
            "kind": self.resource().list_kind(),
            "apiVersion": self.resource().api_version(),
            "metadata": {},
            "items": deleted,
        });
        Ok(respond(StatusCode::OK, &list, output))
    }
}
