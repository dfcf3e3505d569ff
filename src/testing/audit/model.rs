//! Model-based tests of the `Storage` semantics (proptest): random sequences of creates,
//! guaranteed updates, deletes with preconditions, gets and lists at resourceVersions (paged),
//! and watches from a resourceVersion run against a storage and a small reference model;
//! any difference fails with the shrunk sequence and the step that differed.
//!
//! Every case uses its own namespace on one backend, so one backend (one etcd) serves all
//! cases. The model learns revisions from the storage's answers and checks them: a write's
//! revision is above every earlier one, a read returns exactly the revision of the write it
//! reflects, a latest list is at the last write's revision.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use crate::error::Error;
use crate::kv::KvBackend;
use crate::object::Object;
use crate::storage::{
    allow_all_deletions, DeleteOptions, GetOptions, ListOptions, Preconditions, Predicate, ResourceVersion,
    ResourceVersionMatch, Storage, WatchEvent,
};

use crate::selector::{FieldSelector, LabelSelector};

use super::super::StorageMode;
use super::storage_over;

/// Which revision a read or watch uses, relative to the model's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// RV "" (latest, consistent).
    Latest,
    /// The revision of the n-th write of this case from the end (0 = the last), or the
    /// case's start revision when there are fewer writes.
    Back(usize),
}

/// The resourceVersion a get or list names, relative to the model's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rv {
    /// RV "" (latest, consistent).
    Latest,
    /// RV "0": any state, possibly stale (the watch cache answers from memory).
    Any,
    /// The revision of [`At::Back`]`(n)` with `resourceVersionMatch=NotOlderThan` (a get:
    /// a plain RV, which means the same).
    NotOlderThan(usize),
    /// The revision of [`At::Back`]`(n)` with `resourceVersionMatch=Exact` (lists only).
    Exact(usize),
}

/// A list's selector. Every object carries the label `p` = its value's parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// Everything.
    All,
    /// `p=<parity>`.
    Label(u8),
    /// `metadata.name=k<key>`.
    Name(u8),
    /// `metadata.name!=k<key>`.
    NotName(u8),
}

/// A delete's precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pre {
    /// None.
    None,
    /// The object's current resourceVersion (must succeed).
    Current,
    /// A resourceVersion it no longer has (must fail with 409).
    Stale,
}

/// One step of a case. Keys and values are small numbers (`k<key>`, `v<value>`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Action {
    Create { key: u8, value: u8 },
    Update { key: u8, value: u8 },
    Delete { key: u8, pre: Pre },
    Get { key: u8, rv: Rv },
    List { rv: Rv, limit: u8, select: Select },
    Watch { from: At },
}

fn action() -> impl Strategy<Value = Action> {
    let key = 0u8..4;
    let get_rv = prop_oneof![Just(Rv::Latest), Just(Rv::Any), (0usize..4).prop_map(Rv::NotOlderThan)];
    let list_rv = prop_oneof![get_rv.clone(), (0usize..4).prop_map(Rv::Exact)];
    let select = prop_oneof![
        2 => Just(Select::All),
        1 => (0u8..2).prop_map(Select::Label),
        1 => (0u8..4).prop_map(Select::Name),
        1 => (0u8..4).prop_map(Select::NotName),
    ];
    prop_oneof![
        3 => (key.clone(), 0u8..10).prop_map(|(key, value)| Action::Create { key, value }),
        3 => (key.clone(), 0u8..10).prop_map(|(key, value)| Action::Update { key, value }),
        2 => (key.clone(), prop_oneof![Just(Pre::None), Just(Pre::Current), Just(Pre::Stale)])
            .prop_map(|(key, pre)| Action::Delete { key, pre }),
        2 => (key.clone(), get_rv).prop_map(|(key, rv)| Action::Get { key, rv }),
        3 => (list_rv, 0u8..4, select).prop_map(|(rv, limit, select)| Action::List { rv, limit, select }),
        1 => (0usize..4).prop_map(|n| Action::Watch { from: At::Back(n) }),
    ]
}

/// A change as the model and a watch see it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Added(String, String, u64),
    Modified(String, String, u64),
    Deleted(String, u64),
}

/// key → (value, rv).
type State = BTreeMap<String, (String, u64)>;

#[derive(Default)]
struct Model {
    start: u64,
    objects: State,
    /// Every write of the case: its revision, the change, and the state after it.
    history: Vec<(u64, Change, State)>,
    stale: BTreeMap<String, u64>,
}

impl Model {
    fn last(&self) -> u64 {
        self.history.last().map_or(self.start, |h| h.0)
    }

    fn revision(&self, at: At) -> Option<u64> {
        match at {
            At::Latest => None,
            At::Back(n) => {
                Some(if n < self.history.len() { self.history[self.history.len() - 1 - n].0 } else { self.start })
            }
        }
    }

    /// The states a read not older than `min` may return: (revision, state), oldest first.
    fn states_since(&self, min: u64) -> Vec<(u64, State)> {
        let mut states = vec![(self.start, State::new())];
        states.extend(self.history.iter().map(|h| (h.0, h.2.clone())));
        // The last state at or below `min` stays a candidate: it is the state at `min`.
        let first = states.iter().rposition(|s| s.0 <= min).unwrap_or(0);
        states.split_off(first)
    }

    fn state_at(&self, rv: u64) -> State {
        self.history.iter().rev().find(|h| h.0 <= rv).map(|h| h.2.clone()).unwrap_or_default()
    }

    fn record(&mut self, rv: u64, change: Change) -> Result<(), String> {
        if rv <= self.last() {
            return Err(format!("write got rv {rv}, not above the previous revision {}", self.last()));
        }
        self.history.push((rv, change, self.objects.clone()));
        Ok(())
    }
}

fn fail(step: usize, action: &Action, message: String) -> TestCaseError {
    TestCaseError::fail(format!("step {step} {action:?}: {message}"))
}

/// The label `p`: the parity of the value's number (`v3` → "1").
fn parity(value: &str) -> String {
    value.trim_start_matches('v').parse::<u8>().map_or_else(|_| "x".to_owned(), |n| (n % 2).to_string())
}

fn pod(namespace: &str, name: &str, value: &str) -> Object {
    Object::new("v1", "Pod", namespace, name).with_field("spec", json!({ "v": value })).with_label("p", &parity(value))
}

/// The predicate of a selector (limit and continue token left empty).
fn predicate(select: Select) -> Predicate {
    let (label, field) = match select {
        Select::All => (String::new(), String::new()),
        Select::Label(p) => (format!("p={p}"), String::new()),
        Select::Name(k) => (String::new(), format!("metadata.name=k{k}")),
        Select::NotName(k) => (String::new(), format!("metadata.name!=k{k}")),
    };
    Predicate {
        label: LabelSelector::parse(&label).expect("a valid label selector"),
        field: FieldSelector::parse(&field).expect("a valid field selector"),
        ..Predicate::default()
    }
}

/// The part of `state` a selector matches.
fn selected(state: &State, select: Select) -> State {
    let keep = |name: &str, value: &str| match select {
        Select::All => true,
        Select::Label(p) => parity(value) == p.to_string(),
        Select::Name(k) => name == format!("k{k}"),
        Select::NotName(k) => name != format!("k{k}"),
    };
    state.iter().filter(|(n, (v, _))| keep(n, v)).map(|(n, e)| (n.clone(), e.clone())).collect()
}

fn seen(object: &Object) -> (String, (String, u64)) {
    (
        object.metadata.name.clone(),
        (object.field_value("spec.v").unwrap_or_default(), object.resource_version().unwrap_or(0)),
    )
}

fn kind(error: &Error) -> &'static str {
    match error {
        Error::NotFound { .. } => "NotFound",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::InvalidObject { .. } => "PreconditionFailed",
        _ => "other",
    }
}

/// Runs one case; Err names the first step that differs from the model.
async fn run_case(storage: &dyn Storage, namespace: &str, actions: &[Action]) -> Result<(), TestCaseError> {
    let dir = format!("/pods/{namespace}");
    let mut model = Model {
        start: storage.current_resource_version().await.map_err(|e| TestCaseError::fail(e.to_string()))?,
        ..Model::default()
    };
    for (step, action) in actions.iter().enumerate() {
        let f = |m: String| fail(step, action, m);
        match action {
            Action::Create { key, value } => {
                let (name, value) = (format!("k{key}"), format!("v{value}"));
                let got = storage.create(&format!("{dir}/{name}"), pod(namespace, &name, &value), 0).await;
                match (model.objects.contains_key(&name), got) {
                    (false, Ok(created)) => {
                        let rv = created.resource_version().unwrap_or(0);
                        model.objects.insert(name.clone(), (value.clone(), rv));
                        model.record(rv, Change::Added(name, value, rv)).map_err(f)?;
                    }
                    (true, Err(e)) if kind(&e) == "AlreadyExists" => {}
                    (exists, got) => return Err(f(format!("exists: {exists}, got {got:?}"))),
                }
            }
            Action::Update { key, value } => {
                let (name, value) = (format!("k{key}"), format!("v{value}"));
                let new = value.clone();
                let mut update = move |o: Object, _| {
                    Ok((o.with_field("spec", json!({ "v": new.clone() })).with_label("p", &parity(&new)), None))
                };
                let got = storage.guaranteed_update(&format!("{dir}/{name}"), false, None, &mut update, None).await;
                match (model.objects.get(&name).cloned(), got) {
                    (Some((old, old_rv)), Ok(updated)) => {
                        let rv = updated.resource_version().unwrap_or(0);
                        if old == value {
                            // Unchanged: no write, the object keeps its revision.
                            if rv != old_rv {
                                return Err(f(format!("a no-op update moved rv {old_rv} to {rv}")));
                            }
                            continue;
                        }
                        model.stale.insert(name.clone(), old_rv);
                        model.objects.insert(name.clone(), (value.clone(), rv));
                        model.record(rv, Change::Modified(name, value, rv)).map_err(f)?;
                    }
                    (None, Err(e)) if kind(&e) == "NotFound" => {}
                    (current, got) => return Err(f(format!("model {current:?}, got {got:?}"))),
                }
            }
            Action::Delete { key, pre } => {
                let name = format!("k{key}");
                let current = model.objects.get(&name).cloned();
                let precondition = match pre {
                    Pre::None => None,
                    Pre::Current => Some(current.as_ref().map_or(1, |c| c.1)),
                    Pre::Stale => Some(model.stale.get(&name).copied().unwrap_or(1)),
                };
                let preconditions = precondition.map(|rv| Preconditions { uid: None, resource_version: Some(rv) });
                let got = storage
                    .delete(
                        &format!("{dir}/{name}"),
                        preconditions.as_ref(),
                        &allow_all_deletions,
                        None,
                        DeleteOptions::default(),
                    )
                    .await;
                match (current, got) {
                    (None, Err(e)) if kind(&e) == "NotFound" => {}
                    (Some((_, rv)), Err(e))
                        if kind(&e) == "PreconditionFailed" && precondition.is_some_and(|p| p != rv) => {}
                    (Some((value, rv)), Ok(deleted)) if precondition.is_none_or(|p| p == rv) => {
                        let (_, (deleted_value, delete_rv)) = seen(&deleted);
                        if deleted_value != value {
                            return Err(f(format!("deleted {deleted_value:?}, the model holds {value:?}")));
                        }
                        model.stale.insert(name.clone(), rv);
                        model.objects.remove(&name);
                        model.record(delete_rv, Change::Deleted(name, delete_rv)).map_err(f)?;
                    }
                    (current, got) => {
                        return Err(f(format!("model {current:?}, precondition {precondition:?}, got {got:?}")))
                    }
                }
            }
            Action::Get { key, rv } => {
                let name = format!("k{key}");
                let (resource_version, min) = match rv {
                    Rv::Latest => (ResourceVersion::Unset, None),
                    Rv::Any => (ResourceVersion::Any, Some(0)),
                    Rv::NotOlderThan(n) | Rv::Exact(n) => {
                        let min = model.revision(At::Back(*n)).unwrap_or(model.start);
                        (ResourceVersion::at(min), Some(min))
                    }
                };
                let options = GetOptions { resource_version, ..GetOptions::default() };
                let got = match storage.get(&format!("{dir}/{name}"), options).await {
                    Ok(Some(o)) => Some(seen(&o).1),
                    Err(e) if kind(&e) == "NotFound" => None,
                    other => return Err(f(format!("got {other:?}"))),
                };
                // Latest: the current state; otherwise the key in some state not older than `min`.
                let allowed: Vec<Option<(String, u64)>> = match min {
                    None => vec![model.objects.get(&name).cloned()],
                    Some(min) => model.states_since(min).iter().map(|(_, s)| s.get(&name).cloned()).collect(),
                };
                if !allowed.contains(&got) {
                    return Err(f(format!("got {got:?}, the model allows {allowed:?}")));
                }
            }
            Action::List { rv: at, limit, select } => {
                let back = |n: usize| model.revision(At::Back(n)).unwrap_or(model.start);
                // (RV, match, the exact revision wanted or the oldest one allowed).
                let (resource_version, resource_version_match, exact, min) = match *at {
                    Rv::Latest => (ResourceVersion::Unset, None, Some(model.last()), 0),
                    Rv::Any => (ResourceVersion::Any, None, None, 0),
                    Rv::NotOlderThan(n) => {
                        (ResourceVersion::at(back(n)), Some(ResourceVersionMatch::NotOlderThan), None, back(n))
                    }
                    Rv::Exact(n) => {
                        (ResourceVersion::at(back(n)), Some(ResourceVersionMatch::Exact), Some(back(n)), back(n))
                    }
                };
                let mut options =
                    ListOptions { resource_version, resource_version_match, recursive: true, ..ListOptions::default() };
                options.predicate = Predicate { limit: i64::from(*limit), ..predicate(*select) };
                let mut items = BTreeMap::new();
                let mut list_rv = None;
                loop {
                    let page =
                        storage.get_list(&dir, options.clone()).await.map_err(|e| f(format!("list failed: {e}")))?;
                    // RV "0" may be answered from the watch cache in one page, ignoring the limit.
                    if *limit > 0 && page.items.len() > usize::from(*limit) && *at != Rv::Any {
                        return Err(f(format!("a page of {} items over the limit {limit}", page.items.len())));
                    }
                    if *list_rv.get_or_insert(page.resource_version) != page.resource_version {
                        return Err(f(format!("pages at rv {list_rv:?} and {}", page.resource_version)));
                    }
                    items.extend(page.items.iter().map(seen));
                    if page.continue_token.is_empty() {
                        break;
                    }
                    options = ListOptions { recursive: true, ..ListOptions::default() };
                    options.predicate = Predicate {
                        limit: i64::from(*limit),
                        continue_token: page.continue_token,
                        ..predicate(*select)
                    };
                }
                let list_rv = list_rv.unwrap_or_default();
                let want_rv = exact.unwrap_or(list_rv);
                let want = selected(&model.state_at(want_rv), *select);
                if list_rv != want_rv || list_rv < min || list_rv > model.last() || items != want {
                    let allowed = exact.map_or(format!("{min}..={}", model.last()), |rv| rv.to_string());
                    return Err(f(format!("want rv {allowed} {want:?}, got rv {list_rv} {items:?}")));
                }
            }
            Action::Watch { from } => {
                let rv = model.revision(*from).unwrap_or(model.start);
                let expected: Vec<Change> = model.history.iter().filter(|h| h.0 > rv).map(|h| h.1.clone()).collect();
                let options = ListOptions {
                    resource_version: ResourceVersion::at(rv),
                    recursive: true,
                    ..ListOptions::default()
                };
                let mut stream = storage.watch(&dir, options).await.map_err(|e| f(format!("watch failed: {e}")))?;
                let mut got = Vec::new();
                while got.len() < expected.len() {
                    let event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
                    let change = match event {
                        Ok(Some(WatchEvent::Added(o))) => {
                            let (n, (v, r)) = seen(&o);
                            Change::Added(n, v, r)
                        }
                        Ok(Some(WatchEvent::Modified(o))) => {
                            let (n, (v, r)) = seen(&o);
                            Change::Modified(n, v, r)
                        }
                        Ok(Some(WatchEvent::Deleted(o))) => {
                            let (n, (_, r)) = seen(&o);
                            Change::Deleted(n, r)
                        }
                        Ok(Some(WatchEvent::Bookmark(_))) => continue,
                        other => return Err(f(format!("after {got:?}, expected {expected:?}, got {other:?}"))),
                    };
                    got.push(change);
                }
                if got != expected {
                    return Err(f(format!("watch from rv {rv}: want {expected:?}, got {got:?}")));
                }
            }
        }
    }
    Ok(())
}

/// Runs `cases` random sequences (up to `max_len` steps) against the storage over `backend`
/// (`mode`: the store or the watch cache over it), each case in a fresh namespace. Panics
/// with the shrunk sequence on the first difference. Call outside async code: `runtime`
/// runs every case (the backend may be bound to it).
pub fn check_model(
    runtime: &tokio::runtime::Runtime,
    backend: Arc<dyn KvBackend>,
    mode: StorageMode,
    cases: u32,
    max_len: usize,
) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 200, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let storage = runtime.block_on(storage_over(backend, mode));
    let result = runner.run(&proptest::collection::vec(action(), 1..max_len), |actions| {
        let namespace = format!("model-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        runtime.block_on(run_case(&*storage, &namespace, &actions))
    });
    if let Err(e) = result {
        panic!("the storage ({mode:?}) differs from the model: {e}");
    }
}
