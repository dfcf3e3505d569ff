//! The `Storage` behaviour suite: Kubernetes `pkg/storage/testing` (store_tests.go,
//! watcher_tests.go) ported to apistore, plus bad-input behaviours.
//!
//! Every behaviour builds `Store::new(backend, StoreConfig::new("pods"))` over a fresh backend
//! from the fixture and calls it through `Arc<dyn Storage>` (see [`fixtures`](super::fixtures)).
//! Kubernetes' etcd-only `[E]` and cache-only `[C]` tests are not ported, except where the
//! behaviour is backend-neutral (noted on the behaviour). Where Kubernetes bumps the global
//! resourceVersion with an unrelated write, the suite writes a key outside `/registry/pods/`
//! directly through the `KvBackend`; compaction goes through `KvBackend::compact`.
//!
//! Behaviours are grouped by the `Storage` method they exercise: [`create_get`], [`delete`],
//! [`update`], [`list`], [`historic`], [`paging`], [`scoped`], [`served_by`], [`watch`], [`watch_lifecycle`],
//! [`watch_semantics`], [`keys_stats`], [`transform`] and [`bad_input`]; [`cache`] holds the
//! behaviours only a watch cache has. `KUBERNETES_SUITE.md` maps Kubernetes' `RunTest*`
//! functions to these behaviours.

use futures::future::BoxFuture;
use futures::FutureExt;

use super::Behaviour;

pub mod bad_input;
pub mod cache;
pub mod create_get;
pub mod delete;
pub mod historic;
pub mod keys_stats;
pub mod list;
pub mod paging;
pub mod scoped;
pub mod served_by;
pub mod transform;
pub mod update;
pub mod watch;
pub mod watch_lifecycle;
pub mod watch_semantics;

/// Turns `async fn name(Arc<dyn BackendFixture>)` items into named [`Behaviour`]s.
macro_rules! behaviours {
    ($($module:ident :: $name:ident),* $(,)?) => {
        vec![$((
            stringify!($name).to_owned(),
            (|fixture| -> BoxFuture<'static, ()> { $module::$name(fixture).boxed() }) as Behaviour,
        )),*]
    };
}

/// The behaviours of this suite, named.
pub fn behaviours() -> Vec<(String, Behaviour)> {
    behaviours![
        create_get::create_returns_stored_object_with_new_resource_version,
        create_get::create_stores_object_without_resource_version_under_registry_key,
        create_get::create_with_resource_version_set_is_rejected,
        create_get::create_on_existing_key_fails_already_exists,
        create_get::create_with_ttl_expires_with_deleted_event,
        create_get::get_with_empty_resource_version_returns_latest,
        create_get::get_with_resource_version_zero_returns_some_version,
        create_get::get_with_older_resource_version_returns_not_older_state,
        create_get::get_with_current_resource_version_returns_current,
        create_get::get_with_future_resource_version_is_too_large,
        create_get::get_missing_key_not_found_or_none_when_ignored,
        create_get::update_without_ttl_removes_earlier_ttl,
        delete::unconditional_delete_returns_object_with_delete_resource_version,
        delete::delete_with_matching_uid_precondition_deletes,
        delete::delete_with_mismatching_uid_precondition_is_invalid_object,
        delete::delete_with_up_to_date_suggestion_deletes,
        delete::delete_with_stale_suggestion_retries_and_returns_latest,
        delete::delete_racing_an_update_revalidates_and_returns_updated_object,
        delete::delete_with_suggestion_of_deleted_object_is_not_found,
        delete::failing_validation_with_fresh_suggestion_is_returned_after_one_call,
        delete::validation_failing_only_on_stale_suggestion_deletes,
        delete::validation_passing_only_on_stale_suggestion_refuses_delete,
        delete::precondition_failing_on_stale_suggestion_rechecks_and_deletes,
        delete::precondition_passing_only_on_stale_suggestion_is_invalid_object,
        delete::unsafe_delete_removes_undecodable_object,
        delete::unsafe_delete_of_decodable_object_is_refused_even_with_suggestion,
        delete::unsafe_delete_refuses_object_that_became_decodable,
        update::guaranteed_update_of_missing_key_is_not_found,
        update::guaranteed_update_with_ignore_not_found_creates,
        update::guaranteed_update_changes_resource_version,
        update::guaranteed_update_with_identical_data_does_not_write,
        update::guaranteed_update_checks_uid_precondition,
        update::guaranteed_update_with_ttl_expires_with_deleted_event,
        update::guaranteed_update_retries_after_conflicting_write,
        update::guaranteed_update_with_stale_suggestion_reruns_on_live_object,
        update::guaranteed_update_error_on_fresh_suggestion_is_returned,
        update::guaranteed_update_error_on_stale_suggestion_retries_live_object,
        update::concurrent_guaranteed_updates_lose_no_increment,
        update::guaranteed_update_create_racing_a_create_retries_on_winner,
        update::resource_version_precondition_guards_update_and_delete,
        list::list_exact_resource_version_returns_historical_state,
        list::list_legacy_resource_version_with_limit_reads_exactly_that_revision,
        list::list_not_older_than_resource_version_returns_latest_state,
        list::list_resource_version_zero_with_limit_honours_limit,
        list::list_future_resource_version_is_too_large,
        list::list_exact_compacted_resource_version_is_expired,
        list::list_rejects_invalid_resource_version_arguments,
        list::list_with_limit_returns_page_continue_and_remaining_count,
        list::list_with_selector_spans_pages_without_remaining_count,
        list::list_continue_token_keeps_historical_revision,
        list::list_continue_after_compaction_is_expired_with_replacement_token,
        list::list_continue_with_minus_one_revision_reads_latest,
        list::exact_list_at_reported_resource_version_reproduces_the_list,
        list::list_omits_deleted_objects,
        list::consistent_list_reports_current_global_revision,
        list::non_recursive_list_reads_single_object_in_every_mode,
        list::non_recursive_list_of_missing_key_is_empty_and_future_rv_too_large,
        list::non_recursive_list_applies_selector,
        list::recursive_list_does_not_match_keys_sharing_a_name_prefix,
        list::recursive_list_flattens_nested_directories,
        scoped::namespace_scoped_list_filters_by_path_and_field_selectors,
        list::compact_revision_is_reported_and_older_exact_lists_expire,
        list::non_recursive_list_of_a_directory_is_empty,
        historic::exact_lists_with_limit_at_historic_revisions_have_exact_tokens_and_counts,
        historic::filtered_list_page_starting_on_the_last_item_ends_the_list,
        historic::selective_paged_list_is_one_snapshot_while_writes_land,
        served_by::lists_are_served_by_the_cache_or_delegated_as_documented,
        served_by::resource_version_zero_list_is_not_older_than_a_preceding_consistent_list,
        paging::list_continuation_keeps_first_page_resource_version,
        paging::list_paging_skips_objects_created_mid_pagination,
        paging::list_pagination_finds_rare_object_among_many,
        paging::list_continuation_with_filter_fills_pages,
        keys_stats::every_method_rejects_invalid_keys,
        keys_stats::every_method_accepts_keys_under_resource_prefix,
        keys_stats::stats_object_count_tracks_creates_and_deletes,
        keys_stats::readiness_and_current_resource_version_follow_the_backend,
        keys_stats::stats_estimate_the_average_object_size,
        watch::watch_reports_create_as_added,
        watch::watch_reports_update_into_selector_as_added,
        watch::watch_reports_update_as_modified,
        watch::watch_reports_update_out_of_selector_as_deleted_old_object,
        watch::watch_label_selector_sequence_ends_with_deleted,
        watch::watch_stop_closes_stream,
        watch::watch_from_zero_sends_current_state_then_changes,
        watch::watch_from_compacted_resource_version_is_gone,
        watch::delete_triggers_deleted_watch_event,
        watch::watch_from_object_resource_version_reports_update_as_modified,
        watch::watch_from_old_resource_version_replays_history_in_order,
        watch::watch_from_future_resource_version_waits_for_it,
        watch::deleted_event_object_equals_delete_result,
        watch::idle_watchers_do_not_block_a_reading_watcher,
        scoped::cluster_scoped_watch_filters_by_name_and_node,
        scoped::namespace_scoped_watch_filters_by_namespace_name_and_node,
        watch::watch_without_bookmarks_sends_nothing_for_other_namespaces,
        watch::send_initial_events_without_bookmarks_is_accepted,
        watch::watch_of_a_key_ignores_keys_sharing_its_prefix,
        watch_lifecycle::progress_notify_watch_gets_an_empty_bookmark_at_the_current_revision,
        watch_lifecycle::stopped_watch_delivers_what_it_buffered_and_nothing_written_after,
        watch_lifecycle::watch_error_ends_each_of_ten_concurrent_watchers,
        watch_lifecycle::bookmarks_are_sent_only_when_allowed,
        watch_lifecycle::watch_cancelled_by_its_consumer_frees_its_resources,
        watch_semantics::watch_semantics_with_resource_version_unset,
        watch_semantics::watch_semantics_with_resource_version_zero,
        watch_semantics::watch_semantics_with_resource_version_one,
        watch_semantics::watch_semantics_with_current_resource_version,
        watch_semantics::initial_events_end_bookmark_carries_global_resource_version,
        watch_semantics::watch_list_with_name_selector_sends_one_object_then_bookmark,
        watch_semantics::send_initial_events_from_future_resource_version_is_too_large,
        bad_input::malformed_json_is_bad_request_and_stores_nothing,
        bad_input::oversized_object_is_too_large_and_stores_nothing,
        bad_input::configured_size_limit_is_enforced,
        bad_input::names_with_slash_or_dot_segments_are_rejected,
        bad_input::tampered_continue_token_is_bad_request,
        bad_input::resource_version_abc_is_rejected_on_every_path,
        bad_input::malformed_selectors_are_bad_requests,
        bad_input::unknown_backend_name_lists_registered_backends,
        bad_input::failed_creates_leave_stored_state_unchanged,
        transform::transformer_gets_full_backend_key_as_authenticated_data,
        transform::guaranteed_update_rewrites_data_read_by_stale_transformer,
        transform::guaranteed_update_rewrites_non_canonical_stored_bytes,
        transform::untransformable_data_fails_every_read_path_with_internal_error,
        transform::watch_of_untransformable_data_ends_with_error_event,
        transform::watch_of_unsafe_delete_of_corrupt_object_reports_store_read_error,
        transform::guaranteed_update_with_suggestion_rewrites_data_of_a_stale_transformer,
        transform::guaranteed_update_with_suggestion_rewrites_non_canonical_stored_bytes,
        transform::transform_failure_names_the_key,
    ]
}

/// Behaviours only the watch cache has (Kubernetes' `[C]` tests and the cache's limits).
pub fn cache_only_behaviours() -> Vec<(String, Behaviour)> {
    behaviours![
        cache::bookmark_resource_versions_never_go_backwards_during_creates,
        cache::stopped_watch_delivers_buffered_events_in_order,
        cache::watch_older_than_the_cache_history_is_gone,
        cache::watcher_that_does_not_read_is_terminated_not_waited_for,
    ]
}
