//! Who answered a list, and what an "any state" read may return after a consistent one
//! (Kubernetes' `expectCacherRequestsToEtcd` in `cacher_test.go`, `RunTestConsistentList`).
//!
//! The harness counts every call that reaches the store ([`Harness::store_lists`]): a plain
//! store answers every list itself; the watch cache answers RV "0", NotOlderThan and (when the
//! backend answers progress requests) consistent lists, and, from its snapshot of the
//! revision, Exact and legacy RV + limit lists of a directory at a revision it retains and
//! their continuations; it delegates Exact lists of a single key and of revisions below its
//! history's floor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::storage::{ListOptions, ResourceVersionMatch, Storage};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

fn exact(rv: u64) -> ListOptions {
    ListOptions { resource_version_match: Some(ResourceVersionMatch::Exact), ..recursive(&rv.to_string()) }
}

fn not_older_than(rv: u64) -> ListOptions {
    ListOptions { resource_version_match: Some(ResourceVersionMatch::NotOlderThan), ..recursive(&rv.to_string()) }
}

fn with_limit(mut options: ListOptions, limit: i64) -> ListOptions {
    options.predicate.limit = limit;
    options
}

/// `expectCacherRequestsToEtcd`: each list mode is answered by the cache (no store list) or
/// delegated to the store (exactly one store list), as documented on the cacher; on a plain
/// store every list is one store list. A consistent list is served from the cache once the
/// cache holds the store's current revision (read from the store, not listed), so it cannot
/// silently regress into a fallback. Exact lists the cache serves have the store's answer
/// (items, RV, continue token, remaining count) at the current and at an older revision; once
/// the cache's history no longer retains a revision, Exact lists at it go to the store.
pub async fn lists_are_served_by_the_cache_or_delegated_as_documented(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut revisions = Vec::new();
    for i in 0..3 {
        revisions.push(rv(&h.create_pod("ns", &format!("p{i}")).await));
    }
    let (first, last) = (revisions[0], revisions[2]);
    h.sync_reads(last).await;
    let cached = !h.histories.is_empty();
    let progress = h.store.request_watch_progress().await.unwrap_or(false);
    // The store's own answers, to compare the cache's Exact lists with.
    let store = |key: &'static str, options: ListOptions| {
        let store = h.store.clone();
        async move { store.get_list(key, options).await.expect("the store's list") }
    };
    let paged = store("/pods/", with_limit(exact(last), 1)).await;
    assert!(!paged.continue_token.is_empty(), "a first page of 1 of 3 has a continue token");
    let mut continued = recursive("");
    continued.predicate.continue_token = paged.continue_token.clone();
    let mut exact_single = exact(last);
    exact_single.recursive = false;
    // (what, key, options, served by the cache).
    let cases: Vec<(&str, &'static str, ListOptions, bool)> = vec![
        ("RV \"0\"", "/pods/", recursive("0"), cached),
        ("RV \"0\" with limit", "/pods/", with_limit(recursive("0"), 1), cached),
        ("NotOlderThan N", "/pods/", not_older_than(last), cached),
        ("NotOlderThan N with limit", "/pods/", with_limit(not_older_than(last), 1), cached),
        ("RV N without match", "/pods/", recursive(&last.to_string()), cached),
        // The cache is at the store's current revision (synced above): a consistent list
        // needs no progress request to know it is fresh, whatever the backend supports.
        ("consistent (RV \"\")", "/pods/", recursive(""), cached),
        ("consistent with limit", "/pods/", with_limit(recursive(""), 1), cached),
        ("Exact N", "/pods/", exact(last), cached),
        ("Exact N with limit", "/pods/", with_limit(exact(last), 1), cached),
        ("Exact at an older retained revision", "/pods/", exact(first), cached),
        ("Exact at an older revision with limit", "/pods/ns/", with_limit(exact(revisions[1]), 1), cached),
        ("legacy RV N with limit", "/pods/", with_limit(recursive(&last.to_string()), 1), cached),
        ("legacy RV at an older revision with limit", "/pods/", with_limit(recursive(&first.to_string()), 1), cached),
        ("continuation (a retained revision)", "/pods/", continued, cached),
        // As Kubernetes: an Exact read of one key goes to the store.
        ("Exact N of a single key", "/pods/ns/p1", exact_single, false),
    ];
    for (what, key, options, from_cache) in cases {
        let before = h.store_lists();
        let list = h.list(key, options.clone()).await;
        let store_lists = h.store_lists() - before;
        let expected = if from_cache { 0 } else { 1 };
        assert_eq!(store_lists, expected, "{what}: store lists (cached: {cached}, progress requests: {progress})");
        assert!(!list.items.is_empty(), "{what}: empty list");
        let exact_read = what.starts_with("Exact") || what.starts_with("legacy") || what.starts_with("continuation");
        if exact_read {
            assert_eq!(list, store(key, options).await, "{what}: the store's answer");
        } else {
            assert!(list.resource_version >= last, "{what}: RV {}", list.resource_version);
        }
    }
    // The cache forgets revisions below `last` (as after its history's eviction): Exact lists
    // there go to the store; `last` itself is still retained.
    for history in &h.histories {
        history.compact(last);
    }
    for (what, at, from_cache) in [("below the floor", first, false), ("at the floor", last, cached)] {
        let before = h.store_lists();
        let list = h.list("/pods/", exact(at)).await;
        let store_lists = h.store_lists() - before;
        assert_eq!(store_lists, u64::from(!from_cache), "Exact {what}: store lists (cached: {cached})");
        assert_eq!(list, store("/pods/", exact(at)).await, "Exact {what}: the store's answer");
    }
}

/// `RunTestConsistentList`: after a consistent list at revision R, an RV "0" list returns a
/// revision ≥ R and every object that list saw, while creates and unrelated writes race the
/// cache (nothing is synced first) and four readers run in parallel.
pub async fn resource_version_zero_list_is_not_older_than_a_preceding_consistent_list(
    fixture: Arc<dyn BackendFixture>,
) {
    const WRITES: usize = 30;
    const ROUNDS: usize = 6;
    let h = Arc::new(Harness::new(&fixture).await);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (h, done) = (h.clone(), done.clone());
        tokio::spawn(async move {
            for i in 0..WRITES {
                h.create_pod("ns", &format!("pod-{i:02}")).await;
                if i % 3 == 0 {
                    h.bump_revision().await;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let storage: Arc<dyn Storage> = h.storage.clone();
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let consistent = storage.get_list("/pods/", recursive("")).await.expect("consistent list");
                    let any = storage.get_list("/pods/", recursive("0")).await.expect("RV \"0\" list");
                    assert!(
                        any.resource_version >= consistent.resource_version,
                        "reader {reader} round {round}: RV \"0\" list at {} after a consistent list at {}",
                        any.resource_version,
                        consistent.resource_version
                    );
                    let seen = names_of(&any.items);
                    for name in names_of(&consistent.items) {
                        assert!(seen.contains(&name), "reader {reader} round {round}: RV \"0\" list lost {name}");
                    }
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.expect("reader");
    }
    writer.await.expect("writer");
    assert!(done.load(Ordering::SeqCst));
    let consistent = h.list("/pods/", recursive("")).await;
    assert_eq!(consistent.items.len(), WRITES);
    let any = h.list("/pods/", recursive("0")).await;
    assert!(any.resource_version >= consistent.resource_version);
    assert_eq!(any.items.len(), WRITES, "RV \"0\" after the last consistent list");
}
