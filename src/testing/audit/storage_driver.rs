//! The workload at the [`Storage`] level: concurrent clients drive a storage with creates,
//! gets (latest and at a revision), lists (paged and at a revision), guaranteed updates,
//! deletes with and without preconditions, and watchers that list, watch from the list's
//! revision, and resume from a delivered revision — every call and event recorded by the
//! shared [`driver`](super::driver).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::error::Error;
use crate::object::Object;
use crate::storage::{
    allow_all_deletions, DeleteOptions, GetOptions, ListOptions, Preconditions, Predicate, ResourceVersion,
    ResourceVersionMatch, Storage, WatchEvent,
};

use super::driver::{run, Caller, Level, Sink, Workload};
use super::history::{Call, Delivered, Outcome, ReadAt, Seen};

fn value_of(object: &Object) -> String {
    object.field_value("spec.v").unwrap_or_default()
}

fn seen_of(object: &Object) -> Seen {
    Seen {
        key: format!("/pods/{}/{}", object.metadata.namespace, object.metadata.name),
        value: value_of(object),
        rv: object.resource_version().unwrap_or(0),
    }
}

fn write_error(error: &Error) -> Outcome {
    match error {
        Error::NotFound { .. } => Outcome::NotFound,
        Error::AlreadyExists { .. } => Outcome::AlreadyExists,
        Error::InvalidObject { .. } => Outcome::PreconditionFailed,
        other => Outcome::Unknown(other.to_string()),
    }
}

fn read_error(error: &Error) -> Outcome {
    match error {
        Error::NotFound { .. } => Outcome::NotFound,
        other => Outcome::Refused(other.to_string()),
    }
}

fn list_options(at: &ReadAt) -> ListOptions {
    let (resource_version, resource_version_match) = match at {
        ReadAt::Latest => (ResourceVersion::Unset, None),
        ReadAt::Any => (ResourceVersion::Any, None),
        ReadAt::NotOlderThan(n) => (ResourceVersion::at(*n), Some(ResourceVersionMatch::NotOlderThan)),
        ReadAt::Exact(n) => (ResourceVersion::at(*n), Some(ResourceVersionMatch::Exact)),
    };
    ListOptions { resource_version, resource_version_match, recursive: true, ..ListOptions::default() }
}

/// Performs one call and says what it returned.
async fn perform(storage: &dyn Storage, dir: &str, call: &Call) -> Outcome {
    match call {
        Call::Create { key, value } => {
            let name = key.rsplit('/').next().unwrap_or_default();
            let namespace = dir.rsplit('/').next().unwrap_or_default();
            let object = Object::new("v1", "Pod", namespace, name).with_field("spec", json!({ "v": value }));
            match storage.create(key, object, 0).await {
                Ok(created) => Outcome::Written { rv: created.resource_version().unwrap_or(0) },
                Err(e) => write_error(&e),
            }
        }
        Call::Update { key, value, .. } => {
            let value = value.clone();
            let mut update =
                move |object: Object, _| Ok((object.with_field("spec", json!({ "v": value.clone() })), None));
            match storage.guaranteed_update(key, false, None, &mut update, None).await {
                Ok(updated) => Outcome::Written { rv: updated.resource_version().unwrap_or(0) },
                Err(e) => write_error(&e),
            }
        }
        Call::Delete { key, precondition } => {
            let preconditions = precondition.map(|rv| Preconditions { uid: None, resource_version: Some(rv) });
            match storage
                .delete(key, preconditions.as_ref(), &allow_all_deletions, None, DeleteOptions::default())
                .await
            {
                Ok(deleted) => Outcome::Deleted {
                    rv: deleted.resource_version().unwrap_or(0),
                    value: value_of(&deleted),
                    prev_rv: 0,
                },
                Err(e) => write_error(&e),
            }
        }
        Call::Get { key, at } => {
            let resource_version = match at {
                ReadAt::Latest => ResourceVersion::Unset,
                ReadAt::Any => ResourceVersion::Any,
                ReadAt::NotOlderThan(n) | ReadAt::Exact(n) => ResourceVersion::at(*n),
            };
            match storage.get(key, GetOptions { ignore_not_found: false, resource_version }).await {
                Ok(Some(object)) => Outcome::Found(seen_of(&object)),
                Ok(None) => Outcome::NotFound,
                Err(e) => read_error(&e),
            }
        }
        Call::List { at, limit } => {
            let mut options = list_options(at);
            options.predicate = Predicate { limit: *limit, ..Predicate::default() };
            let first = match storage.get_list(dir, options.clone()).await {
                Ok(list) => list,
                Err(e) => return read_error(&e),
            };
            let rv = first.resource_version;
            let mut items: Vec<Seen> = first.items.iter().map(seen_of).collect();
            let mut token = first.continue_token;
            while !token.is_empty() {
                let mut next = ListOptions { recursive: true, ..ListOptions::default() };
                next.predicate = Predicate { limit: *limit, continue_token: token.clone(), ..Predicate::default() };
                match storage.get_list(dir, next).await {
                    Ok(page) => {
                        items.extend(page.items.iter().map(seen_of));
                        token = page.continue_token;
                    }
                    Err(e) => return read_error(&e),
                }
            }
            Outcome::Listed { rv, items }
        }
    }
}

fn delivered(event: &WatchEvent) -> Delivered {
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            let seen = seen_of(o);
            Delivered::Put {
                key: seen.key,
                value: seen.value,
                rv: seen.rv,
                added: matches!(event, WatchEvent::Added(_)),
            }
        }
        WatchEvent::Deleted(o) => {
            let seen = seen_of(o);
            Delivered::Delete { key: seen.key, rv: seen.rv }
        }
        WatchEvent::Bookmark(o) => Delivered::Bookmark { rv: o.resource_version().unwrap_or(0) },
        WatchEvent::Error(e) => Delivered::Error { message: e.to_string(), code: e.code() },
    }
}

/// The [`Storage`] level: keys `/pods/<namespace>/k<i>`, watches with bookmarks.
struct StorageLevel {
    storage: Arc<dyn Storage>,
    workload: Workload,
}

impl StorageLevel {
    fn dir(&self) -> String {
        format!("/pods/{}", self.workload.namespace)
    }
}

#[async_trait]
impl Level for StorageLevel {
    fn key(&self, i: usize) -> String {
        format!("/pods/{}/k{i}", self.workload.namespace)
    }

    fn prefix(&self) -> String {
        format!("{}/", self.dir())
    }

    async fn current_revision(&self) -> Option<u64> {
        self.storage.current_resource_version().await.ok()
    }

    async fn perform(&self, call: &Call, _deleted_value: &str) -> Outcome {
        perform(&*self.storage, &self.dir(), call).await
    }

    async fn watch(&self, from: u64) -> Option<BoxStream<'static, Delivered>> {
        let mut options =
            ListOptions { resource_version: ResourceVersion::at(from), recursive: true, ..ListOptions::default() };
        options.predicate.allow_watch_bookmarks = true;
        let stream = self.storage.watch(&self.dir(), options).await.ok()?;
        let events = futures::stream::unfold(stream, |mut stream| async move {
            let event = stream.next().await?;
            Some((delivered(&event), stream))
        });
        Some(events.boxed())
    }

    async fn client(mut caller: Caller<Self>, deadline: Instant) {
        let mut rng = StdRng::seed_from_u64(caller.workload.seed.wrapping_mul(1000).wrapping_add(caller.id as u64));
        // The last resourceVersion this client saw per key, and overall.
        let mut known: Vec<u64> = vec![0; caller.workload.keys];
        let mut newest: u64 = 0;
        while Instant::now() < deadline {
            let k = rng.random_range(0..caller.workload.keys);
            let key = caller.level.key(k);
            let value = format!("r{}-c{}-{}", caller.workload.round, caller.id, caller.seq);
            let roll = rng.random_range(0..100);
            let call = match roll {
                0..20 => Call::Create { key, value },
                20..40 => Call::Update { key, value, precondition: None },
                40..46 => Call::Delete { key, precondition: None },
                46..52 => Call::Delete { key, precondition: Some(known[k]).filter(|&r| r > 0) },
                52..70 => Call::Get { key, at: ReadAt::Latest },
                70..74 => Call::Get { key, at: ReadAt::Any },
                74..78 => Call::Get { key, at: ReadAt::NotOlderThan(newest.max(1)) },
                78..88 => Call::List { at: ReadAt::Latest, limit: if rng.random_bool(0.5) { 0 } else { 2 } },
                88..94 if newest > 0 => Call::List { at: ReadAt::Exact(newest), limit: 0 },
                _ => Call::List { at: ReadAt::NotOlderThan(newest.max(1)), limit: 0 },
            };
            match caller.call(call).await {
                Outcome::Written { rv } | Outcome::Deleted { rv, .. } => {
                    known[k] = rv;
                    newest = newest.max(rv);
                }
                Outcome::Found(seen) => {
                    known[k] = seen.rv;
                    newest = newest.max(seen.rv);
                }
                Outcome::Listed { rv, .. } => newest = newest.max(rv),
                _ => {}
            }
            caller.pause().await;
        }
    }
}

/// Runs the workload against `storage` until its duration is over, recording into `sink`.
/// Ends with a quiet read of every key and a latest list, so a write lost at the end shows.
pub async fn drive(storage: Arc<dyn Storage>, workload: &Workload, sink: Arc<dyn Sink>) {
    run(StorageLevel { storage, workload: workload.clone() }, workload, sink).await;
}
