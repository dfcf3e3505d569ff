//! The typed facade: your own serde types over any `Arc<dyn Storage>`.
//!
//! The storage layer is untyped ([`Object`]: `metadata` + the rest of the JSON document).
//! [`TypedStorage<T>`] maps a user type `T` — a serde struct shaped like a Kubernetes object
//! (`apiVersion`, `kind`, `metadata`, `spec`, ...) — onto it through `serde_json`, and builds
//! keys from the object's namespace and name with [`names::object_key`] /
//! [`names::list_key`], like the rest of apistore. It wraps any storage ([`Store`](crate::store::Store), the watch
//! cache, metrics or tracing layers) and knows nothing of what it wraps.
//!
//! ```
//! use std::sync::Arc;
//!
//! use apistore::storage::{GetOptions, ListOptions, Storage};
//! use apistore::{ObjectMeta, Store, StoreConfig, TypedStorage};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Default, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct ConfigMap {
//!     api_version: String,
//!     kind: String,
//!     metadata: ObjectMeta,
//!     #[serde(default)]
//!     data: std::collections::BTreeMap<String, String>,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> apistore::Result<()> {
//! // Any Arc<dyn Storage>: here a Store over the in-memory example backend.
//! let backend = Arc::new(apistore_memory::MemoryBackend::new());
//! let storage: Arc<dyn Storage> = Arc::new(Store::new(backend, StoreConfig::new("configmaps"))?);
//! let configmaps = TypedStorage::<ConfigMap>::new(storage, "configmaps");
//!
//! let mut hello = ConfigMap { api_version: "v1".into(), kind: "ConfigMap".into(), ..Default::default() };
//! hello.metadata.namespace = "default".into();
//! hello.metadata.name = "hello".into();
//! hello.data.insert("greeting".into(), "hi".into());
//! let created = configmaps.create(&hello).await?;
//! assert!(!created.metadata.resource_version.is_empty());
//!
//! let updated = configmaps
//!     .update("default", "hello", None, |mut cm: ConfigMap| {
//!         cm.data.insert("greeting".into(), "hello".into());
//!         Ok(cm)
//!     })
//!     .await?;
//! assert_eq!(updated.data["greeting"], "hello");
//!
//! let got = configmaps.get("default", "hello", GetOptions::default()).await?.expect("present");
//! assert_eq!(got.metadata.resource_version, updated.metadata.resource_version);
//! let list = configmaps.list("", ListOptions::default()).await?;
//! assert_eq!(list.items.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! **Conversion.** `T` → [`Object`]: `T` must serialize to a JSON object; `null` members of
//! its `metadata` count as absent (so `Option` fields need no `skip_serializing_if`); the
//! result must decode as an [`Object`] (`metadata` a Kubernetes `ObjectMeta`). Otherwise the
//! call fails with [`Error::BadRequest`] naming `T`, before anything reaches the storage. A
//! missing or invalid name or namespace is [`Error::Invalid`] from [`names::object_key`].
//! [`Object`] → `T`: a stored object that does not deserialize into `T` (e.g. it lacks a field
//! `T` requires) is [`Error::Corrupt`] naming the key and `T`. Nothing here panics on bad
//! input. ([`Error::InvalidObject`] is not used for conversions: it means "a precondition
//! failed" and stays reserved for that.)
//!
//! **Fields `T` does not model are dropped on update.** [`TypedStorage::update`] decodes the
//! stored object into `T`, lets the closure change it and stores what `T` serializes to: any
//! field of the stored document (in `metadata` or elsewhere) that `T` does not have is lost.
//! Model every field other writers set (or use the untyped [`TypedStorage::storage`]).

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::names;
use crate::object::Object;
use crate::storage::{
    DeleteOptions, GetOptions, ListOptions, Preconditions, ResponseMeta, Storage, WatchEvent, WatchStream,
};

/// A resource of user type `T` over any `Arc<dyn Storage>`.
///
/// Keys are `/<resource prefix>/<namespace>/<name>` (or `/<resource prefix>/<name>` for an
/// empty namespace, i.e. cluster-scoped objects), built by [`names::object_key`]; the prefix
/// must be the one the wrapped storage serves (e.g. `pods` for `StoreConfig::new("pods")`).
/// Cloning is cheap (it shares the storage).
pub struct TypedStorage<T> {
    storage: Arc<dyn Storage>,
    resource_prefix: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedStorage<T> {
    fn clone(&self) -> Self {
        Self { storage: self.storage.clone(), resource_prefix: self.resource_prefix.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for TypedStorage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedStorage")
            .field("type", &type_name::<T>())
            .field("resource_prefix", &self.resource_prefix)
            .finish_non_exhaustive()
    }
}

/// The result of [`TypedStorage::list`] (the typed [`ObjectList`](crate::storage::ObjectList)).
#[derive(Clone, Debug, PartialEq)]
pub struct TypedList<T> {
    /// The matching objects, in key order.
    pub items: Vec<T>,
    /// The revision the list was read at.
    pub resource_version: u64,
    /// Token for the next page (pass it as `predicate.continue_token`); empty on the last page.
    pub continue_token: String,
    /// Items after this page, when known and no selector was used.
    pub remaining_item_count: Option<i64>,
}

/// One event of a [`TypedWatchStream`] (the typed [`WatchEvent`]).
#[derive(Clone, Debug, PartialEq)]
pub enum TypedWatchEvent<T> {
    /// An object started matching (created, or updated into the selector).
    Added(T),
    /// A matching object changed.
    Modified(T),
    /// An object stopped matching; its last state with the resourceVersion of the event.
    Deleted(T),
    /// Progress: every change up to this resourceVersion has been delivered.
    Bookmark(u64),
    /// The watch failed (e.g. 410 too old, or an object that does not decode into `T`); no
    /// event follows.
    Error(Error),
}

/// A running typed watch. Dropping it (or [`TypedWatchStream::stop`]) ends the watch.
pub struct TypedWatchStream<T> {
    inner: WatchStream,
    resource_prefix: String,
    ended: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TypedWatchStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedWatchStream")
            .field("type", &type_name::<T>())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + 'static> TypedWatchStream<T> {
    /// The next event; None once the watch has ended. After a
    /// [`TypedWatchEvent::Error`] (from the storage, or an object that does not decode into
    /// `T`) the watch is stopped and this returns None.
    pub async fn next(&mut self) -> Option<TypedWatchEvent<T>> {
        if self.ended {
            return None;
        }
        let event = match self.inner.next().await? {
            WatchEvent::Added(object) => self.decode(object).map(TypedWatchEvent::Added),
            WatchEvent::Modified(object) => self.decode(object).map(TypedWatchEvent::Modified),
            WatchEvent::Deleted(object) => self.decode(object).map(TypedWatchEvent::Deleted),
            WatchEvent::Bookmark(object) => object.resource_version().map(TypedWatchEvent::Bookmark),
            WatchEvent::Error(err) => Err(err),
        };
        Some(event.unwrap_or_else(|err| {
            self.stop();
            TypedWatchEvent::Error(err)
        }))
    }

    /// Stops the watch: no new events are produced.
    pub fn stop(&mut self) {
        self.ended = true;
        self.inner.stop();
    }

    /// The watch as a [`futures::Stream`] of events (ends like [`TypedWatchStream::next`]).
    pub fn into_stream(self) -> impl Stream<Item = TypedWatchEvent<T>> + Send + 'static {
        futures::stream::unfold(self, |mut watch| async move { watch.next().await.map(|event| (event, watch)) })
    }

    fn decode(&self, object: Object) -> Result<T> {
        from_object_at_own_key(&self.resource_prefix, object)
    }
}

impl<T> TypedStorage<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Wraps `storage`, whose objects live under `resource_prefix` (`pods`, `/pods` and
    /// `/pods/` are the same prefix).
    pub fn new(storage: Arc<dyn Storage>, resource_prefix: impl Into<String>) -> Self {
        Self { storage, resource_prefix: resource_prefix.into(), _type: PhantomData }
    }

    /// The wrapped (untyped) storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The resource prefix keys are built with.
    pub fn resource_prefix(&self) -> &str {
        &self.resource_prefix
    }

    /// The storage key of `namespace`/`name` ([`names::object_key`]).
    ///
    /// Errors: [`Error::Invalid`] for a name or namespace that is not a valid path segment.
    pub fn key(&self, namespace: &str, name: &str) -> Result<String> {
        names::object_key(&self.resource_prefix, namespace, name)
    }

    /// Creates `object` under the key of its namespace and name; returns the stored object
    /// (resourceVersion set by the storage).
    ///
    /// Errors: conversion errors (see the module docs), [`Error::Invalid`] for a missing or
    /// invalid name, and the storage's create errors ([`Error::AlreadyExists`],
    /// [`Error::ResourceVersionSetOnCreate`], [`Error::TooLarge`], ...).
    pub async fn create(&self, object: &T) -> Result<T> {
        let object = to_object(object)?;
        let key = self.key(&object.metadata.namespace, &object.metadata.name)?;
        let created = self.storage.create(&key, object, 0).await?;
        from_object(&key, created)
    }

    /// Reads `namespace`/`name`. `Ok(None)` only with `options.ignore_not_found` and a
    /// missing object.
    ///
    /// Errors: [`Error::NotFound`], [`Error::Corrupt`] when the stored object does not
    /// decode into `T`, and the storage's get errors.
    pub async fn get(&self, namespace: &str, name: &str, options: GetOptions) -> Result<Option<T>> {
        let key = self.key(namespace, name)?;
        match self.storage.get(&key, options).await? {
            Some(object) => from_object(&key, object).map(Some),
            None => Ok(None),
        }
    }

    /// Lists the objects of `namespace`, or of every namespace when `namespace` is `""`
    /// (Kubernetes' `NamespaceAll`). `options.recursive` is always set (a list covers the
    /// whole "directory"); selectors, paging and resourceVersion semantics are the storage's.
    ///
    /// Errors: [`Error::Corrupt`] when an item does not decode into `T` (the whole list
    /// fails), and the storage's list errors.
    pub async fn list(&self, namespace: &str, options: ListOptions) -> Result<TypedList<T>> {
        let key = names::list_key(&self.resource_prefix, namespace)?;
        let list = self.storage.get_list(&key, ListOptions { recursive: true, ..options }).await?;
        let items = list
            .items
            .into_iter()
            .map(|object| from_object_at_own_key(&self.resource_prefix, object))
            .collect::<Result<Vec<T>>>()?;
        Ok(TypedList {
            items,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
            remaining_item_count: list.remaining_item_count,
        })
    }

    /// Updates `namespace`/`name` through the storage's `guaranteed_update`: `update` gets
    /// the current object and returns the new one. The storage calls it again with fresh
    /// state after a conflict, so it must be free of side effects that cannot repeat.
    /// `preconditions` are checked by the storage. Returns the stored object.
    ///
    /// Fields of the stored document that `T` does not model are dropped (see the module
    /// docs). An unchanged object is not written.
    ///
    /// Errors: [`Error::NotFound`], [`Error::InvalidObject`] (a precondition failed),
    /// [`Error::Corrupt`] when the stored object does not decode into `T`, conversion errors of
    /// the returned `T`, [`Error::Invalid`] when it changes `metadata.name` or
    /// `metadata.namespace`, and whatever `update` returns (the stored object is unchanged).
    pub async fn update<F>(
        &self,
        namespace: &str,
        name: &str,
        preconditions: Option<&Preconditions>,
        mut update: F,
    ) -> Result<T>
    where
        F: FnMut(T) -> Result<T> + Send,
    {
        let key = self.key(namespace, name)?;
        let mut try_update = |current: Object, _: ResponseMeta| {
            let updated = to_object(&update(from_object(&key, current)?)?)?;
            let meta = &updated.metadata;
            for (field, now, was) in
                [("metadata.namespace", &meta.namespace, namespace), ("metadata.name", &meta.name, name)]
            {
                if now != was {
                    return Err(Error::invalid(field, now, format!("may not be changed by an update of {key}")));
                }
            }
            Ok((updated, None))
        };
        let stored = self.storage.guaranteed_update(&key, false, preconditions, &mut try_update, None).await?;
        from_object(&key, stored)
    }

    /// Deletes `namespace`/`name` if `preconditions` hold; returns the deleted object with
    /// the delete's resourceVersion. An object that does not decode into `T` is not deleted
    /// (use the untyped [`TypedStorage::storage`] for it).
    ///
    /// Errors: [`Error::NotFound`], [`Error::InvalidObject`] (a precondition failed; nothing
    /// is deleted), [`Error::Corrupt`] (nothing is deleted), and the storage's delete errors.
    pub async fn delete(&self, namespace: &str, name: &str, preconditions: Option<&Preconditions>) -> Result<T> {
        let key = self.key(namespace, name)?;
        let decodes = |object: Option<&Object>| match object {
            Some(object) => from_object::<T>(&key, object.clone()).map(drop),
            None => Err(Error::Corrupt { key: key.clone(), message: "the stored object cannot be read".to_owned() }),
        };
        let deleted = self.storage.delete(&key, preconditions, &decodes, None, DeleteOptions::default()).await?;
        from_object(&key, deleted)
    }

    /// Watches the objects of `namespace` (every namespace for `""`); `options.recursive` is
    /// always set. Start point, selectors, bookmarks and initial events follow `options`.
    ///
    /// Errors: the storage's watch validation errors; later failures arrive as
    /// [`TypedWatchEvent::Error`].
    pub async fn watch(&self, namespace: &str, options: ListOptions) -> Result<TypedWatchStream<T>> {
        let key = names::list_key(&self.resource_prefix, namespace)?;
        let inner = self.storage.watch(&key, ListOptions { recursive: true, ..options }).await?;
        Ok(TypedWatchStream { inner, resource_prefix: self.resource_prefix.clone(), ended: false, _type: PhantomData })
    }

    /// The number of objects of this resource in every namespace (the storage's
    /// [`Stats::object_count`](crate::storage::Stats::object_count)).
    ///
    /// Errors: the storage's stats errors.
    pub async fn count(&self) -> Result<i64> {
        Ok(self.storage.stats().await?.object_count)
    }
}

/// `T` → [`Object`]. Errors: [`Error::BadRequest`] naming `T` and the problem.
fn to_object<T: Serialize>(value: &T) -> Result<Object> {
    let bad = |why: String| Error::bad_request(format!("{} is not a Kubernetes object: {why}", type_name::<T>()));
    let mut value = serde_json::to_value(value).map_err(|e| bad(format!("it does not serialize to JSON: {e}")))?;
    let Value::Object(document) = &mut value else {
        return Err(bad(format!("it serializes to JSON {}, not to a JSON object", json_kind(&value))));
    };
    if let Some(Value::Object(metadata)) = document.get_mut("metadata") {
        metadata.retain(|_, member| !member.is_null());
    }
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}

/// [`Object`] stored at `key` → `T`. Errors: [`Error::Corrupt`] naming the key and `T`.
fn from_object<T: DeserializeOwned>(key: &str, object: Object) -> Result<T> {
    let corrupt = |e: serde_json::Error| Error::Corrupt {
        key: key.to_owned(),
        message: format!("the stored object does not decode into {}: {e}", type_name::<T>()),
    };
    serde_json::to_value(object).and_then(serde_json::from_value).map_err(corrupt)
}

/// [`from_object`] for an object of a list or watch, whose key comes from its metadata.
fn from_object_at_own_key<T: DeserializeOwned>(resource_prefix: &str, object: Object) -> Result<T> {
    let key = names::object_key(resource_prefix, &object.metadata.namespace, &object.metadata.name)
        .unwrap_or_else(|_| format!("{resource_prefix} object {:?}", object.metadata.name));
    from_object(&key, object)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Named {
        metadata: Meta,
        spec: Spec,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta {
        name: String,
        uid: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Spec {
        replicas: u32,
    }

    #[test]
    fn converts_both_ways_and_treats_null_metadata_as_absent() {
        let named = Named { metadata: Meta { name: "a".into(), uid: None }, spec: Spec { replicas: 2 } };
        let object = to_object(&named).expect("to object");
        assert_eq!(object.metadata.name, "a");
        assert_eq!(object.metadata.uid, "");
        assert_eq!(object.fields.get("spec"), Some(&json!({ "replicas": 2 })));
        assert_eq!(from_object::<Named>("/x/a", object).expect("from object"), named);
    }

    #[test]
    fn non_objects_and_bad_metadata_are_bad_requests() {
        let err = to_object(&vec![1, 2]).expect_err("array");
        assert_eq!(err.code(), 400, "{err}");
        assert!(err.to_string().contains("an array, not to a JSON object"), "{err}");
        let err = to_object(&json!({ "metadata": { "labels": ["x"] } })).expect_err("labels as an array");
        assert_eq!(err.code(), 400, "{err}");
        assert!(err.to_string().contains("serde_json::value::Value is not a Kubernetes object"), "{err}");
    }

    #[test]
    fn objects_missing_required_fields_are_corrupt() {
        let object = Object::new("v1", "X", "", "a");
        let err = from_object::<Named>("/x/a", object).expect_err("no spec");
        assert!(
            matches!(&err, Error::Corrupt { key, message } if key == "/x/a" && message.contains("missing field `spec`")),
            "{err:?}"
        );
    }
}
