//! resourceVersion parsing and formatting (Kubernetes `APIObjectVersioner`).
//!
//! A resourceVersion is the backend revision as a decimal string. `""` and `"0"` both mean
//! 0 ("unset" / "any"); anything that is not an unsigned decimal is invalid.

use crate::error::{Error, Result};
use crate::kv::Revision;

/// Parses a resourceVersion: `""`/`"0"` → 0, digits → the revision.
///
/// Errors: [`Error::Invalid`] on `resourceVersion` for anything else (`"abc"`, `"-1"`).
pub fn parse_resource_version(rv: &str) -> Result<Revision> {
    if rv.is_empty() {
        return Ok(0);
    }
    rv.parse::<u64>().map_err(|_| Error::invalid("resourceVersion", rv, "must be an unsigned decimal revision"))
}

/// Like [`parse_resource_version`], but as the 400 "invalid resource version" a list or
/// get gets (Kubernetes wraps the parse error as BadRequest on those paths).
pub fn parse_list_resource_version(rv: &str) -> Result<Revision> {
    parse_resource_version(rv).map_err(|_| Error::bad_request(format!("invalid resource version: {rv:?}")))
}

/// Formats a revision as a resourceVersion (0 → `""`).
pub fn format_resource_version(revision: Revision) -> String {
    if revision == 0 {
        String::new()
    } else {
        revision.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kubernetes() {
        assert_eq!(parse_resource_version(""), Ok(0));
        assert_eq!(parse_resource_version("0"), Ok(0));
        assert_eq!(parse_resource_version("42"), Ok(42));
        assert!(parse_resource_version("abc").is_err());
        assert!(parse_resource_version("-1").is_err());
        assert_eq!(parse_list_resource_version("abc").map_err(|e| e.code()), Err(400));
        assert_eq!(format_resource_version(0), "");
        assert_eq!(format_resource_version(9), "9");
    }
}
