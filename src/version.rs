//! resourceVersion parsing and formatting (Kubernetes `APIObjectVersioner`), and the typed
//! resourceVersion of a read ([`ResourceVersion`]).
//!
//! A resourceVersion is the backend revision as a decimal string. `""` and `"0"` both mean
//! revision 0 ("unset" / "any"); anything that is not an unsigned decimal is invalid. A
//! request's resourceVersion is parsed once, where the request enters (an API server's query
//! parameters), into a [`ResourceVersion`]; every storage layer below works on that value.

use std::fmt;

use crate::error::{Error, Result};
use crate::kv::Revision;

/// Parses a resourceVersion: `""`/`"0"` → 0, digits → the revision.
///
/// Errors: [`Error::Invalid`] on `resourceVersion` for anything else (`"abc"`, `"-1"`, `"+1"`:
/// Go's `ParseUint` takes no sign).
pub fn parse_resource_version(rv: &str) -> Result<Revision> {
    if rv.is_empty() {
        return Ok(0);
    }
    digits(rv).ok_or_else(|| Error::invalid("resourceVersion", rv, "must be an unsigned decimal revision"))
}

/// An unsigned decimal that fits a revision (digits only).
fn digits(text: &str) -> Option<Revision> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<Revision>().ok()
}

/// Like [`parse_resource_version`], but as the 400 "invalid resource version" a list or
/// get gets (Kubernetes wraps the parse error as BadRequest on those paths).
pub fn parse_list_resource_version(rv: &str) -> Result<Revision> {
    parse_resource_version(rv).map_err(|_| Error::bad_request(format!("invalid resource version: {rv:?}")))
}

/// Parses the resourceVersion of a precondition (`DeleteOptions.preconditions`): the revision
/// for an unsigned decimal > 0; None for anything else (`""`, `"0"`, `"abc"`), a value no stored
/// object has: Kubernetes compares preconditions as strings, so such a precondition fails
/// (409 Conflict) on every object that exists.
pub fn parse_precondition(text: &str) -> Option<Revision> {
    digits(text).filter(|revision| *revision > 0)
}

/// Formats a revision as a resourceVersion (0 → `""`).
pub fn format_resource_version(revision: Revision) -> String {
    if revision == 0 {
        String::new()
    } else {
        revision.to_string()
    }
}

/// The resourceVersion a get, list or watch asks for (the table of [`crate::storage`]): the
/// query parameter parsed once. The default is [`ResourceVersion::Unset`].
///
/// Invariant: [`ResourceVersion::At`] holds a revision > 0 (0 is [`ResourceVersion::Any`]);
/// the constructors keep it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResourceVersion {
    /// `""`: a consistent read of the latest state; a watch starts at the most recent state.
    #[default]
    Unset,
    /// `"0"`: any state (the latest the serving layer has).
    Any,
    /// `N` (> 0): not older than N, or exactly N (with `resourceVersionMatch=Exact`, or the
    /// legacy RV + limit list).
    At(Revision),
}

impl ResourceVersion {
    /// `""` → Unset, `"0"` → Any, `N` → At(N); None for anything else.
    fn parse_text(text: &str) -> Option<Self> {
        if text.is_empty() {
            return Some(ResourceVersion::Unset);
        }
        digits(text).map(ResourceVersion::from)
    }

    /// Parses the resourceVersion of a get or list.
    ///
    /// Errors: [`Error::BadRequest`] (400) "invalid resource version: \"abc\"", Kubernetes'
    /// answer on those paths.
    pub fn parse_read(text: &str) -> Result<Self> {
        Self::parse_text(text).ok_or_else(|| Error::bad_request(format!("invalid resource version: {text:?}")))
    }

    /// Parses the resourceVersion of a watch.
    ///
    /// Errors: [`Error::Invalid`] (422) on `resourceVersion`, Kubernetes' answer for a watch.
    pub fn parse_watch(text: &str) -> Result<Self> {
        Self::parse_text(text)
            .ok_or_else(|| Error::invalid("resourceVersion", text, "must be an unsigned decimal revision"))
    }

    /// The resourceVersion `N` (0 gives [`ResourceVersion::Any`], as `"0"` does).
    pub fn at(revision: Revision) -> Self {
        Self::from(revision)
    }

    /// The revision asked for: N for `At(N)`, 0 for Unset and Any.
    pub fn revision(self) -> Revision {
        match self {
            ResourceVersion::At(n) => n,
            ResourceVersion::Unset | ResourceVersion::Any => 0,
        }
    }

    /// True for `""`.
    pub fn is_unset(self) -> bool {
        self == ResourceVersion::Unset
    }
}

impl From<Revision> for ResourceVersion {
    /// 0 → Any (`"0"`), N → At(N).
    fn from(revision: Revision) -> Self {
        match revision {
            0 => ResourceVersion::Any,
            n => ResourceVersion::At(n),
        }
    }
}

impl fmt::Display for ResourceVersion {
    /// The query-parameter form: `""`, `"0"` or `"N"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceVersion::Unset => Ok(()),
            ResourceVersion::Any => f.write_str("0"),
            ResourceVersion::At(n) => write!(f, "{n}"),
        }
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
        assert!(parse_resource_version("+1").is_err());
        assert_eq!(parse_list_resource_version("abc").map_err(|e| e.code()), Err(400));
        assert_eq!(format_resource_version(0), "");
        assert_eq!(format_resource_version(9), "9");
    }

    #[test]
    fn a_request_version_parses_once_into_three_cases_with_kubernetes_errors() {
        assert_eq!(ResourceVersion::parse_read(""), Ok(ResourceVersion::Unset));
        assert_eq!(ResourceVersion::parse_read("0"), Ok(ResourceVersion::Any));
        assert_eq!(ResourceVersion::parse_read("00"), Ok(ResourceVersion::Any));
        assert_eq!(ResourceVersion::parse_read("17"), Ok(ResourceVersion::At(17)));
        assert_eq!(ResourceVersion::parse_watch("17"), Ok(ResourceVersion::At(17)));
        assert_eq!(ResourceVersion::default(), ResourceVersion::Unset);
        assert_eq!(ResourceVersion::at(0), ResourceVersion::Any);
        assert_eq!(ResourceVersion::At(17).revision(), 17);
        assert_eq!(ResourceVersion::Any.revision(), 0);
        for bad in ["x", "-1", "+1", " 1", "1.0", "18446744073709551616"] {
            let read = ResourceVersion::parse_read(bad).expect_err(bad);
            assert!(matches!(read, Error::BadRequest { .. }), "{bad}: {read:?}");
            assert!(read.to_string().contains("invalid resource version"), "{read}");
            let watch = ResourceVersion::parse_watch(bad).expect_err(bad);
            assert_eq!(watch.code(), 422, "{bad}: {watch:?}");
        }
        for text in ["", "0", "5"] {
            assert_eq!(ResourceVersion::parse_read(text).map(|rv| rv.to_string()), Ok(text.to_owned()));
        }
    }
}
