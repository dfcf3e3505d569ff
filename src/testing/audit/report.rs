//! Violations and the audit report.

use std::fmt;

/// Which property a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// A read returned a state older than one a completed write had already replaced.
    StaleRead,
    /// An acknowledged write is gone: later reads see the state before it and nothing ever
    /// observed it.
    LostWrite,
    /// A key's history has no linearization (none of the more specific kinds).
    NotLinearizable,
    /// Two different writes were given the same revision (e.g. after a restart).
    RevisionReused,
    /// One write was seen at two different revisions.
    InconsistentRevision,
    /// A write that returned before another was invoked got a higher revision.
    RevisionOrder,
    /// A consistent list missed writes that completed before it was invoked.
    StaleList,
    /// A list (or a get) at a revision differs from the state replayed to that revision.
    ListMismatch,
    /// A read with a resourceVersion returned a state older than asked for.
    ReadTooOld,
    /// Watch: events out of revision order (or at/before the start revision).
    WatchUnordered,
    /// Watch: one event delivered twice.
    WatchDuplicate,
    /// Watch: a write between the start revision and the last delivered one is missing.
    WatchGap,
    /// Watch: events of one revision not delivered together.
    WatchNotAtomic,
    /// Watch: a watch resumed from a delivered revision replays something else.
    WatchNotResumable,
    /// Watch: a bookmark went backwards.
    BookmarkBackwards,
    /// Watch: a bookmark at B came before an event at or below B.
    BookmarkOvertook,
}

impl ViolationKind {
    /// A short name, e.g. `stale read`.
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::StaleRead => "stale read",
            ViolationKind::LostWrite => "lost write",
            ViolationKind::NotLinearizable => "not linearizable",
            ViolationKind::RevisionReused => "revision reused",
            ViolationKind::InconsistentRevision => "inconsistent revision",
            ViolationKind::RevisionOrder => "revisions out of real-time order",
            ViolationKind::StaleList => "stale list",
            ViolationKind::ListMismatch => "list differs from replay",
            ViolationKind::ReadTooOld => "read older than its resourceVersion",
            ViolationKind::WatchUnordered => "watch: unordered",
            ViolationKind::WatchDuplicate => "watch: duplicate",
            ViolationKind::WatchGap => "watch: unreliable (gap)",
            ViolationKind::WatchNotAtomic => "watch: not atomic",
            ViolationKind::WatchNotResumable => "watch: not resumable",
            ViolationKind::BookmarkBackwards => "watch: bookmark went backwards",
            ViolationKind::BookmarkOvertook => "watch: bookmark overtook an event",
        }
    }
}

/// One broken property, explained in words with the smallest sub-history found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// What is broken.
    pub kind: ViolationKind,
    /// One sentence.
    pub summary: String,
    /// The operations or events involved, one per line.
    pub evidence: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{}] {}", self.kind.name(), self.summary)?;
        for line in &self.evidence {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// What an audit checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations in the history.
    pub operations: usize,
    /// Operations whose outcome was unknown (after patching from observations).
    pub unknown: usize,
    /// Keys whose histories were searched for a linearization.
    pub keys: usize,
    /// Watches checked.
    pub watches: usize,
    /// Events checked (bookmarks included).
    pub events: usize,
    /// Lists compared with the replayed state.
    pub lists_replayed: usize,
    /// Gets at an exact revision compared with the replayed state.
    pub reads_replayed: usize,
    /// Lists that could not be replayed (a revision below them is unknown).
    pub lists_unverified: usize,
    /// Keys whose search ran out of time.
    pub inconclusive: Vec<String>,
    /// Everything broken.
    pub violations: Vec<Violation>,
}

impl Report {
    /// True when nothing is broken.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// True when some violation is of `kind`.
    pub fn has(&self, kind: ViolationKind) -> bool {
        self.violations.iter().any(|v| v.kind == kind)
    }

    /// The kinds found, sorted and deduplicated.
    pub fn kinds(&self) -> Vec<ViolationKind> {
        let mut kinds: Vec<_> = self.violations.iter().map(|v| v.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Panics with the report unless it is clean.
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "the audit found violations:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} operations ({} unknown outcome) on {} keys, {} watches with {} events, {} lists replayed ({} unverifiable), {} gets at a revision replayed, {} inconclusive keys, {} violations",
            self.operations,
            self.unknown,
            self.keys,
            self.watches,
            self.events,
            self.lists_replayed,
            self.lists_unverified,
            self.reads_replayed,
            self.inconclusive.len(),
            self.violations.len()
        )?;
        for violation in self.violations.iter().take(20) {
            write!(f, "{violation}")?;
        }
        if self.violations.len() > 20 {
            writeln!(f, "... and {} more", self.violations.len() - 20)?;
        }
        Ok(())
    }
}
