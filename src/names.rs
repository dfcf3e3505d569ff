//! Name validation and storage keys.
//!
//! Storage keys are `/<resource prefix>/<namespace>/<name>` (namespaced) or
//! `/<resource prefix>/<name>` (cluster-scoped), relative to the store; the backend key adds
//! the storage prefix (`/registry`). A name or namespace must be a valid path segment before
//! it reaches a key: no `/`, no `%`, not `.` or `..`, not empty (Kubernetes
//! `IsPathSegmentName`). Resources that need stricter names also check
//! [`is_dns1123_subdomain`].

use crate::error::{Error, Result};

/// Largest length of a DNS-1123 subdomain (and so of most object names).
pub const MAX_NAME_LENGTH: usize = 253;

/// Kubernetes `IsPathSegmentName`: the name can be one segment of a key.
///
/// Errors: [`Error::Invalid`] on `field` saying why.
pub fn validate_path_segment(field: &str, name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("must not be empty")
    } else if name == "." || name == ".." {
        Some("may not be '.' or '..'")
    } else if name.contains('/') {
        Some("may not contain '/'")
    } else if name.contains('%') {
        Some("may not contain '%'")
    } else if name.len() > MAX_NAME_LENGTH {
        Some("must be no more than 253 characters")
    } else if name.chars().any(|c| c.is_control()) {
        Some("may not contain control characters")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::invalid(field, name, why)),
        None => Ok(()),
    }
}

/// True when `s` is a DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, starting and
/// ending alphanumeric, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LENGTH
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// True when `s` is a DNS-1123 label (namespace names): like a subdomain without dots, at
/// most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns1123_subdomain(s)
}

/// The key of an object: `/<resource_prefix>/<namespace>/<name>`, or
/// `/<resource_prefix>/<name>` when `namespace` is empty.
///
/// `resource_prefix` may be given with or without slashes (`pods`, `/pods`, `/pods/`).
/// Errors: [`Error::Invalid`] when the name or namespace is not a valid path segment.
pub fn object_key(resource_prefix: &str, namespace: &str, name: &str) -> Result<String> {
    validate_path_segment("metadata.name", name)?;
    let prefix = resource_prefix.trim_matches('/');
    if namespace.is_empty() {
        Ok(format!("/{prefix}/{name}"))
    } else {
        validate_path_segment("metadata.namespace", namespace)?;
        Ok(format!("/{prefix}/{namespace}/{name}"))
    }
}

/// The key a list or watch of a resource uses: `/<resource_prefix>/` or
/// `/<resource_prefix>/<namespace>/`.
///
/// Errors: [`Error::Invalid`] when the namespace is not a valid path segment.
pub fn list_key(resource_prefix: &str, namespace: &str) -> Result<String> {
    let prefix = resource_prefix.trim_matches('/');
    if namespace.is_empty() {
        Ok(format!("/{prefix}/"))
    } else {
        validate_path_segment("metadata.namespace", namespace)?;
        Ok(format!("/{prefix}/{namespace}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names() {
        assert_eq!(object_key("pods", "ns", "a").as_deref(), Ok("/pods/ns/a"));
        assert_eq!(object_key("/nodes/", "", "n").as_deref(), Ok("/nodes/n"));
        assert_eq!(list_key("pods", "ns").as_deref(), Ok("/pods/ns/"));
        for bad in ["", ".", "..", "a/b", "a%2f", "x\u{0}"] {
            let err = object_key("pods", "ns", bad).expect_err(bad);
            assert_eq!(err.code(), 422, "{bad}");
        }
        assert!(object_key("pods", "../x", "a").is_err());
        assert!(is_dns1123_subdomain("my-app.example"));
        assert!(!is_dns1123_subdomain("My_App"));
        assert!(is_dns1123_label("default"));
        assert!(!is_dns1123_label("a.b"));
    }
}
