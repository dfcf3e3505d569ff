//! The REST verbs over a resource's `Arc<dyn Storage>`, one file per verb, as
//! k8s.io/apiserver `pkg/endpoints/handlers`: [`create`], [`get`] and [`list`], [`watch`],
//! [`update`] (PUT, and the guaranteed update every write goes through), [`patch`] (merge,
//! JSON, strategic merge, server-side apply), [`delete`] (and deletecollection), and the
//! [`scale`] subresource.
//!
//! Every request goes through the same steps: negotiate the response representation (406
//! before anything is read), decode the body in its `Content-Type` with the endpoint's
//! group/version/kind as defaults, run the kind's strategy (prepare, validate), write through
//! the storage (or not, for `dryRun=All`), encode the answer.

mod create;
pub use create::before_create;
mod delete;
mod get;
mod list;
mod patch;
#[cfg(feature = "fuzz")]
pub(crate) mod patch_fuzz;
mod scale;
mod update;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use apistore::names;
use apistore::storage::{GetOptions, Preconditions};
use apistore::{Error, Object};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::clock;
use crate::codec;
use crate::managedfields::Manager;
use crate::negotiation::{self, Endpoint, Format, Output};
use crate::resources::Resource;
use crate::routing::{read_body, ResourcePath};
use crate::server::App;
use crate::status::{ApiError, ApiResult};

/// The conflict message of a stale update, as kube-apiserver words it.
pub const MODIFIED_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// What a request carries besides its path: query and the headers the pipeline reads.
pub struct RequestParts {
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// The `Accept` header.
    pub accept: String,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The `User-Agent` header (the default field manager).
    pub user_agent: String,
}

/// One resource request being served.
pub struct Context<'a> {
    /// Shared server state.
    pub app: &'a App,
    /// The request's hold of the write gate.
    pub gate: &'a crate::server::GateHold,
    /// What the path names.
    pub target: ResourcePath,
    /// Query and headers.
    pub request: RequestParts,
    /// `Warning` texts the request raised (unknown fields); the router writes them as
    /// headers.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The `fieldValidation` directive of a write (kube's `ValidateFieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are dropped silently.
    Ignore,
    /// Unknown fields are dropped with a `Warning` header each (the default).
    Warn,
    /// Unknown fields fail the request.
    Strict,
}

impl Context<'_> {
    fn resource(&self) -> &Arc<Resource> {
        &self.target.resource
    }

    fn param(&self, name: &str) -> &str {
        self.request.query.get(name).map(String::as_str).unwrap_or("")
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

    /// `dryRun=All` (true), absent (false).
    ///
    /// Errors: 422 for any other value, as kube's `ValidateDryRun`.
    fn dry_run(&self) -> ApiResult<bool> {
        match self.param("dryRun") {
            "" => Ok(false),
            "All" => Ok(true),
            other => Err(options_invalid(
                "CreateOptions",
                crate::validation::FieldError::not_supported(
                    "dryRun",
                    Value::Array(vec![Value::String(other.to_owned())]),
                    &["All"],
                ),
            )),
        }
    }

    /// The field manager of a write: `fieldManager`, else the User-Agent up to its first `/`
    /// (kube's `prefixFromUserAgent`), else `unknown`; at most 128 bytes.
    ///
    /// Errors: 422 for a `fieldManager` over 128 bytes or with non-printable characters.
    fn field_manager(&self) -> ApiResult<String> {
        let given = self.param("fieldManager");
        if !given.is_empty() {
            let bad = if given.len() > 128 {
                Some("may not be more than 128 bytes")
            } else if given.chars().any(|c| c.is_control()) {
                Some("may only contain printable characters")
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(options_invalid(
                    "PatchOptions",
                    crate::validation::FieldError::invalid("fieldManager", Value::String(given.into()), why),
                ));
            }
            return Ok(given.to_owned());
        }
        let agent = self.request.user_agent.split('/').next().unwrap_or("").trim();
        let mut manager: String = if agent.is_empty() { "unknown".into() } else { agent.into() };
        while manager.len() > 128 {
            manager.pop();
        }
        Ok(manager)
    }

    /// The manager of this write (see [`Context::field_manager`]) at this resource's
    /// apiVersion, now, through `subresource` when set.
    fn manager(&self, subresource: Option<&str>) -> ApiResult<Manager> {
        let manager =
            Manager::new(&self.field_manager()?, &self.resource().api_version(), &clock::rfc3339(clock::now_seconds()));
        Ok(match subresource {
            Some(sub) => manager.with_subresource(sub),
            None => manager,
        })
    }

    /// `fieldValidation`: absent means Warn, as kube.
    ///
    /// Errors: 422 for any other value than "", Ignore, Warn, Strict.
    fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.param("fieldValidation") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(options_invalid(
                "CreateOptions",
                crate::validation::FieldError::not_supported(
                    "fieldValidation",
                    Value::String(other.to_owned()),
                    &["", "Ignore", "Strict", "Warn"],
                ),
            )),
        }
    }

    /// Applies `fieldValidation` to the fields `object`'s schema does not know: Strict
    /// refuses them, Warn adds a `Warning` per field, Ignore drops them silently (pruning
    /// drops them in every case).
    ///
    /// Errors: with Strict, 400 `<Kind> in version "<v>" cannot be handled as a <Kind>:
    /// strict decoding error: unknown field "spec.foo", ...` for bodies, 422 on `patch` for
    /// non-apply patches, as kube.
    fn check_unknown_fields(&self, object: &Object, patch: bool) -> ApiResult<()> {
        let directive = self.field_validation()?;
        let unknown = self.resource().strategy.unknown_fields(object);
        if unknown.is_empty() || directive == FieldValidation::Ignore {
            return Ok(());
        }
        let texts: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
        if directive == FieldValidation::Warn {
            if let Ok(mut warnings) = self.warnings.lock() {
                for text in texts {
                    if !warnings.contains(&text) {
                        warnings.push(text);
                    }
                }
            }
            return Ok(());
        }
        let resource = self.resource();
        if patch {
            return Err(ApiError::invalid_fields(
                &resource.target(&object.metadata.name),
                &[crate::validation::FieldError::invalid(
                    "patch",
                    Value::String(String::new()),
                    format!("strict decoding error: {}", texts.join(", ")),
                )],
            ));
        }
        Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
            resource.kind,
            resource.version,
            resource.kind,
            texts.join(", ")
        )))
    }

    fn key(&self, name: &str) -> ApiResult<String> {
        names::object_key(&self.resource().storage_prefix, &self.target.namespace, name)
            .map_err(|e| ApiError::from_storage(e, &self.resource().target(name)))
    }

    fn list_key(&self) -> ApiResult<String> {
        names::list_key(&self.resource().storage_prefix, &self.target.namespace)
            .map_err(|e| ApiError::from_storage(e, &self.resource().target("")))
    }

    fn storage_error(&self, name: &str) -> impl Fn(Error) -> ApiError + '_ {
        let target = self.resource().target(name);
        move |e| ApiError::from_storage(e, &target)
    }

    /// The format of the request body (`Content-Type`).
    fn body_format(&self) -> ApiResult<Format> {
        negotiation::body_format(&self.request.content_type)
    }

    /// Decodes an object body of this resource (defaults and checks apiVersion/kind).
    fn decode(&self, body: &[u8]) -> ApiResult<Object> {
        codec::decode_typed(body, self.body_format()?, self.resource())
    }

    /// A decoded JSON object as an [`Object`].
    ///
    /// Errors: 400 naming what does not fit (e.g. a `metadata.labels` that is not a map).
    fn object_from(&self, value: Value) -> ApiResult<Object> {
        let resource = self.resource();
        serde_json::from_value(value).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {e}",
                resource.kind, resource.version, resource.kind
            ))
        })
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

    /// Reads the object `name` (None when missing).
    async fn current(&self, name: &str) -> ApiResult<Option<Object>> {
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let options = GetOptions { ignore_not_found: true, ..GetOptions::default() };
        self.resource().storage.get(&key, options).await.map_err(self.storage_error(name))
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
        let endpoint = match (method, watching) {
            (&Method::GET, true) => Endpoint::Watch,
            (&Method::GET, false) if sub.is_none() => Endpoint::Resource,
            _ => Endpoint::Plain,
        };
        let output = match negotiation::negotiate(&self.request.accept, endpoint) {
            Ok(output) => output,
            Err(e) => return ("GET", Err(e)),
        };
        if let (Some("scale"), Some(name)) = (sub.as_deref(), &name) {
            return self.dispatch_scale(method, name, watching, output, body).await;
        }
        let status_sub = sub.is_some();
        match (method.clone(), name) {
            (Method::GET, Some(name)) if watching => ("WATCH", self.watch(Some(name), output).await),
            (Method::GET, Some(name)) => ("GET", self.get(&name, output).await),
            (Method::GET, None) if watching => ("WATCH", self.watch(None, output).await),
            (Method::GET, None) => ("LIST", self.list(output).await),
            (Method::POST, None) => match read_body(body).await {
                Ok(body) => ("POST", self.create(&body, output).await),
                Err(e) => ("POST", Err(e)),
            },
            (Method::PUT, Some(name)) => match read_body(body).await {
                Ok(body) => ("PUT", self.update(&name, &body, status_sub, output).await),
                Err(e) => ("PUT", Err(e)),
            },
            (Method::PATCH, Some(name)) => match read_body(body).await {
                Ok(body) => ("PATCH", self.patch(&name, &body, status_sub, output).await),
                Err(e) => ("PATCH", Err(e)),
            },
            (Method::DELETE, Some(name)) if !status_sub => match read_body(body).await {
                Ok(body) => ("DELETE", self.delete(&name, &body, output).await),
                Err(e) => ("DELETE", Err(e)),
            },
            (Method::DELETE, None) => match read_body(body).await {
                Ok(body) => ("DELETECOLLECTION", self.delete_collection(&body, output).await),
                Err(e) => ("DELETECOLLECTION", Err(e)),
            },
            _ => ("OTHER", Err(ApiError::method_not_allowed())),
        }
    }

    /// Serves `/scale`: get, update (PUT) and patch; other verbs (watch included) are 405.
    async fn dispatch_scale(
        self,
        method: &Method,
        name: &str,
        watching: bool,
        output: Output,
        body: Body,
    ) -> (&'static str, ApiResult<Response>) {
        match *method {
            Method::GET if watching => ("WATCH", Err(ApiError::method_not_allowed())),
            Method::GET => ("GET", self.get_scale(name, output).await),
            Method::PUT => match read_body(body).await {
                Ok(body) => ("PUT", self.update_scale(name, &body, output).await),
                Err(e) => ("PUT", Err(e)),
            },
            Method::PATCH => match read_body(body).await {
                Ok(body) => ("PATCH", self.patch_scale(name, &body, output).await),
                Err(e) => ("PATCH", Err(e)),
            },
            _ => ("OTHER", Err(ApiError::method_not_allowed())),
        }
    }
}

/// A response carrying `value` in the negotiated format.
pub fn respond<T: serde::Serialize + ?Sized>(code: StatusCode, value: &T, output: Output) -> Response {
    codec::respond(code, value, output.format)
}

/// 422 on a request options kind (`CreateOptions.meta.k8s.io "" is invalid: <field>: ...`).
pub(super) fn options_invalid(kind: &str, error: crate::validation::FieldError) -> ApiError {
    ApiError::invalid_fields(
        &crate::status::Target { kind: kind.into(), group: "meta.k8s.io".into(), ..Default::default() },
        &[error],
    )
}

/// The uid precondition of an update body (kube checks a uid set in the body).
fn uid_precondition(object: &Object) -> Option<Preconditions> {
    (!object.metadata.uid.is_empty())
        .then(|| Preconditions { uid: Some(object.metadata.uid.clone()), resource_version: None })
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
