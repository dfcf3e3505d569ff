//! GetList: resourceVersion semantics, historical reads, selectors, compaction (Kubernetes
//! `RunTestList` split into one behaviour per rule, `RunTestConsistentList`,
//! `RunTestGetListNonRecursive`, `RunTestGetListRecursivePrefix`, `RunTestNamespaceScopedList`,
//! `RunTestCompactRevision`).

use std::sync::Arc;

use crate::continue_token;
use crate::object::Object;
use crate::storage::{ListOptions, ObjectList, Predicate, ResourceVersion, ResourceVersionMatch};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// The seeded history: after each write, its revision and the full consistent list.
struct Seed {
    history: Vec<(u64, Vec<Object>)>,
}

impl Seed {
    fn latest(&self) -> &(u64, Vec<Object>) {
        &self.history[self.history.len() - 1]
    }
}

/// Six writes over two namespaces: four creates (labels app=a/b), one update, one delete.
async fn seed(h: &Harness) -> Seed {
    let mut history = Vec::new();
    let mut record = |rv: u64, list: ObjectList| {
        assert_eq!(list.resource_version, rv, "a consistent list after a write reports that write's revision");
        history.push((rv, list.items));
    };
    for (ns, name, app) in [("ns-a", "foo", "a"), ("ns-a", "bar", "b"), ("ns-b", "baz", "a"), ("ns-b", "qux", "b")] {
        let created = h.create(pod(ns, name).with_label("app", app)).await;
        record(rv(&created), h.snapshot().await);
    }
    let updated = h.annotate(&key("ns-a", "foo"), "updated", "yes").await;
    record(rv(&updated), h.snapshot().await);
    let deleted = h.delete(&key("ns-a", "bar")).await;
    record(rv(&deleted), h.snapshot().await);
    Seed { history }
}

fn exact(rv: u64) -> ListOptions {
    ListOptions { resource_version_match: Some(ResourceVersionMatch::Exact), ..recursive(&rv.to_string()) }
}

fn not_older_than(rv: &str) -> ListOptions {
    ListOptions { resource_version_match: Some(ResourceVersionMatch::NotOlderThan), ..recursive(rv) }
}

fn with_limit(mut options: ListOptions, limit: i64) -> ListOptions {
    options.predicate.limit = limit;
    options
}

fn with_predicate(mut options: ListOptions, predicate: Predicate) -> ListOptions {
    let limit = options.predicate.limit;
    options.predicate = Predicate { limit, ..predicate };
    options
}

/// `RunTestList`: Exact at every historic write revision returns exactly the state then, with
/// that RV echoed.
pub async fn list_exact_resource_version_returns_historical_state(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    h.bump_revision().await;
    for (rv, items) in &seed.history {
        let list = h.list("/pods/", exact(*rv)).await;
        assert_eq!(list.resource_version, *rv);
        assert_eq!(&list.items, items, "state at revision {rv}");
        assert!(list.continue_token.is_empty());
    }
}

/// `RunTestList`: legacy RV=N with a limit (no match) is an exact read at N.
pub async fn list_legacy_resource_version_with_limit_reads_exactly_that_revision(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let (rv, items) = &seed.history[1];
    let list = h.list("/pods/", with_limit(recursive(&rv.to_string()), 10)).await;
    assert_eq!(list.resource_version, *rv);
    assert_eq!(&list.items, items);
}

/// `RunTestList`: RV=N without limit, or with NotOlderThan, means "not older than N": the
/// latest state at the current revision (through the watch cache: the state at the cache's
/// revision, [`Expectations::reads_use_cache_revision`]).
pub async fn list_not_older_than_resource_version_returns_latest_state(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let current = h.bump_revision().await;
    let first = seed.history[0].0.to_string();
    for options in [recursive(&first), not_older_than(&first), with_limit(not_older_than(&first), 10)] {
        let list = h.list("/pods/", options.clone()).await;
        if h.expect.reads_use_cache_revision {
            // Served at the cache's revision: not older than asked, exactly the state then.
            assert!((seed.history[0].0..=current).contains(&list.resource_version), "{options:?}: {list:?}");
            assert_eq!(list.items, h.list("/pods/", exact(list.resource_version)).await.items, "{options:?}");
        } else {
            assert_eq!(list.resource_version, current, "{options:?}");
            assert_eq!(list.items, seed.latest().1, "{options:?}");
        }
    }
}

/// `RunTestList`: RV "0" (any) honours the limit on a store without a cache; the watch cache
/// ignores it and returns everything ([`Expectations::list_at_zero_ignores_limit`]).
pub async fn list_resource_version_zero_with_limit_honours_limit(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    h.sync_reads(seed.latest().0).await;
    let list = h.list("/pods/", with_limit(recursive("0"), 1)).await;
    if h.expect.list_at_zero_ignores_limit {
        assert_eq!(list.items, seed.latest().1, "the cache ignores the limit of an RV \"0\" list");
        assert!(list.continue_token.is_empty());
        assert_eq!(list.remaining_item_count, None);
    } else {
        assert_eq!(list.items, seed.latest().1[..1].to_vec());
        assert!(!list.continue_token.is_empty());
    }
}

/// `RunTestList`: too-large RVs are 504 TooLargeResourceVersion for NotOlderThan, legacy and Exact reads.
pub async fn list_future_resource_version_is_too_large(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    seed(&h).await;
    let future = (h.current_revision().await + 100).to_string();
    let max = i64::MAX.to_string();
    for options in [
        recursive(&max),
        not_older_than(&max),
        exact(h.current_revision().await + 100),
        with_limit(recursive(&future), 2),
    ] {
        let err = expect_err(h.storage.get_list("/pods/", options.clone()).await, "list at a future RV");
        assert!(err.is_too_large_resource_version(), "{options:?}: {err:?}");
        assert_eq!(err.code(), 504);
    }
}

/// `RunTestList`: Exact at a compacted revision is 410 "too old"; the compaction revision
/// itself and later revisions stay readable.
pub async fn list_exact_compacted_resource_version_is_expired(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let (compact_at, items_then) = &seed.history[2];
    h.compact(*compact_at).await;
    for (rv, _) in &seed.history[..2] {
        let err = expect_err(h.storage.get_list("/pods/", exact(*rv)).await, "exact list below compaction");
        assert!(err.is_expired(), "{err:?}");
        assert_eq!(err.code(), 410);
        assert!(err.to_string().contains("too old"), "{err}");
    }
    assert_eq!(&h.list("/pods/", exact(*compact_at)).await.items, items_then);
    assert_eq!(h.list("/pods/", exact(seed.latest().0)).await.items, seed.latest().1);
}

/// `RunTestList`: invalid resourceVersion arguments are 400 BadRequest: an unparsable RV
/// where it is parsed (before any storage), an RV given with a continue token by the storage.
pub async fn list_rejects_invalid_resource_version_arguments(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    seed(&h).await;
    for text in ["abc", "-1", "x1"] {
        let err = expect_err(ResourceVersion::parse_read(text), "an unparsable list RV");
        assert_eq!(err.code(), 400, "{text}: {err:?}");
    }
    let first = h.list("/pods/", with_limit(recursive(""), 1)).await;
    let mut rv_and_continue = with_limit(recursive("5"), 1);
    rv_and_continue.predicate.continue_token = first.continue_token.clone();
    let mut exact_and_continue =
        ListOptions { resource_version_match: Some(ResourceVersionMatch::Exact), ..recursive("5") };
    exact_and_continue.predicate.continue_token = first.continue_token.clone();
    for options in [rv_and_continue, exact_and_continue] {
        let err = expect_err(h.storage.get_list("/pods/", options.clone()).await, "invalid list options");
        assert_eq!(err.code(), 400, "{options:?}: {err:?}");
        assert!(err.to_string().contains("not allowed when using continue"), "{err}");
    }
    let err = expect_err(ResourceVersionMatch::parse("Newest"), "unknown match");
    assert_eq!(err.code(), 400);
}

/// `RunTestList`: a limit returns one page, a continue token and `remainingItemCount`.
pub async fn list_with_limit_returns_page_continue_and_remaining_count(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let all = &seed.latest().1;
    let list = h.list("/pods/", with_limit(recursive(""), 1)).await;
    assert_eq!(list.items, all[..1].to_vec());
    assert!(!list.continue_token.is_empty());
    assert_eq!(list.remaining_item_count, Some(all.len() as i64 - 1));
    let whole = h.list("/pods/", with_limit(recursive(""), all.len() as i64)).await;
    assert_eq!(&whole.items, all);
    assert!(whole.continue_token.is_empty(), "the last page has no continue token");
    assert_eq!(whole.remaining_item_count, None);
}

/// `RunTestList`: with a selector there is no `remainingItemCount`, and selected items span pages.
pub async fn list_with_selector_spans_pages_without_remaining_count(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    seed(&h).await;
    let options = with_limit(with_predicate(recursive(""), label_predicate("app=a")), 1);
    let first = h.list("/pods/", options.clone()).await;
    assert_eq!(names_of(&first.items), ["foo"]);
    assert_eq!(first.remaining_item_count, None, "no remainingItemCount with a selector");
    assert!(!first.continue_token.is_empty());
    let mut next = with_limit(with_predicate(recursive(""), label_predicate("app=a")), 1);
    next.predicate.continue_token = first.continue_token;
    let second = h.list("/pods/", next).await;
    assert_eq!(names_of(&second.items), ["baz"]);
    assert_eq!(second.resource_version, first.resource_version);
}

/// `RunTestList`: a continue token taken at a historic revision keeps reading that revision.
pub async fn list_continue_token_keeps_historical_revision(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let (rv, items) = &seed.history[3];
    let first = h.list("/pods/", with_limit(exact(*rv), 2)).await;
    assert_eq!(first.items, items[..2].to_vec());
    // RV "0" may accompany a continue token (Kubernetes ignores it there).
    let mut next = with_limit(recursive("0"), 10);
    next.predicate.continue_token = first.continue_token;
    let rest = h.list("/pods/", next).await;
    assert_eq!(rest.resource_version, *rv);
    assert_eq!(rest.items, items[2..].to_vec(), "continuation must read revision {rv}");
}

/// `RunTestList`: a token pinned to a compacted revision is 410 with a replacement token
/// (rv -1) that continues at the latest revision.
pub async fn list_continue_after_compaction_is_expired_with_replacement_token(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let (rv, _) = &seed.history[3];
    let first = h.list("/pods/", with_limit(exact(*rv), 1)).await;
    h.compact(seed.latest().0).await;
    let mut next = with_limit(recursive(""), 10);
    next.predicate.continue_token = first.continue_token;
    let err = expect_err(h.storage.get_list("/pods/", next).await, "continue below compaction");
    assert_eq!(err.code(), 410, "{err:?}");
    assert!(err.to_string().contains("continue parameter is too old"), "{err}");
    let crate::Error::Expired { continue_token: Some(replacement), .. } = err else {
        panic!("the 410 must carry a replacement continue token: {err:?}")
    };
    let expected: Vec<Object> =
        seed.latest().1.iter().filter(|o| key_of(o).as_str() > key_of(&first.items[0]).as_str()).cloned().collect();
    let mut resume = with_limit(recursive(""), 1);
    resume.predicate.continue_token = replacement;
    let resumed = h.list("/pods/", resume).await;
    assert_eq!(resumed.resource_version, h.current_revision().await, "rv -1 continues at the latest revision");
    assert_eq!(resumed.items, expected[..1].to_vec());
    // `RunTestListInconsistentContinuation`: the next page keeps the resumed page's revision.
    h.create_pod("ns-c", "created-later").await;
    let mut rest = with_limit(recursive(""), 10);
    rest.predicate.continue_token = resumed.continue_token.clone();
    let rest = h.list("/pods/", rest).await;
    assert_eq!(rest.resource_version, resumed.resource_version);
    assert_eq!(rest.items, expected[1..].to_vec());
}

/// `RunTestListResourceVersionMatch`: with writes racing, an Exact list at the RV a
/// NotOlderThan (or consistent) list reported reproduces that list exactly.
pub async fn exact_list_at_reported_resource_version_reproduces_the_list(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    seed(&h).await;
    let writer = {
        let storage = h.storage.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                let object = pod("ns-w", &format!("w-{i:02}"));
                storage.create(&key_of(&object), object, 0).await.expect("racing create");
            }
        })
    };
    for options in [recursive(""), not_older_than("1"), recursive("0")] {
        let list = h.list("/pods/", options.clone()).await;
        let again = h.list("/pods/", exact(list.resource_version)).await;
        assert_eq!(again.resource_version, list.resource_version);
        assert_eq!(again.items, list.items, "{options:?} at {}", list.resource_version);
        let paged = h.list("/pods/", with_limit(exact(list.resource_version), 3)).await;
        assert_eq!(paged.items, list.items[..3.min(list.items.len())].to_vec());
    }
    writer.await.expect("writer");
}

/// `RunTestList` / `RunTestConsistentList`: a token with rv -1 reads at the latest revision.
pub async fn list_continue_with_minus_one_revision_reads_latest(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let current = h.bump_revision().await;
    let token = continue_token::encode("/registry/pods/ns-a/\u{0}", "/registry/pods/", -1).expect("token");
    let mut options = with_limit(recursive(""), 10);
    options.predicate.continue_token = token;
    let list = h.list("/pods/", options).await;
    assert_eq!(list.resource_version, current);
    assert_eq!(list.items, seed.latest().1);
}

/// `RunTestList`: deleted objects are absent from later lists but present before the delete.
pub async fn list_omits_deleted_objects(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    assert!(!names_of(&seed.latest().1).contains(&"bar".to_owned()));
    let before_delete = h.list("/pods/", exact(seed.history[4].0)).await;
    assert!(names_of(&before_delete.items).contains(&"bar".to_owned()));
}

/// `RunTestConsistentList`: RV "" (and "0" on a store without cache) reports the current
/// *global* revision, including writes outside the resource.
pub async fn consistent_list_reports_current_global_revision(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let seed = seed(&h).await;
    let current = h.bump_revision().await;
    assert!(current > seed.latest().0);
    h.sync_reads(seed.latest().0).await;
    for rv in ["", "0"] {
        let list = h.list("/pods/", recursive(rv)).await;
        if rv == "0" && h.expect.reads_use_cache_revision {
            // The cache answers at the revision it has applied: not older than the last write
            // of the resource, not newer than the global revision.
            assert!(
                (seed.latest().0..=current).contains(&list.resource_version),
                "RV \"0\" from the cache at {} outside [{}, {current}]",
                list.resource_version,
                seed.latest().0
            );
        } else {
            assert_eq!(list.resource_version, current, "RV {rv:?}");
        }
        assert_eq!(list.items, seed.latest().1);
    }
    let after = h.bump_revision().await;
    assert_eq!(h.list("/pods/", recursive("")).await.resource_version, after);
}

/// `RunTestGetListNonRecursive`: a single-key list under every RV mode; Exact at the previous
/// revision returns the previous object; the list RV is always set.
pub async fn non_recursive_list_reads_single_object_in_every_mode(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let previous = h.create_pod("test-ns", "foo").await;
    let current = h.annotate(&key("test-ns", "foo"), "v", "2").await;
    let key = key("test-ns", "foo");
    h.sync_reads(rv(&current)).await;
    let cases: Vec<(ListOptions, &Object)> = vec![
        (single(""), &current),
        (single("0"), &current),
        (single(&current.metadata.resource_version), &current),
        (single(&previous.metadata.resource_version), &current),
        (ListOptions { resource_version_match: Some(ResourceVersionMatch::NotOlderThan), ..single("0") }, &current),
        (
            ListOptions {
                resource_version_match: Some(ResourceVersionMatch::Exact),
                ..single(&previous.metadata.resource_version)
            },
            &previous,
        ),
    ];
    for (options, expected) in cases {
        let list = h.list(&key, options.clone()).await;
        assert_eq!(list.items, vec![expected.clone()], "{options:?}");
        assert!(list.resource_version > 0, "{options:?}");
    }
}

/// `RunTestGetListNonRecursive`: a too-high RV is 504; a missing key is an empty list with an RV.
pub async fn non_recursive_list_of_missing_key_is_empty_and_future_rv_too_large(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create_pod("test-ns", "foo").await;
    let err = expect_err(h.storage.get_list(&key("test-ns", "foo"), single(&i64::MAX.to_string())).await, "");
    assert!(err.is_too_large_resource_version(), "{err:?}");
    let empty = h.list(&key("test-ns", "missing"), single("")).await;
    assert!(empty.items.is_empty());
    assert_eq!(empty.resource_version, h.current_revision().await);
}

/// `RunTestGetListNonRecursive`: a selector filters the single object.
pub async fn non_recursive_list_applies_selector(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let object = h.create(pod_on_node("test-ns", "foo", "node-1")).await;
    let key = key("test-ns", "foo");
    let hit = h.list(&key, with_predicate(single(""), field_predicate("spec.nodeName=node-1"))).await;
    assert_eq!(hit.items, vec![object]);
    let miss = h.list(&key, with_predicate(single(""), field_predicate("spec.nodeName=node-2"))).await;
    assert!(miss.items.is_empty());
}

/// `RunTestGetListRecursivePrefix`: a recursive list of `/pods/ns/foo` does not include
/// `/pods/ns/foobar`, and `/pods/test` does not include namespace `test2`, in every read mode.
pub async fn recursive_list_does_not_match_keys_sharing_a_name_prefix(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let foo_pod = h.create_pod("test", "foo").await;
    let foobar = h.create_pod("test", "foobar").await;
    let other = h.create_pod("test2", "foo").await;
    let rv = h.current_revision().await;
    let modes = [recursive(""), not_older_than(&rv.to_string()), exact(rv)];
    for mode in modes {
        let in_test = h.list("/pods/test", mode.clone()).await;
        assert_eq!(in_test.items, vec![foo_pod.clone(), foobar.clone()], "{mode:?}");
        let under_foo = h.list("/pods/test/foo", mode.clone()).await;
        assert!(under_foo.items.is_empty(), "recursive /pods/test/foo lists /pods/test/foo/…: {mode:?}");
        let single_foo = h.list("/pods/test/foo", ListOptions { recursive: false, ..mode.clone() }).await;
        assert_eq!(single_foo.items, vec![foo_pod.clone()], "{mode:?}");
        let all = h.list("/pods/", mode.clone()).await;
        assert_eq!(all.items, vec![foo_pod.clone(), foobar.clone(), other.clone()], "{mode:?}");
    }
}

/// `RunTestCompactRevision`: `compact_revision` is below the current RV, then equals the
/// compacted revision, and Exact reads below it are 410.
pub async fn compact_revision_is_reported_and_older_exact_lists_expire(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    assert!(h.storage.compact_revision().await.expect("compact rev") < h.current_revision().await);
    let target = h.bump_revision().await;
    h.compact(target).await;
    assert_eq!(h.storage.compact_revision().await.expect("compact rev"), target);
    let err = expect_err(h.storage.get_list("/pods/", exact(rv(&created))).await, "exact list below compaction");
    assert!(err.is_expired() && err.to_string().contains("too old"), "{err:?}");
}

/// `RunTestList` "multiple levels of directories": a recursive list flattens every key below
/// the list key, in key order, at any depth. (The watch cache keys objects by their metadata,
/// so through it the lists below a nested directory are Exact lists at a revision its history
/// no longer retains, which the store serves: see
/// [`Expectations::cached_lists_key_by_metadata`](crate::testing::fixtures::Expectations).)
pub async fn recursive_list_flattens_nested_directories(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut expected = Vec::new();
    for (key, name) in
        [("/pods/one-level/test", "one"), ("/pods/two-level/1/test", "two-1"), ("/pods/two-level/2/test", "two-2")]
    {
        let stored = h.storage.create(key, pod("", name), 0).await.expect("create nested key");
        expected.push(stored);
    }
    assert_eq!(h.list("/pods/", recursive("")).await.items, expected);
    let nested = match h.expect.cached_lists_key_by_metadata {
        true => {
            // The cache forgets every revision up to a later one (Kubernetes' tests compact the
            // watch cache likewise); the store keeps them.
            let later = h.bump_revision().await;
            for history in &h.histories {
                history.compact(later);
            }
            exact(rv(&expected[2]))
        }
        false => recursive(""),
    };
    assert_eq!(h.list("/pods/two-level", nested.clone()).await.items, expected[1..].to_vec());
    let paged = h.list("/pods/two-level/", with_limit(nested, 1)).await;
    assert_eq!(paged.items, expected[1..2].to_vec());
    assert_eq!(paged.remaining_item_count, Some(1));
}

/// `RunTestGetListNonRecursive` ("non-existing key"/directory cases): a non-recursive list of a
/// directory (`/pods/`, `/pods/ns/`) reads that one key, which holds no object: it is empty in
/// every resourceVersion mode, while a recursive list of the same directory finds the objects.
pub async fn non_recursive_list_of_a_directory_is_empty(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let a = h.create_pod("ns", "a").await;
    let b = h.create_pod("ns", "b").await;
    h.sync_reads(rv(&b)).await;
    for dir in ["/pods/", "/pods/ns/"] {
        let modes = [single(""), single("0"), single(&a.metadata.resource_version), {
            ListOptions {
                resource_version_match: Some(ResourceVersionMatch::Exact),
                ..single(&b.metadata.resource_version)
            }
        }];
        for options in modes {
            let list = h.list(dir, options.clone()).await;
            assert!(list.items.is_empty(), "non-recursive {dir} with {options:?}: {:?}", names_of(&list.items));
            assert!(list.resource_version > 0, "non-recursive {dir}: the list RV is set");
        }
        let all = h.list(dir, recursive("")).await;
        assert_eq!(names_of(&all.items), ["a", "b"], "recursive {dir}");
    }
}
