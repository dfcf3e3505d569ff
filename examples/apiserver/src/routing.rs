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

use crate::discovery;
use crate::handlers::Context;
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
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
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

/// A JSON response.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The handler of every `/api` and `/apis` path.
pub async fn api(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let query: HashMap<String, String> =
        axum::extract::Query::try_from_uri(&parts.uri).map(|q| q.0).unwrap_or_default();
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (verb, resource, outcome) = match route(&app, parts.uri.path()) {
        None => ("GET", String::new(), Err(ApiError::not_found_path())),
        Some(Route::CoreVersions) => {
            ("GET", String::new(), Ok(json_response(StatusCode::OK, &discovery::core_versions(&app.server_address))))
        }
        Some(Route::GroupList) => {
            ("GET", String::new(), Ok(json_response(StatusCode::OK, &discovery::group_list(&app.table))))
        }
        Some(Route::Group(group)) => (
            "GET",
            String::new(),
            discovery::group(&app.table, &group)
                .map(|doc| json_response(StatusCode::OK, &doc))
                .ok_or_else(ApiError::not_found_path),
        ),
        Some(Route::ResourceList(group, version)) => (
            "GET",
            String::new(),
            discovery::resource_list(&app.table, &group, &version)
                .map(|doc| json_response(StatusCode::OK, &doc))
                .ok_or_else(ApiError::not_found_path),
        ),
        Some(Route::Resource(target)) => {
            let plural = target.resource.plural.clone();
            let context = Context { app: &app, target, query, accept, content_type };
            let (verb, outcome) = context.dispatch(&parts.method, body).await;
            (verb, plural, outcome)
        }
    };
    let response = outcome.unwrap_or_else(IntoResponse::into_response);
    app.metrics.record(verb, &resource, response.status().as_u16(), started.elapsed());
    response
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
