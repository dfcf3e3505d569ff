//! List and watch options: kube's `ValidateListOptions` rules.

use apistore::storage::ResourceVersionMatch;

use crate::status::{ApiError, ApiResult, Reason};

/// kube's `ValidateListOptions`: which combinations of resourceVersion, resourceVersionMatch
/// and sendInitialEvents a list or watch accepts.
///
/// Errors: 422 Invalid with kube's message.
pub fn validate(
    watching: bool,
    resource_version: &str,
    rv_match: Option<ResourceVersionMatch>,
    send_initial_events: Option<bool>,
    allow_watch_bookmarks: bool,
) -> ApiResult<()> {
    let forbidden = |field: &str, why: &str| {
        ApiError::new(Reason::INVALID, format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: Forbidden: {why}"))
    };
    if watching {
        if send_initial_events.is_some() {
            if rv_match != Some(ResourceVersionMatch::NotOlderThan) {
                return Err(forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !allow_watch_bookmarks {
                return Err(forbidden("allowWatchBookmarks", "sendInitialEvents requires allowWatchBookmarks=true"));
            }
        } else if rv_match.is_some() {
            return Err(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        return Ok(());
    }
    if send_initial_events.is_some() {
        return Err(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
    }
    match rv_match {
        Some(_) if resource_version.is_empty() => Err(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        Some(ResourceVersionMatch::Exact) if resource_version == "0" => Err(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_kube_validate_list_options() {
        let not_older = Some(ResourceVersionMatch::NotOlderThan);
        let exact = Some(ResourceVersionMatch::Exact);
        assert!(validate(false, "", None, None, false).is_ok());
        assert!(validate(false, "5", exact, None, false).is_ok());
        assert_eq!(validate(false, "", exact, None, false).map_err(|e| e.code()), Err(422));
        assert_eq!(validate(false, "0", exact, None, false).map_err(|e| e.code()), Err(422));
        assert_eq!(validate(false, "", None, Some(true), true).map_err(|e| e.code()), Err(422));
        assert!(validate(true, "", not_older, Some(true), true).is_ok());
        assert!(validate(true, "", not_older, Some(true), false).is_err(), "sendInitialEvents needs bookmarks");
        assert!(validate(true, "", exact, Some(true), true).is_err());
        assert!(validate(true, "3", not_older, None, false).is_err(), "rvMatch on a watch needs sendInitialEvents");
    }
}
