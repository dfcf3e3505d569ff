//! Continue tokens, wire-compatible with Kubernetes (`pkg/storage/continue.go`).
//!
//! A token is `base64url_nopad(JSON{"v":"meta.k8s.io/v1","rv":<i64>,"start":"<key>"})` where
//! `start` is the next key to read, relative to the list key. `rv` > 0 pins the next page to
//! that revision; `rv` = -1 means "continue at the latest revision" (handed out with a 410
//! after compaction). Tokens from any apistore storage (or kube-apiserver) are interchangeable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const VERSION: &str = "meta.k8s.io/v1";

#[derive(Serialize, Deserialize)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

/// A decoded continue token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continue {
    /// The absolute key (list key + relative start) to continue from.
    pub start_key: String,
    /// The revision to read at; -1 = latest.
    pub revision: i64,
}

fn invalid(why: &str) -> Error {
    Error::bad_request(format!("invalid continue token: {why}"))
}

/// Decodes `token` relative to `key_prefix` (the list key, ending in `/`).
///
/// Errors: [`Error::BadRequest`] "invalid continue token: ..." for bad base64/JSON, an
/// unknown version, `rv` 0, an empty start, or a start that is not a clean relative path.
pub fn decode(token: &str, key_prefix: &str) -> Result<Continue> {
    let bytes =
        URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| invalid("continue key is not valid"))?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid("continue key is not valid"))?;
    if token.v != VERSION {
        return Err(invalid(&format!("got unrecognized encoding version {:?}", token.v)));
    }
    if token.rv == 0 {
        return Err(invalid(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ));
    }
    if token.start.is_empty() {
        return Err(invalid("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"));
    }
    // The start key must be a clean path: no traversal out of the list key.
    let absolute = format!("/{}", token.start);
    if clean_path(&absolute) != absolute {
        return Err(invalid("continue key is not valid: start key is not a clean path"));
    }
    Ok(Continue { start_key: format!("{key_prefix}{}", token.start), revision: token.rv })
}

/// Encodes a token continuing at `next_key` (absolute, under `key_prefix`) at `revision`.
///
/// Errors: [`Error::Internal`] when `next_key` lacks `key_prefix`.
pub fn encode(next_key: &str, key_prefix: &str, revision: i64) -> Result<String> {
    let start = next_key
        .strip_prefix(key_prefix)
        .ok_or_else(|| Error::internal(format!("continue key {next_key:?} lacks prefix {key_prefix:?}")))?;
    let json = serde_json::to_vec(&Token { v: VERSION.to_owned(), rv: revision, start: start.to_owned() })
        .map_err(Error::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Go's `path.Clean` for absolute paths: collapses `//`, removes `.`, resolves `..`, and drops
/// a trailing slash. Bytes such as `\0` are kept as they are.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wire_format() {
        let token = encode("/registry/pods/ns/b\u{0}", "/registry/pods/", 12).expect("encode");
        let json = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        assert_eq!(std::str::from_utf8(&json).expect("utf8"), r#"{"v":"meta.k8s.io/v1","rv":12,"start":"ns/b\u0000"}"#);
        let decoded = decode(&token, "/registry/pods/").expect("decode");
        assert_eq!(decoded, Continue { start_key: "/registry/pods/ns/b\u{0}".into(), revision: 12 });
    }

    #[test]
    fn tampered_tokens_are_bad_requests() {
        let traversal = URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#);
        let zero_rv = URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"x"}"#);
        let empty = URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":""}"#);
        let version = URL_SAFE_NO_PAD.encode(r#"{"v":"v2","rv":3,"start":"x"}"#);
        for token in ["!!!", "e30", &traversal, &zero_rv, &empty, &version] {
            let err = decode(token, "/registry/pods/").expect_err(token);
            assert_eq!(err.code(), 400, "{token}");
            assert!(err.to_string().starts_with("invalid continue token"), "{err}");
        }
    }
}
