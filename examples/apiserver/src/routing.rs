//! Routing: which resource, namespace, name and subresource a path names, the entry
//! point of every `/api` and `/apis` request, and request body reading.
//!
//! Paths follow kube-apiserver: `/api/v1/<resource>[/<name>[/<subresource>]]`,
//! `/api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]]`, the same under
//! `/apis/<group>/<version>`, and the legacy `/watch/` prefix after the version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::codec;
use crate::discovery;
use crate::handlers::{Context, RequestParts};
use crate::negotiation::{self, Endpoint};
use crate::resources::Resource;
use crate::server::App;
use crate::status::{ApiError, ApiResult};

/// Largest request body accepted (kube-apiserver's 3 MiB limit).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A request for one resource (collection or object).
pub struct ResourcePath {
    /// The resource.
    pub resource: Arc<Resource>,
    /// The namespace ("" for cluster scope or all namespaces).
    pub namespace: String,
    /// The object name (None for the collection).
    pub name: Option<String>,
    /// A subresource (`status`, `scale`).
    pub subresource: Option<String>,
    /// The legacy `/watch/` path form.
    pub watch_path: bool,
}

/// What a path names.
enum Route {
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Resource(ResourcePath),
}

fn route(app: &App, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(Route::CoreVersions),
        ["api", "v1"] => return Some(Route::ResourceList(String::new(), "v1".into())),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis"] => return Some(Route::GroupList),
        ["apis", group] => return Some(Route::Group((*group).into())),
        ["apis", group, version] => return Some(Route::ResourceList((*group).into(), (*version).into())),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_owned());
    if let ["namespaces", namespace, plural, tail @ ..] = rest {
        if let Some(resource) = app.table.find(group, version, plural).filter(|r| r.namespaced) {
            if tail.len() <= 2 && !namespace.is_empty() {
                return Some(Route::Resource(ResourcePath {
                    resource,
                    namespace: (*namespace).to_owned(),
                    name: owned(tail.first()),
                    subresource: owned(tail.get(1)),
                    watch_path,
                }));
            }
            return None;
        }
    }
    let [plural, tail @ ..] = rest else {
        return None;
    };
    let resource = app.table.find(group, version, plural)?;
    if tail.len() > 2 || (resource.namespaced && !tail.is_empty()) {
        return None;
    }
    Some(Route::Resource(ResourcePath {
        resource,
        namespace: String::new(),
        name: owned(tail.first()),
        subresource: owned(tail.get(1)),
        watch_path,
    }))
}

/// A discovery document in the negotiated format; discovery is read-only.
fn discovery_response(method: &axum::http::Method, accept: &str, document: Option<Value>) -> ApiResult<Response> {
    if method != axum::http::Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let output = negotiation::negotiate(accept, Endpoint::Plain)?;
    let document = document.ok_or_else(ApiError::not_found_path)?;
    Ok(codec::respond(StatusCode::OK, &document, output.format))
}

/// The handler of every `/api` and `/apis` path.
pub async fn api(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let query: HashMap<String, String> =
        axum::extract::Query::try_from_uri(&parts.uri).map(|q| q.0).unwrap_or_default();
    let header =
        |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let accept = header(header::ACCEPT);
    let method = &parts.method;
    // Writes pass the write gate (a migration's cutover closes it) before the resource is
    // looked up, so a write that waited runs on the storage the cutover switched to; held
    // until the response is built (a namespace's deletion lets go between batches).
    let writes = !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    let gate = crate::server::GateHold::take(&app.write_gate, writes).await;
    let (verb, resource, outcome) = match route(&app, parts.uri.path()) {
        None => ("GET", String::new(), Err(ApiError::not_found_path())),
        Some(Route::CoreVersions) => (
            "GET",
            String::new(),
            discovery_response(method, &accept, Some(discovery::core_versions(&app.server_address))),
        ),
        Some(Route::GroupList) => {
            ("GET", String::new(), discovery_response(method, &accept, Some(discovery::group_list(&app.table))))
        }
        Some(Route::Group(group)) => {
            ("GET", String::new(), discovery_response(method, &accept, discovery::group(&app.table, &group)))
        }
        Some(Route::ResourceList(group, version)) => (
            "GET",
            String::new(),
            discovery_response(method, &accept, discovery::resource_list(&app.table, &group, &version)),
        ),
        Some(Route::Resource(target)) => {
            let plural = target.resource.plural.clone();
            let warnings = target.resource.strategy.warnings();
            let request = RequestParts {
                query,
                accept,
                content_type: header(header::CONTENT_TYPE),
                user_agent: header(header::USER_AGENT),
            };
            let raised = Arc::new(std::sync::Mutex::new(Vec::new()));
            let context = Context { app: &app, gate: &gate, target, request, warnings: raised.clone() };
            let (verb, outcome) = context.dispatch(method, body).await;
            let mut warnings = warnings;
            warnings.extend(std::mem::take(&mut *raised.lock().unwrap_or_else(|p| p.into_inner())));
            (verb, plural, outcome.map(|response| with_warnings(response, &warnings)))
        }
    };
    let response = outcome.unwrap_or_else(IntoResponse::into_response);
    app.metrics.record(verb, &resource, response.status().as_u16(), started.elapsed());
    response
}

/// Adds one `Warning: 299 - "<text>"` header per warning (k8s.io/apimachinery
/// `NewWarningHeader`), as kube sends deprecation and pruning warnings.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// kube-apiserver's go-restful routes trim one trailing slash (`/version/`, `/api/`,
/// `/apis/`, `.../configmaps/`); the other paths (`/healthz`, `/metrics`, ...) match exactly.
pub fn trim_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    let restful = ["/api", "/apis", "/version"].iter().any(|p| path.starts_with(p));
    if restful && path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let new = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = new.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] with 413.
///
/// An oversized body is still read (and discarded) up to [`DRAIN_LIMIT_BYTES`], so the
/// client gets the 413 instead of a broken pipe; beyond that the connection is dropped.
pub async fn read_body(body: Body) -> ApiResult<Bytes> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut data = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        total += chunk.len();
        if total > DRAIN_LIMIT_BYTES {
            break;
        }
        if total <= MAX_BODY_BYTES {
            data.extend_from_slice(&chunk);
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    Ok(Bytes::from(data))
}

/// How much of an oversized body is drained before giving up on the connection.
const DRAIN_LIMIT_BYTES: usize = 4 * MAX_BODY_BYTES;
