//! Each checker on small hand-written histories: clean ones pass, each broken property is
//! named.

use super::history::{Call, Delivered, History, Operation, Outcome, ReadAt, Seen, WatchLog};
use super::*;

const K: &str = "/pods/audit/k0";
const J: &str = "/pods/audit/k1";

struct Builder {
    history: History,
    seq: u64,
}

impl Builder {
    fn new() -> Self {
        Builder { history: History { baseline: 1, ..History::default() }, seq: 0 }
    }

    fn op(&mut self, call: Call, outcome: Outcome, invoked: u64, returned: Option<u64>) -> &mut Self {
        self.seq += 1;
        self.history.operations.push(Operation { id: (0, 0, self.seq), call, invoked, returned, outcome });
        self
    }

    fn create(&mut self, key: &str, value: &str, rv: u64, t: u64) -> &mut Self {
        self.op(Call::Create { key: key.into(), value: value.into() }, Outcome::Written { rv }, t, Some(t + 1))
    }

    fn update(&mut self, key: &str, value: &str, rv: u64, t: u64) -> &mut Self {
        self.op(
            Call::Update { key: key.into(), value: value.into(), precondition: None },
            Outcome::Written { rv },
            t,
            Some(t + 1),
        )
    }

    fn get(&mut self, key: &str, seen: Option<(&str, u64)>, t: u64) -> &mut Self {
        let outcome = match seen {
            Some((value, rv)) => Outcome::Found(Seen { key: key.into(), value: value.into(), rv }),
            None => Outcome::NotFound,
        };
        self.op(Call::Get { key: key.into(), at: ReadAt::Latest }, outcome, t, Some(t + 1))
    }

    fn list(&mut self, at: ReadAt, rv: u64, items: &[(&str, &str, u64)], t: u64) -> &mut Self {
        let items = items.iter().map(|(k, v, r)| Seen { key: (*k).into(), value: (*v).into(), rv: *r }).collect();
        self.op(Call::List { at, limit: 0 }, Outcome::Listed { rv, items }, t, Some(t + 1))
    }

    fn watch(&mut self, watcher: u32, n: u64, from: u64, events: Vec<Delivered>) -> &mut Self {
        let events = events.into_iter().enumerate().map(|(i, e)| (100 + i as u64, e)).collect();
        self.history.watches.push(WatchLog {
            id: (0, watcher, n),
            from,
            prefix: "/pods/audit/".into(),
            started: 0,
            events,
        });
        self
    }

    fn check(&self) -> Report {
        check(&self.history, &CheckOptions::default())
    }
}

fn put(key: &str, value: &str, rv: u64) -> Delivered {
    Delivered::Put { key: key.into(), value: value.into(), rv, added: false }
}

fn bookmark(rv: u64) -> Delivered {
    Delivered::Bookmark { rv }
}

/// k0: a@2, b@3; k1: x@4 — and a watch that saw all three.
fn clean() -> Builder {
    let mut b = Builder::new();
    b.create(K, "a", 2, 10).update(K, "b", 3, 20).create(J, "x", 4, 30).get(K, Some(("b", 3)), 40);
    b.list(ReadAt::Latest, 4, &[(K, "b", 3), (J, "x", 4)], 50);
    b.list(ReadAt::Exact(2), 2, &[(K, "a", 2)], 60);
    b.watch(1000, 0, 1, vec![put(K, "a", 2), put(K, "b", 3), bookmark(3), put(J, "x", 4)]);
    b.watch(1000, 1, 2, vec![put(K, "b", 3), put(J, "x", 4)]);
    b
}

fn assert_only(report: &Report, kind: ViolationKind) {
    assert!(report.has(kind), "expected {kind:?}, got:\n{report}");
    for violation in &report.violations {
        assert!(!violation.summary.is_empty() && !violation.evidence.is_empty(), "{violation}");
    }
}

#[test]
fn a_clean_history_passes_every_checker() {
    let report = clean().check();
    report.assert_ok();
    assert_eq!((report.operations, report.keys, report.watches, report.lists_replayed), (6, 2, 2, 2));
}

#[test]
fn a_stale_read_is_named_with_its_sub_history() {
    let mut b = clean();
    b.get(K, Some(("b", 3)), 70).get(K, Some(("a", 2)), 80);
    let report = b.check();
    assert_only(&report, ViolationKind::StaleRead);
    let text = report.to_string();
    assert!(
        text.contains("holds \"b\" at rv 3") && text.contains("get /pods/audit/k0 at latest → \"a\" at rv 2"),
        "{text}"
    );
}

#[test]
fn an_acknowledged_write_nobody_ever_sees_is_a_lost_write() {
    let mut b = Builder::new();
    b.create(K, "a", 2, 10).get(K, None, 20).get(K, None, 30);
    assert_only(&b.check(), ViolationKind::LostWrite);
}

#[test]
fn unknown_outcomes_may_or_may_not_have_happened() {
    let mut b = Builder::new();
    b.op(Call::Create { key: K.into(), value: "a".into() }, Outcome::Unknown("timeout".into()), 10, None);
    b.op(Call::Create { key: J.into(), value: "x".into() }, Outcome::Unknown("timeout".into()), 10, None);
    b.get(K, Some(("a", 2)), 20).get(J, None, 20);
    b.check().assert_ok();
    // The unknown create was proven by the read: a later "absent" needs a delete.
    b.get(K, None, 30);
    assert_only(&b.check(), ViolationKind::StaleRead);
}

#[test]
fn two_writes_with_one_revision_are_a_reused_revision() {
    let mut b = clean();
    b.create("/pods/audit/k2", "y", 4, 70);
    assert_only(&b.check(), ViolationKind::RevisionReused);
}

#[test]
fn revisions_must_follow_real_time() {
    let mut b = Builder::new();
    b.create(K, "a", 5, 10).create(J, "x", 4, 20);
    assert_only(&b.check(), ViolationKind::RevisionOrder);
}

#[test]
fn a_list_must_equal_the_replayed_state_and_be_fresh() {
    let mut b = clean();
    b.list(ReadAt::Exact(3), 3, &[(K, "b", 3), (J, "x", 4)], 70);
    assert_only(&b.check(), ViolationKind::ListMismatch);
    let mut b = clean();
    b.list(ReadAt::Latest, 3, &[(K, "b", 3)], 70);
    assert_only(&b.check(), ViolationKind::StaleList);
    let mut b = clean();
    b.list(ReadAt::NotOlderThan(4), 3, &[(K, "b", 3)], 70);
    assert_only(&b.check(), ViolationKind::ReadTooOld);
}

#[test]
fn a_watch_that_skips_a_write_is_unreliable() {
    let mut b = clean();
    b.watch(1001, 0, 1, vec![put(K, "a", 2), put(J, "x", 4)]);
    assert_only(&b.check(), ViolationKind::WatchGap);
}

#[test]
fn a_watch_out_of_order_or_twice_is_caught() {
    let mut b = clean();
    b.watch(1001, 0, 1, vec![put(K, "a", 2), put(J, "x", 4), put(K, "b", 3)]);
    assert_only(&b.check(), ViolationKind::WatchUnordered);
    let mut b = clean();
    b.watch(1001, 0, 1, vec![put(K, "a", 2), put(K, "b", 3), put(K, "b", 3)]);
    assert_only(&b.check(), ViolationKind::WatchDuplicate);
    let mut b = clean();
    b.watch(1001, 0, 2, vec![put(K, "a", 2)]);
    assert_only(&b.check(), ViolationKind::WatchUnordered);
}

#[test]
fn bookmarks_never_go_back_nor_overtake() {
    let mut b = clean();
    b.watch(1001, 0, 1, vec![put(K, "a", 2), bookmark(3), bookmark(2)]);
    assert_only(&b.check(), ViolationKind::BookmarkBackwards);
    let mut b = clean();
    b.watch(1001, 0, 1, vec![put(K, "a", 2), bookmark(3), put(K, "b", 3)]);
    assert_only(&b.check(), ViolationKind::BookmarkOvertook);
}

#[test]
fn a_resumed_watch_must_replay_what_followed() {
    let mut b = Builder::new();
    b.create(K, "a", 2, 10).update(K, "b", 3, 20);
    // The second delete/put pair at rv 4 is only known to the first watch; the resumed one
    // delivers something else there.
    b.watch(1001, 0, 1, vec![put(K, "a", 2), put(K, "b", 3), put(J, "x", 4)]);
    b.watch(1001, 1, 2, vec![put(K, "b", 3), bookmark(4)]);
    let report = b.check();
    assert!(report.has(ViolationKind::WatchNotResumable), "{report}");
}

#[test]
fn events_of_one_revision_come_together() {
    let mut b = Builder::new();
    b.watch(1001, 0, 1, vec![put(K, "a", 2), put(J, "x", 3), put(J, "y", 2)]);
    let report = b.check();
    assert!(report.has(ViolationKind::WatchNotAtomic), "{report}");
}

#[test]
fn a_write_no_read_and_no_covering_watch_ever_saw_is_lost() {
    let mut b = Builder::new();
    b.create(K, "a", 2, 10).update(K, "b", 3, 20).update(K, "c", 4, 30);
    b.watch(1000, 0, 1, vec![put(K, "a", 2), put(K, "c", 4)]);
    let report = b.check();
    assert!(report.has(ViolationKind::LostWrite) && report.has(ViolationKind::WatchGap), "{report}");
}

#[test]
fn a_conditional_update_that_succeeds_on_a_stale_revision_is_not_linearizable() {
    let mut b = Builder::new();
    b.create(K, "a", 2, 10).update(K, "b", 3, 20);
    let stale = Call::Update { key: K.into(), value: "c".into(), precondition: Some(2) };
    b.op(stale, Outcome::Written { rv: 4 }, 30, Some(31));
    let report = b.check();
    assert!(!report.is_ok(), "{report}");
    assert!(report.to_string().contains("if rv = 2"), "{report}");
    // The same update refused with a conflict is fine.
    let mut b = Builder::new();
    b.create(K, "a", 2, 10).update(K, "b", 3, 20);
    b.op(
        Call::Update { key: K.into(), value: "c".into(), precondition: Some(2) },
        Outcome::PreconditionFailed,
        30,
        Some(31),
    );
    b.check().assert_ok();
}

#[test]
fn a_get_at_a_revision_is_compared_with_the_replay() {
    let mut b = clean();
    b.op(
        Call::Get { key: K.into(), at: ReadAt::Exact(2) },
        Outcome::Found(Seen { key: K.into(), value: "a".into(), rv: 2 }),
        70,
        Some(71),
    );
    let report = b.check();
    report.assert_ok();
    assert_eq!(report.reads_replayed, 1);
    let mut b = clean();
    b.op(
        Call::Get { key: K.into(), at: ReadAt::Exact(3) },
        Outcome::Found(Seen { key: K.into(), value: "a".into(), rv: 2 }),
        70,
        Some(71),
    );
    assert_only(&b.check(), ViolationKind::ListMismatch);
}
