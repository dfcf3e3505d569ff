//! Lists at historic revisions (Kubernetes `RunTestList` "Exact + limit" cases,
//! `RunTestListContinuationWithFilter`, and the snapshot a multi-read list must keep).

use std::sync::Arc;
use std::time::Duration;

use crate::continue_token;
use crate::storage::{ListOptions, ResourceVersionMatch, Storage};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

fn exact_page(rv: u64, limit: i64, continue_token: &str) -> ListOptions {
    let mut options =
        ListOptions { resource_version_match: Some(ResourceVersionMatch::Exact), ..recursive(&rv.to_string()) };
    if !continue_token.is_empty() {
        options = recursive("");
        options.predicate.continue_token = continue_token.to_owned();
    }
    options.predicate.limit = limit;
    options
}

/// `RunTestList` "Exact + limit": at each of five historic writes, an Exact list with limit 2
/// returns the first two objects of that revision, `remainingItemCount` = the rest, and the
/// exact continue token Kubernetes encodes (next key after the last item, pinned to that
/// revision); following the tokens yields exactly the objects of that revision.
pub async fn exact_lists_with_limit_at_historic_revisions_have_exact_tokens_and_counts(
    fixture: Arc<dyn BackendFixture>,
) {
    let h = Harness::new(&fixture).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(h.create_pod("ns", &format!("p{i}")).await);
        h.bump_revision().await;
    }
    for (i, at) in created.iter().enumerate() {
        let revision = rv(at);
        let expected: Vec<_> = created[..=i].to_vec();
        let page = h.list("/pods/", exact_page(revision, 2, "")).await;
        assert_eq!(page.resource_version, revision, "write {i}");
        assert_eq!(page.items, expected[..expected.len().min(2)].to_vec(), "write {i}: first page");
        if expected.len() > 2 {
            let next = format!("{}\0", key_of(&expected[1]));
            let token = continue_token::encode(&next, "/pods/", revision as i64).expect("token");
            assert_eq!(page.continue_token, token, "write {i}: continue token");
            assert_eq!(page.remaining_item_count, Some(expected.len() as i64 - 2), "write {i}: remaining");
        } else {
            assert!(page.continue_token.is_empty(), "write {i}: last page has no token");
            assert_eq!(page.remaining_item_count, None, "write {i}");
        }
        let mut all = page.items.clone();
        let mut token = page.continue_token;
        while !token.is_empty() {
            let next = h.list("/pods/", exact_page(0, 2, &token)).await;
            assert_eq!(next.resource_version, revision, "write {i}: continuation keeps the revision");
            all.extend(next.items);
            token = next.continue_token;
        }
        assert_eq!(all, expected, "write {i}: every page together");
    }
}

/// `RunTestListContinuationWithFilter`: a filtered list whose page starts on the last item
/// returns that item alone, with no continue token and no remaining count, at the first
/// page's revision.
pub async fn filtered_list_page_starting_on_the_last_item_ends_the_list(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(h.create_pod("ns", &format!("p{i}")).await);
    }
    let revision = rv(&created[3]);
    let first = h.list("/pods/", exact_page(revision, 3, "")).await;
    assert_eq!(names_of(&first.items), ["p0", "p1", "p2"]);
    let mut options = exact_page(0, 1, &first.continue_token);
    options.predicate.field = field_predicate("metadata.name=p3").field;
    let last = h.list("/pods/", options).await;
    assert_eq!(last.items, vec![created[3].clone()]);
    assert!(last.continue_token.is_empty(), "the last item ends the list: {:?}", last.continue_token);
    assert_eq!(last.remaining_item_count, None);
    assert_eq!(last.resource_version, revision);
    let mut not_matching = exact_page(0, 1, &first.continue_token);
    not_matching.predicate.field = field_predicate("metadata.name=p0").field;
    let empty = h.list("/pods/", not_matching).await;
    assert!(empty.items.is_empty() && empty.continue_token.is_empty(), "{empty:?}");
}

/// A selector + limit list that needs several internal store reads (1 match in 5, limit 3)
/// returns one snapshot while writes land between those reads: its items are exactly the
/// matching objects of an Exact list at the revision it reports.
pub async fn selective_paged_list_is_one_snapshot_while_writes_land(fixture: Arc<dyn BackendFixture>) {
    let h = Arc::new(Harness::new(&fixture).await);
    for i in 0..40 {
        let object = pod("ns", &format!("p{i:02}")).with_label("match", if i % 5 == 0 { "yes" } else { "no" });
        h.create(object).await;
    }
    let writer = {
        let storage: Arc<dyn Storage> = h.storage.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let object = pod("ns", &format!("p{i:02}-late")).with_label("match", "yes");
                storage.create(&key_of(&object), object, 0).await.expect("create");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let predicate = label_predicate("match=yes");
    for round in 0..8 {
        let mut options = recursive("");
        options.predicate = crate::storage::Predicate { limit: 3, ..predicate.clone() };
        let page = h.list("/pods/", options).await;
        let mut snapshot = exact_page(page.resource_version, 0, "");
        snapshot.predicate = crate::storage::Predicate { limit: 0, ..predicate.clone() };
        let at_revision = h.list("/pods/", snapshot).await;
        let expected: Vec<_> = at_revision.items.iter().take(3).cloned().collect();
        assert_eq!(page.items, expected, "round {round}: the page is the snapshot at {}", page.resource_version);
        for object in &page.items {
            assert!(rv(object) <= page.resource_version, "round {round}: {} newer than the list", object.metadata.name);
        }
    }
    writer.await.expect("writer");
}
