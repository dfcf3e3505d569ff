//! `GetList`: resourceVersion rules, paging with continue tokens, filtering with limit
//! doubling (Kubernetes etcd3 `GetList`).

use crate::continue_token;
use crate::error::{Error, Result};
use crate::kv::{prefix_end, RangeRequest, Revision};
use crate::storage::{ListOptions, ObjectList, ResourceVersion, ResourceVersionMatch};

use super::{check_minimum_resource_version, Store};

/// Largest page read from the backend while filtering (`maxLimit`).
const MAX_PAGE: i64 = 10_000;

/// Message of a 410 for a list at a compacted resourceVersion.
pub(crate) const LIST_TOO_OLD: &str = "The resourceVersion for the provided list is too old.";

/// Message of a 410 for a continue token whose revision is compacted.
pub(crate) const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list \
result. You can start a new list without the continue parameter, or use the continue token in this response to \
retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects \
that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// Where a list reads: `revision` 0 = latest; `start` = the continue key, if any.
struct ReadPoint {
    revision: Revision,
    start: Option<String>,
    /// The minimum RV the result must satisfy when reading at latest.
    minimum: Revision,
}

/// `ValidateListOptions`: decides the read revision and the continue key.
fn read_point(backend_prefix: &str, options: &ListOptions) -> Result<ReadPoint> {
    let predicate = &options.predicate;
    if options.recursive && !predicate.continue_token.is_empty() {
        let token = continue_token::decode(&predicate.continue_token, backend_prefix)?;
        if let ResourceVersion::At(_) = options.resource_version {
            return Err(Error::bad_request("specifying resource version is not allowed when using continue"));
        }
        let revision = if token.revision > 0 { token.revision as Revision } else { 0 };
        return Ok(ReadPoint { revision, start: Some(token.start_key), minimum: 0 });
    }
    let rv = options.resource_version.revision();
    let revision = match options.resource_version_match {
        Some(ResourceVersionMatch::NotOlderThan) => 0,
        Some(ResourceVersionMatch::Exact) => rv,
        None if options.recursive && predicate.limit > 0 && rv > 0 => rv,
        None => 0,
    };
    Ok(ReadPoint { revision, start: None, minimum: if revision == 0 { rv } else { 0 } })
}

impl Store {
    /// Lists under the prepared key `key` (recursive) or reads the one object at it.
    pub(super) async fn list(&self, key: &str, options: &ListOptions) -> Result<ObjectList> {
        let backend_prefix = self.backend_key(key);
        let point = read_point(&backend_prefix, options)?;
        if options.recursive {
            self.list_range(&backend_prefix, options, point).await
        } else {
            self.list_single(&backend_prefix, options, point).await
        }
    }

    async fn list_single(&self, backend_key: &str, options: &ListOptions, point: ReadPoint) -> Result<ObjectList> {
        let response = self.inner.backend.get(backend_key, point.revision).await.map_err(|e| list_error(e, None))?;
        check_minimum_resource_version(point.minimum, response.revision)?;
        let mut items = Vec::new();
        if let Some(kv) = response.kv {
            let object = self.decode_object(&kv)?;
            if options.predicate.matches(&object) {
                items.push(object);
            }
        }
        let revision = if point.revision == 0 { response.revision } else { point.revision };
        Ok(ObjectList { resource_version: revision, continue_token: String::new(), remaining_item_count: None, items })
    }

    async fn list_range(&self, backend_prefix: &str, options: &ListOptions, point: ReadPoint) -> Result<ObjectList> {
        let predicate = &options.predicate;
        let paging = predicate.limit > 0;
        let filtering = !predicate.is_empty();
        let mut limit = predicate.limit.max(0);
        let continuing = point.start.clone();
        let mut start = point.start.unwrap_or_else(|| backend_prefix.to_owned());
        let end = prefix_end(backend_prefix);
        let mut revision = point.revision;
        let mut items = Vec::new();
        let mut last_key = String::new();
        let mut has_more;
        let mut last_count;
        loop {
            let request = RangeRequest {
                start: start.clone(),
                end: end.clone(),
                limit: if paging { limit as u64 } else { 0 },
                revision,
                count_only: false,
            };
            let response = self
                .inner
                .backend
                .range(request)
                .await
                .map_err(|e| list_error(e, continuing.as_deref().map(|k| (k, backend_prefix))))?;
            check_minimum_resource_version(point.minimum, response.revision)?;
            has_more = response.more;
            last_count = response.count;
            if response.kvs.is_empty() && has_more {
                return Err(Error::internal(
                    "no results were found, but the backend indicated there were more values remaining",
                ));
            }
            if revision == 0 {
                // Pin every further page to the revision of the first one.
                revision = response.revision;
            }
            for kv in &response.kvs {
                if paging && items.len() as i64 >= predicate.limit {
                    has_more = true;
                    break;
                }
                last_key.clone_from(&kv.key);
                let object = self.decode_object(kv)?;
                if !filtering || predicate.matches(&object) {
                    items.push(object);
                }
            }
            if !has_more || !paging || items.len() as i64 >= predicate.limit {
                break;
            }
            // Filtering left the page short: read on with a larger page.
            if limit < MAX_PAGE {
                limit = (limit * 2).min(MAX_PAGE);
            }
            start = format!("{last_key}\0");
        }
        let (continue_token, remaining_item_count) = if has_more {
            let token = continue_token::encode(&format!("{last_key}\0"), backend_prefix, revision as i64)?;
            let remaining = (!filtering).then(|| last_count as i64 - predicate.limit);
            (token, remaining)
        } else {
            (String::new(), None)
        };
        Ok(ObjectList { resource_version: revision, continue_token, remaining_item_count, items })
    }
}

/// Maps backend read errors of a list to Kubernetes' list errors: a compacted revision is
/// 410 Expired (with a replacement rv -1 token when continuing), a future one 504.
fn list_error(error: Error, continuing: Option<(&str, &str)>) -> Error {
    match error {
        Error::Compacted { .. } => match continuing {
            Some((start_key, prefix)) => Error::Expired {
                message: CONTINUE_TOO_OLD.to_owned(),
                continue_token: continue_token::encode(start_key, prefix, -1).ok(),
            },
            None => Error::Expired { message: LIST_TOO_OLD.to_owned(), continue_token: None },
        },
        Error::FutureRevision { requested, current } => {
            Error::TooLargeResourceVersion { requested, current, retry_after_seconds: 0 }
        }
        other => other,
    }
}
