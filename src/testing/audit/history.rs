//! Recorded histories: every call of every client with its invocation and response times,
//! and every watch with the events it delivered.
//!
//! Records are plain serde values so a history can be written by a child process (a writer
//! that gets SIGKILLed) one line at a time and assembled by its parent: an operation whose
//! response was never recorded has an unknown outcome.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Nanoseconds on a clock shared by the processes of one machine: the wall clock read once
/// per process, advanced by the monotonic clock (so it never goes backwards in a process).
pub fn now_ns() -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let (instant, wall) = BASE.get_or_init(|| {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos() as u64;
        (Instant::now(), wall)
    });
    wall + instant.elapsed().as_nanos() as u64
}

/// Identifies an operation: `(process round, client, sequence number)`.
pub type OpId = (u32, u32, u64);

/// How a read chooses its resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadAt {
    /// RV "": consistent, the latest state (linearizable).
    Latest,
    /// RV "0": any state.
    Any,
    /// RV N (NotOlderThan): a state not older than N.
    NotOlderThan(u64),
    /// RV N, Exact: the state exactly at N (lists; gets at the `KvBackend` level).
    Exact(u64),
}

/// A call a client made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// `create(key)` with a value no other call writes.
    Create {
        /// Store key.
        key: String,
        /// The unique value written.
        value: String,
    },
    /// `guaranteed_update(key)` setting a unique value (the key must exist); at the
    /// [`KvBackend`](crate::kv::KvBackend) level a put only if the key's mod_revision is
    /// `precondition`.
    Update {
        /// Store key.
        key: String,
        /// The unique value written.
        value: String,
        /// The required mod_revision (None = any).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        precondition: Option<u64>,
    },
    /// `delete(key)`, with a resourceVersion precondition when `precondition` is set.
    Delete {
        /// Store key.
        key: String,
        /// The required resourceVersion.
        precondition: Option<u64>,
    },
    /// `get(key)`.
    Get {
        /// Store key.
        key: String,
        /// Its resourceVersion rule.
        at: ReadAt,
    },
    /// `get_list` of every key (all pages when `limit` > 0).
    List {
        /// Its resourceVersion rule.
        at: ReadAt,
        /// Page size (0 = one page).
        limit: i64,
    },
}

impl Call {
    /// The single key of the call (None for a list).
    pub fn key(&self) -> Option<&str> {
        match self {
            Call::Create { key, .. } | Call::Update { key, .. } | Call::Delete { key, .. } | Call::Get { key, .. } => {
                Some(key)
            }
            Call::List { .. } => None,
        }
    }

    /// True for creates, updates and deletes.
    pub fn is_write(&self) -> bool {
        matches!(self, Call::Create { .. } | Call::Update { .. } | Call::Delete { .. })
    }

    /// The value a create or update writes.
    pub fn written_value(&self) -> Option<&str> {
        match self {
            Call::Create { value, .. } | Call::Update { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// One object as a read saw it: key, value, resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Store key.
    pub key: String,
    /// The value field.
    pub value: String,
    /// Its resourceVersion (mod revision).
    pub rv: u64,
}

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A create or update succeeded with this resourceVersion.
    Written {
        /// The write's revision.
        rv: u64,
    },
    /// A delete succeeded: the delete's revision and the object it removed.
    Deleted {
        /// The delete's revision.
        rv: u64,
        /// The removed value (as returned).
        value: String,
        /// The removed object's resourceVersion before the delete (0 = not returned:
        /// `Storage::delete` returns the object at the delete's revision).
        prev_rv: u64,
    },
    /// A get found the object.
    Found(Seen),
    /// NotFound (get, update, delete).
    NotFound,
    /// A create found the key present.
    AlreadyExists,
    /// A precondition failed (409).
    PreconditionFailed,
    /// A list: its revision and items (all pages).
    Listed {
        /// The list's resourceVersion.
        rv: u64,
        /// Items in key order.
        items: Vec<Seen>,
    },
    /// A definite refusal that changed nothing (a read: 410, 504, 400, ...).
    Refused(String),
    /// An error after which a write may or may not have happened (timeout, unavailable).
    Unknown(String),
}

/// One event as a watch delivered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivered {
    /// ADDED or MODIFIED: the key now has `value` at `rv`.
    Put {
        /// Store key.
        key: String,
        /// New value.
        value: String,
        /// Event revision.
        rv: u64,
        /// True for ADDED.
        added: bool,
    },
    /// DELETED at `rv`.
    Delete {
        /// Store key.
        key: String,
        /// The delete's revision.
        rv: u64,
    },
    /// BOOKMARK at `rv`.
    Bookmark {
        /// The bookmark's revision.
        rv: u64,
    },
    /// ERROR (the watch ended): its message and HTTP code.
    Error {
        /// The error.
        message: String,
        /// Its status code (410 = too old, relist).
        code: u16,
    },
}

impl Delivered {
    /// The revision of the event (None for an error).
    pub fn rv(&self) -> Option<u64> {
        match self {
            Delivered::Put { rv, .. } | Delivered::Delete { rv, .. } | Delivered::Bookmark { rv } => Some(*rv),
            Delivered::Error { .. } => None,
        }
    }

    /// The key of a put or delete.
    pub fn key(&self) -> Option<&str> {
        match self {
            Delivered::Put { key, .. } | Delivered::Delete { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// One line of a recorded history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A call started.
    Invoke {
        /// Which call.
        id: OpId,
        /// What it does.
        call: Call,
        /// When (see [`now_ns`]).
        at: u64,
    },
    /// A call returned.
    Return {
        /// Which call.
        id: OpId,
        /// What it returned.
        outcome: Outcome,
        /// When.
        at: u64,
    },
    /// The store's revision before any recorded call: every key of the history was absent
    /// then (the earliest baseline of all records counts).
    Baseline {
        /// The revision.
        rv: u64,
    },
    /// A watch started from `from` (events after that revision).
    WatchStart {
        /// `(round, watcher, n)`.
        id: OpId,
        /// The start resourceVersion.
        from: u64,
        /// It watches every key starting with this.
        prefix: String,
        /// When.
        at: u64,
    },
    /// A watch delivered an event.
    Event {
        /// Which watch.
        id: OpId,
        /// What it delivered.
        event: Delivered,
        /// When.
        at: u64,
    },
}

/// One call with its interval. `returned` is None when the response was never recorded
/// (the process died, the call hung): the outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Which call.
    pub id: OpId,
    /// What it did.
    pub call: Call,
    /// Invocation time (ns).
    pub invoked: u64,
    /// Response time (ns); None = never returned.
    pub returned: Option<u64>,
    /// What it returned ([`Outcome::Unknown`] when it never returned).
    pub outcome: Outcome,
}

impl Operation {
    /// True when a write may or may not have happened.
    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown(_))
    }

    /// A short description for reports: `c3#17 update k2 := "r0-c3-17" → ok rv 12 [1.203..1.207 ms]`.
    pub fn describe(&self, origin: u64) -> String {
        let call = match &self.call {
            Call::Create { key, value } => format!("create {key} := {value:?}"),
            Call::Update { key, value, precondition: Some(p) } => format!("update {key} := {value:?} if rv = {p}"),
            Call::Update { key, value, precondition: None } => format!("update {key} := {value:?}"),
            Call::Delete { key, precondition: Some(p) } => format!("delete {key} if rv = {p}"),
            Call::Delete { key, precondition: None } => format!("delete {key}"),
            Call::Get { key, at } => format!("get {key} at {}", describe_at(at)),
            Call::List { at, limit } => format!("list at {} (limit {limit})", describe_at(at)),
        };
        let outcome = match &self.outcome {
            Outcome::Written { rv } => format!("ok, rv {rv}"),
            Outcome::Deleted { rv, value, prev_rv } => format!("deleted {value:?} (rv {prev_rv}) at rv {rv}"),
            Outcome::Found(seen) => format!("{:?} at rv {}", seen.value, seen.rv),
            Outcome::NotFound => "not found".to_owned(),
            Outcome::AlreadyExists => "already exists".to_owned(),
            Outcome::PreconditionFailed => "precondition failed".to_owned(),
            Outcome::Listed { rv, items } => format!(
                "rv {rv}: [{}]",
                items.iter().map(|s| format!("{} = {:?} @{}", s.key, s.value, s.rv)).collect::<Vec<_>>().join(", ")
            ),
            Outcome::Refused(e) => format!("refused: {e}"),
            Outcome::Unknown(e) => format!("unknown outcome ({e})"),
        };
        let ms = |t: u64| t.saturating_sub(origin) as f64 / 1e6;
        let returned = match self.returned {
            Some(t) => format!("{:.3}", ms(t)),
            None => "never".to_owned(),
        };
        format!(
            "r{}c{}#{} {call} → {outcome} [{:.3}..{returned} ms]",
            self.id.0,
            self.id.1,
            self.id.2,
            ms(self.invoked)
        )
    }
}

fn describe_at(at: &ReadAt) -> String {
    match at {
        ReadAt::Latest => "latest".to_owned(),
        ReadAt::Any => "rv 0".to_owned(),
        ReadAt::NotOlderThan(n) => format!("rv ≥ {n}"),
        ReadAt::Exact(n) => format!("exactly rv {n}"),
    }
}

/// One watch and what it delivered, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLog {
    /// `(round, watcher, n)`.
    pub id: OpId,
    /// Events with a revision after this one were asked for.
    pub from: u64,
    /// It watches every key starting with this.
    pub prefix: String,
    /// Start time.
    pub started: u64,
    /// Events with their delivery time.
    pub events: Vec<(u64, Delivered)>,
}

/// A whole recorded history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Every call, by invocation time.
    pub operations: Vec<Operation>,
    /// Every watch.
    pub watches: Vec<WatchLog>,
    /// The revision before any call (see [`Record::Baseline`]).
    pub baseline: u64,
}

impl History {
    /// Assembles records (in any order) into a history; calls without a `Return` have an
    /// unknown outcome.
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> History {
        let mut operations: BTreeMap<OpId, Operation> = BTreeMap::new();
        let mut watches: BTreeMap<OpId, WatchLog> = BTreeMap::new();
        let mut returns = Vec::new();
        let mut events = Vec::new();
        let mut baseline = None;
        for record in records {
            match record {
                Record::Invoke { id, call, at } => {
                    operations.insert(
                        id,
                        Operation {
                            id,
                            call,
                            invoked: at,
                            returned: None,
                            outcome: Outcome::Unknown("no response recorded".into()),
                        },
                    );
                }
                Record::Return { id, outcome, at } => returns.push((id, outcome, at)),
                Record::Baseline { rv } => {
                    baseline = Some(baseline.map_or(rv, |b: u64| b.min(rv)));
                }
                Record::WatchStart { id, from, prefix, at } => {
                    watches.insert(id, WatchLog { id, from, prefix, started: at, events: Vec::new() });
                }
                Record::Event { id, event, at } => events.push((id, event, at)),
            }
        }
        for (id, outcome, at) in returns {
            if let Some(op) = operations.get_mut(&id) {
                op.outcome = outcome;
                op.returned = Some(at);
            }
        }
        for (id, event, at) in events {
            if let Some(watch) = watches.get_mut(&id) {
                watch.events.push((at, event));
            }
        }
        let mut operations: Vec<Operation> = operations.into_values().collect();
        operations.sort_by_key(|op| (op.invoked, op.id));
        History { operations, watches: watches.into_values().collect(), baseline: baseline.unwrap_or(0) }
    }

    /// The earliest time in the history (reports show times relative to it).
    pub fn origin(&self) -> u64 {
        let ops = self.operations.iter().map(|o| o.invoked);
        let watches = self.watches.iter().map(|w| w.started);
        ops.chain(watches).min().unwrap_or(0)
    }
}
