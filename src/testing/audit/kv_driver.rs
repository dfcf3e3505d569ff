//! The workload at the [`KvBackend`] level: concurrent clients call the backend directly —
//! create-if-absent (`put` expecting mod_revision 0), update and delete if the mod_revision
//! matches the one the client last saw (sometimes a stale one, to provoke conflicts), get
//! latest and at a revision, range latest and at a revision (paged with `limit`, later pages
//! at the first page's revision) — while watchers range, watch from the range's revision and
//! resume from a revision they were delivered. Every call and event is recorded in the same
//! [`History`](super::History) vocabulary as the [`Storage`](crate::storage::Storage)
//! workload, so the same checkers apply; the run itself is the shared
//! [`driver`](super::driver)'s.
//!
//! Mapping: a backend watch from `start_revision` delivers revisions ≥ it, recorded as a
//! watch "from `start_revision - 1`"; a progress notification is a bookmark; a delete's
//! removed value is the one the client saw at the mod_revision its condition named.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::kv::{prefix_end, KeyValue, KvBackend, RangeRequest, TxnOutcome, WatchEvent, WatchRequest};

use super::driver::{run, Caller, Level, Sink, Workload};
use super::history::{Call, Delivered, Outcome, ReadAt, Seen};

/// The directory of the workload's keys: `/audit-kv/<namespace>/`.
pub fn kv_prefix(workload: &Workload) -> String {
    format!("/audit-kv/{}/", workload.namespace)
}

fn seen(kv: &KeyValue) -> Seen {
    Seen { key: kv.key.clone(), value: String::from_utf8_lossy(&kv.value).into_owned(), rv: kv.mod_revision }
}

/// What a conditional write's answer means for a call whose key must exist (update, delete).
fn conditional(outcome: TxnOutcome, ok: impl FnOnce(u64) -> Outcome) -> Outcome {
    match outcome {
        TxnOutcome::Succeeded { revision } => ok(revision),
        TxnOutcome::Failed { current: None, .. } => Outcome::NotFound,
        TxnOutcome::Failed { current: Some(_), .. } => Outcome::PreconditionFailed,
    }
}

/// Performs one call on the backend and says what it returned. `deleted_value` is the value
/// the client saw at the revision a delete's condition names.
async fn perform(backend: &dyn KvBackend, prefix: &str, call: &Call, deleted_value: &str) -> Outcome {
    let unknown = |e: crate::error::Error| Outcome::Unknown(e.to_string());
    let refused = |e: crate::error::Error| Outcome::Refused(e.to_string());
    match call {
        Call::Create { key, value } => match backend.put(key, Bytes::from(value.clone()), 0, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => Outcome::Written { rv: revision },
            Ok(TxnOutcome::Failed { .. }) => Outcome::AlreadyExists,
            Err(e) => unknown(e),
        },
        Call::Update { key, value, precondition } => {
            let expected = precondition.unwrap_or_default();
            match backend.put(key, Bytes::from(value.clone()), expected, None).await {
                Ok(outcome) => conditional(outcome, |rv| Outcome::Written { rv }),
                Err(e) => unknown(e),
            }
        }
        Call::Delete { key, precondition } => {
            let expected = precondition.unwrap_or_default();
            match backend.delete(key, expected).await {
                Ok(outcome) => conditional(outcome, |rv| Outcome::Deleted {
                    rv,
                    value: deleted_value.to_owned(),
                    prev_rv: expected,
                }),
                Err(e) => unknown(e),
            }
        }
        Call::Get { key, at } => {
            let revision = match at {
                ReadAt::Exact(n) => *n,
                _ => 0,
            };
            match backend.get(key, revision).await {
                Ok(response) => match response.kv {
                    Some(kv) => Outcome::Found(seen(&kv)),
                    None => Outcome::NotFound,
                },
                Err(e) => refused(e),
            }
        }
        Call::List { at, limit } => {
            let revision = match at {
                ReadAt::Exact(n) => *n,
                _ => 0,
            };
            let end = prefix_end(prefix);
            let request = |start: String, revision: u64| RangeRequest {
                start,
                end: end.clone(),
                limit: (*limit).max(0) as u64,
                revision,
                count_only: false,
            };
            let first = match backend.range(request(prefix.to_owned(), revision)).await {
                Ok(first) => first,
                Err(e) => return refused(e),
            };
            // A latest read is at its header revision; the later pages read there.
            let rv = if revision == 0 { first.revision } else { revision };
            let mut items: Vec<Seen> = first.kvs.iter().map(seen).collect();
            let mut more = first.more;
            while more {
                let Some(last) = items.last() else { break };
                match backend.range(request(format!("{}\0", last.key), rv)).await {
                    Ok(page) => {
                        items.extend(page.kvs.iter().map(seen));
                        more = page.more && !page.kvs.is_empty();
                    }
                    Err(e) => return refused(e),
                }
            }
            Outcome::Listed { rv, items }
        }
    }
}

fn delivered(event: &WatchEvent) -> Delivered {
    let value = |kv: &KeyValue| String::from_utf8_lossy(&kv.value).into_owned();
    match event {
        WatchEvent::Put { kv, prev } => {
            Delivered::Put { key: kv.key.clone(), value: value(kv), rv: kv.mod_revision, added: prev.is_none() }
        }
        WatchEvent::Delete { key, revision, .. } => Delivered::Delete { key: key.clone(), rv: *revision },
        WatchEvent::Progress { revision } => Delivered::Bookmark { rv: *revision },
    }
}

/// The [`KvBackend`] level: keys `/audit-kv/<namespace>/k<i>`, watches with progress
/// notifications.
struct KvLevel {
    backend: Arc<dyn KvBackend>,
    workload: Workload,
}

#[async_trait]
impl Level for KvLevel {
    fn key(&self, i: usize) -> String {
        format!("{}k{i}", kv_prefix(&self.workload))
    }

    fn prefix(&self) -> String {
        kv_prefix(&self.workload)
    }

    async fn current_revision(&self) -> Option<u64> {
        self.backend.current_revision().await.ok()
    }

    async fn perform(&self, call: &Call, deleted_value: &str) -> Outcome {
        perform(&*self.backend, &self.prefix(), call, deleted_value).await
    }

    /// A backend watch from `start_revision` delivers revisions ≥ it: the changes after
    /// `from` start at `from + 1`.
    async fn watch(&self, from: u64) -> Option<BoxStream<'static, Delivered>> {
        let prefix = self.prefix();
        let request = WatchRequest {
            start: prefix.clone(),
            end: prefix_end(&prefix),
            start_revision: from + 1,
            progress_notify: true,
        };
        let stream = self.backend.watch(request).await.ok()?;
        let events = stream.map(|item| match &item {
            Ok(event) => delivered(event),
            Err(e) => Delivered::Error { message: e.to_string(), code: e.code() },
        });
        Some(events.boxed())
    }

    async fn client(mut caller: Caller<Self>, deadline: Instant) {
        let mut rng = StdRng::seed_from_u64(caller.workload.seed.wrapping_mul(1000).wrapping_add(caller.id as u64));
        // Per key: the (mod_revision, value) this client saw last, and one it saw before.
        let mut known: Vec<Option<(u64, String)>> = vec![None; caller.workload.keys];
        let mut older: Vec<Option<(u64, String)>> = vec![None; caller.workload.keys];
        let mut newest: u64 = 0;
        let mut calls = 0u64;
        while Instant::now() < deadline {
            calls += 1;
            if caller.workload.compact && caller.id == 0 && calls % 150 == 0 && newest > 40 {
                // Not recorded: later reads and watches below it get 410s, which change nothing.
                let _ = caller.level.backend.compact(newest - 30).await;
            }
            if calls % 40 == 0 {
                let _ = caller.level.backend.request_progress().await;
            }
            let k = rng.random_range(0..caller.workload.keys);
            let key = caller.level.key(k);
            let value = format!("r{}-c{}-{}", caller.workload.round, caller.id, caller.seq);
            // A stale condition now and then, so conflicts happen on purpose.
            let condition = if rng.random_bool(0.15) { older[k].clone() } else { known[k].clone() };
            let roll = rng.random_range(0..100);
            let (call, deleted_value) = match (roll, condition) {
                (0..20, _) => (Call::Create { key, value }, String::new()),
                (20..42, Some((rv, _))) => (Call::Update { key, value, precondition: Some(rv) }, String::new()),
                (42..52, Some((rv, seen))) => (Call::Delete { key, precondition: Some(rv) }, seen),
                (20..52, None) | (52..70, _) => (Call::Get { key, at: ReadAt::Latest }, String::new()),
                (70..78, _) => {
                    let at = rng.random_range(newest.saturating_sub(20).max(1)..=newest.max(1));
                    (Call::Get { key, at: ReadAt::Exact(at) }, String::new())
                }
                (78..90, _) => {
                    (Call::List { at: ReadAt::Latest, limit: if rng.random_bool(0.5) { 0 } else { 2 } }, String::new())
                }
                _ => {
                    let at = rng.random_range(newest.saturating_sub(20).max(1)..=newest.max(1));
                    (
                        Call::List { at: ReadAt::Exact(at), limit: if rng.random_bool(0.5) { 0 } else { 3 } },
                        String::new(),
                    )
                }
            };
            let written = call.written_value().map(str::to_owned);
            let is_latest_get = matches!(call, Call::Get { at: ReadAt::Latest, .. });
            let outcome = caller.call_deleting(call, &deleted_value).await;
            let state = match outcome {
                Outcome::Written { rv } => Some(Some((rv, written.unwrap_or_default()))),
                Outcome::Deleted { rv, .. } => {
                    newest = newest.max(rv);
                    Some(None)
                }
                Outcome::Found(s) if is_latest_get => Some(Some((s.rv, s.value))),
                Outcome::NotFound if is_latest_get => Some(None),
                Outcome::Listed { rv, .. } => {
                    newest = newest.max(rv);
                    None
                }
                _ => None,
            };
            if let Some(state) = state {
                if let Some((rv, _)) = &state {
                    newest = newest.max(*rv);
                }
                if known[k] != state {
                    older[k] = known[k].take();
                    known[k] = state;
                }
            }
            caller.pause().await;
        }
    }
}

/// Runs the workload directly against `backend` until its duration is over, recording into
/// `sink`. Ends with a quiet latest get of every key and a latest range, so a write lost at
/// the end shows.
pub async fn drive_kv(backend: Arc<dyn KvBackend>, workload: &Workload, sink: Arc<dyn Sink>) {
    run(KvLevel { backend, workload: workload.clone() }, workload, sink).await;
}
