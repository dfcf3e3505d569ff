//! A request's resourceVersion, parsed once where the cacher receives the request; everything
//! below works on the typed value.

use crate::error::Result;
use crate::kv::Revision;
use crate::version::{parse_list_resource_version, parse_resource_version};

/// What a request's `resourceVersion` asks for (the module table of [`crate::storage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestedVersion {
    /// `""`: consistent, the latest state.
    Unset,
    /// `"0"`: any state.
    Any,
    /// `N`: not older than (or, with Exact, exactly) revision N.
    At(Revision),
}

impl RequestedVersion {
    fn from_revision(text: &str, revision: Revision) -> Self {
        match (text.is_empty(), revision) {
            (true, _) => RequestedVersion::Unset,
            (false, 0) => RequestedVersion::Any,
            (false, n) => RequestedVersion::At(n),
        }
    }

    /// Parses a get's or list's resourceVersion.
    ///
    /// Errors: [`Error::BadRequest`](crate::Error::BadRequest) "invalid resource version".
    pub(crate) fn parse_read(text: &str) -> Result<Self> {
        Ok(Self::from_revision(text, parse_list_resource_version(text)?))
    }

    /// Parses a watch's resourceVersion.
    ///
    /// Errors: [`Error::Invalid`](crate::Error::Invalid) on `resourceVersion`.
    pub(crate) fn parse_watch(text: &str) -> Result<Self> {
        Ok(Self::from_revision(text, parse_resource_version(text)?))
    }

    /// The revision asked for (0 for "" and "0").
    pub(crate) fn revision(self) -> Revision {
        match self {
            RequestedVersion::At(n) => n,
            RequestedVersion::Unset | RequestedVersion::Any => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_once_into_the_three_cases() {
        assert_eq!(RequestedVersion::parse_read(""), Ok(RequestedVersion::Unset));
        assert_eq!(RequestedVersion::parse_read("0"), Ok(RequestedVersion::Any));
        assert_eq!(RequestedVersion::parse_read("17"), Ok(RequestedVersion::At(17)));
        assert_eq!(RequestedVersion::At(17).revision(), 17);
        assert!(RequestedVersion::parse_read("x").is_err_and(|e| e.code() == 400));
        assert!(RequestedVersion::parse_watch("-1").is_err_and(|e| e.code() == 422));
    }
}
