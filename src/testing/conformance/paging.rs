//! Paging with continue tokens (Kubernetes `RunTestListContinuation`, `RunTestListPaging`,
//! `RunTestListPaginationRareObject`, `RunTestListContinuationWithFilter`).

use std::sync::Arc;

use futures::StreamExt;

use crate::storage::{ListOptions, ObjectList, Predicate};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

fn page(limit: i64, continue_token: &str, predicate: Predicate) -> ListOptions {
    let mut options = recursive("");
    options.predicate = Predicate { limit, continue_token: continue_token.to_owned(), ..predicate };
    options
}

/// Reads every page of `/pods/` with `limit`, returning the pages.
async fn all_pages(h: &Harness, limit: i64, predicate: Predicate) -> Vec<ObjectList> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let list = h.list("/pods/", page(limit, &token, predicate.clone())).await;
        token.clone_from(&list.continue_token);
        pages.push(list);
        if token.is_empty() {
            return pages;
        }
        assert!(pages.len() <= 2000, "paging does not terminate");
    }
}

/// `RunTestListContinuation`: pages of one keep the first page's RV (even after later writes),
/// each page returns the next object, and the last page has no continue token.
pub async fn list_continuation_keeps_first_page_resource_version(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let a = h.create_pod("ns", "a").await;
    let b = h.create_pod("ns", "b").await;
    let c = h.create_pod("ns", "c").await;
    let first = h.list("/pods/", page(1, "", Predicate::default())).await;
    assert_eq!(first.items, vec![a]);
    assert_eq!(first.resource_version, h.current_revision().await, "the first page is a consistent read");
    h.annotate(&key("ns", "b"), "changed", "later").await;
    h.delete(&key("ns", "c")).await;
    h.bump_revision().await;
    let second = h.list("/pods/", page(1, &first.continue_token, Predicate::default())).await;
    assert_eq!(second.items, vec![b], "the continuation reads the first page's revision");
    assert_eq!(second.resource_version, first.resource_version);
    let third = h.list("/pods/", page(1, &second.continue_token, Predicate::default())).await;
    assert_eq!(third.items, vec![c]);
    assert_eq!(third.resource_version, first.resource_version);
    assert!(third.continue_token.is_empty(), "the last page has no continue token");
    assert_eq!(third.remaining_item_count, None);
}

/// `RunTestListPaging`: paging 4 objects by one takes exactly 4 calls; an object created during
/// paging is not returned.
pub async fn list_paging_skips_objects_created_mid_pagination(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    for name in ["a", "b", "c", "d"] {
        h.create_pod("ns", name).await;
    }
    let mut token = String::new();
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let list = h.list("/pods/", page(1, &token, Predicate::default())).await;
        calls += 1;
        seen.extend(names_of(&list.items));
        if calls == 2 {
            h.create_pod("ns", "c-created-during-paging").await;
        }
        if list.continue_token.is_empty() {
            break;
        }
        token = list.continue_token;
        assert!(calls < 10, "paging does not terminate");
    }
    assert_eq!(seen, ["a", "b", "c", "d"]);
    assert_eq!(calls, 4);
}

/// `RunTestListPaginationRareObject`: limit 1 with a selector matching only the last of 1000
/// objects returns that one object and no continue token (the store keeps reading, doubling
/// its page size).
pub async fn list_pagination_finds_rare_object_among_many(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let results: Vec<crate::Result<crate::Object>> = futures::stream::iter(0..1000)
        .map(|i| {
            let storage = h.storage.clone();
            async move {
                let object = pod("ns", &format!("pod-{i:04}"));
                storage.create(&key_of(&object), object, 0).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok), "every create succeeds");
    let list = h.list("/pods/", page(1, "", field_predicate("metadata.name=pod-0999"))).await;
    assert_eq!(names_of(&list.items), ["pod-0999"]);
    assert!(list.continue_token.is_empty(), "nothing can follow the last key");
}

/// `RunTestListContinuationWithFilter`: limit 2 with a filter dropping one of four objects:
/// the first page still has two matches, the second the last one and no token.
pub async fn list_continuation_with_filter_fills_pages(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create(pod("ns", "a").with_label("keep", "yes")).await;
    h.create(pod("ns", "b").with_label("keep", "no")).await;
    h.create(pod("ns", "c").with_label("keep", "yes")).await;
    h.create(pod("ns", "d").with_label("keep", "yes")).await;
    let pages = all_pages(&h, 2, label_predicate("keep=yes")).await;
    let names: Vec<Vec<String>> = pages.iter().map(|p| names_of(&p.items)).collect();
    assert_eq!(names, vec![vec!["a", "c"], vec!["d"]]);
    assert!(pages.iter().all(|p| p.resource_version == pages[0].resource_version));
}
