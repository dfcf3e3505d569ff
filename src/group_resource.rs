//! `GroupResource`: which resource a storage config is for (Kubernetes `schema.GroupResource`).
//!
//! The core (legacy) group is the empty string. The textual form is `resource.group`
//! (`deployments.apps`), or just `resource` for the core group (`configmaps`) — the form
//! `--watch-cache-sizes` and `EncryptionConfiguration` use. `*` stands for "every resource"
//! (and, in encryption configs, "every group"): `*.apps`, `*.*`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The wildcard resource (or group) name: `{group: "apps", resource: "*"}` is every resource
/// of `apps` (Kubernetes `AllResources`).
pub const ALL: &str = "*";

/// A resource of an API group. The core group is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group, e.g. `apps`; `""` for the core group.
    pub group: String,
    /// Lowercase plural resource name, e.g. `deployments`.
    pub resource: String,
}

impl GroupResource {
    /// A group resource from its parts.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource { group: group.to_owned(), resource: resource.to_owned() }
    }

    /// A resource of the core group (`configmaps`, `events`).
    pub fn core(resource: &str) -> Self {
        Self::new("", resource)
    }

    /// Kubernetes `schema.ParseGroupResource`: splits `resource.group` at the first `.`;
    /// without a `.` the group is the core group. Never fails; see [`GroupResource::parse`]
    /// for the validating form.
    pub fn parse_lenient(text: &str) -> Self {
        match text.split_once('.') {
            Some((resource, group)) => Self::new(group, resource),
            None => Self::core(text),
        }
    }

    /// Parses `resource[.group]` and checks the resource is not empty and neither part has
    /// whitespace or `/`.
    ///
    /// Errors: [`Error::Invalid`] on field `groupResource` naming the text.
    pub fn parse(text: &str) -> Result<Self> {
        let gr = Self::parse_lenient(text);
        if gr.resource.is_empty() {
            return Err(Error::invalid("groupResource", text, "resource must not be empty (format: resource[.group])"));
        }
        if text.chars().any(|c| c.is_whitespace() || c == '/' || c.is_control()) {
            return Err(Error::invalid(
                "groupResource",
                text,
                "must not contain whitespace or '/' (format: resource[.group])",
            ));
        }
        Ok(gr)
    }

    /// `{group, "*"}`: the key of a whole-group override.
    pub fn all_resources_of(group: &str) -> Self {
        Self::new(group, ALL)
    }

    /// The whole-group alias of this resource (`{group, "*"}`).
    pub fn group_alias(&self) -> Self {
        Self::all_resources_of(&self.group)
    }

    /// True when the resource is the wildcard `*`.
    pub fn is_wildcard(&self) -> bool {
        self.resource == ALL
    }
}

impl fmt::Display for GroupResource {
    /// `resource` for the core group, else `resource.group` (what `parse` reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

impl FromStr for GroupResource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for GroupResource {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupResource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_the_dotted_form() {
        let gr = GroupResource::parse("deployments.apps").expect("parse");
        assert_eq!(gr, GroupResource::new("apps", "deployments"));
        assert_eq!(gr.to_string(), "deployments.apps");
        let core = GroupResource::parse("configmaps").expect("parse");
        assert_eq!(core, GroupResource::core("configmaps"));
        assert_eq!(core.to_string(), "configmaps");
        // Split at the first dot only, like schema.ParseGroupResource.
        let events = GroupResource::parse("events.events.k8s.io").expect("parse");
        assert_eq!(events, GroupResource::new("events.k8s.io", "events"));
        assert_eq!(GroupResource::parse("*.apps").expect("parse"), GroupResource::all_resources_of("apps"));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", ".apps", "apps/deployments", "con figmaps"] {
            let err = GroupResource::parse(bad).expect_err(bad);
            assert!(
                matches!(&err, Error::Invalid { field, value, .. } if field == "groupResource" && value == bad),
                "{err}"
            );
        }
    }
}
