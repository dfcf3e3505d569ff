//! The driver both audit levels share: where records go ([`Sink`]), what the clients do
//! ([`Workload`]), and the run itself ([`run`]) — a baseline record, concurrent clients and
//! watchers until the deadline, then a quiet read of every key and a latest list, so a write
//! lost at the end shows. What differs between the [`Storage`](crate::storage::Storage)
//! level ([`storage_driver`](super::storage_driver)) and the
//! [`KvBackend`](crate::kv::KvBackend) level ([`kv_driver`](super::kv_driver)) — how a call
//! is performed, how a watch is opened, what a client chooses — is a [`Level`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::{now_ns, Call, Delivered, History, OpId, Outcome, ReadAt, Record};

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

/// What one level of the audit supplies to [`run`]. A level holds its target (a storage or
/// a backend) and the [`Workload`]; the calls it performs and the events its watches deliver
/// are recorded in the shared [`History`] vocabulary, so the same checkers apply to both.
#[async_trait]
pub(crate) trait Level: Send + Sync + Sized + 'static {
    /// The key the clients name `i` (0 ≤ i < [`Workload::keys`]).
    fn key(&self, i: usize) -> String;

    /// The prefix every key starts with (ending in `/`), as the watchers' records name it.
    fn prefix(&self) -> String;

    /// The store's current revision, recorded as the history's baseline (None: not known).
    async fn current_revision(&self) -> Option<u64>;

    /// Performs one call and says what it returned. `deleted_value` is the value the caller
    /// saw at the revision a delete's precondition names; a level whose delete answer
    /// carries the removed value ignores it.
    async fn perform(&self, call: &Call, deleted_value: &str) -> Outcome;

    /// Opens a watch of every key under [`Level::prefix`] that delivers the changes after
    /// revision `from` (bookmarks or progress notifications asked for); None if the target
    /// refused. The watch ends when the stream is dropped.
    async fn watch(&self, from: u64) -> Option<BoxStream<'static, Delivered>>;

    /// One client's loop of calls until `deadline`.
    async fn client(caller: Caller<Self>, deadline: Instant);
}

/// One client of a run: records each call it makes with its invocation and response times.
pub(crate) struct Caller<L> {
    /// The client's number (0.. for clients, 999 for the final reads, 1000.. for watchers).
    pub id: u32,
    /// The level it calls.
    pub level: Arc<L>,
    /// The run's workload.
    pub workload: Workload,
    sink: Arc<dyn Sink>,
    /// The number of the client's next call.
    pub seq: u64,
}

impl<L: Level> Caller<L> {
    /// Performs `call`, recorded; a call not answered within the workload's call timeout has
    /// an unknown outcome (a write) or was refused (a read).
    pub async fn call(&mut self, call: Call) -> Outcome {
        self.call_deleting(call, "").await
    }

    /// [`Caller::call`] for a delete whose precondition names a revision at which the client
    /// saw `deleted_value` (see [`Level::perform`]).
    pub async fn call_deleting(&mut self, call: Call, deleted_value: &str) -> Outcome {
        let id: OpId = (self.workload.round, self.id, self.seq);
        self.seq += 1;
        self.sink.record(Record::Invoke { id, call: call.clone(), at: now_ns() });
        let answer = self.level.perform(&call, deleted_value);
        let outcome = match tokio::time::timeout(self.workload.call_timeout, answer).await {
            Ok(outcome) => outcome,
            Err(_) if call.is_write() => Outcome::Unknown("timed out".into()),
            Err(_) => Outcome::Refused("timed out".into()),
        };
        self.sink.record(Record::Return { id, outcome: outcome.clone(), at: now_ns() });
        outcome
    }

    /// Waits the workload's think time between two calls, or yields when there is none (a
    /// target that never waits would otherwise keep this worker thread to itself).
    pub async fn pause(&self) {
        if self.workload.think_time.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.workload.think_time).await;
        }
    }
}

/// A watcher: lists, watches from the list's revision, and after a while resumes from a
/// revision it was delivered (not always the last: any delivered revision must replay the
/// same events); relists after an error (a 410).
async fn watcher<L: Level>(mut client: Caller<L>, deadline: Instant) {
    let mut rng = StdRng::seed_from_u64(client.workload.seed.wrapping_mul(7919).wrapping_add(client.id as u64));
    let prefix = client.level.prefix();
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
        let Some(mut stream) = client.level.watch(start).await else {
            from = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
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
                Ok(None) | Err(_) => break,
            };
            let rv = event.rv();
            client.sink.record(Record::Event { id, event, at: now_ns() });
            match rv {
                Some(rv) => delivered.push(rv),
                None => {
                    relist = true;
                    break;
                }
            }
        }
        drop(stream);
        from = if relist { None } else { Some(delivered[rng.random_range(0..delivered.len())]) };
    }
}

/// Runs `workload` at `level` until its duration is over, recording into `sink`: a baseline
/// record, [`Workload::clients`] clients and [`Workload::watchers`] watchers, then a quiet
/// latest read of every key and a latest list, so a write lost at the end shows.
pub(crate) async fn run<L: Level>(level: L, workload: &Workload, sink: Arc<dyn Sink>) {
    let level = Arc::new(level);
    if let Some(rv) = level.current_revision().await {
        sink.record(Record::Baseline { rv });
    }
    let deadline = Instant::now() + workload.duration;
    let caller = |id: usize| Caller {
        id: id as u32,
        level: level.clone(),
        workload: workload.clone(),
        sink: sink.clone(),
        seq: 0,
    };
    let mut tasks = Vec::new();
    for id in 0..workload.clients {
        tasks.push(tokio::spawn(L::client(caller(id), deadline)));
    }
    for w in 0..workload.watchers {
        tasks.push(tokio::spawn(watcher(caller(1000 + w), deadline)));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut last = caller(999);
    for k in 0..workload.keys {
        last.call(Call::Get { key: level.key(k), at: ReadAt::Latest }).await;
    }
    last.call(Call::List { at: ReadAt::Latest, limit: 0 }).await;
}
