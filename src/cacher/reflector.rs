//! The reflector: lists the resource from the inner storage, then watches it from the list's
//! revision and feeds the cache; dispatches every change (and periodic bookmarks) to the
//! watchers. On any error the cache turns not ready, every watcher is terminated, and the
//! reflector lists again after [`CacherConfig::relist_backoff`](super::CacherConfig).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;

use crate::error::Error;
use crate::storage::{ListOptions, Predicate, ResourceVersion, WatchEvent};

use super::cache::{CacheState, CachedObject, Dispatch, EventKind, Key, Objects};
use super::Shared;

/// Page size of the reflector's list (Kubernetes' cacher lists 10 000 per page).
const LIST_PAGE: i64 = 10_000;

/// How often periodic bookmarks are considered (Kubernetes: 1 s timer).
const BOOKMARK_TICK: Duration = Duration::from_secs(1);

/// Kubernetes `timeBudget`: how long dispatch may block on slow watchers, refilled over time.
struct TimeBudget {
    available: Duration,
    refreshed: Instant,
}

/// Largest budget (100 ms) and refill rate (50 ms per second), as Kubernetes.
const BUDGET_MAX: Duration = Duration::from_millis(100);
const BUDGET_REFILL_PER_SECOND: Duration = Duration::from_millis(50);

impl TimeBudget {
    fn new() -> Self {
        TimeBudget { available: BUDGET_MAX, refreshed: Instant::now() }
    }

    fn take(&mut self) -> Duration {
        let elapsed = self.refreshed.elapsed();
        self.refreshed = Instant::now();
        self.available = (self.available + BUDGET_REFILL_PER_SECOND.mul_f64(elapsed.as_secs_f64())).min(BUDGET_MAX);
        std::mem::take(&mut self.available)
    }

    fn give_back(&mut self, unused: Duration) {
        self.available = (self.available + unused).min(BUDGET_MAX);
    }
}

/// Runs until the cacher stops: list, watch, relist after errors.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut budget = TimeBudget::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let failure = tokio::select! {
            _ = stop.changed() => return,
            result = list_and_watch(&shared, &mut budget) => match result {
                Ok(()) => return,
                Err(failure) => failure,
            },
        };
        let pause = match failure {
            Failure::Error(error) => {
                tracing::warn!(resource = %shared.config.resource_prefix, %error, "watch cache: reflector failed, relisting");
                shared.update(|state| state.fail(&error));
                shared.config.relist_backoff
            }
            Failure::OverBudget(bytes) => {
                tracing::warn!(
                    resource = %shared.config.resource_prefix,
                    bytes,
                    budget = shared.config.memory_budget,
                    "watch cache: over its memory budget, serving from storage"
                );
                shared.update(CacheState::bypass);
                shared.record_memory();
                wait_until_fits(&shared).await;
                Duration::ZERO
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Why a list-and-watch cycle ended.
enum Failure {
    /// The inner storage failed (or ended the watch).
    Error(Error),
    /// The cache would hold more bytes than its budget.
    OverBudget(usize),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Error(error)
    }
}

/// How often a bypassed cache checks whether the resource fits its budget again.
const BUDGET_RECHECK: Duration = Duration::from_secs(10);

/// Waits until the inner storage's size estimate fits the budget (checked every
/// [`BUDGET_RECHECK`]); without an estimate it waits one period and lets the next list decide.
async fn wait_until_fits(shared: &Shared) {
    loop {
        tokio::time::sleep(BUDGET_RECHECK).await;
        match shared.inner.stats().await {
            Ok(stats) if stats.estimated_average_object_size_bytes > 0 => {
                let estimate = stats.object_count.max(0) as usize
                    * (stats.estimated_average_object_size_bytes as usize + super::cache::OBJECT_OVERHEAD);
                if !shared.over_budget(estimate) {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// One list-and-watch cycle. Returns Ok only when the cacher stops.
async fn list_and_watch(shared: &Arc<Shared>, budget: &mut TimeBudget) -> std::result::Result<(), Failure> {
    let (objects, revision) = list(shared).await?;
    shared.update(|state| state.replace(objects, revision, shared.bounds()));
    shared.record_memory();
    let options = ListOptions {
        resource_version: ResourceVersion::at(revision),
        recursive: true,
        progress_notify: true,
        predicate: Predicate { allow_watch_bookmarks: true, ..Predicate::default() },
        ..ListOptions::default()
    };
    let mut events = shared.inner.watch(&shared.resource_dir, options).await?;
    // A bookmark period shorter than the tick would be late by up to a tick: tick at least
    // four times per period (never more often than every 10 ms).
    let tick = BOOKMARK_TICK.min(shared.config.bookmark_frequency / 4).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = shared.stop.subscribe();
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = ticker.tick() => dispatch_bookmarks(shared),
            next = events.next() => {
                let event = next.ok_or_else(|| Error::unavailable("the inner storage ended the watch"))?;
                process(shared, event, budget).await?;
            }
        }
    }
}

/// A consistent, paged list of the whole resource, each object encoded once.
///
/// Fails with the inner storage's errors, and with [`Failure::OverBudget`] as soon as the
/// objects exceed the memory budget.
async fn list(shared: &Shared) -> std::result::Result<(Objects, u64), Failure> {
    let mut objects = Objects::new();
    let mut bytes = 0;
    let mut options = ListOptions { recursive: true, ..ListOptions::default() };
    options.predicate.limit = LIST_PAGE;
    loop {
        let page = shared.inner.get_list(&shared.resource_dir, options.clone()).await?;
        for object in page.items {
            let key: Key = shared.key_of(&object)?.into();
            let cached = CachedObject::new(&object)?;
            bytes += cached.size(&key);
            objects.insert(key, cached);
        }
        if shared.over_budget(bytes) {
            return Err(Failure::OverBudget(bytes));
        }
        if page.continue_token.is_empty() {
            return Ok((objects, page.resource_version));
        }
        options.predicate.continue_token = page.continue_token;
    }
}

/// Applies one event of the inner watch and dispatches it.
async fn process(shared: &Arc<Shared>, event: WatchEvent, budget: &mut TimeBudget) -> std::result::Result<(), Failure> {
    // The type a watcher without a selector gets the change as: its object is encoded in
    // that event's line, framed once for all of them.
    let (kind, type_name, object) = match event {
        WatchEvent::Added(object) => (EventKind::Put, "ADDED", object),
        WatchEvent::Modified(object) => (EventKind::Put, "MODIFIED", object),
        WatchEvent::Deleted(object) => (EventKind::Delete, "DELETED", object),
        WatchEvent::Bookmark(object) => {
            let revision = object.resource_version()?;
            shared.update(|state| state.advance(revision));
            return Ok(());
        }
        WatchEvent::Error(error) => return Err(error.into()),
    };
    let revision = object.resource_version()?;
    let key: Key = shared.key_of(&object)?.into();
    let cached = CachedObject::in_watch_line(&object, type_name)?;
    drop(object);
    let bounds = shared.bounds();
    // Apply and dispatch under the one lock: every registered watcher in scope gets the change
    // queued (no sender is cloned but a blocked one's); a watcher registering later has it in
    // its replay instead.
    let outcome = shared.update(|state| {
        let applied = state.apply(kind, key, cached, revision, bounds)?;
        if shared.over_budget(state.total_bytes()) {
            state.shed_snapshots();
            if shared.over_budget(state.total_bytes()) {
                return Some(Err(()));
            }
        }
        let message = Dispatch::Event(applied.clone());
        let mut blocked = Vec::new();
        let mut dead = Vec::new();
        for (id, watcher) in &state.watchers {
            if !watcher.wants(&applied.key) {
                continue;
            }
            match watcher.input.try_send(message.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => blocked.push((*id, watcher.input.clone(), message)),
                Err(TrySendError::Closed(_)) => dead.push(*id),
            }
        }
        Some(Ok((blocked, dead)))
    });
    let bytes = shared.record_memory();
    let (blocked, mut dead) = match outcome {
        None => return Ok(()),
        Some(Err(())) => return Err(Failure::OverBudget(bytes)),
        Some(Ok(queued)) => queued,
    };
    if !blocked.is_empty() {
        // Kubernetes: blocked watchers share a small time budget; whoever still blocks after
        // it is terminated (its client re-watches) instead of stalling every other watcher.
        let deadline = tokio::time::Instant::now() + budget.take();
        for (id, input, message) in blocked {
            match tokio::time::timeout_at(deadline, input.send(message)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => dead.push(id),
                Err(_) => {
                    tracing::debug!(watcher = id, "watch cache: terminating a watcher that does not keep up");
                    dead.push(id);
                }
            }
        }
        budget.give_back(deadline.saturating_duration_since(tokio::time::Instant::now()));
    }
    if !dead.is_empty() {
        shared.update(|state| {
            for id in dead {
                state.watchers.remove(&id);
            }
        });
    }
    Ok(())
}

/// Sends a bookmark at the cache's revision to every watcher that allows bookmarks and is due.
fn dispatch_bookmarks(shared: &Shared) {
    let frequency = shared.config.bookmark_frequency;
    let now = Instant::now();
    shared.update(|state| {
        if !state.ready {
            return;
        }
        let revision = state.revision;
        for watcher in state.watchers.values_mut() {
            if watcher.bookmarks && watcher.next_bookmark <= now {
                // Best effort: a full queue skips this bookmark (the next one comes later).
                let _ = watcher.input.try_send(Dispatch::Bookmark(revision));
                watcher.next_bookmark = now + frequency;
            }
        }
    });
}
