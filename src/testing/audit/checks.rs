//! The checkers: linearizability per key, revision invariants, list replay, and the six
//! watch guarantees, over one recorded [`History`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::history::{Call, Delivered, History, Operation, Outcome, ReadAt, Seen, WatchLog};
use super::linearize::{self, KeyOp, KeyState, Step, Verdict};
use super::report::{Report, Violation, ViolationKind};

/// How much effort the checkers spend.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Time for all linearizability searches together (each key gets its share).
    pub linearizability_budget: Duration,
    /// Time for shrinking each non-linearizable key's history.
    pub shrink_budget: Duration,
    /// At most this many violations of one kind are reported.
    pub max_per_kind: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            linearizability_budget: Duration::from_secs(20),
            shrink_budget: Duration::from_secs(2),
            max_per_kind: 5,
        }
    }
}

/// Where a claim or observation comes from (described only when reported).
#[derive(Clone, Copy, Debug)]
enum Source {
    /// An operation (index into the patched operations).
    Op(usize),
    /// Event `event` of watch `watch`.
    Event { watch: usize, event: usize },
}

/// A write the history proves happened at a revision: `value` None for a delete.
#[derive(Clone, Debug)]
struct Claim {
    key: String,
    value: Option<String>,
    source: Source,
}

struct Checker<'h> {
    history: &'h History,
    options: CheckOptions,
    origin: u64,
    /// Operations after patching unknown writes from observations.
    ops: Vec<Operation>,
    truth: BTreeMap<u64, Claim>,
    report: Report,
    per_kind: HashMap<ViolationKind, usize>,
}

/// Checks a history; see the module documentation.
pub fn check(history: &History, options: &CheckOptions) -> Report {
    let mut checker = Checker {
        history,
        options: options.clone(),
        origin: history.origin(),
        ops: history.operations.clone(),
        truth: BTreeMap::new(),
        report: Report::default(),
        per_kind: HashMap::new(),
    };
    checker.patch_unknown_writes();
    checker.build_truth();
    checker.revision_order();
    checker.lists_and_reads();
    checker.watches();
    checker.linearizability();
    let mut report = checker.report;
    report.operations = history.operations.len();
    report.unknown = checker.ops.iter().filter(|o| o.is_unknown()).count();
    report.watches = history.watches.len();
    report.events = history.watches.iter().map(|w| w.events.len()).sum();
    report
}

fn ms(t: u64, origin: u64) -> f64 {
    t.saturating_sub(origin) as f64 / 1e6
}

impl Checker<'_> {
    fn violate(&mut self, kind: ViolationKind, summary: String, evidence: Vec<String>) {
        let count = self.per_kind.entry(kind).or_insert(0);
        *count += 1;
        if *count <= self.options.max_per_kind {
            self.report.violations.push(Violation { kind, summary, evidence });
        }
    }

    fn describe(&self, index: usize) -> String {
        self.ops[index].describe(self.origin)
    }

    fn source(&self, source: Source) -> String {
        match source {
            Source::Op(i) => self.describe(i),
            Source::Event { watch, event } => {
                let log = &self.history.watches[watch];
                let (at, e) = &log.events[event];
                format!("watch {} delivered {e:?} at {:.3} ms", watch_tag(log), ms(*at, self.origin))
            }
        }
    }

    /// Observations of written values: value → (revision, earliest time, what saw it).
    fn observations(&self) -> HashMap<String, Vec<(u64, u64, Source)>> {
        let mut seen: HashMap<String, Vec<(u64, u64, Source)>> = HashMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            let Some(at) = op.returned else { continue };
            match &op.outcome {
                Outcome::Found(s) => seen.entry(s.value.clone()).or_default().push((s.rv, at, Source::Op(i))),
                Outcome::Listed { items, .. } => {
                    for s in items {
                        seen.entry(s.value.clone()).or_default().push((s.rv, at, Source::Op(i)));
                    }
                }
                Outcome::Deleted { value, prev_rv, .. } if *prev_rv != 0 => {
                    seen.entry(value.clone()).or_default().push((*prev_rv, at, Source::Op(i)))
                }
                _ => {}
            }
        }
        for (w, watch) in self.history.watches.iter().enumerate() {
            for (e, (at, event)) in watch.events.iter().enumerate() {
                if let Delivered::Put { value, rv, .. } = event {
                    seen.entry(value.clone()).or_default().push((*rv, *at, Source::Event { watch: w, event: e }));
                }
            }
        }
        seen
    }

    /// An unknown create or update whose value was observed happened: at the observed
    /// revision, before the earliest observation returned (etcd's history patching).
    fn patch_unknown_writes(&mut self) {
        let seen = self.observations();
        for op in &mut self.ops {
            if !op.is_unknown() {
                continue;
            }
            let Some(value) = op.call.written_value() else { continue };
            let Some(observations) = seen.get(value) else { continue };
            let Some(&(rv, at, _)) = observations.iter().min_by_key(|o| o.1) else { continue };
            op.outcome = Outcome::Written { rv };
            op.returned = Some(at.max(op.invoked));
        }
        // One value at two revisions: the store renumbered a write.
        let writers: HashMap<String, usize> = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| op.call.written_value().map(|v| (v.to_owned(), i)))
            .collect();
        let mut values: Vec<_> = seen.into_iter().collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        for (value, observations) in values {
            let mut revisions: BTreeMap<u64, Source> = BTreeMap::new();
            for (rv, _, what) in &observations {
                revisions.entry(*rv).or_insert(*what);
            }
            if let Some(&i) = writers.get(&value) {
                if let Outcome::Written { rv } = self.ops[i].outcome {
                    revisions.entry(rv).or_insert(Source::Op(i));
                }
            }
            if revisions.len() > 1 {
                let evidence = revisions.iter().map(|(rv, what)| format!("rv {rv}: {}", self.source(*what))).collect();
                self.violate(
                    ViolationKind::InconsistentRevision,
                    format!("the write of {value:?} was seen at {} different revisions", revisions.len()),
                    evidence,
                );
            }
        }
    }

    fn claim(&mut self, conflicts: &mut BTreeMap<u64, Vec<Source>>, rv: u64, claim: Claim) {
        match self.truth.get(&rv) {
            None => {
                self.truth.insert(rv, claim);
            }
            Some(existing) => {
                if existing.key != claim.key || existing.value != claim.value {
                    let entry = conflicts.entry(rv).or_insert_with(|| vec![existing.source]);
                    if entry.len() < 4 {
                        entry.push(claim.source);
                    }
                }
            }
        }
    }

    /// Every revision the history proves, and two different writes at one revision.
    fn build_truth(&mut self) {
        let mut conflicts: BTreeMap<u64, Vec<Source>> = BTreeMap::new();
        // Acknowledged writes first: they name the sources in reports.
        for i in 0..self.ops.len() {
            let op = &self.ops[i];
            let source = Source::Op(i);
            let key = op.call.key().unwrap_or_default().to_owned();
            let claims: Vec<(u64, Claim)> = match (&op.call, &op.outcome) {
                (Call::Create { value, .. } | Call::Update { value, .. }, Outcome::Written { rv }) => {
                    vec![(*rv, Claim { key, value: Some(value.clone()), source })]
                }
                (_, Outcome::Deleted { rv, value, prev_rv }) => {
                    let mut claims = vec![(*rv, Claim { key: key.clone(), value: None, source })];
                    if *prev_rv != 0 {
                        claims.push((*prev_rv, Claim { key, value: Some(value.clone()), source }));
                    }
                    claims
                }
                _ => Vec::new(),
            };
            for (rv, claim) in claims {
                self.claim(&mut conflicts, rv, claim);
            }
        }
        for i in 0..self.ops.len() {
            let items: Vec<Seen> = match &self.ops[i].outcome {
                Outcome::Found(s) => vec![s.clone()],
                Outcome::Listed { items, .. } => items.clone(),
                _ => Vec::new(),
            };
            for s in items {
                let claim = Claim { key: s.key.clone(), value: Some(s.value.clone()), source: Source::Op(i) };
                self.claim(&mut conflicts, s.rv, claim);
            }
        }
        for (w, watch) in self.history.watches.iter().enumerate() {
            for (e, (_, event)) in watch.events.iter().enumerate() {
                let source = Source::Event { watch: w, event: e };
                let claim = match event {
                    Delivered::Put { key, value, rv, .. } => {
                        (*rv, Claim { key: key.clone(), value: Some(value.clone()), source })
                    }
                    Delivered::Delete { key, rv } => (*rv, Claim { key: key.clone(), value: None, source }),
                    _ => continue,
                };
                self.claim(&mut conflicts, claim.0, claim.1);
            }
        }
        for (rv, sources) in conflicts {
            let evidence = sources.iter().map(|s| self.source(*s)).collect();
            self.violate(
                ViolationKind::RevisionReused,
                format!("revision {rv} was given to {} different writes", sources.len()),
                evidence,
            );
        }
    }

    /// Acknowledged writes, sorted by response time, with the running maximum revision.
    fn acked_writes(&self) -> Vec<(u64, u64, usize)> {
        let mut acked: Vec<(u64, u64, usize)> = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| {
                let rv = match op.outcome {
                    Outcome::Written { rv } | Outcome::Deleted { rv, .. } => rv,
                    _ => return None,
                };
                Some((op.returned?, rv, i))
            })
            .collect();
        acked.sort();
        acked
    }

    /// The newest acknowledged write that returned strictly before `t`: (rv, op), from a
    /// prefix maximum over `acked`.
    fn newest_before(acked: &[(u64, u64, usize)], prefix_max: &[(u64, usize)], t: u64) -> Option<(u64, usize)> {
        let n = acked.partition_point(|&(returned, _, _)| returned < t);
        (n > 0).then(|| prefix_max[n - 1])
    }

    fn prefix_max(acked: &[(u64, u64, usize)]) -> Vec<(u64, usize)> {
        let mut best = (0, usize::MAX);
        acked
            .iter()
            .map(|&(_, rv, i)| {
                if rv > best.0 {
                    best = (rv, i);
                }
                best
            })
            .collect()
    }

    /// A write invoked after another returned must get a higher revision.
    fn revision_order(&mut self) {
        let acked = self.acked_writes();
        let prefix = Self::prefix_max(&acked);
        let mut found = Vec::new();
        for &(_, rv, i) in &acked {
            if let Some((earlier_rv, earlier)) = Self::newest_before(&acked, &prefix, self.ops[i].invoked) {
                if earlier_rv > rv {
                    found.push((earlier, i, earlier_rv, rv));
                }
            }
        }
        for (earlier, later, earlier_rv, rv) in found {
            self.violate(
                ViolationKind::RevisionOrder,
                format!("a write got rv {rv} although a write that had already returned got rv {earlier_rv}"),
                vec![self.describe(earlier), self.describe(later)],
            );
        }
    }

    /// Consistent lists are fresh; RV reads are not older than asked; every list equals the
    /// replayed state at its revision (where every revision up to it is known).
    fn lists_and_reads(&mut self) {
        let acked = self.acked_writes();
        let prefix = Self::prefix_max(&acked);
        // The first revision after the baseline that nothing accounts for: not a proven
        // write, and not skipped by a watch that covered it (a reliable watch delivers every
        // write between its start and its last delivered revision, so a revision it skipped
        // holds no write — backends may jump revisions, e.g. after a crash).
        let mut covered: Vec<(u64, u64)> =
            self.history.watches.iter().map(|w| (w.from + 1, last_delivered(w))).filter(|(a, b)| a <= b).collect();
        covered.sort_unstable();
        let mut first_gap = self.history.baseline + 1;
        let (mut next, mut reach) = (0usize, 0u64);
        loop {
            while next < covered.len() && covered[next].0 <= first_gap {
                reach = reach.max(covered[next].1);
                next += 1;
            }
            if reach >= first_gap {
                first_gap = reach + 1;
            } else if self.truth.contains_key(&first_gap) {
                first_gap += 1;
            } else {
                break;
            }
        }
        let mut lists: Vec<(u64, usize)> = Vec::new();
        let mut found: Vec<(ViolationKind, String, Vec<String>)> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match (&op.call, &op.outcome) {
                (Call::List { at, .. }, Outcome::Listed { rv, .. }) => {
                    match at {
                        ReadAt::Latest => {
                            if let Some((newest, w)) = Self::newest_before(&acked, &prefix, op.invoked) {
                                if newest > *rv {
                                    found.push((
                                        ViolationKind::StaleList,
                                        format!("a consistent list was served at rv {rv}, below rv {newest} of a write that had returned before it was invoked"),
                                        vec![self.describe(w), self.describe(i)],
                                    ));
                                }
                            }
                        }
                        ReadAt::NotOlderThan(n) if rv < n => found.push((
                            ViolationKind::ReadTooOld,
                            format!("a list asked for rv ≥ {n} was served at rv {rv}"),
                            vec![self.describe(i)],
                        )),
                        ReadAt::Exact(n) if rv != n => found.push((
                            ViolationKind::ReadTooOld,
                            format!("a list asked for exactly rv {n} was served at rv {rv}"),
                            vec![self.describe(i)],
                        )),
                        _ => {}
                    }
                    if *rv < first_gap {
                        lists.push((*rv, i));
                    } else {
                        self.report.lists_unverified += 1;
                    }
                }
                (Call::Get { at: ReadAt::Exact(n), .. }, Outcome::Found(_) | Outcome::NotFound) => {
                    if *n < first_gap {
                        lists.push((*n, i));
                    } else {
                        self.report.lists_unverified += 1;
                    }
                }
                (Call::Get { key, at: ReadAt::NotOlderThan(n) }, Outcome::Found(s)) if s.rv < *n => {
                    // The state read must still have been current at some revision ≥ n.
                    let next =
                        self.truth.range(s.rv + 1..*n + 1).find(|(_, c)| c.key == *key).map(|(r, c)| (*r, c.source));
                    if let Some((next_rv, source)) = next {
                        if next_rv <= *n {
                            found.push((
                                ViolationKind::ReadTooOld,
                                format!(
                                    "a get asked for rv ≥ {n} returned the state at rv {}, replaced at rv {next_rv}",
                                    s.rv
                                ),
                                vec![self.source(source), self.describe(i)],
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for (kind, summary, evidence) in found {
            self.violate(kind, summary, evidence);
        }
        // Replay in revision order.
        lists.sort();
        let mut state: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let mut truth = self.truth.range(self.history.baseline + 1..).peekable();
        let mut mismatches = Vec::new();
        for (rv, i) in lists {
            while let Some((&r, claim)) = truth.peek() {
                if r > rv {
                    break;
                }
                match &claim.value {
                    Some(v) => state.insert(claim.key.clone(), (v.clone(), r)),
                    None => state.remove(&claim.key),
                };
                truth.next();
            }
            if let Call::Get { key, .. } = &self.ops[i].call {
                self.report.reads_replayed += 1;
                let read = match &self.ops[i].outcome {
                    Outcome::Found(s) => Some((s.value.clone(), s.rv)),
                    _ => None,
                };
                if read.as_ref() != state.get(key) {
                    let diff = vec![format!("{key}: read {}, replay {}", show(read.as_ref()), show(state.get(key)))];
                    mismatches.push((rv, i, diff));
                }
                continue;
            }
            let Outcome::Listed { items, .. } = &self.ops[i].outcome else { continue };
            self.report.lists_replayed += 1;
            let listed: BTreeMap<String, (String, u64)> =
                items.iter().map(|s| (s.key.clone(), (s.value.clone(), s.rv))).collect();
            if listed != state {
                let mut diff = Vec::new();
                let keys: BTreeSet<&String> = listed.keys().chain(state.keys()).collect();
                for key in keys {
                    let (a, b) = (listed.get(key), state.get(key));
                    if a != b {
                        diff.push(format!("{key}: listed {}, replay {}", show(a), show(b)));
                    }
                }
                mismatches.push((rv, i, diff));
            }
        }
        for (rv, i, mut diff) in mismatches {
            diff.insert(0, self.describe(i));
            self.violate(
                ViolationKind::ListMismatch,
                format!(
                    "the {} at rv {rv} differs from the writes replayed up to rv {rv}",
                    if self.ops[i].call.key().is_some() { "get" } else { "list" }
                ),
                diff,
            );
        }
        self.report.keys = self.keys().len();
    }

    fn keys(&self) -> BTreeSet<String> {
        self.history.operations.iter().filter_map(|o| o.call.key().map(str::to_owned)).collect()
    }

    fn watches(&mut self) {
        let mut found: Vec<(ViolationKind, String, Vec<String>)> = Vec::new();
        for watch in &self.history.watches {
            found.extend(self.check_watch(watch));
        }
        // Resumable: a watch resumed from a revision an earlier watch of the same watcher
        // delivered replays exactly what that one delivered after it.
        let mut by_watcher: BTreeMap<(u32, u32), Vec<&WatchLog>> = BTreeMap::new();
        for watch in &self.history.watches {
            by_watcher.entry((watch.id.0, watch.id.1)).or_default().push(watch);
        }
        for watches in by_watcher.values() {
            for pair in watches.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if a.prefix != b.prefix || b.from < a.from {
                    continue;
                }
                let (last_a, last_b) = (last_delivered(a), last_delivered(b));
                if b.from > last_a {
                    continue;
                }
                let until = last_a.min(last_b);
                let window = |w: &WatchLog| -> Vec<Delivered> {
                    w.events
                        .iter()
                        .filter(|(_, e)| !matches!(e, Delivered::Bookmark { .. } | Delivered::Error { .. }))
                        .filter(|(_, e)| e.rv().is_some_and(|r| r > b.from && r <= until))
                        .map(|(_, e)| normalize(e))
                        .collect()
                };
                let (wa, wb) = (window(a), window(b));
                if wa != wb {
                    let first = wa.iter().zip(wb.iter()).position(|(x, y)| x != y).unwrap_or(wa.len().min(wb.len()));
                    found.push((
                        ViolationKind::WatchNotResumable,
                        format!(
                            "watch {} resumed from rv {} replays {} events up to rv {until} where watch {} delivered {}",
                            watch_tag(b),
                            b.from,
                            wb.len(),
                            watch_tag(a),
                            wa.len()
                        ),
                        vec![
                            format!("first difference at position {first}:"),
                            format!("  original: {:?}", wa.get(first)),
                            format!("  resumed:  {:?}", wb.get(first)),
                        ],
                    ));
                }
            }
        }
        found.extend(self.lost_writes());
        for (kind, summary, evidence) in found {
            self.violate(kind, summary, evidence);
        }
    }

    /// An acknowledged create or update that no read ever returned and no watch delivered,
    /// although watches covered its revision: the write is gone (reads may never have had the
    /// chance to see it, but a watch must have).
    fn lost_writes(&self) -> Vec<(ViolationKind, String, Vec<String>)> {
        let seen = self.observations();
        let mut delivered: BTreeSet<u64> = BTreeSet::new();
        let mut covered: Vec<(u64, u64, usize)> = Vec::new();
        for (w, watch) in self.history.watches.iter().enumerate() {
            for (_, event) in &watch.events {
                if let Delivered::Put { rv, .. } | Delivered::Delete { rv, .. } = event {
                    delivered.insert(*rv);
                }
            }
            covered.push((watch.from, last_delivered(watch), w));
        }
        let mut found = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            let (Some(value), Outcome::Written { rv }, Some(key)) =
                (op.call.written_value(), &op.outcome, op.call.key())
            else {
                continue;
            };
            if self.history.operations[i].is_unknown() || delivered.contains(rv) || seen.contains_key(value) {
                continue;
            }
            let watches: Vec<usize> = covered
                .iter()
                .filter(|(from, last, w)| from < rv && rv <= last && key.starts_with(&self.history.watches[*w].prefix))
                .map(|(_, _, w)| *w)
                .collect();
            if watches.is_empty() {
                continue;
            }
            found.push((
                ViolationKind::LostWrite,
                format!(
                    "an acknowledged write at rv {rv} was never returned by a read nor delivered by any of the {} watches that covered rv {rv}",
                    watches.len()
                ),
                vec![self.describe(i)],
            ));
        }
        found
    }

    fn check_watch(&self, watch: &WatchLog) -> Vec<(ViolationKind, String, Vec<String>)> {
        let tag = watch_tag(watch);
        let origin = self.origin;
        let show_event = |at: u64, e: &Delivered| format!("{e:?} at {:.3} ms", ms(at, origin));
        let mut found = Vec::new();
        let mut last_event: Option<(u64, u64, &Delivered)> = None; // (rv, at, event)
        let mut last_bookmark: Option<(u64, u64)> = None;
        let mut delivered: HashMap<(u64, String), u64> = HashMap::new();
        let mut closed_revisions: BTreeSet<u64> = BTreeSet::new();
        let mut previous_rv: Option<u64> = None;
        for (at, event) in &watch.events {
            match event {
                Delivered::Error { .. } => break,
                Delivered::Bookmark { rv } => {
                    let floor = last_bookmark.map(|b| b.0).into_iter().chain(last_event.map(|e| e.0)).max();
                    if let Some(floor) = floor {
                        if *rv < floor {
                            found.push((
                                ViolationKind::BookmarkBackwards,
                                format!("watch {tag}: a bookmark at rv {rv} came after rv {floor} was delivered"),
                                vec![show_event(*at, event)],
                            ));
                        }
                    }
                    last_bookmark = Some((*rv, *at));
                }
                Delivered::Put { key, rv, .. } | Delivered::Delete { key, rv } => {
                    if *rv <= watch.from {
                        found.push((
                            ViolationKind::WatchUnordered,
                            format!("watch {tag} from rv {} delivered an event at rv {rv}", watch.from),
                            vec![show_event(*at, event)],
                        ));
                    }
                    if let Some((b, b_at)) = last_bookmark {
                        if *rv <= b {
                            found.push((
                                ViolationKind::BookmarkOvertook,
                                format!("watch {tag}: a bookmark at rv {b} was delivered before the event at rv {rv}"),
                                vec![format!("bookmark at {:.3} ms", ms(b_at, origin)), show_event(*at, event)],
                            ));
                        }
                    }
                    if let Some(first) = delivered.insert((*rv, key.clone()), *at) {
                        found.push((
                            ViolationKind::WatchDuplicate,
                            format!("watch {tag} delivered the event of {key} at rv {rv} twice"),
                            vec![format!("first at {:.3} ms", ms(first, origin)), show_event(*at, event)],
                        ));
                    } else if let Some((last_rv, last_at, last)) = last_event {
                        if *rv < last_rv {
                            found.push((
                                ViolationKind::WatchUnordered,
                                format!("watch {tag} delivered rv {rv} after rv {last_rv}"),
                                vec![show_event(last_at, last), show_event(*at, event)],
                            ));
                        }
                    }
                    if previous_rv != Some(*rv) {
                        if let Some(p) = previous_rv {
                            closed_revisions.insert(p);
                        }
                        if closed_revisions.contains(rv) {
                            found.push((
                                ViolationKind::WatchNotAtomic,
                                format!("watch {tag}: events of rv {rv} were not delivered together"),
                                vec![show_event(*at, event)],
                            ));
                        }
                    }
                    previous_rv = Some(*rv);
                    if last_event.is_none_or(|(r, _, _)| *rv >= r) {
                        last_event = Some((*rv, *at, event));
                    }
                }
            }
        }
        // Reliable: every proven write in range between the start and the last delivered
        // revision (event or bookmark) was delivered.
        let last = last_delivered(watch);
        let mut missing = Vec::new();
        for (rv, claim) in self.truth.range(watch.from + 1..last.max(watch.from) + 1) {
            if claim.key.starts_with(&watch.prefix) && !delivered.contains_key(&(*rv, claim.key.clone())) {
                missing.push(format!("rv {rv}: {}", self.source(claim.source)));
            }
        }
        if !missing.is_empty() {
            let n = missing.len();
            missing.truncate(4);
            found.push((
                ViolationKind::WatchGap,
                format!("watch {tag} from rv {} delivered up to rv {last} but missed {n} write(s)", watch.from),
                missing,
            ));
        }
        found
    }

    fn linearizability(&mut self) {
        let keys: Vec<String> = self.keys().into_iter().collect();
        if keys.is_empty() {
            return;
        }
        let seen = self.observations();
        let share = self.options.linearizability_budget / keys.len() as u32;
        let mut values: HashMap<String, u32> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut found = Vec::new();
        for key in &keys {
            let ops = self.key_ops(key, &mut values, &mut names);
            match linearize::check(&ops, None, Instant::now() + share) {
                Verdict::Linearizable => {}
                Verdict::Inconclusive => self.report.inconclusive.push(key.clone()),
                Verdict::Violation { .. } => {
                    let small = shrink(ops, Instant::now() + self.options.shrink_budget);
                    found.push(self.explain(key, &small, &names, &seen));
                }
            }
        }
        for (kind, summary, evidence) in found {
            self.violate(kind, summary, evidence);
        }
    }

    fn key_ops(&self, key: &str, values: &mut HashMap<String, u32>, names: &mut Vec<String>) -> Vec<KeyOp> {
        let mut intern = |v: &str| -> u32 {
            if let Some(id) = values.get(v) {
                return *id;
            }
            let id = names.len() as u32;
            names.push(v.to_owned());
            values.insert(v.to_owned(), id);
            id
        };
        let mut ops = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            let step = match (&op.call, &op.outcome) {
                (Call::List { at: ReadAt::Latest, .. }, Outcome::Listed { items, .. }) => {
                    match items.iter().find(|s| s.key == key) {
                        Some(s) => Step::Read { value: intern(&s.value), rv: s.rv },
                        None => Step::Absent,
                    }
                }
                (c, _) if c.key() != Some(key) => continue,
                (Call::Create { value, .. }, Outcome::Written { rv }) => {
                    Step::CreateOk { value: intern(value), rv: *rv }
                }
                (Call::Create { .. }, Outcome::AlreadyExists) => Step::CreateExists,
                (Call::Create { value, .. }, Outcome::Unknown(_)) => Step::CreateUnknown { value: intern(value) },
                (Call::Update { value, precondition, .. }, Outcome::Written { rv }) => {
                    Step::UpdateOk { value: intern(value), rv: *rv, pre: *precondition }
                }
                (Call::Update { value, precondition, .. }, Outcome::Unknown(_)) => {
                    Step::UpdateUnknown { value: intern(value), pre: *precondition }
                }
                (Call::Update { precondition: Some(pre), .. }, Outcome::PreconditionFailed) => {
                    Step::Conflict { pre: *pre }
                }
                (Call::Update { .. } | Call::Delete { .. }, Outcome::NotFound) => Step::Absent,
                (Call::Delete { precondition, .. }, Outcome::Deleted { value, prev_rv, .. }) => {
                    Step::DeleteOk { value: intern(value), prev_rv: *prev_rv, pre: *precondition }
                }
                (Call::Delete { precondition: Some(pre), .. }, Outcome::PreconditionFailed) => {
                    Step::Conflict { pre: *pre }
                }
                (Call::Delete { precondition, .. }, Outcome::Unknown(_)) => Step::DeleteUnknown { pre: *precondition },
                (Call::Get { at: ReadAt::Latest, .. }, Outcome::Found(s)) => {
                    Step::Read { value: intern(&s.value), rv: s.rv }
                }
                (Call::Get { at: ReadAt::Latest, .. }, Outcome::NotFound) => Step::Absent,
                _ => continue,
            };
            let returned = if matches!(op.outcome, Outcome::Unknown(_)) { None } else { op.returned };
            ops.push(KeyOp { step, invoked: op.invoked, returned, origin: i });
        }
        ops
    }

    fn describe_key_op(&self, key: &str, op: &KeyOp, names: &[String]) -> String {
        let original = &self.ops[op.origin];
        if let Call::List { .. } = original.call {
            let seen = match op.step {
                Step::Read { value, rv } => format!("{key} = {:?} @{rv}", names[value as usize]),
                _ => format!("{key} absent"),
            };
            let rv = match &original.outcome {
                Outcome::Listed { rv, .. } => *rv,
                _ => 0,
            };
            let returned = original.returned.map_or("never".to_owned(), |t| format!("{:.3}", ms(t, self.origin)));
            return format!(
                "{} latest list → rv {rv}, sees {seen} [{:.3}..{returned} ms]",
                op_tag(original),
                ms(original.invoked, self.origin)
            );
        }
        let mut text = self.describe(op.origin);
        if op.returned.is_none() && original.returned.is_some() {
            text.push_str(" (outcome dropped by the cut)");
        } else if !original.is_unknown() && self.history.operations[op.origin].is_unknown() {
            text.push_str(" (outcome unknown; proven by an observation)");
        }
        text
    }

    /// The kind and words of a non-linearizable key, from its shrunk history.
    fn explain(
        &self,
        key: &str,
        ops: &[KeyOp],
        names: &[String],
        seen: &HashMap<String, Vec<(u64, u64, Source)>>,
    ) -> (ViolationKind, String, Vec<String>) {
        let verdict = linearize::check(ops, None, Instant::now() + Duration::from_secs(2));
        let Verdict::Violation { prefix, state, stuck } = verdict else {
            return (
                ViolationKind::NotLinearizable,
                format!("{key}: no linearization exists"),
                ops.iter().map(|o| self.describe_key_op(key, o, names)).collect(),
            );
        };
        let show_state = |s: KeyState| match s {
            None => "is absent".to_owned(),
            Some((v, 0)) => format!("holds {:?} (at a revision not known)", names[v as usize]),
            Some((v, r)) => format!("holds {:?} at rv {r}", names[v as usize]),
        };
        // Classify from the reads that cannot come next: they saw a state older than the
        // one held. The held value observed elsewhere → stale read; never observed by anyone
        // but its writer → the write was lost.
        let mut kind = ViolationKind::NotLinearizable;
        if let Some((held_value, held_rv)) = state {
            let stale_read = stuck.iter().any(|&s| match ops[s].step {
                Step::Absent | Step::CreateOk { .. } => true,
                Step::Read { value, rv } => value != held_value && (held_rv == 0 || rv < held_rv),
                _ => false,
            });
            if stale_read {
                let name = &names[held_value as usize];
                let observed = seen.get(name).is_some_and(|o| !o.is_empty());
                kind = if observed { ViolationKind::StaleRead } else { ViolationKind::LostWrite };
            }
        }
        let mut evidence = vec![format!(
            "after {} operations that can be ordered, the key {}; none of these can come next:",
            prefix.len(),
            show_state(state)
        )];
        for &s in &stuck {
            evidence.push(format!("  {}", self.describe_key_op(key, &ops[s], names)));
        }
        const SHOWN: usize = 12;
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|&i| (ops[i].invoked, i));
        let skipped = order.len().saturating_sub(SHOWN);
        evidence.push(format!(
            "sub-history ({} operations after shrinking{}):",
            ops.len(),
            if skipped > 0 { format!(", the last {SHOWN} shown") } else { String::new() }
        ));
        for &i in order.iter().skip(skipped) {
            evidence.push(format!("  {}", self.describe_key_op(key, &ops[i], names)));
        }
        (kind, format!("{key}: {}: no order of its operations explains what they returned", kind.name()), evidence)
    }
}

fn show(entry: Option<&(String, u64)>) -> String {
    match entry {
        Some((v, rv)) => format!("{v:?} @{rv}"),
        None => "absent".to_owned(),
    }
}

fn normalize(event: &Delivered) -> Delivered {
    match event {
        // ADDED vs MODIFIED depends on what the watcher knew; the change is the same.
        Delivered::Put { key, value, rv, .. } => {
            Delivered::Put { key: key.clone(), value: value.clone(), rv: *rv, added: false }
        }
        other => other.clone(),
    }
}

fn op_tag(op: &Operation) -> String {
    format!("r{}c{}#{}", op.id.0, op.id.1, op.id.2)
}

fn watch_tag(watch: &WatchLog) -> String {
    format!("r{}w{}#{}", watch.id.0, watch.id.1, watch.id.2)
}

/// The highest revision a watch delivered (event or bookmark), or its start.
fn last_delivered(watch: &WatchLog) -> u64 {
    let mut last = watch.from;
    for (_, event) in &watch.events {
        match event {
            Delivered::Error { .. } => break,
            other => last = last.max(other.rv().unwrap_or(0)),
        }
    }
    last
}

fn is_violation(ops: &[KeyOp], deadline: Instant) -> bool {
    matches!(
        linearize::check(ops, None, deadline.min(Instant::now() + Duration::from_millis(300))),
        Verdict::Violation { .. }
    )
}

fn effect_free(step: &Step) -> bool {
    matches!(step, Step::Read { .. } | Step::Absent | Step::CreateExists | Step::Conflict { .. })
}

/// The history up to time `t`: calls invoked after `t` are dropped; calls still running at
/// `t` lose their outcome (reads are dropped, writes become unknown). Any linearization of
/// the whole history restricts to one of the cut, so a violation in the cut is a real one.
fn cut(ops: &[KeyOp], t: u64) -> Vec<KeyOp> {
    ops.iter()
        .filter(|o| o.invoked <= t)
        .filter_map(|o| {
            if o.returned.is_some_and(|r| r <= t) {
                return Some(o.clone());
            }
            let step = match o.step {
                Step::CreateOk { value, .. } | Step::CreateUnknown { value } => Step::CreateUnknown { value },
                Step::UpdateOk { value, pre, .. } | Step::UpdateUnknown { value, pre } => {
                    Step::UpdateUnknown { value, pre }
                }
                Step::DeleteOk { pre, .. } | Step::DeleteUnknown { pre } => Step::DeleteUnknown { pre },
                _ => return None,
            };
            Some(KeyOp { step, returned: None, ..o.clone() })
        })
        .collect()
}

/// The smallest non-linearizable sub-history found in the time budget: the shortest prefix
/// in time (see [`cut`]), then without every effect-free call (reads, failed creates and
/// preconditions) that is not needed to show the violation. Writes that took effect are kept:
/// removing one could make its readers' observations impossible and invent a violation.
pub(crate) fn shrink(ops: Vec<KeyOp>, deadline: Instant) -> Vec<KeyOp> {
    let mut times: Vec<u64> = ops.iter().filter_map(|o| o.returned).collect();
    times.sort_unstable();
    times.dedup();
    let mut best = ops;
    // Binary search for the earliest cut that still shows a violation.
    let (mut lo, mut hi) = (0usize, times.len());
    while lo < hi && Instant::now() < deadline {
        let mid = (lo + hi) / 2;
        let candidate = cut(&best, times[mid]);
        if is_violation(&candidate, deadline) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if hi < times.len() {
        let candidate = cut(&best, times[hi]);
        if is_violation(&candidate, deadline) {
            best = candidate;
        }
    }
    // Drop effect-free calls in shrinking chunks.
    let mut chunk = best.len().div_ceil(2).max(1);
    while chunk >= 1 && Instant::now() < deadline {
        let mut i = 0;
        while i < best.len() && Instant::now() < deadline {
            let end = (i + chunk).min(best.len());
            if best[i..end].iter().all(|o| effect_free(&o.step)) {
                let candidate: Vec<KeyOp> = best[..i].iter().chain(best[end..].iter()).cloned().collect();
                if is_violation(&candidate, deadline) {
                    best = candidate;
                    continue;
                }
            }
            i = end;
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    best
}
