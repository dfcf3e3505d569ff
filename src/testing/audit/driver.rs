//! The workload: concurrent clients drive a [`Storage`] with creates, gets (latest and at a
//! revision), lists (paged and at a revision), guaranteed updates, deletes with and without
//! preconditions, and watchers that list, watch from the list's revision, and resume from a
//! delivered revision — every call and event recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::error::Error;
use crate::object::Object;
use crate::storage::{
    allow_all_deletions, DeleteOptions, GetOptions, ListOptions, Preconditions, Predicate, ResourceVersion,
    ResourceVersionMatch, Storage, WatchEvent,
};

use super::history::{now_ns, Call, Delivered, History, OpId, Outcome, ReadAt, Record, Seen};

/// Where records go: memory, or a child process's stdout.
pub trait Sink: Send + Sync {
    /// Records one line of history.
    fn record(&self, record: Record);
}

/// Keeps records in memory.
#[derive(Default)]
pub struct Recorder {
    records: Mutex<Vec<Record>>,
}

impl Recorder {
    /// The history recorded so far.
    pub fn history(&self) -> History {
        let records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        History::from_records(records)
    }
}

impl Sink for Recorder {
    fn record(&self, record: Record) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }
}

/// Writes each record as one JSON line on stdout (for a child process its parent kills).
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn record(&self, record: Record) {
        if let Ok(line) = serde_json::to_string(&record) {
            println!("audit {line}");
        }
    }
}

/// Parses a line written by [`StdoutSink`] (None for other output).
pub fn parse_line(line: &str) -> Option<Record> {
    let start = line.find("audit {")?;
    serde_json::from_str(&line[start + 6..]).ok()
}

/// What the clients do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Concurrent clients (≥ 8 for the audit).
    pub clients: usize,
    /// Concurrent watchers.
    pub watchers: usize,
    /// Keys the clients contend on.
    pub keys: usize,
    /// How long the clients run.
    pub duration: Duration,
    /// Seed of the clients' choices.
    pub seed: u64,
    /// Namespace of the keys (`/pods/<namespace>/k<i>`); a fresh one per run.
    pub namespace: String,
    /// A call not answered in this time has an unknown outcome.
    pub call_timeout: Duration,
    /// The process round (a restarted child continues with the next one), part of every
    /// value so values stay unique across rounds.
    pub round: u32,
    /// Pause between a client's calls (0 = none).
    pub think_time: Duration,
    /// The first watch of the first watcher starts here instead of at a fresh list's
    /// revision: after a restart, a watch from the history's start replays every write, so
    /// writes in flight at a crash become known.
    pub first_watch_from: Option<u64>,
    /// `KvBackend` level only: client 0 compacts now and then, 30 revisions behind the newest
    /// it saw (reads and watches below it must answer 410).
    pub compact: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 8,
            watchers: 2,
            keys: 6,
            duration: Duration::from_secs(2),
            seed: 1,
            namespace: "audit".to_owned(),
            call_timeout: Duration::from_secs(10),
            round: 0,
            think_time: Duration::ZERO,
            first_watch_from: None,
            compact: false,
        }
    }
}

impl Workload {
    fn key(&self, i: usize) -> String {
        format!("/pods/{}/k{i}", self.namespace)
    }

    fn dir(&self) -> String {
        format!("/pods/{}", self.namespace)
    }
}

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
            let preconditions =
                precondition.map(|rv| Preconditions { uid: None, resource_version: Some(rv.to_string()) });
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

struct Client {
    id: u32,
    storage: Arc<dyn Storage>,
    workload: Workload,
    sink: Arc<dyn Sink>,
    seq: u64,
}

impl Client {
    async fn call(&mut self, call: Call) -> Outcome {
        let id: OpId = (self.workload.round, self.id, self.seq);
        self.seq += 1;
        self.sink.record(Record::Invoke { id, call: call.clone(), at: now_ns() });
        let dir = self.workload.dir();
        let outcome = match tokio::time::timeout(self.workload.call_timeout, perform(&*self.storage, &dir, &call)).await
        {
            Ok(outcome) => outcome,
            Err(_) if call.is_write() => Outcome::Unknown("timed out".into()),
            Err(_) => Outcome::Refused("timed out".into()),
        };
        self.sink.record(Record::Return { id, outcome: outcome.clone(), at: now_ns() });
        outcome
    }

    async fn run(mut self, deadline: Instant) {
        let mut rng = StdRng::seed_from_u64(self.workload.seed.wrapping_mul(1000).wrapping_add(self.id as u64));
        // The last resourceVersion this client saw per key, and overall.
        let mut known: Vec<u64> = vec![0; self.workload.keys];
        let mut newest: u64 = 0;
        while Instant::now() < deadline {
            let k = rng.random_range(0..self.workload.keys);
            let key = self.workload.key(k);
            let value = format!("r{}-c{}-{}", self.workload.round, self.id, self.seq);
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
            match self.call(call).await {
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
            // A backend that never waits would otherwise keep this worker thread to itself.
            if self.workload.think_time.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.workload.think_time).await;
            }
        }
    }
}

/// A watcher: lists, watches from the list's revision, and after a while resumes from a
/// revision it was delivered (not always the last: any delivered revision must replay the
/// same events); relists after a 410.
async fn watcher(mut client: Client, deadline: Instant) {
    let mut rng = StdRng::seed_from_u64(client.workload.seed.wrapping_mul(7919).wrapping_add(client.id as u64));
    let dir = client.workload.dir();
    let prefix = format!("{dir}/");
    let mut from: Option<u64> = if client.id == 1000 { client.workload.first_watch_from } else { None };
    let mut n = 0u64;
    while Instant::now() < deadline {
        let start = match from {
            Some(rv) => rv,
            None => match client.call(Call::List { at: ReadAt::Latest, limit: 0 }).await {
                Outcome::Listed { rv, .. } => rv,
                _ => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut options =
            ListOptions { resource_version: ResourceVersion::at(start), recursive: true, ..ListOptions::default() };
        options.predicate.allow_watch_bookmarks = true;
        let mut stream = match client.storage.watch(&dir, options).await {
            Ok(stream) => stream,
            Err(_) => {
                from = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id: OpId = (client.workload.round, client.id, n);
        n += 1;
        client.sink.record(Record::WatchStart { id, from: start, prefix: prefix.clone(), at: now_ns() });
        // The replaying watch runs until the end; the others resume after a few events.
        let budget = if n == 1 && client.workload.first_watch_from.is_some() && client.id == 1000 {
            usize::MAX
        } else {
            rng.random_range(10..60)
        };
        let mut delivered: Vec<u64> = vec![start];
        let mut relist = false;
        while delivered.len() < budget {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let event = match tokio::time::timeout(remaining, stream.next()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) => break,
            };
            let delivered_event = match &event {
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
            };
            let rv = delivered_event.rv();
            client.sink.record(Record::Event { id, event: delivered_event, at: now_ns() });
            match rv {
                Some(rv) => delivered.push(rv),
                None => {
                    relist = true;
                    break;
                }
            }
        }
        stream.stop();
        from = if relist { None } else { Some(delivered[rng.random_range(0..delivered.len())]) };
    }
}

/// Runs the workload against `storage` until its duration is over, recording into `sink`.
/// Ends with a quiet read of every key and a latest list, so a write lost at the end shows.
pub async fn drive(storage: Arc<dyn Storage>, workload: &Workload, sink: Arc<dyn Sink>) {
    if let Ok(rv) = storage.current_resource_version().await {
        sink.record(Record::Baseline { rv });
    }
    let deadline = Instant::now() + workload.duration;
    let client = |id: usize| Client {
        id: id as u32,
        storage: storage.clone(),
        workload: workload.clone(),
        sink: sink.clone(),
        seq: 0,
    };
    let mut tasks = Vec::new();
    for id in 0..workload.clients {
        tasks.push(tokio::spawn(client(id).run(deadline)));
    }
    for w in 0..workload.watchers {
        tasks.push(tokio::spawn(watcher(client(1000 + w), deadline)));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut last = client(999);
    for k in 0..workload.keys {
        last.call(Call::Get { key: workload.key(k), at: ReadAt::Latest }).await;
    }
    last.call(Call::List { at: ReadAt::Latest, limit: 0 }).await;
}
