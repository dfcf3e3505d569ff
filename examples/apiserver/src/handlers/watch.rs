//! Watch streaming: `?watch=true` as a chunked HTTP response of JSON watch events, one per
//! line: `{"type":"ADDED","object":{...}}`.
//!
//! A JSON watch of a resource served in its stored form writes each event from the object's
//! encoded bytes ([`WatchStream::poll_next_encoded`]: from the watch cache these are the bytes every
//! watcher shares, encoded once per change): the event line is the `{"type":..,"object":`
//! frame around them, nothing is decoded or re-encoded per watcher. From a storage that holds
//! encoded objects (the watch cache) every other watch is written from the representations kept
//! with the change's object ([`Served`]: computed by the first watcher that needs them, once per
//! object version, shared by every watcher and every later list): the served JSON of an object
//! whose bytes are in another apiVersion or form, a Table event (its row's kept cells, `Age` per
//! event; the object's kept metadata or served JSON) and PartialObjectMetadata. Only a storage
//! that does not hold encoded objects (`--watch-cache=false`) has such events decoded and
//! rendered per watcher, and bookmarks and errors always are (they carry no cached object). A
//! change from the watch cache carries its event line ready-made
//! ([`EncodedObject::watch_line`]: the object was encoded inside it, once per change), so an
//! event written alone costs a watcher a reference count and a write. Events that are ready
//! together are copied into one chunk (at most [`BATCH_BYTES`]), so a busy watch costs one write
//! per batch, not one per event; an event that arrives alone is written at once.
//!
//! [`EncodedObject::watch_line`]: apistore::encoded::EncodedObject::watch_line
//!
//! The stream ends at `timeoutSeconds` (default 30 minutes, kube's minimum request timeout),
//! when the storage watch ends (an `ERROR` event carrying a `Status` comes first when it
//! failed), when the client goes away, when the server shuts down, or when the resource's
//! storage is replaced (a migration's cutover: the client watches again, on the new one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use apistore::encoded::{write_watch_line_start, EncodedObject, EncodedWatchEvent, WATCH_LINE_END};
use apistore::storage::{ListOptions, WatchEvent, WatchStream};
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::watch as signal;
use tokio::time::Instant;

use super::Context;
use crate::negotiation::{Format, Output, Shape};
use crate::representations::{self, Served, Serving};
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};

/// kube-apiserver's default `--min-request-timeout`: the longest a watch stays open.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The most bytes of events written in one chunk: events already waiting are appended to the
/// chunk being built until it reaches this size.
pub const BATCH_BYTES: usize = 64 * 1024;

struct Feed {
    resource: Arc<Resource>,
    stream: WatchStream,
    /// Ready at `timeoutSeconds`, at the server's shutdown, or when the resource's storage was
    /// replaced (a migration's cutover): the watch ends. Made once, polled before every chunk.
    end: Pin<Box<dyn Future<Output = ()> + Send>>,
    shape: Shape,
    include: Include,
    allow_bookmarks: bool,
    /// Events are read encoded: a JSON object watch of a resource served in its stored form,
    /// and every watch of a storage that holds encoded objects (otherwise every event is decoded
    /// and rendered).
    encoded: bool,
    /// The served apiVersion and JSON prefix (stored bytes that start with the prefix are the
    /// served form as they are).
    serving: Serving,
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
    let encoded =
        resource.storage.holds_encoded() || (shape == Shape::Object && resource.strategy.serves_stored_form());
    let serving = Serving::of(&resource);
    let end = Box::pin(ended(Instant::now() + timeout, shutdown, retired));
    let feed = Feed {
        resource,
        stream,
        end,
        shape,
        include,
        allow_bookmarks,
        encoded,
        serving,
        columns_sent: false,
        done: false,
    };
    let mut feed = feed;
    let body =
        futures::stream::poll_fn(move |cx| feed.poll_chunk(cx).map(|c| c.map(Ok::<_, std::convert::Infallible>)));
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Resolves at `deadline`, when the server shuts down, or when the resource's storage is
/// retired (also when either signal's sender is gone).
async fn ended(deadline: Instant, mut shutdown: signal::Receiver<bool>, mut retired: signal::Receiver<bool>) {
    // Biased: polled before every chunk, so no random start (thread RNG) per poll.
    tokio::select! {
        biased;
        _ = tokio::time::sleep_until(deadline) => {}
        _ = shutdown.wait_for(|down| *down) => {}
        _ = retired.wait_for(|gone| *gone) => {}
    }
}

impl Feed {
    /// The next chunk: the lines of every event that is ready now (at most [`BATCH_BYTES`] of
    /// lines), `Pending` when none is. `Ready(None)` ends the response. A chunk of one event is
    /// its line as it is (from the watch cache: the cache's own buffer, shared by every
    /// watcher, nothing copied); the lines of several are copied into one chunk, one write.
    fn poll_chunk(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Bytes>> {
        if self.done || self.end.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(None);
        }
        let mut first: Option<Bytes> = None;
        let mut chunk = Vec::new();
        while chunk.len() < BATCH_BYTES && !self.done {
            let next = if self.encoded {
                self.stream.poll_next_encoded(cx).map(|e| e.map(Next::Encoded))
            } else {
                self.stream.poll_next(cx).map(|e| e.map(|e| Next::Decoded(Box::new(e))))
            };
            match next {
                Poll::Ready(Some(event)) => {
                    let Some(line) = self.line(event) else { continue };
                    if let Some(first) = first.take() {
                        chunk.reserve((first.len() + line.len()) * 2);
                        chunk.extend_from_slice(&first);
                    }
                    if chunk.is_empty() {
                        first = Some(line);
                    } else {
                        chunk.extend_from_slice(&line);
                    }
                }
                Poll::Ready(None) => self.done = true,
                Poll::Pending => break,
            }
        }
        if let Some(line) = first {
            Poll::Ready(Some(line))
        } else if !chunk.is_empty() {
            Poll::Ready(Some(Bytes::from(chunk)))
        } else if self.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// The line of `event` (None for a bookmark the client did not allow): the object's own
    /// line when its bytes are the served JSON and were encoded in the line of this event type
    /// (a watch cache's change), else the frame around the served object's kept representation
    /// ([`Feed::kept`]) or, for a decoded event, around its rendering.
    fn line(&mut self, event: Next) -> Option<Bytes> {
        let event = match event {
            Next::Encoded(event) => {
                let kind = event.type_name();
                match event {
                    EncodedWatchEvent::Bookmark(_) if !self.allow_bookmarks => return None,
                    EncodedWatchEvent::Added(object)
                    | EncodedWatchEvent::Modified(object)
                    | EncodedWatchEvent::Deleted(object)
                    | EncodedWatchEvent::Bookmark(object)
                        if self.shape == Shape::Object && object.json().starts_with(self.serving.prefix()) =>
                    {
                        if let Some(line) = object.watch_line(kind) {
                            return Some(line);
                        }
                        return Some(frame(kind, object.json()));
                    }
                    EncodedWatchEvent::Added(object)
                    | EncodedWatchEvent::Modified(object)
                    | EncodedWatchEvent::Deleted(object) => {
                        return Some(match self.kept(&object) {
                            Ok(served) => frame(kind, &served),
                            Err(error) => {
                                // The object's bytes do not decode (corruption): as a decoded
                                // event that failed, an ERROR ends the watch.
                                self.done = true;
                                frame("ERROR", &serde_json::to_vec(&error.to_status()).unwrap_or_default())
                            }
                        });
                    }
                    other => other.decode(),
                }
            }
            Next::Decoded(event) => *event,
        };
        if matches!(event, WatchEvent::Bookmark(_)) && !self.allow_bookmarks {
            return None;
        }
        let kind = event.type_name();
        let object = self.render(event);
        Some(frame(kind, &object))
    }

    /// The JSON of a change's object in the watch's shape, from the representations kept with
    /// it: the served JSON, its PartialObjectMetadata, or a Table of its row (column definitions
    /// in the first Table event only, as [`Feed::render`] writes them).
    ///
    /// Errors: 500 when the object's bytes do not decode.
    fn kept(&mut self, object: &EncodedObject) -> ApiResult<Bytes> {
        let served = Served::new(&self.resource, object, &self.serving);
        match self.shape {
            Shape::Object => served.json(),
            Shape::PartialMetadata => served.partial_metadata_in(Format::Json),
            Shape::Table => {
                let row = served.table_row(self.include);
                let columns = !std::mem::replace(&mut self.columns_sent, true);
                representations::table_json(&self.resource, &json!({}), columns, std::iter::once(row)).map(Bytes::from)
            }
        }
    }

    /// The JSON of the event's object as served: the Status of an ERROR, the bookmark with
    /// the served apiVersion/kind, the object in the watch's shape. An ERROR ends the feed.
    fn render(&mut self, event: WatchEvent) -> Vec<u8> {
        // Encoding a `Value` or an `Object` into bytes does not fail (string keys only).
        let object = match event {
            WatchEvent::Error(err) => {
                self.done = true;
                let status = ApiError::from_storage(err, &self.resource.target("")).to_status();
                return serde_json::to_vec(&status).unwrap_or_default();
            }
            WatchEvent::Bookmark(mut object) => {
                object.api_version = self.resource.api_version();
                object.kind.clone_from(&self.resource.kind);
                return object.to_json().unwrap_or_default();
            }
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => self.resource.served(o),
        };
        let value = match self.shape {
            Shape::Table => {
                let mut t = table::table(&self.resource, std::slice::from_ref(&object), self.include, json!({}));
                if std::mem::replace(&mut self.columns_sent, true) {
                    t["columnDefinitions"] = Value::Null;
                }
                t
            }
            Shape::PartialMetadata => table::partial_metadata(&object),
            Shape::Object => return object.to_json().unwrap_or_default(),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// An event as the feed reads it from the storage watch.
enum Next {
    Encoded(EncodedWatchEvent),
    /// Boxed: a decoded object is large, an encoded event a few words.
    Decoded(Box<WatchEvent>),
}

/// `{"type":"<kind>","object":<the object's bytes>}` and a newline: the line kube-apiserver
/// writes for a JSON watch event.
fn frame(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + kind.len() + 24);
    write_watch_line_start(&mut out, kind);
    out.extend_from_slice(object);
    out.extend_from_slice(WATCH_LINE_END);
    Bytes::from(out)
}
