//! Options of the sled backend: where the data lives, how durable a write is, how much
//! history is kept.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// When an acknowledged write reaches the disk.
///
/// The default is [`Durability::Immediate`]: the project rule is that a write that returned
/// success survives `kill -9`. Concurrent writers share flushes (group commit), so the cost of
/// durability is one fsync per batch of concurrent writes, not per write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every write is durable before it is acknowledged: its record is written to the
    /// backend's write-ahead log and `fdatasync`ed (one write and one sync per group of
    /// concurrent writers, see `wal.rs`); sled itself is flushed durably behind the log about
    /// once a second (sled's flush plus an `fdatasync` of its log and a sync of new blob files,
    /// which sled 0.34's flush leaves out, see `durable.rs`), and the log is replayed on open.
    /// Survives `kill -9` and power loss (as far as the disk honours fsync). Readers and
    /// watchers see a write only once it is durable, so nothing they saw can be lost in a crash.
    #[default]
    Immediate,
    /// Writes are acknowledged once applied in memory; sled flushes in the background every
    /// this many milliseconds. A crash may lose the writes of the last interval (never a
    /// revision: see [`SledBackend`](crate::SledBackend)).
    Periodic(u64),
}

impl<'de> Deserialize<'de> for Durability {
    /// Accepts `"immediate"`, `{"periodic_ms": 500}`, or `"periodic"` (500 ms, sled's default).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PeriodicMs {
            periodic_ms: u64,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Name(String),
            Periodic(PeriodicMs),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Name(name) if name == "immediate" => Ok(Durability::Immediate),
            Repr::Name(name) if name == "periodic" => Ok(Durability::Periodic(DEFAULT_PERIODIC_FLUSH_MS)),
            Repr::Name(other) => Err(serde::de::Error::custom(format!(
                "unknown durability {other:?}: expected \"immediate\", \"periodic\" or {{\"periodic_ms\": N}}"
            ))),
            Repr::Periodic(PeriodicMs { periodic_ms: 0 }) => {
                Err(serde::de::Error::custom("durability periodic_ms must be greater than 0"))
            }
            Repr::Periodic(PeriodicMs { periodic_ms }) => Ok(Durability::Periodic(periodic_ms)),
        }
    }
}

/// sled's own default background flush interval.
pub const DEFAULT_PERIODIC_FLUSH_MS: u64 = 500;

/// Revisions of history kept by background compaction by default (older ones are compacted
/// away; reads and watches below them fail with `Compacted`).
pub const DEFAULT_COMPACTION_WINDOW: u64 = 10_000;

/// How long history is kept by default (milliseconds): five minutes, what kube-apiserver
/// keeps of etcd's (it compacts every 5 minutes to the revision it saw at the previous run).
pub const DEFAULT_COMPACTION_RETENTION_MS: u64 = 5 * 60 * 1000;

/// History kept beyond the live data by default, in percent of the live data's bytes: the
/// bytes in use stay at most twice the live bytes.
pub const DEFAULT_HISTORY_BUDGET_PERCENT: u64 = 100;

/// The history budget is never below this many bytes beyond the live data (a small store
/// keeps a useful window).
pub const HISTORY_BUDGET_FLOOR: u64 = 1024 * 1024;

/// How often background compaction runs, by default (milliseconds).
pub const DEFAULT_COMPACTION_INTERVAL_MS: u64 = 10_000;

/// How often expired TTL keys are deleted, by default (milliseconds).
pub const DEFAULT_TTL_CHECK_INTERVAL_MS: u64 = 100;

/// Events buffered per watcher before it is ended with "watch fell behind, relist".
pub const DEFAULT_WATCH_BUFFER: usize = 10_000;

/// Idle time after which a watch that asked for progress notifications gets one (ms).
pub const DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS: u64 = 5_000;

/// The directory size below which no rewrite runs, by default (bytes).
pub const DEFAULT_RECLAIM_MIN_BYTES: u64 = 1024 * 1024;

/// sled's page cache size by default (bytes).
pub const DEFAULT_CACHE_CAPACITY: u64 = 256 * 1024 * 1024;

/// Options of a [`SledBackend`](crate::SledBackend). Deserializable from the backend's
/// [`BackendConfig`](apistore::registry::BackendConfig) options, e.g.
/// `{"type": "sled", "path": "./apistore-data", "durability": {"periodic_ms": 500},
/// "compaction_window": 10000}`. Unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SledOptions {
    /// Directory of the database (created if missing). One process may open it at a time.
    pub path: PathBuf,
    /// A throw-away database deleted when closed (tests); `path` is ignored.
    pub temporary: bool,
    /// When acknowledged writes reach the disk (default [`Durability::Immediate`]).
    pub durability: Durability,
    /// Revisions of history background compaction keeps at most (default
    /// [`DEFAULT_COMPACTION_WINDOW`]); 0 disables background compaction (every limit below).
    ///
    /// The retention policy: background compaction keeps the history that all three limits
    /// allow — at most `compaction_window` revisions, at most `compaction_retention_ms` old,
    /// and at most `history_budget_percent` of the live bytes beyond the live data (the bytes
    /// in use, computed exactly from the key index). What needs history
    /// in storage: a paged list's continue token (it reads at the first page's revision), an
    /// Exact resourceVersion read, and a watch resumed from an old resourceVersion that no
    /// watch cache serves (the API server's watch cache keeps its own history for watches).
    /// Kubernetes gives them five to ten minutes of etcd history; here five minutes is the
    /// age limit, cut shorter under a write rate that would otherwise let history outgrow the
    /// data: with the default budget the bytes in use stay within twice the live bytes and a
    /// rewrite runs at 1.5 times the bytes in use, so the directory stays within about three
    /// times the live bytes. Anything older is answered `Compacted` (410 Gone: relist),
    /// exactly as for etcd's compaction.
    pub compaction_window: u64,
    /// The age limit of history, milliseconds (default
    /// [`DEFAULT_COMPACTION_RETENTION_MS`]); 0 = no age limit.
    pub compaction_retention_ms: u64,
    /// The size limit of history: superseded versions and tombstones kept beyond the live
    /// data, in percent of the live bytes (default [`DEFAULT_HISTORY_BUDGET_PERCENT`]), never
    /// less than [`HISTORY_BUDGET_FLOOR`]; 0 = no size limit.
    pub history_budget_percent: u64,
    /// How often background compaction runs, milliseconds.
    pub compaction_interval_ms: u64,
    /// How often expired TTL keys are swept, milliseconds (the TTL granularity).
    pub ttl_check_interval_ms: u64,
    /// Events buffered per watcher; a watcher that falls further behind is ended with an
    /// [`Unavailable`](apistore::Error::Unavailable) error ("relist") instead of losing events.
    pub watch_buffer: usize,
    /// Idle time after which a watch with `progress_notify` gets a progress event, ms.
    pub progress_notify_interval_ms: u64,
    /// sled's page cache size in bytes.
    pub cache_capacity: u64,
    /// The space quota in bytes of the data directory, like etcd's `--quota-backend-bytes`;
    /// 0 (the default) = none. At the quota the NOSPACE alarm refuses puts with
    /// [`apistore::Error::NoSpace`] (deletes, reads and compaction go on) until a rewrite
    /// brought the directory below it again.
    pub quota_backend_bytes: u64,
    /// The directory size below which maintenance never rewrites the database to return
    /// space (default [`DEFAULT_RECLAIM_MIN_BYTES`]); 0 disables rewriting.
    pub reclaim_min_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            path: PathBuf::from("./apistore-data"),
            temporary: false,
            durability: Durability::default(),
            compaction_window: DEFAULT_COMPACTION_WINDOW,
            compaction_retention_ms: DEFAULT_COMPACTION_RETENTION_MS,
            history_budget_percent: DEFAULT_HISTORY_BUDGET_PERCENT,
            compaction_interval_ms: DEFAULT_COMPACTION_INTERVAL_MS,
            ttl_check_interval_ms: DEFAULT_TTL_CHECK_INTERVAL_MS,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            progress_notify_interval_ms: DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            quota_backend_bytes: 0,
            reclaim_min_bytes: DEFAULT_RECLAIM_MIN_BYTES,
        }
    }
}

impl SledOptions {
    /// Defaults with the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SledOptions { path: path.into(), ..SledOptions::default() }
    }

    /// Defaults for a temporary database (deleted on close).
    pub fn temporary() -> Self {
        SledOptions { temporary: true, ..SledOptions::default() }
    }

    /// Sets the durability (builder style).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the background compaction window in revisions, 0 = off (builder style).
    pub fn compaction_window(mut self, revisions: u64) -> Self {
        self.compaction_window = revisions;
        self
    }

    /// Checks values that serde cannot. Errors: [`apistore::Error::Invalid`].
    pub fn validate(&self) -> apistore::Result<()> {
        let positive = [
            ("compaction_interval_ms", self.compaction_interval_ms),
            ("ttl_check_interval_ms", self.ttl_check_interval_ms),
            ("progress_notify_interval_ms", self.progress_notify_interval_ms),
            ("watch_buffer", self.watch_buffer as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(apistore::Error::invalid(format!("backend.sled.{field}"), "0", "must be greater than 0"));
            }
        }
        if !self.temporary && self.path.as_os_str().is_empty() {
            return Err(apistore::Error::invalid("backend.sled.path", "", "must not be empty"));
        }
        if let Durability::Periodic(0) = self.durability {
            return Err(apistore::Error::invalid("backend.sled.durability", "periodic_ms: 0", "must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_from_json() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Durability>(v);
        assert_eq!(parse(serde_json::json!("immediate")).expect("immediate"), Durability::Immediate);
        assert_eq!(parse(serde_json::json!({"periodic_ms": 250})).expect("periodic"), Durability::Periodic(250));
        assert!(parse(serde_json::json!("sometimes")).is_err());
        assert!(parse(serde_json::json!({"periodic_ms": 0})).is_err());
        assert!(parse(serde_json::json!({"periodic": 5})).is_err());
    }

    #[test]
    fn defaults_are_durable_and_valid() {
        let options = SledOptions::default();
        assert_eq!(options.durability, Durability::Immediate);
        options.validate().expect("defaults are valid");
        let bad = SledOptions { watch_buffer: 0, ..SledOptions::temporary() };
        assert_eq!(bad.validate().expect_err("zero buffer").code(), 422);
    }
}
