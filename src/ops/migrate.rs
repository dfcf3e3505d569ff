//! Online migration from one [`KvBackend`] to another while the source keeps serving:
//! copy at revision R, follow the changes from R, verify key by key, then a cutover in
//! which the caller holds writes back while the tail is applied and verified.
//!
//! ```text
//!  start():   R = source revision ─ raise target past R ─ copy [prefix or resources] at R
//!             └─ follower: source watch from R+1 ──► target batches (one writer; each
//!                batch the events ready at once, one target transaction on etcd)
//!  verify():  follower paused at P; source at P vs target, key by key
//!  finish():  (caller: writes gated) S = source revision; follower reaches S (progress
//!             requests); changed keys verified; target raised past S; target compacted at
//!             its revision C > S
//! ```
//!
//! # The revision guarantee
//!
//! An object's resourceVersion is its key's mod revision, and the target assigns its own
//! revisions, so a copied object gets a new resourceVersion. Every resourceVersion a client
//! got from the source must afterwards be either valid with the same meaning or refused:
//!
//! - **every write to the target happens at a revision above the source revision of the
//!   change it copies**: the target is raised past R before the copy, and whenever the
//!   follower would write at a target revision not above the source revision it has seen,
//!   the target is first raised past the source's *current* revision. The follower writes
//!   batches of changes (one transaction on etcd, all at one revision): the check runs
//!   before each batch against the newest source revision in it, so every write of the batch
//!   lands above the source revisions of all its changes. So a key's mod
//!   revision on the target is above every revision the source ever gave that key: a
//!   precondition (update, delete) carrying a source resourceVersion never matches — a 409
//!   Conflict, never a false match;
//! - **at cutover the target's revision exceeds the source's final revision S and the target
//!   is compacted at its cutover revision C > S**: a list at an exact source revision or a
//!   watch from one is below C — 410 Gone (relist), never a silently different state; a
//!   "not older than" read is served at a revision ≥ C > S, which it allows.
//!
//! # Verification
//!
//! Key by key: a SHA-256 of (key, value, source mod revision) on the source side; on the
//! target side the same hash over the target's key and value and the source mod revision
//! the migration recorded for the target mod revision it wrote — a key the migration did
//! not write as found, a missing or extra key, or a different value is a difference.
//!
//! The target must hold no key in the migrated ranges when the migration starts; it is the
//! migration's only writer until the cutover. The migrated ranges are the prefix (or the
//! chosen resources) less the excluded resources ([`MigrateOptions::exclude`]): a
//! whole-store migration leaves a resource that has a backend of its own where it is.
//!
//! # Writes the caller must hold back
//!
//! The cutover's promise ("nothing acknowledged is lost") holds for the writes the caller
//! holds back during [`Migration::finish`] and afterwards sends to the target: every writer
//! of the source must go through the caller's gate. Writes a backend makes by itself are the
//! exception: a TTL expiry on the source after the final source revision S is not applied to
//! the target, which expires its copy on its own (the copy carries the time left, see TTLs
//! below: no earlier than the source would have). Compaction changes no key.
//!
//! # TTLs
//!
//! A key with a TTL ([`KvBackend::expiries`]) keeps the time it has left: the copy reads the
//! source's TTLs just before and after R (as a backup does), the follower asks the source for
//! the TTL of every key a batch puts and gives the write that TTL when it belongs to the
//! version copied (a version already replaced gets the TTL with the change that replaced it).
//! An expiry on the source is a delete the follower applies like any other. The target
//! expires its copies by itself too (no earlier than the source: the copy's deadline is the
//! write's start plus the time left), often first — sled sweeps every 100 ms: the migration
//! records when each copy may run out, and a change that finds the key gone on the target
//! for that reason applies to nothing (a delete is dropped, a put creates), and the
//! verification counts such a key, held by the source in the very version copied, as no
//! difference. An expiry on the source after the cutover's final revision is the target's
//! own (see above).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use futures::FutureExt;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::kv::{BatchWrite, KeyValue, KvBackend, RangeRequest, Revision, TxnOutcome, WatchEvent, WatchRequest};

use super::backup::{ranges, Ttls};
use super::restore::raise_revision;

/// Keys read per page and written concurrently while copying or verifying.
const PAGE: u64 = 500;
/// Writes in flight while copying.
const CONCURRENCY: usize = 32;
/// Differences named in a [`Verification`] (the count covers all of them).
const NAMED_DIFFERENCES: usize = 20;
/// Source events the follower applies in one target batch at most (etcd's default
/// `--max-txn-ops` is 128).
const BATCH_EVENTS: usize = 128;
/// Value bytes after which the follower closes a batch (well below etcd's 1.5 MiB request).
const BATCH_BYTES: usize = 512 * 1024;
/// How long [`Migration::finish`] waits for the follower to reach the source's revision.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// What to migrate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateOptions {
    /// The key prefix (`/registry`).
    pub prefix: String,
    /// Only these resources, by storage prefix (`configmaps`, `stable.example.com/crontabs`);
    /// None: everything under the prefix.
    pub resources: Option<Vec<String>>,
    /// Resources (storage prefixes) left out of the migration: they stay where they are —
    /// neither copied, followed nor verified (a resource served from a backend of its own,
    /// whose keys in this source are not the ones served).
    pub exclude: Vec<String>,
}

impl MigrateOptions {
    /// Everything under `prefix`.
    pub fn everything(prefix: impl Into<String>) -> MigrateOptions {
        MigrateOptions { prefix: prefix.into(), resources: None, exclude: Vec::new() }
    }

    /// The key ranges migrated, in key order: the prefix (or the resources) without the
    /// excluded resources' ranges.
    pub fn ranges(&self) -> Vec<(String, String)> {
        let excluded = ranges(&self.prefix, Some(&self.exclude));
        let mut out = Vec::new();
        for (start, end) in ranges(&self.prefix, self.resources.as_deref()) {
            // Cut every excluded range out of [start, end) (all are sorted prefix ranges).
            let mut from = start;
            for (x_start, x_end) in &excluded {
                if *x_start >= end || *x_end <= from {
                    continue;
                }
                if *x_start > from {
                    out.push((from.clone(), x_start.clone()));
                }
                from = from.max(x_end.clone());
            }
            if from < end {
                out.push((from, end));
            }
        }
        out
    }

    /// True when `key` is in one of [`MigrateOptions::ranges`].
    fn covers(ranges: &[(String, String)], key: &str) -> bool {
        ranges.iter().any(|(start, end)| key >= start.as_str() && key < end.as_str())
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    /// The source revision compared at.
    pub revision: Revision,
    /// Keys compared.
    pub keys: u64,
    /// Keys that differ (missing, extra, other value or other mod revision).
    pub differences: u64,
    /// The first differences, one line each.
    pub named: Vec<String>,
    /// SHA-256 (hex) over every key's hash, in key order (source side).
    pub digest: String,
}

/// What a migration did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationSummary {
    /// The revision the copy read the source at.
    pub start_revision: Revision,
    /// Keys copied at R.
    pub copied: u64,
    /// How long the copy at R took.
    pub copy_time: Duration,
    /// Source changes after R applied to the target.
    pub followed: u64,
    /// The source's revision at cutover.
    pub source_revision: Revision,
    /// The target's revision at cutover (> `source_revision`), and its compaction revision.
    pub cutover_revision: Revision,
    /// The last full verification (before the cutover).
    pub verification: Verification,
    /// The verification of the keys changed after it, at the cutover.
    pub tail_verification: Verification,
}

/// Progress of a migration (for a progress bar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Keys copied so far.
    pub copied: u64,
    /// Keys to copy.
    pub total: u64,
    /// Source changes followed so far.
    pub followed: u64,
}

/// What the follower knows: for each migrated key the source mod revision it copied and the
/// target mod revision it wrote, the source revision it has applied up to, and the keys it
/// changed since the last verification.
#[derive(Default)]
struct State {
    keys: HashMap<String, (Revision, Revision)>,
    applied: Revision,
    /// The highest source revision known (events, the source's current revision).
    source_seen: Revision,
    /// The target's revision after the migration's last write to it.
    target_revision: Revision,
    dirty: HashSet<String>,
    /// Keys the migration wrote to the target with a TTL: the instant after which the target
    /// may have expired its copy by itself (the write's start + the TTL; the target's own
    /// deadline is no earlier).
    expiring: HashMap<String, Instant>,
    followed: u64,
    failed: Option<String>,
}

impl State {
    /// True when the target may have expired `key`'s copy by itself by `at`.
    fn expired_on_target(&self, key: &str, at: Instant) -> bool {
        self.expiring.get(key).is_some_and(|deadline| *deadline <= at)
    }
}

/// A migration in progress: the copy is done and the follower applies source changes.
pub struct Migration {
    source: Arc<dyn KvBackend>,
    target: Arc<dyn KvBackend>,
    options: MigrateOptions,
    state: Arc<tokio::sync::Mutex<State>>,
    follower: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    start_revision: Revision,
    copied: u64,
    copy_time: Duration,
    verification: Verification,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("source", &self.source.backend_name())
            .field("target", &self.target.backend_name())
            .field("options", &self.options)
            .field("start_revision", &self.start_revision)
            .field("copied", &self.copied)
            .finish_non_exhaustive()
    }
}

fn key_hash(key: &str, value: &[u8], source_mod: Revision) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u64).to_be_bytes());
    hasher.update(key.as_bytes());
    hasher.update((value.len() as u64).to_be_bytes());
    hasher.update(value);
    hasher.update(source_mod.to_be_bytes());
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every key of `[start, end)` at `revision` (0: latest), page by page.
async fn read_range(backend: &dyn KvBackend, start: &str, end: &str, revision: Revision) -> Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    let mut next = start.to_owned();
    loop {
        let request =
            RangeRequest { start: next.clone(), end: end.to_owned(), limit: PAGE, revision, count_only: false };
        let page = backend.range(request).await?;
        let more = page.more;
        if let Some(last) = page.kvs.last() {
            next = format!("{}\0", last.key);
        }
        out.extend(page.kvs);
        if !more {
            return Ok(out);
        }
    }
}

/// True when `key` is a scratch key of [`raise_revision`] (never migrated).
fn is_scratch(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix.trim_end_matches('/')).is_some_and(|rest| rest.starts_with("/.apistore-restore/"))
}

impl Migration {
    /// Copies the source at its current revision R into `target` and starts following the
    /// source's changes from R. `progress` is called after every copied page.
    ///
    /// Errors: [`Error::BadRequest`] when the target holds keys in the migrated ranges;
    /// backend errors (a compaction of the source past R during the copy is
    /// [`Error::Compacted`]: start again).
    pub async fn start(
        source: Arc<dyn KvBackend>,
        target: Arc<dyn KvBackend>,
        options: MigrateOptions,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Migration> {
        let ranges = options.ranges();
        for (start, end) in &ranges {
            let request =
                RangeRequest { start: start.clone(), end: end.clone(), limit: 1, revision: 0, count_only: true };
            let existing = target.range(request).await?.count;
            if existing > 0 {
                return Err(Error::BadRequest {
                    message: format!(
                        "the target backend is not empty: {existing} keys under {start}; migrate needs an empty one"
                    ),
                });
            }
        }
        let started = Instant::now();
        let mut ttls = Ttls::default();
        ttls.read(source.as_ref(), &ranges).await?;
        let revision = source.current_revision().await?;
        ttls.read(source.as_ref(), &ranges).await?;
        let ttls = &ttls;
        let mut total = 0;
        for (start, end) in &ranges {
            let request = RangeRequest { start: start.clone(), end: end.clone(), limit: 0, revision, count_only: true };
            total += source.range(request).await?.count;
        }
        progress(Progress { copied: 0, total, followed: 0 });
        raise_revision(target.as_ref(), &options.prefix, revision + 1).await?;
        let mut state = State { applied: revision, source_seen: revision, ..State::default() };
        for (start, end) in &ranges {
            let mut next = start.clone();
            loop {
                let request =
                    RangeRequest { start: next.clone(), end: end.clone(), limit: PAGE, revision, count_only: false };
                let page = source.range(request).await?;
                if let Some(last) = page.kvs.last() {
                    next = format!("{}\0", last.key);
                }
                let kvs: Vec<KeyValue> =
                    page.kvs.into_iter().filter(|kv| !is_scratch(&options.prefix, &kv.key)).collect();
                let written: Vec<(String, Revision, Revision, Option<Instant>)> = stream::iter(kvs.into_iter().map(Ok))
                    .map_ok(|kv: KeyValue| {
                        let target = target.clone();
                        async move {
                            let ttl = ttls.of(&kv);
                            let expires = ttl.map(|ttl| Instant::now() + ttl);
                            match target.put(&kv.key, kv.value.clone(), 0, ttl).await? {
                                TxnOutcome::Succeeded { revision: written } => {
                                    Ok((kv.key, kv.mod_revision, written, expires))
                                }
                                TxnOutcome::Failed { .. } => Err(Error::internal(format!(
                                    "key {:?} appeared in the target during the migration (it must have no other writer)",
                                    kv.key
                                ))),
                            }
                        }
                    })
                    .try_buffer_unordered(CONCURRENCY)
                    .try_collect()
                    .await?;
                for (key, source_mod, target_mod, expires) in written {
                    if let Some(expires) = expires {
                        state.expiring.insert(key.clone(), expires);
                    }
                    state.keys.insert(key, (source_mod, target_mod));
                }
                progress(Progress { copied: state.keys.len() as u64, total, followed: 0 });
                if !page.more {
                    break;
                }
            }
        }
        state.target_revision = target.current_revision().await?;
        let copied = state.keys.len() as u64;
        let copy_time = started.elapsed();
        let state = Arc::new(tokio::sync::Mutex::new(state));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(follow(source.clone(), target.clone(), options.clone(), state.clone(), stopped));
        Ok(Migration {
            source,
            target,
            options,
            state,
            follower,
            stop,
            start_revision: revision,
            copied,
            copy_time,
            verification: Verification::default(),
        })
    }

    /// The revision the copy read the source at.
    pub fn start_revision(&self) -> Revision {
        self.start_revision
    }

    /// Keys copied at the start revision, and how long that took.
    pub fn copied(&self) -> (u64, Duration) {
        (self.copied, self.copy_time)
    }

    /// Source changes applied to the target so far.
    pub async fn followed(&self) -> u64 {
        self.state.lock().await.followed
    }

    /// Compares every migrated key of the source (at the revision the follower has applied
    /// up to; the follower waits meanwhile) with the target.
    ///
    /// Errors: the follower failed (its message); backend errors.
    pub async fn verify(&mut self) -> Result<Verification> {
        let mut state = self.state.lock().await;
        check_follower(&state)?;
        let revision = state.applied;
        let mut verification = Verification { revision, ..Verification::default() };
        let mut digest = Sha256::new();
        for (start, end) in self.options.ranges() {
            let source = read_range(self.source.as_ref(), &start, &end, revision).await?;
            let target = read_range(self.target.as_ref(), &start, &end, 0).await?;
            let read_at = Instant::now();
            let source: Vec<KeyValue> =
                source.into_iter().filter(|kv| !is_scratch(&self.options.prefix, &kv.key)).collect();
            let target: HashMap<&str, &KeyValue> = target
                .iter()
                .filter(|kv| !is_scratch(&self.options.prefix, &kv.key))
                .map(|kv| (kv.key.as_str(), kv))
                .collect();
            let mut seen = 0;
            for kv in &source {
                let hash = key_hash(&kv.key, &kv.value, kv.mod_revision);
                digest.update(hash);
                verification.keys += 1;
                let found = target.get(kv.key.as_str()).copied();
                if found.is_some() {
                    seen += 1;
                }
                if let Some(why) = compare(&state, &kv.key, Some((kv, hash)), found, read_at) {
                    note(&mut verification, why);
                }
            }
            if seen < target.len() {
                let wanted: HashSet<&str> = source.iter().map(|kv| kv.key.as_str()).collect();
                for (key, kv) in &target {
                    if !wanted.contains(key) {
                        if let Some(why) = compare(&state, key, None, Some(kv), read_at) {
                            note(&mut verification, why);
                        }
                    }
                }
            }
        }
        verification.digest = hex(&digest.finalize());
        state.dirty.clear();
        drop(state);
        self.verification = verification.clone();
        Ok(verification)
    }

    /// Waits until the follower has applied every source change up to the source's revision
    /// when this is called (asking the source for progress notifications meanwhile); returns
    /// that revision. Called before closing the writes for the cutover, it keeps the tail
    /// the cutover waits for short.
    ///
    /// Errors: the follower failed; it did not get there within 10 s ([`Error::Timeout`]).
    pub async fn catch_up(&self) -> Result<Revision> {
        let source_revision = self.source.current_revision().await?;
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            {
                let state = self.state.lock().await;
                check_follower(&state)?;
                if state.applied >= source_revision {
                    return Ok(source_revision);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    message: format!("the migration did not catch up with source revision {source_revision}"),
                });
            }
            self.source.request_progress().await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The cutover. The caller holds the source's writes back first (none may start until
    /// this returns); then the follower catches up to the source's revision S (when the
    /// follower applied a batch past it before it stopped — the backend's own writes, TTL
    /// expiries — S is the revision it applied), the keys it changed since the last
    /// [`Migration::verify`] are verified at S, the target's revision is raised past S and
    /// the target is compacted at its revision C > S.
    ///
    /// Errors: the follower failed or did not reach S within 10 s; the verification found
    /// differences (nothing is compacted then: the caller stays on the source); backend
    /// errors.
    pub async fn finish(self) -> Result<MigrationSummary> {
        let started = Instant::now();
        let caught = self.catch_up().await?;
        let caught_up = started.elapsed();
        let _ = self.stop.send(true);
        let _ = self.follower.await;
        let mut state = self.state.lock().await;
        check_follower(&state)?;
        // The follower may have applied a batch past S before it stopped: with the caller's
        // writes held back those are the backend's own writes (TTL expiries). The tail is
        // verified where the target is, at the revision applied (≥ S).
        let source_revision = state.applied.max(caught);
        let mut dirty: Vec<String> = state.dirty.drain().collect();
        dirty.sort();
        let source = self.source.clone();
        let target = self.target.clone();
        let pairs: Vec<(String, Option<KeyValue>, Option<KeyValue>, Instant)> = stream::iter(dirty.into_iter().map(Ok))
            .map_ok(|key: String| {
                let (source, target) = (source.clone(), target.clone());
                async move {
                    let at_source = source.get(&key, source_revision).await?.kv;
                    let at_target = target.get(&key, 0).await?.kv;
                    Ok::<_, Error>((key, at_source, at_target, Instant::now()))
                }
            })
            .try_buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut tail = Verification { revision: source_revision, ..Verification::default() };
        let mut digest = Sha256::new();
        for (key, at_source, at_target, read_at) in &pairs {
            tail.keys += 1;
            let hashed = at_source.as_ref().map(|kv| (kv, key_hash(&kv.key, &kv.value, kv.mod_revision)));
            if let Some((_, hash)) = &hashed {
                digest.update(hash);
            }
            if let Some(why) = compare(&state, key, hashed, at_target.as_ref(), *read_at) {
                note(&mut tail, why);
            }
        }
        tail.digest = hex(&digest.finalize());
        let verified = started.elapsed();
        if tail.differences > 0 || self.verification.differences > 0 {
            return Err(Error::internal(format!(
                "the migration's verification found {} differences ({}); not cutting over",
                tail.differences + self.verification.differences,
                tail.named.iter().chain(&self.verification.named).cloned().collect::<Vec<_>>().join("; ")
            )));
        }
        raise_revision(self.target.as_ref(), &self.options.prefix, source_revision + 1).await?;
        let cutover_revision = self.target.current_revision().await?;
        self.target.compact(cutover_revision).await?;
        tracing::info!(
            "migration cutover: caught up in {caught_up:?}, {} changed keys verified by {verified:?}, compacted by {:?}",
            tail.keys,
            started.elapsed()
        );
        state.failed = Some("the migration is finished".into());
        Ok(MigrationSummary {
            start_revision: self.start_revision,
            copied: self.copied,
            copy_time: self.copy_time,
            followed: state.followed,
            source_revision,
            cutover_revision,
            verification: self.verification,
            tail_verification: tail,
        })
    }

    /// Stops following the source; the target keeps what was written (it is not cleaned).
    pub fn abort(self) {
        let _ = self.stop.send(true);
    }
}

fn check_follower(state: &State) -> Result<()> {
    match &state.failed {
        Some(why) => Err(Error::unavailable(format!("the migration stopped following the source: {why}"))),
        None => Ok(()),
    }
}

fn note(verification: &mut Verification, why: String) {
    verification.differences += 1;
    if verification.named.len() < NAMED_DIFFERENCES {
        verification.named.push(why);
    }
}

/// Why `key` differs between the source (its value and hash) and the target as read by
/// `read_at`, if it does. A key the target no longer holds because the copy's TTL ran out
/// is no difference when the source holds the very version copied: its TTL runs out no
/// later, and the source's expiry is a delete like any other.
fn compare(
    state: &State,
    key: &str,
    source: Option<(&KeyValue, [u8; 32])>,
    target: Option<&KeyValue>,
    read_at: Instant,
) -> Option<String> {
    match (source, target) {
        (None, None) => None,
        (Some((kv, _)), None)
            if state.expired_on_target(key, read_at)
                && state.keys.get(key).is_some_and(|&(source_mod, _)| source_mod == kv.mod_revision) =>
        {
            None
        }
        (Some(_), None) => Some(format!("{key}: missing in the target")),
        (None, Some(_)) => Some(format!("{key}: in the target, not in the source")),
        (Some((kv, hash)), Some(found)) => {
            // The source mod revision the migration recorded for what it wrote.
            let recorded = match state.keys.get(key) {
                Some(&(source_mod, target_mod)) if target_mod == found.mod_revision => source_mod,
                _ => {
                    return Some(format!(
                        "{key}: target mod revision {} was not written by the migration",
                        found.mod_revision
                    ))
                }
            };
            if key_hash(&found.key, &found.value, recorded) == hash {
                None
            } else if found.value != kv.value {
                Some(format!("{key}: the values differ"))
            } else {
                Some(format!("{key}: copied from source revision {recorded}, the source has {}", kv.mod_revision))
            }
        }
    }
}

/// Applies the source's changes after the copy's revision to the target in revision order,
/// in batches: every event the watch has ready (at most [`BATCH_EVENTS`] events and about
/// [`BATCH_BYTES`] of values) goes to the target in one [`KvBackend::write_batch`] (one
/// transaction on etcd). One watch over the whole prefix, so the revision it has applied up
/// to moves with every event and progress notification; re-watches from where it was when
/// the source cuts a slow watch off; stops between two batches when `stop` flips.
async fn follow(
    source: Arc<dyn KvBackend>,
    target: Arc<dyn KvBackend>,
    options: MigrateOptions,
    state: Arc<tokio::sync::Mutex<State>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (start, end) = ranges(&options.prefix, None).remove(0);
    let migrated_ranges = options.ranges();
    let migrated = |key: &str| !is_scratch(&options.prefix, key) && MigrateOptions::covers(&migrated_ranges, key);
    let outcome: Result<()> = async {
        loop {
            let from = state.lock().await.applied + 1;
            let request =
                WatchRequest { start: start.clone(), end: end.clone(), start_revision: from, progress_notify: true };
            let mut events = source.watch(request).await?;
            // An event held back for the next batch (it would have made this one too large).
            let mut carried: Option<WatchEvent> = None;
            loop {
                // The batch: the first event and whatever else the watch has ready now.
                let mut batch = Vec::new();
                let mut bytes = 0;
                let mut end: Option<WatchEnd> = None;
                match carried.take() {
                    Some(event) => {
                        bytes += value_bytes(&event);
                        batch.push(event);
                    }
                    None => {
                        let first = tokio::select! {
                            event = events.next() => event,
                            _ = stop.changed() => return Ok(()),
                        };
                        match WatchEnd::of(first) {
                            Ok(event) => {
                                bytes += value_bytes(&event);
                                batch.push(event);
                            }
                            Err(ended) => end = Some(ended),
                        }
                    }
                }
                while end.is_none() && batch.len() < BATCH_EVENTS {
                    let Some(item) = events.next().now_or_never() else { break };
                    match WatchEnd::of(item) {
                        Ok(event) if !batch.is_empty() && bytes + value_bytes(&event) > BATCH_BYTES => {
                            carried = Some(event);
                            break;
                        }
                        Ok(event) => {
                            bytes += value_bytes(&event);
                            batch.push(event);
                        }
                        Err(ended) => end = Some(ended),
                    }
                }
                let changes: Vec<Change> = batch
                    .iter()
                    .filter_map(|event| match event {
                        WatchEvent::Put { kv, .. } if migrated(&kv.key) => Some(Change {
                            key: kv.key.clone(),
                            revision: kv.mod_revision,
                            value: Some(kv.value.clone()),
                        }),
                        WatchEvent::Delete { key, revision, .. } if migrated(key) => {
                            Some(Change { key: key.clone(), revision: *revision, value: None })
                        }
                        _ => None,
                    })
                    .collect();
                let through = batch.iter().map(WatchEvent::revision).max();
                if let Some(through) = through {
                    let mut state = state.lock().await;
                    apply(source.as_ref(), target.as_ref(), &options.prefix, &mut state, changes, through).await?;
                }
                match end {
                    None => {}
                    // Cut off (fell behind) or ended: watch again from where it was.
                    Some(WatchEnd::Ended) | Some(WatchEnd::Failed(Error::Unavailable { .. })) => break,
                    Some(WatchEnd::Failed(e)) => return Err(e),
                }
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        state.lock().await.failed = Some(e.to_string());
    }
}

/// The TTLs the source reports now for the keys `changes` put (one change per key), when
/// they belong to the version the change copies: key → time left. Only asked of a source
/// with TTLs.
async fn batch_ttls(source: &dyn KvBackend, changes: &[Change]) -> Result<HashMap<String, Duration>> {
    if !source.capabilities().ttl {
        return Ok(HashMap::new());
    }
    let keys: Vec<String> = changes.iter().filter(|c| c.value.is_some()).map(|c| c.key.clone()).collect();
    let lookups = keys.into_iter().map(|key| async move { source.expiries(&key, &format!("{key}\0")).await });
    let found = futures::future::try_join_all(lookups).await?;
    let mut ttls = HashMap::new();
    for expiry in found.into_iter().flatten() {
        if changes.iter().any(|c| c.key == expiry.key && c.revision == expiry.mod_revision) {
            ttls.insert(expiry.key, expiry.remaining);
        }
    }
    Ok(ttls)
}

/// How a watch stream stopped: it ended, or its last item was an error.
enum WatchEnd {
    Ended,
    Failed(Error),
}

impl WatchEnd {
    /// The event of a stream item, or how the stream stopped.
    fn of(item: Option<Result<WatchEvent>>) -> std::result::Result<WatchEvent, WatchEnd> {
        match item {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(WatchEnd::Failed(e)),
            None => Err(WatchEnd::Ended),
        }
    }
}

/// The value bytes an event carries into a batch.
fn value_bytes(event: &WatchEvent) -> usize {
    match event {
        WatchEvent::Put { kv, .. } => kv.value.len(),
        _ => 0,
    }
}

/// One source change of a migrated key (`value` None: a delete) at source revision
/// `revision`.
struct Change {
    key: String,
    revision: Revision,
    value: Option<Bytes>,
}

/// Writes a batch of source changes, in revision order, to the target in one
/// [`KvBackend::write_batch`], and records that the source is applied up to `through` (the
/// batch's last revision, changes of other keys and progress notifications included).
///
/// Several changes of one key collapse into the last one: the batch is one transaction, so
/// no state between them is ever visible on the target. The revision guarantee: before the
/// batch, the target is raised past the source's current revision when its revision is not
/// already above every source revision seen, so each write of the batch lands above the
/// source revision of the change it copies.
async fn apply(
    source: &dyn KvBackend,
    target: &dyn KvBackend,
    prefix: &str,
    state: &mut State,
    changes: Vec<Change>,
    through: Revision,
) -> Result<()> {
    let Some(newest) = changes.iter().map(|c| c.revision).max() else {
        state.applied = state.applied.max(through);
        return Ok(());
    };
    state.source_seen = state.source_seen.max(newest);
    if state.target_revision < state.source_seen {
        let current = source.current_revision().await?;
        state.source_seen = state.source_seen.max(current);
        raise_revision(target, prefix, state.source_seen).await?;
        state.target_revision = target.current_revision().await?;
    }
    let followed = changes.len() as u64;
    // The last change of each key, in the order the keys first changed.
    let mut last: HashMap<String, usize> = HashMap::with_capacity(changes.len());
    let mut collapsed: Vec<Change> = Vec::with_capacity(changes.len());
    for change in changes {
        match last.get(&change.key) {
            Some(&at) => collapsed[at] = change,
            None => {
                last.insert(change.key.clone(), collapsed.len());
                collapsed.push(change);
            }
        }
    }
    let ttls = batch_ttls(source, &collapsed).await?;
    let mut writes = Vec::with_capacity(collapsed.len());
    let mut written = Vec::with_capacity(collapsed.len());
    for change in collapsed {
        let expected = state.keys.get(&change.key).map(|&(_, target_mod)| target_mod).unwrap_or(0);
        if change.value.is_none() && expected == 0 {
            // A key created and deleted after the copy that the target never got.
            continue;
        }
        writes.push(BatchWrite {
            key: change.key.clone(),
            expected_mod_revision: expected,
            value: change.value.clone(),
            ttl: change.value.as_ref().and_then(|_| ttls.get(&change.key).copied()),
        });
        written.push(change);
    }
    let mut attempts = 0;
    let (revisions, started) = loop {
        let started = Instant::now();
        if writes.is_empty() {
            break (Vec::new(), started);
        }
        if let Some(revisions) = target.write_batch(writes.clone()).await? {
            break (revisions, started);
        }
        // The target's only other writes are its own expiries of TTLs the migration copied:
        // a key whose copy ran out is absent there, and the change applies to nothing.
        attempts += 1;
        if attempts > 3 || !settle_expired(target, state, &mut writes, &mut written).await? {
            return Err(Error::internal(
                "a key changed in the target outside the migration (it must have no other writer)".to_owned(),
            ));
        }
    };
    for ((change, write), revision) in written.into_iter().zip(&writes).zip(revisions) {
        state.target_revision = state.target_revision.max(revision);
        match (&change.value, write.ttl) {
            (Some(_), Some(ttl)) => state.expiring.insert(change.key.clone(), started + ttl),
            _ => state.expiring.remove(&change.key),
        };
        match change.value {
            Some(_) => state.keys.insert(change.key.clone(), (change.revision, revision)),
            None => state.keys.remove(&change.key),
        };
        state.dirty.insert(change.key);
    }
    state.applied = state.applied.max(through);
    state.followed += followed;
    Ok(())
}

/// After a failed batch: for each write of a key whose copied TTL may have run out on the
/// target, looks at the target; when the key is gone there, a delete is dropped (the key is
/// gone, as the source's change wants) and a put becomes a create. Returns whether any write
/// changed (else the failure has another cause).
///
/// Errors: the target's.
async fn settle_expired(
    target: &dyn KvBackend,
    state: &mut State,
    writes: &mut Vec<BatchWrite>,
    written: &mut Vec<Change>,
) -> Result<bool> {
    let mut changed = false;
    let mut i = 0;
    while i < writes.len() {
        let key = writes[i].key.clone();
        let now = Instant::now();
        if writes[i].expected_mod_revision == 0
            || !state.expired_on_target(&key, now)
            || target.get(&key, 0).await?.kv.is_some()
        {
            i += 1;
            continue;
        }
        changed = true;
        state.expiring.remove(&key);
        if writes[i].value.is_some() {
            writes[i].expected_mod_revision = 0;
            i += 1;
        } else {
            writes.remove(i);
            written.remove(i);
            state.keys.remove(&key);
            state.dirty.insert(key);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::MigrateOptions;

    fn pair(start: &str, end: &str) -> (String, String) {
        (start.to_owned(), end.to_owned())
    }

    #[test]
    fn excluded_resources_are_cut_out_of_the_migrated_ranges() {
        let mut options = MigrateOptions::everything("/registry");
        assert_eq!(options.ranges(), [pair("/registry/", "/registry0")]);
        options.exclude = vec!["secrets".into(), "configmaps".into(), "secrets".into()];
        assert_eq!(
            options.ranges(),
            [
                pair("/registry/", "/registry/configmaps/"),
                pair("/registry/configmaps0", "/registry/secrets/"),
                pair("/registry/secrets0", "/registry0"),
            ]
        );
        let ranges = options.ranges();
        assert!(MigrateOptions::covers(&ranges, "/registry/namespaces/default"));
        assert!(MigrateOptions::covers(&ranges, "/registry/configmapsx/a"), "only the resource's own keys go");
        assert!(!MigrateOptions::covers(&ranges, "/registry/configmaps/default/a"));
        assert!(!MigrateOptions::covers(&ranges, "/registry/secrets/default/a"));
        // An excluded resource outside the chosen ones changes nothing; a chosen one excluded
        // leaves nothing.
        options.resources = Some(vec!["pods".into()]);
        assert_eq!(options.ranges(), [pair("/registry/pods/", "/registry/pods0")]);
        options.exclude = vec!["pods".into()];
        assert!(options.ranges().is_empty());
    }
}
