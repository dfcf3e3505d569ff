//! `GET` of a collection: kube's `listResourcesHandler` — selectors, paging, resourceVersion
//! semantics (the storage's), and the Table / PartialObjectMetadataList transformations.

use apistore::encoded::EncodedList;
use apistore::selector::{FieldRequirement, FieldSelector, LabelSelector};
use apistore::storage::{ListOptions, Predicate, ResourceVersion, ResourceVersionMatch};
use apistore::{Error, Object};
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{respond, Context};
use crate::list_options;
use crate::negotiation::{Output, Shape};
use crate::status::{ApiError, ApiResult};
use crate::table;

impl Context<'_> {
    /// The storage list options of a list or watch (`single`: a watch of one name).
    ///
    /// Errors: 400 for bad selectors, limit or flags and a list's unparsable resourceVersion;
    /// 422 for combinations kube forbids and a watch's unparsable resourceVersion.
    pub(super) fn list_options(&self, single: Option<&str>, watching: bool) -> ApiResult<ListOptions> {
        let bad = |e: Error| ApiError::bad_request(e.to_string());
        let label = LabelSelector::parse(self.param("labelSelector")).map_err(bad)?;
        let mut field = FieldSelector::parse(self.param("fieldSelector")).map_err(bad)?;
        for requirement in &field.requirements {
            let f = requirement.field.as_str();
            if !matches!(f, "metadata.name" | "metadata.namespace") && !self.resource().strategy.selectable_field(f) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f} (supported: metadata.name, metadata.namespace)"
                )));
            }
        }
        if let Some(name) = single {
            field.requirements.push(FieldRequirement {
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
        let resource_version = self.param("resourceVersion");
        let resource_version_match = ResourceVersionMatch::parse(self.param("resourceVersionMatch")).map_err(bad)?;
        let send_initial_events = match self.param("sendInitialEvents") {
            "" => None,
            _ => Some(self.flag("sendInitialEvents")?),
        };
        let allow_watch_bookmarks = self.flag("allowWatchBookmarks")?;
        list_options::validate(
            watching,
            resource_version,
            resource_version_match,
            send_initial_events,
            allow_watch_bookmarks,
        )?;
        // Parsed once, after kube's option checks (as kube's storage parses after them).
        let resource_version = match watching {
            true => ResourceVersion::parse_watch(resource_version),
            false => ResourceVersion::parse_read(resource_version),
        }
        .map_err(self.storage_error(single.unwrap_or_default()))?;
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

    pub(super) async fn list(&self, output: Output) -> ApiResult<Response> {
        let options = self.list_options(None, false)?;
        let include = table::include(self.param("includeObject"))?;
        let key = self.list_key()?;
        if output == Output::JSON && self.resource().strategy.serves_stored_form() {
            let list = self.resource().storage.get_list_encoded(&key, options).await.map_err(self.storage_error(""))?;
            return Ok(encoded_list_response(self.resource().clone(), list));
        }
        let list = self.resource().storage.get_list(&key, options).await.map_err(self.storage_error(""))?;
        let mut metadata = json!({ "resourceVersion": list.resource_version.to_string() });
        if !list.continue_token.is_empty() {
            metadata["continue"] = json!(list.continue_token);
        }
        if let Some(remaining) = list.remaining_item_count {
            metadata["remainingItemCount"] = json!(remaining);
        }
        let items: Vec<Object> = list.items.into_iter().map(|o| self.resource().served(o)).collect();
        let value = match output.shape {
            Shape::Table => table::table(self.resource(), &items, include, metadata),
            Shape::PartialMetadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": items.iter().map(table::partial_metadata).collect::<Vec<_>>(),
            }),
            Shape::Object => json!({
                "kind": self.resource().list_kind(),
                "apiVersion": self.resource().api_version(),
                "metadata": metadata,
                "items": items,
            }),
        };
        Ok(respond(StatusCode::OK, &value, output))
    }
}

/// Size of the body chunks an encoded list is written in: a request holds one chunk and the
/// item handles (shared bytes), whatever the list's size.
const CHUNK: usize = 64 * 1024;

/// A JSON list response written from encoded items: the envelope around the stored bytes,
/// streamed in [`CHUNK`]-sized pieces. An item whose bytes do not start with the served
/// apiVersion/kind (stored under another version) is decoded and re-encoded as served.
fn encoded_list_response(resource: std::sync::Arc<crate::resources::Resource>, list: EncodedList) -> Response {
    let mut metadata = json!({ "resourceVersion": list.resource_version.to_string() });
    if !list.continue_token.is_empty() {
        metadata["continue"] = json!(list.continue_token);
    }
    if let Some(remaining) = list.remaining_item_count {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(resource.list_kind()),
        json!(resource.api_version()),
        metadata
    );
    let served_prefix =
        format!("{{\"apiVersion\":{},\"kind\":{},", json!(resource.api_version()), json!(resource.kind)).into_bytes();
    let mut items = list.items.into_iter();
    let mut chunk = head.into_bytes();
    let mut first = true;
    let mut finished = false;
    let body = futures::stream::poll_fn(move |_| {
        if finished {
            return std::task::Poll::Ready(None);
        }
        for item in items.by_ref() {
            if !std::mem::take(&mut first) {
                chunk.push(b',');
            }
            if item.json().starts_with(&served_prefix) {
                chunk.extend_from_slice(item.json());
            } else {
                let served = item.decode().map(|o| resource.served(o)).and_then(|o| o.to_json());
                chunk.extend_from_slice(&served.unwrap_or_else(|_| b"null".to_vec()));
            }
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK + 4096));
                return std::task::Poll::Ready(Some(Ok::<_, std::convert::Infallible>(Bytes::from(full))));
            }
        }
        chunk.extend_from_slice(b"]}");
        finished = true;
        std::task::Poll::Ready(Some(Ok(Bytes::from(std::mem::take(&mut chunk)))))
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
