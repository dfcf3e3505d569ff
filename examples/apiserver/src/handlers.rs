//! The REST verbs over a resource's `Arc<dyn Storage>`: create, get, list, watch, update,
//! patch (and a simplified server-side apply), delete and deletecollection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apistore::names;
use apistore::selector::{FieldSelector, LabelSelector};
use apistore::storage::{
    allow_all_deletions, DeleteOptions, GetOptions, ListOptions, Preconditions, Predicate, ResourceVersionMatch,
};
use apistore::{Error, Object};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::clock;
use crate::list_options;
use crate::namespaces;
use crate::patch::{self, PatchError, PatchType};
use crate::resources::{Flavor, Resource};
use crate::routing::{json_response, read_body, ResourcePath};
use crate::scale;
use crate::server::App;
use crate::status::{success_status, ApiError, ApiResult};
use crate::table;
use crate::watch;

/// The conflict message of a stale update, as kube-apiserver words it.
pub const MODIFIED_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// True for `application/apply-patch+yaml` (server-side apply).
fn is_apply_patch(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim() == "application/apply-patch+yaml")
}

/// One resource request being served.
pub struct Context<'a> {
    /// Shared server state.
    pub app: &'a App,
    /// What the path names.
    pub target: ResourcePath,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// The Accept header.
    pub accept: String,
    /// The Content-Type header.
    pub content_type: String,
}

impl Context<'_> {
    fn resource(&self) -> &Arc<Resource> {
        &self.target.resource
    }

    fn param(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or("")
    }

    fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.param(name) {
            "" | "false" | "0" | "False" => Ok(false),
            "true" | "1" | "True" => Ok(true),
            other => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for query parameter {name}: expected true or false"
            ))),
        }
    }

    fn dry_run(&self) -> ApiResult<bool> {
        match self.param("dryRun") {
            "" => Ok(false),
            "All" => Ok(true),
            other => {
                Err(ApiError::bad_request(format!("dryRun: Unsupported value: {other:?}: supported values: \"All\"")))
            }
        }
    }

    fn key(&self, name: &str) -> ApiResult<String> {
        names::object_key(&self.resource().storage_prefix, &self.target.namespace, name)
            .map_err(|e| ApiError::from_storage(e, &self.resource().target(name)))
    }

    fn storage_error(&self, name: &str) -> impl Fn(Error) -> ApiError + '_ {
        let target = self.resource().target(name);
        move |e| ApiError::from_storage(e, &target)
    }

    fn render(&self, object: Object) -> Value {
        serde_json::to_value(self.resource().served(object)).unwrap_or(Value::Null)
    }

    /// Serves the request; returns the metrics verb and the outcome.
    pub async fn dispatch(self, method: &Method, body: Body) -> (&'static str, ApiResult<Response>) {
        let name = self.target.name.clone();
        let sub = self.target.subresource.clone();
        if let Some(sub) = &sub {
            if !self.resource().has_subresource(sub) {
                return ("GET", Err(ApiError::not_found_path()));
            }
        }
        let watching = match self.flag("watch") {
            Ok(flag) => self.target.watch_path || flag,
            Err(e) => return ("GET", Err(e)),
        };
        if let (Some("scale"), Some(name)) = (sub.as_deref(), &name) {
            return self.dispatch_scale(method, name, watching, body).await;
        }
        let status_sub = sub.is_some();
        match (method.clone(), name) {
            (Method::GET, Some(name)) if watching => ("WATCH", self.watch(Some(name)).await),
            (Method::GET, Some(name)) => ("GET", self.get(&name).await),
            (Method::GET, None) if watching => ("WATCH", self.watch(None).await),
            (Method::GET, None) => ("LIST", self.list().await),
            (Method::POST, None) => match read_body(body).await {
                Ok(body) => ("POST", self.create(&body).await),
                Err(e) => ("POST", Err(e)),
            },
            (Method::PUT, Some(name)) => match read_body(body).await {
                Ok(body) => ("PUT", self.update(&name, &body, status_sub).await),
                Err(e) => ("PUT", Err(e)),
            },
            (Method::PATCH, Some(name)) => match read_body(body).await {
                Ok(body) => ("PATCH", self.patch(&name, &body, status_sub).await),
                Err(e) => ("PATCH", Err(e)),
            },
            (Method::DELETE, Some(name)) if !status_sub => match read_body(body).await {
                Ok(body) => ("DELETE", self.delete(&name, &body).await),
                Err(e) => ("DELETE", Err(e)),
            },
            (Method::DELETE, None) => match read_body(body).await {
                Ok(body) => ("DELETECOLLECTION", self.delete_collection(&body).await),
                Err(e) => ("DELETECOLLECTION", Err(e)),
            },
            (method, _) => ("OTHER", Err(ApiError::method_not_allowed(method.as_str()))),
        }
    }

    /// Serves `/scale`: get, update (PUT) and patch; other verbs (watch included) are 405.
    async fn dispatch_scale(
        self,
        method: &Method,
        name: &str,
        watching: bool,
        body: Body,
    ) -> (&'static str, ApiResult<Response>) {
        match *method {
            Method::GET if watching => ("WATCH", Err(ApiError::method_not_allowed("WATCH"))),
            Method::GET => ("GET", self.get_scale(name).await),
            Method::PUT => match read_body(body).await {
                Ok(body) => ("PUT", self.update_scale(name, &body).await),
                Err(e) => ("PUT", Err(e)),
            },
            Method::PATCH => match read_body(body).await {
                Ok(body) => ("PATCH", self.patch_scale(name, &body).await),
                Err(e) => ("PATCH", Err(e)),
            },
            _ => ("OTHER", Err(ApiError::method_not_allowed(method.as_str()))),
        }
    }

    /// Decodes a request body into an object of this resource, checking apiVersion and kind.
    fn decode(&self, body: &[u8]) -> ApiResult<Object> {
        let resource = self.resource();
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let object: Object = serde_json::from_value(value).map_err(|e| {
            ApiError::bad_request(format!("unable to decode the request body as a {}: {e}", resource.kind))
        })?;
        if object.kind.is_empty() {
            return Err(ApiError::bad_request("Object 'Kind' is missing in the request body"));
        }
        if object.kind != resource.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the request body ({}) does not match the expected kind ({}) of {}",
                object.kind,
                resource.kind,
                self.resource().target("").qualified()
            )));
        }
        if object.api_version != resource.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                object.api_version,
                resource.api_version()
            )));
        }
        Ok(object)
    }

    /// Sets and checks the namespace of a body against the path.
    fn check_namespace(&self, object: &mut Object) -> ApiResult<()> {
        if !self.resource().namespaced {
            object.metadata.namespace.clear();
            return Ok(());
        }
        if object.metadata.namespace.is_empty() {
            object.metadata.namespace.clone_from(&self.target.namespace);
        } else if object.metadata.namespace != self.target.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    async fn ensure_namespace(&self) -> ApiResult<()> {
        if !self.resource().namespaced {
            return Ok(());
        }
        let Some(namespaces) = self.app.table.namespaces() else {
            return Ok(());
        };
        let key = names::object_key(&namespaces.storage_prefix, "", &self.target.namespace)
            .map_err(|e| ApiError::from_storage(e, &namespaces.target(&self.target.namespace)))?;
        match namespaces.storage.get(&key, GetOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(ApiError::from_storage(e, &namespaces.target(&self.target.namespace))),
        }
    }

    async fn create(&self, body: &[u8]) -> ApiResult<Response> {
        if self.target.namespace.is_empty() && self.resource().namespaced {
            return Err(ApiError::not_found_path());
        }
        let resource = self.resource();
        let mut object = self.decode(body)?;
        self.check_namespace(&mut object)?;
        if object.metadata.name.is_empty() && !object.metadata.generate_name.is_empty() {
            object.metadata.name = generate_name(&object.metadata.generate_name);
        }
        resource.validate_name(&object.metadata.name)?;
        resource.prepare_for_write(&mut object, true)?;
        let meta = &mut object.metadata;
        meta.uid = uuid::Uuid::new_v4().to_string();
        meta.creation_timestamp = Some(clock::rfc3339(clock::now_seconds()));
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.generation = if resource.tracks_generation() { 1 } else { 0 };
        meta.managed_fields.clear();
        meta.self_link.clear();
        let name = object.metadata.name.clone();
        self.ensure_namespace().await?;
        let key = self.key(&name)?;
        if self.dry_run()? {
            return Ok(json_response(StatusCode::CREATED, &serde_json::to_value(&object).unwrap_or_default()));
        }
        let created = resource
            .storage
            .create(&key, resource.to_storage(object), resource.ttl_seconds)
            .await
            .map_err(self.storage_error(&name))?;
        Ok(json_response(StatusCode::CREATED, &self.render(created)))
    }

    async fn get(&self, name: &str) -> ApiResult<Response> {
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let options =
            GetOptions { ignore_not_found: false, resource_version: self.param("resourceVersion").to_owned() };
        let object = self.resource().storage.get(&key, options).await.map_err(self.storage_error(name))?;
        let object = object.ok_or_else(|| ApiError::not_found(&self.resource().target(name)))?;
        let object = self.resource().served(object);
        if table::wants_table(&self.accept) {
            let t =
                table::table(self.resource(), std::slice::from_ref(&object), self.param("includeObject"), json!({}));
            return Ok(json_response(StatusCode::OK, &t));
        }
        Ok(json_response(StatusCode::OK, &serde_json::to_value(&object).unwrap_or_default()))
    }

    fn list_key(&self) -> ApiResult<String> {
        names::list_key(&self.resource().storage_prefix, &self.target.namespace)
            .map_err(|e| ApiError::from_storage(e, &self.resource().target("")))
    }

    fn list_options(&self, single: Option<&str>, watching: bool) -> ApiResult<ListOptions> {
        let bad = |e: Error| ApiError::bad_request(e.to_string());
        let label = LabelSelector::parse(self.param("labelSelector")).map_err(bad)?;
        let mut field = FieldSelector::parse(self.param("fieldSelector")).map_err(bad)?;
        for requirement in &field.requirements {
            if !self.supported_field(&requirement.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {} (supported: metadata.name, metadata.namespace)",
                    requirement.field
                )));
            }
        }
        if let Some(name) = single {
            field.requirements.push(apistore::selector::FieldRequirement {
                field: "metadata.name".into(),
                value: name.to_owned(),
                negate: false,
            });
        }
        let limit = match self.param("limit") {
            "" => 0,
            text => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_request(format!("invalid value {text:?} for limit: expected a non-negative integer"))
            })?,
        };
        let resource_version = self.param("resourceVersion").to_owned();
        let resource_version_match = ResourceVersionMatch::parse(self.param("resourceVersionMatch")).map_err(bad)?;
        let send_initial_events = match self.param("sendInitialEvents") {
            "" => None,
            _ => Some(self.flag("sendInitialEvents")?),
        };
        let allow_watch_bookmarks = self.flag("allowWatchBookmarks")?;
        list_options::validate(
            watching,
            &resource_version,
            resource_version_match,
            send_initial_events,
            allow_watch_bookmarks,
        )?;
        Ok(ListOptions {
            resource_version,
            resource_version_match,
            predicate: Predicate {
                label,
                field,
                limit,
                continue_token: self.param("continue").to_owned(),
                allow_watch_bookmarks,
            },
            recursive: true,
            progress_notify: false,
            send_initial_events,
        })
    }

    fn supported_field(&self, field: &str) -> bool {
        match field {
            "metadata.name" | "metadata.namespace" => true,
            "type" => self.resource().flavor == Flavor::Secret,
            f => {
                matches!(self.resource().flavor, Flavor::CoreEvent)
                    && (f.starts_with("involvedObject.")
                        || matches!(f, "reason" | "source" | "type" | "reportingComponent"))
            }
        }
    }

    async fn list(&self) -> ApiResult<Response> {
        let options = self.list_options(None, false)?;
        let key = self.list_key()?;
        let list = self.resource().storage.get_list(&key, options).await.map_err(self.storage_error(""))?;
        let mut metadata = json!({ "resourceVersion": list.resource_version.to_string() });
        if !list.continue_token.is_empty() {
            metadata["continue"] = json!(list.continue_token);
        }
        if let Some(remaining) = list.remaining_item_count {
            metadata["remainingItemCount"] = json!(remaining);
        }
        let items: Vec<Object> = list.items.into_iter().map(|o| self.resource().served(o)).collect();
        if table::wants_table(&self.accept) {
            return Ok(json_response(
                StatusCode::OK,
                &table::table(self.resource(), &items, self.param("includeObject"), metadata),
            ));
        }
        let list = json!({
            "kind": self.resource().list_kind(),
            "apiVersion": self.resource().api_version(),
            "metadata": metadata,
            "items": items,
        });
        Ok(json_response(StatusCode::OK, &list))
    }

    async fn watch(&self, name: Option<String>) -> ApiResult<Response> {
        let options = self.list_options(name.as_deref(), true)?;
        let timeout = match self.param("timeoutSeconds") {
            "" => watch::DEFAULT_TIMEOUT,
            text => text
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| ApiError::bad_request(format!("invalid value {text:?} for timeoutSeconds")))?,
        };
        let key = self.list_key()?;
        let rendering = if table::wants_table(&self.accept) {
            watch::Rendering::Table(self.param("includeObject"))
        } else {
            watch::Rendering::Object
        };
        watch::serve(self.resource().clone(), &key, options, timeout, rendering, self.app.shutdown.clone()).await
    }

    /// Runs an update of `name` whose new state `build` computes from the stored object
    /// (storage shape). Rejections of `build` come back as they are.
    async fn guaranteed_update(
        &self,
        name: &str,
        preconditions: Option<Preconditions>,
        build: &(dyn Fn(Object) -> ApiResult<Object> + Send + Sync),
    ) -> ApiResult<Object> {
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let mut rejection: Option<ApiError> = None;
        let dry_run = self.dry_run()?;
        let mut dry_result: Option<Object> = None;
        let result = self
            .resource()
            .storage
            .guaranteed_update(
                &key,
                false,
                preconditions.as_ref(),
                &mut |existing, _meta| {
                    let existing_rv = existing.metadata.resource_version.clone();
                    // Every write renews the TTL, as kube's event strategy does.
                    let ttl = (self.resource().ttl_seconds > 0).then_some(self.resource().ttl_seconds);
                    match build(existing) {
                        Ok(mut updated) if dry_run => {
                            // Nothing is written: the object keeps its resourceVersion.
                            updated.metadata.resource_version = existing_rv;
                            dry_result = Some(updated);
                            Err(Error::internal("dry run"))
                        }
                        Ok(updated) => Ok((updated, ttl)),
                        Err(e) => {
                            rejection = Some(e);
                            Err(Error::internal("update rejected"))
                        }
                    }
                },
                None,
            )
            .await;
        if let Some(rejection) = rejection {
            return Err(rejection);
        }
        if let Some(object) = dry_result {
            return Ok(object);
        }
        result.map_err(self.storage_error(name))
    }

    async fn update(&self, name: &str, body: &[u8], status_sub: bool) -> ApiResult<Response> {
        let resource = self.resource().clone();
        let mut object = self.decode(body)?;
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
        let updated = self
            .guaranteed_update(name, preconditions, &|existing| {
                build_update(&resource, existing, object.clone(), &body_rv, status_sub)
            })
            .await?;
        Ok(json_response(StatusCode::OK, &self.render(updated)))
    }

    async fn patch(&self, name: &str, body: &[u8], status_sub: bool) -> ApiResult<Response> {
        if is_apply_patch(&self.content_type) {
            return self.server_side_apply(name, body).await;
        }
        let patch_type = PatchType::from_content_type(&self.content_type)
            .ok_or_else(|| ApiError::unsupported_media_type(&self.content_type))?;
        self.patch_with(name, patch_type, body, status_sub).await
    }

    async fn patch_with(
        &self,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        status_sub: bool,
    ) -> ApiResult<Response> {
        let resource = self.resource().clone();
        check_patch_json(body)?;
        let path_namespace = self.target.namespace.clone();
        let updated = self
            .guaranteed_update(name, None, &|existing| {
                let target = resource.target(name);
                let current = resource.served(existing.clone());
                let patched = apply_patch(patch_type, &current, body, &resource.kind, name)?;
                let patched: Object = serde_json::from_value(patched).map_err(|e| {
                    ApiError::invalid(
                        &target,
                        "",
                        "",
                        &format!("the patched object is not a valid {}: {e}", resource.kind),
                    )
                })?;
                if patched.kind != resource.kind || patched.api_version != resource.api_version() {
                    return Err(ApiError::bad_request("a patch may not change apiVersion or kind"));
                }
                if patched.metadata.name != name {
                    return Err(ApiError::invalid(
                        &target,
                        "metadata.name",
                        &patched.metadata.name,
                        "field is immutable",
                    ));
                }
                if resource.namespaced && patched.metadata.namespace != path_namespace {
                    return Err(ApiError::invalid(
                        &target,
                        "metadata.namespace",
                        &patched.metadata.namespace,
                        "field is immutable",
                    ));
                }
                if patched.metadata.uid != existing.metadata.uid {
                    return Err(ApiError::invalid(
                        &target,
                        "metadata.uid",
                        &patched.metadata.uid,
                        "field is immutable",
                    ));
                }
                let rv = patched.metadata.resource_version.clone();
                build_update(&resource, existing, patched, &rv, status_sub)
            })
            .await?;
        Ok(json_response(StatusCode::OK, &self.render(updated)))
    }

    /// `GET .../<name>/scale`: the Scale of the object.
    ///
    /// Errors: 404 `deployments/scale.apps "<name>" not found` when the object is missing.
    async fn get_scale(&self, name: &str) -> ApiResult<Response> {
        let not_found = || ApiError::not_found(&scale::not_found_target(self.resource(), name));
        let key = self.key(name).map_err(|_| not_found())?;
        let options = GetOptions { ignore_not_found: true, resource_version: self.param("resourceVersion").to_owned() };
        let object = self.resource().storage.get(&key, options).await.map_err(self.storage_error(name))?;
        let object = object.ok_or_else(not_found)?;
        let scale = scale::from_deployment(&self.resource().served(object))?;
        Ok(json_response(StatusCode::OK, &serde_json::to_value(scale).unwrap_or_default()))
    }

    /// `PUT .../<name>/scale`: sets `spec.replicas` from a Scale body. The body's
    /// resourceVersion (when set) and uid (when set) are preconditions.
    async fn update_scale(&self, name: &str, body: &[u8]) -> ApiResult<Response> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
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
        self.scale_update(name, preconditions, &|_current| Ok(requested.clone())).await
    }

    /// `PATCH .../<name>/scale`: a merge, JSON or strategic merge patch (server-side apply
    /// counts as the latter) applied to the current Scale; its `spec.replicas` is written.
    async fn patch_scale(&self, name: &str, body: &[u8]) -> ApiResult<Response> {
        let patch_type = if is_apply_patch(&self.content_type) {
            PatchType::StrategicMerge
        } else {
            PatchType::from_content_type(&self.content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(&self.content_type))?
        };
        check_patch_json(body)?;
        self.scale_update(name, None, &|current| {
            let patched = apply_patch(patch_type, &current, body, scale::KIND, name)?;
            let patched = scale::decode(patched).map_err(|e| {
                ApiError::invalid(&scale::invalid_target(name), "", "", &format!("the patched object: {}", e.message))
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
        })
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
    ) -> ApiResult<Response> {
        let resource = self.resource().clone();
        let updated =
            self.guaranteed_update(name, preconditions, &|existing| {
                let object = resource.served(existing.clone());
                let requested = new_scale(scale::from_deployment(&object)?)?;
                let replicas = scale::requested_replicas(&requested)?;
                let expected_rv = requested.metadata.resource_version.clone();
                build_update(&resource, existing, scale::with_replicas(object, replicas), &expected_rv, false)
            })
            .await
            .map_err(|e| {
                if e.code == 404 {
                    ApiError::not_found(&scale::not_found_target(&resource, name))
                } else {
                    e
                }
            })?;
        let scale = scale::from_deployment(&resource.served(updated))?;
        Ok(json_response(StatusCode::OK, &serde_json::to_value(scale).unwrap_or_default()))
    }

    /// Server-side apply, simplified: the applied configuration (JSON, which is YAML) creates
    /// the object when it is missing and is strategically merged into it otherwise. Field
    /// ownership (managedFields, conflicts between managers) is not tracked.
    async fn server_side_apply(&self, name: &str, body: &[u8]) -> ApiResult<Response> {
        let applied = self.decode(body).map_err(|e| {
            if e.message.contains("not valid JSON") {
                ApiError::new(415, "UnsupportedMediaType", "only JSON-formatted apply configurations are supported")
            } else {
                e
            }
        })?;
        if !applied.metadata.name.is_empty() && applied.metadata.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                applied.metadata.name
            )));
        }
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let options = GetOptions { ignore_not_found: true, resource_version: String::new() };
        let exists = self.resource().storage.get(&key, options).await.map_err(self.storage_error(name))?.is_some();
        if !exists {
            let mut create = serde_json::to_value(&applied).unwrap_or_default();
            create["metadata"]["name"] = json!(name);
            let created = self.create(&serde_json::to_vec(&create).unwrap_or_default()).await;
            if !matches!(&created, Err(e) if e.reason == "AlreadyExists") {
                return created;
            }
        }
        self.patch_with(name, PatchType::StrategicMerge, body, false).await
    }

    fn delete_preconditions(body: &[u8]) -> ApiResult<Option<Preconditions>> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let options: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is not valid JSON: {e}")))?;
        let Some(options) = options.as_object() else {
            return Err(ApiError::bad_request("the DeleteOptions body must be a JSON object"));
        };
        if let Some(kind) = options.get("kind").and_then(Value::as_str) {
            if kind != "DeleteOptions" {
                return Err(ApiError::bad_request(format!("expected a DeleteOptions body, got kind {kind:?}")));
            }
        }
        let Some(pre) = options.get("preconditions").filter(|p| !p.is_null()) else {
            return Ok(None);
        };
        let field = |name: &str| -> ApiResult<Option<String>> {
            match pre.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::bad_request(format!("preconditions.{name} must be a string"))),
            }
        };
        Ok(Some(Preconditions { uid: field("uid")?, resource_version: field("resourceVersion")? }))
    }

    async fn delete(&self, name: &str, body: &[u8]) -> ApiResult<Response> {
        let preconditions = Self::delete_preconditions(body)?;
        if self.resource().flavor == Flavor::Namespace && namespaces::IMMORTAL.contains(&name) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
            ));
        }
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        if self.dry_run()? {
            let existing =
                self.resource().storage.get(&key, GetOptions::default()).await.map_err(self.storage_error(name))?;
            if let (Some(pre), Some(existing)) = (&preconditions, &existing) {
                pre.check(&key, existing).map_err(self.storage_error(name))?;
            }
            let uid = existing.map(|o| o.metadata.uid).unwrap_or_default();
            return Ok(json_response(StatusCode::OK, &success_status(&self.resource().target(name), &uid)));
        }
        let deleted = self
            .resource()
            .storage
            .delete(&key, preconditions.as_ref(), &allow_all_deletions, None, DeleteOptions::default())
            .await
            .map_err(self.storage_error(name))?;
        if self.resource().flavor == Flavor::Namespace {
            namespaces::delete_contents(self.app, name).await?;
        }
        Ok(json_response(StatusCode::OK, &success_status(&self.resource().target(name), &deleted.metadata.uid)))
    }

    async fn delete_collection(&self, body: &[u8]) -> ApiResult<Response> {
        let preconditions = Self::delete_preconditions(body)?;
        let mut options = self.list_options(None, false)?;
        options.predicate.limit = 0;
        options.predicate.continue_token.clear();
        let key = self.list_key()?;
        let list = self.resource().storage.get_list(&key, options).await.map_err(self.storage_error(""))?;
        let mut deleted = Vec::new();
        if !self.dry_run()? {
            for object in list.items {
                let name = object.metadata.name.clone();
                if self.resource().flavor == Flavor::Namespace && namespaces::IMMORTAL.contains(&name.as_str()) {
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
                        if self.resource().flavor == Flavor::Namespace {
                            namespaces::delete_contents(self.app, &name).await?;
                        }
                        deleted.push(self.render(object));
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
        Ok(json_response(StatusCode::OK, &list))
    }
}

/// Checks an update body's `metadata.resourceVersion` ("" or decimal).
///
/// Errors: 422 Invalid on `metadata.resourceVersion`.
fn check_body_resource_version(resource: &Resource, name: &str, rv: &str) -> ApiResult<()> {
    if apistore::version::parse_resource_version(rv).is_err() {
        return Err(ApiError::invalid(
            &resource.target(name),
            "metadata.resourceVersion",
            rv,
            "must be a decimal resourceVersion",
        ));
    }
    Ok(())
}

/// The uid precondition of an update body (kube checks a uid set in the body).
fn uid_precondition(object: &Object) -> Option<Preconditions> {
    (!object.metadata.uid.is_empty())
        .then(|| Preconditions { uid: Some(object.metadata.uid.clone()), resource_version: None })
}

/// A malformed patch is a 400 whether or not the object exists.
fn check_patch_json(body: &[u8]) -> ApiResult<()> {
    serde_json::from_slice::<Value>(body)
        .map(drop)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a patch to `current` (API shape) of kind `kind`.
///
/// Errors: 400 for a malformed patch or a result that is not a JSON object, 422
/// `<kind> "<name>" is invalid` for a patch that does not apply.
fn apply_patch(patch_type: PatchType, current: &Object, body: &[u8], kind: &str, name: &str) -> ApiResult<Value> {
    let current = serde_json::to_value(current).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    let patched = patch::apply(patch_type, current, body).map_err(|e| match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::Inapplicable(m) => ApiError::new(422, "Invalid", format!("{kind} {name:?} is invalid: {m}")),
    })?;
    if !patched.is_object() {
        return Err(ApiError::bad_request("the patched object is not a JSON object"));
    }
    Ok(patched)
}

/// The new stored state of an update: `new` (API shape) over `existing` (storage shape).
///
/// Keeps what clients may not change (uid, creationTimestamp), keeps status on the main
/// resource and everything but status on `/status`, bumps `generation` on spec changes.
///
/// Errors: 409 Conflict when `expected_rv` is set and stale; 422 from kind validation.
fn build_update(
    resource: &Resource,
    existing: Object,
    new: Object,
    expected_rv: &str,
    status_sub: bool,
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
    if resource.tracks_generation() {
        let spec_changed = |o: &Object| -> Vec<(String, Value)> {
            o.fields.iter().filter(|(k, _)| k.as_str() != "status").map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        if spec_changed(&updated) != spec_changed(&old) {
            updated.metadata.generation = old.metadata.generation.max(0) + 1;
        }
    }
    if !status_sub {
        resource.prepare_for_write(&mut updated, false)?;
    }
    Ok(resource.to_storage(updated))
}

/// `generateName` + 5 random characters from kube's alphabet.
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String =
        random.as_bytes().iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    let prefix: String = prefix.chars().take(names::MAX_NAME_LENGTH - 5).collect();
    format!("{prefix}{suffix}")
}
