//! Watch streaming: `?watch=true` as a chunked HTTP response of JSON watch events, one per
//! line: `{"type":"ADDED","object":{...}}`.
//!
//! The stream ends at `timeoutSeconds` (default 30 minutes, kube's minimum request timeout),
//! when the storage watch ends (an `ERROR` event carrying a `Status` comes first when it
//! failed), when the client goes away, when the server shuts down, or when the resource's
//! storage is replaced (a migration's cutover: the client watches again, on the new one).

use std::sync::Arc;
use std::time::Duration;

use apistore::storage::{ListOptions, WatchEvent, WatchStream};
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::watch as signal;
use tokio::time::Instant;

use super::Context;
use crate::negotiation::{Output, Shape};
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};

/// kube-apiserver's default `--min-request-timeout`: the longest a watch stays open.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Feed {
    resource: Arc<Resource>,
    stream: WatchStream,
    deadline: Instant,
    shutdown: signal::Receiver<bool>,
    /// The resource's storage was replaced (a migration's cutover): the watch ends.
    retired: signal::Receiver<bool>,
    shape: Shape,
    include: Include,
    allow_bookmarks: bool,
    /// Table events after the first carry no column definitions (kube's response.go).
    columns_sent: bool,
    done: bool,
}

impl Context<'_> {
    /// `?watch=true` (or the legacy `/watch/` path) on a collection or one name.
    pub(super) async fn watch(&self, name: Option<String>, output: Output) -> ApiResult<Response> {
        let options = self.list_options(name.as_deref(), true)?;
        let timeout = match self.param("timeoutSeconds") {
            "" => DEFAULT_TIMEOUT,
            text => text
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| ApiError::bad_request(format!("invalid value {text:?} for timeoutSeconds")))?,
        };
        let include = table::include(self.param("includeObject"))?;
        let key = self.list_key()?;
        serve(self.resource().clone(), &key, options, timeout, output.shape, include, self.app.shutdown.clone()).await
    }
}

/// Starts a watch on `key` and answers with the event stream.
///
/// Errors: the storage's validation errors (bad resourceVersion, 410 too old, ...) as a
/// Status before the stream starts.
async fn serve(
    resource: Arc<Resource>,
    key: &str,
    options: ListOptions,
    timeout: Duration,
    shape: Shape,
    include: Include,
    shutdown: signal::Receiver<bool>,
) -> ApiResult<Response> {
    let allow_bookmarks = options.predicate.allow_watch_bookmarks;
    let stream =
        resource.storage.watch(key, options).await.map_err(|e| ApiError::from_storage(e, &resource.target("")))?;
    let retired = resource.retired.subscribe();
    let feed = Feed {
        resource,
        stream,
        deadline: Instant::now() + timeout,
        shutdown,
        retired,
        shape,
        include,
        allow_bookmarks,
        columns_sent: false,
        done: false,
    };
    let body = futures::stream::unfold(feed, |mut feed| async move {
        let line = feed.next_line().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(line), feed))
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    Ok(response)
}

impl Feed {
    /// The next encoded event line; None ends the response.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if self.done || *self.shutdown.borrow() || *self.retired.borrow() {
                return None;
            }
            let event = tokio::select! {
                event = self.stream.next() => event,
                _ = tokio::time::sleep_until(self.deadline) => None,
                _ = self.shutdown.changed() => None,
                _ = self.retired.changed() => None,
            };
            let Some(event) = event else {
                self.done = true;
                return None;
            };
            if matches!(event, WatchEvent::Bookmark(_)) && !self.allow_bookmarks {
                continue;
            }
            let value = self.render(event);
            let mut line = serde_json::to_vec(&value).unwrap_or_default();
            line.push(b'\n');
            return Some(Bytes::from(line));
        }
    }

    fn render(&mut self, event: WatchEvent) -> Value {
        let kind = event.type_name();
        let object = match event {
            WatchEvent::Error(err) => {
                self.done = true;
                let status = ApiError::from_storage(err, &self.resource.target("")).to_status();
                return json!({ "type": kind, "object": status });
            }
            WatchEvent::Bookmark(mut object) => {
                object.api_version = self.resource.api_version();
                object.kind.clone_from(&self.resource.kind);
                return json!({ "type": kind, "object": object });
            }
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => self.resource.served(o),
        };
        let object = match self.shape {
            Shape::Table => {
                let mut t = table::table(&self.resource, std::slice::from_ref(&object), self.include, json!({}));
                if std::mem::replace(&mut self.columns_sent, true) {
                    t["columnDefinitions"] = Value::Null;
                }
                t
            }
            Shape::PartialMetadata => table::partial_metadata(&object),
            Shape::Object => serde_json::to_value(&object).unwrap_or(Value::Null),
        };
        json!({ "type": kind, "object": object })
    }
}
