//! `GET` of a collection: kube's `listResourcesHandler` — selectors, paging, resourceVersion
//! semantics (the storage's), and the Table / PartialObjectMetadataList transformations.
//!
//! From a storage that holds its objects encoded (the watch cache), a list is written from the
//! items' bytes and the representations kept with them ([`crate::representations`]: the served
//! JSON of another version or form, YAML, PartialObjectMetadata as JSON and YAML, a Table row's
//! cells as JSON and YAML, each computed once per object version), streamed in bounded chunks,
//! in every representation ([`ListForm::of`]); its bytes are the ones the decoded path
//! ([`decoded_list`]) writes (JSON objects written from their stored bytes: the same JSON).

use std::sync::Arc;

use apistore::encoded::EncodedList;
use apistore::selector::{FieldRequirement, FieldSelector, LabelSelector};
use apistore::storage::{ListOptions, ObjectList, Predicate, ResourceVersion, ResourceVersionMatch};
use apistore::{Error, Object};
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{respond, Context};
use crate::list_options;
use crate::negotiation::{Format, Output, Shape};
use crate::representations::{self, Ages, Served, Serving};
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};

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
        let resource = self.resource();
        if let Some(form) = ListForm::of(resource, output, include) {
            let list = resource.storage.get_list_encoded(&key, options).await.map_err(self.storage_error(""))?;
            return Ok(encoded_list_response(resource.clone(), list, form));
        }
        let list = resource.storage.get_list(&key, options).await.map_err(self.storage_error(""))?;
        Ok(respond(StatusCode::OK, &decoded_list(resource, list, output.shape, include), output))
    }
}

/// The list metadata of a list read at `resource_version` (`continue`, `remainingItemCount`
/// when set).
fn list_metadata(resource_version: u64, continue_token: &str, remaining_item_count: Option<i64>) -> Value {
    let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
    if !continue_token.is_empty() {
        metadata["continue"] = json!(continue_token);
    }
    if let Some(remaining) = remaining_item_count {
        metadata["remainingItemCount"] = json!(remaining);
    }
    metadata
}

/// A list as `shape` from decoded objects: every item decoded, made served and turned into a
/// JSON value (the path for a storage that does not hold encoded objects, and the reference
/// the encoded path must match byte for byte).
fn decoded_list(resource: &Resource, list: ObjectList, shape: Shape, include: Include) -> Value {
    let metadata = list_metadata(list.resource_version, &list.continue_token, list.remaining_item_count);
    let items: Vec<Object> = list.items.into_iter().map(|o| resource.served(o)).collect();
    match shape {
        Shape::Table => table::table(resource, &items, include, metadata),
        Shape::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.iter().map(table::partial_metadata).collect::<Vec<_>>(),
        }),
        Shape::Object => json!({
            "kind": resource.list_kind(),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    }
}

/// A list representation written from encoded items, each item's part computed once per object
/// version and kept with its bytes ([`Served`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListForm {
    /// The list as JSON: the items' stored bytes as they are when they are the served JSON,
    /// else their kept served JSON.
    Json,
    /// The list as YAML (the items' kept YAML, indented as list entries).
    Yaml,
    /// `PartialObjectMetadataList` as JSON (the items' kept metadata).
    Metadata,
    /// `PartialObjectMetadataList` as YAML (the items' kept metadata YAML, indented).
    MetadataYaml,
    /// A Table as JSON (the rows' kept cells, `Age` per request; the object's kept metadata or
    /// served JSON).
    Table(Include),
    /// A Table as YAML (the rows' kept cells as YAML, `Age` per request; the object's kept
    /// metadata or YAML, indented).
    TableYaml(Include),
}

impl ListForm {
    /// The form `output` is written in from encoded items, None when it is written from decoded
    /// ones. From a storage that holds encoded objects (a watch cache) every representation is:
    /// JSON (the stored bytes, or the served JSON kept per object version for a kind served in
    /// another form than stored, or in another version: a CRD's other served versions), YAML,
    /// PartialObjectMetadataList and Tables (any `includeObject`) as JSON and as YAML — byte
    /// for byte the decoded path's, but for the JSON of objects written from their stored bytes
    /// (their keys in stored order; the decoded path sorts them: the same JSON). From a storage
    /// that does not hold them (`--watch-cache=false`), the JSON of a kind served in its stored
    /// form is written from the bytes the storage read (nothing decoded); everything else there
    /// is decoded ([`decoded_list`]: nothing would be kept, every form is made per request).
    fn of(resource: &Resource, output: Output, include: Include) -> Option<ListForm> {
        let held = resource.storage.holds_encoded();
        match (output.shape, output.format) {
            (Shape::Object, Format::Json) if held || resource.strategy.serves_stored_form() => Some(ListForm::Json),
            _ if !held => None,
            (Shape::Object, Format::Yaml) => Some(ListForm::Yaml),
            (Shape::PartialMetadata, Format::Json) => Some(ListForm::Metadata),
            (Shape::PartialMetadata, Format::Yaml) => Some(ListForm::MetadataYaml),
            (Shape::Table, Format::Json) => Some(ListForm::Table(include)),
            (Shape::Table, Format::Yaml) => Some(ListForm::TableYaml(include)),
            (Shape::Object, Format::Json) => None, // a watch cache's: matched above
        }
    }

    fn format(self) -> Format {
        match self {
            ListForm::Yaml | ListForm::MetadataYaml | ListForm::TableYaml(_) => Format::Yaml,
            ListForm::Json | ListForm::Metadata | ListForm::Table(_) => Format::Json,
        }
    }
}

/// Size of the body chunks an encoded list is written in: a request holds one chunk and the
/// item handles (shared bytes), whatever the list's size.
const CHUNK: usize = 64 * 1024;

/// How many items ahead of the one being written a list touches the next item's bytes.
const TOUCH_AHEAD: usize = 6;

/// The envelope of an encoded list in `form`: the bytes before the first item, between two
/// items and after the last; and the whole body of the list without items when that is not
/// `head` + `tail` (YAML writes `items: []`).
struct Envelope {
    head: Vec<u8>,
    separator: &'static [u8],
    tail: Vec<u8>,
    empty: Option<Vec<u8>>,
}

impl Envelope {
    fn new(resource: &Resource, list: &EncodedList, form: ListForm) -> Envelope {
        let metadata = list_metadata(list.resource_version, &list.continue_token, list.remaining_item_count);
        // serde_yaml's own envelope (keys sorted), split where its empty sequence stands.
        let yaml = |(head, tail, empty): (Vec<u8>, Vec<u8>, Vec<u8>)| Envelope {
            head,
            separator: b"",
            tail,
            empty: Some(empty),
        };
        let metadata_list = || {
            json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": [],
            })
        };
        match form {
            ListForm::Json => Envelope {
                head: format!(
                    "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                    json!(resource.list_kind()),
                    json!(resource.api_version()),
                    metadata
                )
                .into_bytes(),
                separator: b",",
                tail: b"]}".to_vec(),
                empty: None,
            },
            ListForm::Metadata => Envelope {
                head: b"{\"apiVersion\":\"meta.k8s.io/v1\",\"items\":[".to_vec(),
                separator: b",",
                tail: format!("],\"kind\":\"PartialObjectMetadataList\",\"metadata\":{metadata}}}").into_bytes(),
                empty: None,
            },
            ListForm::Table(_) => Envelope {
                head: representations::table_head(resource, &metadata, true),
                separator: b",",
                tail: b"]}".to_vec(),
                empty: None,
            },
            ListForm::Yaml => yaml(representations::yaml_envelope(
                &json!({
                    "kind": resource.list_kind(),
                    "apiVersion": resource.api_version(),
                    "metadata": metadata,
                    "items": [],
                }),
                "items",
            )),
            ListForm::MetadataYaml => yaml(representations::yaml_envelope(&metadata_list(), "items")),
            ListForm::TableYaml(_) => yaml(representations::table_yaml_envelope(resource, &metadata)),
        }
    }
}

/// A list response written from encoded items in `form`: the envelope around each item's
/// part, streamed in [`CHUNK`]-sized pieces as the items are written. An item whose part cannot
/// be made (its stored bytes do not decode: corruption) ends the body early, so the client
/// sees a broken response rather than a list without the item.
fn encoded_list_response(resource: Arc<Resource>, list: EncodedList, form: ListForm) -> Response {
    let envelope = Envelope::new(&resource, &list, form);
    let media_type = form.format().media_type();
    let serving = Serving::of(&resource);
    let empty_list = list.items.is_empty();
    let mut items = list.items.into_iter();
    let (mut chunk, tail) = match envelope.empty {
        Some(empty) if empty_list => (empty, Vec::new()),
        _ => (envelope.head, envelope.tail),
    };
    let separator = envelope.separator;
    let mut tail = Some(tail);
    let mut first = true;
    let mut ages = Ages::default();
    let body = futures::stream::poll_fn(move |_| {
        let Some(last) = tail.as_ref() else {
            return std::task::Poll::Ready(None);
        };
        while let Some(item) = items.next() {
            // Touch an item a few places ahead: its load overlaps this item's copy instead of
            // stalling when its turn comes (the items are scattered in memory).
            if let Some(ahead) = items.as_slice().get(TOUCH_AHEAD) {
                std::hint::black_box(ahead.json().first());
            }
            if !std::mem::take(&mut first) {
                chunk.extend_from_slice(separator);
            }
            let served = Served::new(&resource, &item, &serving);
            let written = match form {
                // Most lists: the stored bytes are the served JSON, copied as they are.
                ListForm::Json if served.stored_is_served() => {
                    chunk.extend_from_slice(item.json());
                    Ok(())
                }
                ListForm::Json => served.json().map(|json| chunk.extend_from_slice(&json)),
                ListForm::Yaml => served.yaml().map(|yaml| representations::push_yaml_item(&mut chunk, &yaml)),
                ListForm::Metadata => {
                    served.partial_metadata_in(Format::Json).map(|json| chunk.extend_from_slice(&json))
                }
                ListForm::MetadataYaml => served
                    .partial_metadata_in(Format::Yaml)
                    .map(|yaml| representations::push_yaml_item(&mut chunk, &yaml)),
                ListForm::Table(include) => served.table_row(include).map(|row| chunk.extend_from_slice(&row)),
                ListForm::TableYaml(include) => {
                    served.table_row_yaml(include, &mut ages).map(|row| chunk.extend_from_slice(&row))
                }
            };
            if let Err(error) = written {
                tracing::error!(resource = %resource.plural, message = %error.message, "writing a list item");
                tail = None;
                return std::task::Poll::Ready(Some(Err(std::io::Error::other(error.message))));
            }
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK + 4096));
                return std::task::Poll::Ready(Some(Ok(Bytes::from(full))));
            }
        }
        chunk.extend_from_slice(last);
        tail = None;
        std::task::Poll::Ready(Some(Ok(Bytes::from(std::mem::take(&mut chunk)))))
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use apistore::store::{Store, StoreConfig};
    use apistore_memory::MemoryBackend;

    fn resource(group: &str, plural: &str, custom: bool) -> Arc<Resource> {
        let store = Store::new(Arc::new(MemoryBackend::new()), StoreConfig::new(plural)).expect("store");
        Arc::new(crate::resources::for_tests(group, plural, custom, Arc::new(store)).expect("a built-in resource"))
    }

    /// Objects of `resource`'s stored form with what YAML and JSON writers treat specially:
    /// multi-line strings (empty lines, leading spaces, trailing newlines, U+2028), strings that
    /// look like numbers or booleans, nested lists and maps, empty ones, no creationTimestamp.
    fn objects(resource: &Resource, stored_api_version: &str) -> Vec<Object> {
        let texts = [
            "plain",
            "two\nlines",
            "\n\nleading breaks\n\n\nand empty lines\n",
            "  indented\n    more\nend",
            "line\u{2028}separated\u{2029}paragraph\nand\n\u{2028}\n",
            "trailing space \nthen",
            "tab\there: # not a comment",
            "123",
            "true",
            "- dash",
            "ünïcödé ✓",
            "",
        ];
        let namespace = if resource.namespaced { "default" } else { "" };
        let mut objects = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let mut object = Object::new(stored_api_version, &resource.kind, namespace, &format!("o{i:02}"))
                .with_label("app", if i % 2 == 0 { "even" } else { "odd" })
                .with_field("data", json!({ "text": text, "number": i, "list": [text, {"k": text}, []], "empty": {} }))
                .with_field("spec", json!({ "replicas": i, "template": {"metadata": {"labels": {"x": text}}} }))
                .with_field(
                    "status",
                    json!({ "readyReplicas": i / 2, "conditions": [{"type": "Ready", "message": text}] }),
                );
            object.metadata.resource_version = (100 + i).to_string();
            object.metadata.uid = format!("uid-{i}");
            object.metadata.annotations.insert("note".into(), text.to_string());
            object.metadata.creation_timestamp = (i != 3).then(|| "2020-01-01T00:00:00Z".to_owned());
            objects.push(object);
        }
        objects
    }

    async fn body(response: Response) -> (String, Vec<u8>) {
        let media = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the whole body");
        (media, bytes.to_vec())
    }

    /// Every representation written from encoded items is byte for byte the decoded path's, for
    /// a kind with Table columns, one served in another form than stored, a custom resource and
    /// one without columns; with list metadata (continue, remainingItemCount) and empty lists;
    /// and the second list (kept representations) equals the first.
    #[tokio::test]
    async fn encoded_lists_are_the_decoded_paths_bytes_in_every_representation() {
        let cases = [
            (resource("apps", "deployments", false), "apps/v1"),
            (resource("", "configmaps", false), "v1"),
            (resource("events.k8s.io", "events", false), "v1"),
            (resource("example.com", "gizmos", true), "example.com/v1"),
        ];
        let forms = [
            (Shape::Object, Format::Json, Include::Metadata, ListForm::Json),
            (Shape::Object, Format::Yaml, Include::Metadata, ListForm::Yaml),
            (Shape::PartialMetadata, Format::Json, Include::Metadata, ListForm::Metadata),
            (Shape::PartialMetadata, Format::Yaml, Include::Metadata, ListForm::MetadataYaml),
            (Shape::Table, Format::Json, Include::Metadata, ListForm::Table(Include::Metadata)),
            (Shape::Table, Format::Json, Include::None, ListForm::Table(Include::None)),
            (Shape::Table, Format::Json, Include::Object, ListForm::Table(Include::Object)),
            (Shape::Table, Format::Yaml, Include::Metadata, ListForm::TableYaml(Include::Metadata)),
            (Shape::Table, Format::Yaml, Include::None, ListForm::TableYaml(Include::None)),
            (Shape::Table, Format::Yaml, Include::Object, ListForm::TableYaml(Include::Object)),
        ];
        for (resource, stored) in cases {
            let all = objects(&resource, stored);
            let lists = [
                ObjectList {
                    resource_version: 7,
                    continue_token: String::new(),
                    remaining_item_count: None,
                    items: all.clone(),
                },
                ObjectList {
                    resource_version: 123,
                    continue_token: "eyJydiI6MTIzfQ".into(),
                    remaining_item_count: Some(42),
                    items: all[..3].to_vec(),
                },
                ObjectList {
                    resource_version: 9,
                    continue_token: String::new(),
                    remaining_item_count: None,
                    items: vec![],
                },
            ];
            for list in lists {
                let encoded = EncodedList::encode(list.clone()).expect("encode");
                for (shape, format, include, form) in forms {
                    let what =
                        format!("{} {shape:?} {format:?} {include:?} ({} items)", resource.plural, list.items.len());
                    let expected = codec::encode(&decoded_list(&resource, list.clone(), shape, include), format);
                    let (media, first) = body(encoded_list_response(resource.clone(), encoded.clone(), form)).await;
                    assert_eq!(media, format.media_type(), "{what}");
                    let (_, second) = body(encoded_list_response(resource.clone(), encoded.clone(), form)).await;
                    if format == Format::Json && (shape == Shape::Object || include == Include::Object) {
                        // The stored bytes keep the object's field order (the decoded path
                        // sorts keys): the same JSON, not the same bytes.
                        let parsed: Value = serde_json::from_slice(&first).expect("JSON");
                        assert_eq!(parsed, serde_json::from_slice::<Value>(&expected).expect("JSON"), "{what}");
                        assert_eq!(second, first, "{what}: from the kept representations");
                        continue;
                    }
                    assert_eq!(String::from_utf8_lossy(&first), String::from_utf8_lossy(&expected), "{what}");
                    assert_eq!(second, expected, "{what}: from the kept representations");
                }
            }
        }
    }

    /// A list larger than one chunk is written in several (bounded memory per request) and is
    /// still the decoded path's bytes.
    #[tokio::test]
    async fn a_long_list_streams_in_chunks() {
        let resource = resource("", "configmaps", false);
        let mut items = Vec::new();
        for round in 0..40 {
            for mut object in objects(&resource, "v1") {
                object.metadata.name = format!("{}-{round}", object.metadata.name);
                items.push(object);
            }
        }
        let list = ObjectList { resource_version: 5, continue_token: String::new(), remaining_item_count: None, items };
        let encoded = EncodedList::encode(list.clone()).expect("encode");
        for (shape, format, form) in [
            (Shape::Object, Format::Yaml, ListForm::Yaml),
            (Shape::Table, Format::Json, ListForm::Table(Include::Metadata)),
            (Shape::Table, Format::Yaml, ListForm::TableYaml(Include::Metadata)),
            (Shape::PartialMetadata, Format::Yaml, ListForm::MetadataYaml),
        ] {
            let mut stream =
                encoded_list_response(resource.clone(), encoded.clone(), form).into_body().into_data_stream();
            let mut chunks = Vec::new();
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                chunks.push(chunk.expect("chunk"));
            }
            assert!(chunks.len() > 2, "{form:?}: {} chunks", chunks.len());
            assert!(chunks.iter().all(|c| c.len() < 2 * CHUNK), "{form:?}: a chunk is bounded");
            let whole: Vec<u8> = chunks.concat();
            assert_eq!(whole, codec::encode(&decoded_list(&resource, list.clone(), shape, Include::Metadata), format));
        }
    }

    /// What a GET and a watch write of one object — its PartialObjectMetadata and its Table (JSON
    /// and YAML, every `includeObject`, the watch's later events without column definitions) —
    /// is the decoded path's bytes (parsed JSON where the object's own JSON is embedded).
    #[test]
    fn one_objects_representations_are_the_decoded_ones() {
        for (resource, stored) in [
            (resource("apps", "deployments", false), "apps/v1"),
            (resource("events.k8s.io", "events", false), "v1"),
            (resource("example.com", "gizmos", true), "example.com/v1"),
        ] {
            let serving = Serving::of(&resource);
            for object in objects(&resource, stored) {
                let encoded = apistore::encoded::EncodedObject::encode(&object).expect("encode");
                let decoded = resource.served(object);
                let served = Served::new(&resource, &encoded, &serving);
                let what = format!("{} {}", resource.plural, decoded.metadata.name);
                for format in [Format::Json, Format::Yaml] {
                    let metadata = served.partial_metadata_in(format).expect("metadata");
                    assert_eq!(metadata, codec::encode(&table::partial_metadata(&decoded), format), "{what}");
                }
                for include in [Include::Metadata, Include::None, Include::Object] {
                    let table = table::table(&resource, std::slice::from_ref(&decoded), include, json!({}));
                    let yaml = representations::table_yaml(
                        &resource,
                        &json!({}),
                        std::iter::once(served.table_row_yaml(include, &mut Ages::default())),
                    )
                    .expect("YAML table");
                    let expected = codec::encode(&table, Format::Yaml);
                    assert_eq!(
                        String::from_utf8_lossy(&yaml),
                        String::from_utf8_lossy(&expected),
                        "{what} {include:?}"
                    );
                    for columns in [true, false] {
                        let mut table = table.clone();
                        if !columns {
                            table["columnDefinitions"] = Value::Null;
                        }
                        let row = std::iter::once(served.table_row(include));
                        let json = representations::table_json(&resource, &json!({}), columns, row).expect("table");
                        let expected = codec::encode(&table, Format::Json);
                        if include == Include::Object {
                            assert_eq!(serde_json::from_slice::<Value>(&json).expect("JSON"), table, "{what}");
                        } else {
                            assert_eq!(String::from_utf8_lossy(&json), String::from_utf8_lossy(&expected), "{what}");
                        }
                    }
                }
            }
        }
    }

    /// Which lists are written from encoded items: every representation from a storage that
    /// holds them; from one that does not, only the plain JSON of a kind served as stored.
    #[tokio::test]
    async fn the_encoded_path_is_taken_where_it_matches_the_decoded_one() {
        let plain = resource("", "configmaps", false);
        let json = Output::JSON;
        let yaml = Output { format: Format::Yaml, shape: Shape::Object };
        let table = Output { format: Format::Json, shape: Shape::Table };
        let table_yaml = Output { format: Format::Yaml, shape: Shape::Table };
        let metadata = Output { format: Format::Json, shape: Shape::PartialMetadata };
        let metadata_yaml = Output { format: Format::Yaml, shape: Shape::PartialMetadata };
        assert_eq!(ListForm::of(&plain, json, Include::Metadata), Some(ListForm::Json));
        for output in [yaml, table, table_yaml, metadata, metadata_yaml] {
            assert_eq!(ListForm::of(&plain, output, Include::Metadata), None, "a plain store: decoded");
        }
        let cached = |resource: &Resource| {
            let inner: apistore::storage::DynStorage = resource.storage.clone();
            let cacher = apistore::cacher::Cacher::new(inner, apistore::cacher::CacherConfig::new(&resource.plural))
                .expect("cacher");
            Arc::new(resource.with_storage(Arc::new(cacher), resource.plural.clone()))
        };
        let held = cached(&plain);
        assert_eq!(ListForm::of(&held, yaml, Include::Metadata), Some(ListForm::Yaml));
        assert_eq!(ListForm::of(&held, table, Include::None), Some(ListForm::Table(Include::None)));
        assert_eq!(ListForm::of(&held, table, Include::Object), Some(ListForm::Table(Include::Object)));
        assert_eq!(ListForm::of(&held, table_yaml, Include::Object), Some(ListForm::TableYaml(Include::Object)));
        assert_eq!(ListForm::of(&held, metadata, Include::Metadata), Some(ListForm::Metadata));
        assert_eq!(ListForm::of(&held, metadata_yaml, Include::Metadata), Some(ListForm::MetadataYaml));
        let events = resource("events.k8s.io", "events", false);
        assert_eq!(ListForm::of(&events, json, Include::Metadata), None, "served in another form than stored");
        assert_eq!(ListForm::of(&cached(&events), json, Include::Metadata), Some(ListForm::Json), "kept served JSON");
    }
}
