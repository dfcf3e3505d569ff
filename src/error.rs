//! The one error type of apistore, with its Kubernetes reason and HTTP code.
//!
//! Every layer (backends, [`Store`](crate::store::Store), decorators, the factory) returns
//! [`Error`]. Each variant maps to a Kubernetes `Status` reason ([`Error::reason`]) and HTTP
//! code ([`Error::code`]) exactly as `k8s.io/apiserver/pkg/storage/errors` does, so an API
//! server turns it into a `Status` body without a table of its own.

use std::fmt;

/// Result alias used throughout apistore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes `metav1.StatusReason`: the machine-readable reason of a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusReason {
    /// 404: the object does not exist.
    NotFound,
    /// 409: the object exists already (create).
    AlreadyExists,
    /// 409: a write raced with another, or a precondition failed.
    Conflict,
    /// 410: the requested resourceVersion (or continue token) is compacted away.
    Expired,
    /// 400: the request itself is malformed.
    BadRequest,
    /// 422: a field of the request or object is invalid.
    Invalid,
    /// 413: the object or request body is too large.
    RequestEntityTooLarge,
    /// 504: the server could not finish in time (also "too large resource version").
    Timeout,
    /// 503: the backend cannot be reached.
    ServiceUnavailable,
    /// 429: retry later (e.g. a cache is still initializing).
    TooManyRequests,
    /// 500: an internal error (transform failure, corrupt data, bug).
    InternalError,
    /// 500: stored data could not be read (corrupt object).
    StoreReadError,
}

impl StatusReason {
    /// The reason exactly as Kubernetes spells it in `Status.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::NotFound => "NotFound",
            StatusReason::AlreadyExists => "AlreadyExists",
            StatusReason::Conflict => "Conflict",
            StatusReason::Expired => "Expired",
            StatusReason::BadRequest => "BadRequest",
            StatusReason::Invalid => "Invalid",
            StatusReason::RequestEntityTooLarge => "RequestEntityTooLarge",
            StatusReason::Timeout => "Timeout",
            StatusReason::ServiceUnavailable => "ServiceUnavailable",
            StatusReason::TooManyRequests => "TooManyRequests",
            StatusReason::InternalError => "InternalError",
            StatusReason::StoreReadError => "StoreReadError",
        }
    }

    /// The HTTP status code Kubernetes answers with for this reason.
    pub fn code(self) -> u16 {
        match self {
            StatusReason::NotFound => 404,
            StatusReason::AlreadyExists | StatusReason::Conflict => 409,
            StatusReason::Expired => 410,
            StatusReason::BadRequest => 400,
            StatusReason::Invalid => 422,
            StatusReason::RequestEntityTooLarge => 413,
            StatusReason::Timeout => 504,
            StatusReason::ServiceUnavailable => 503,
            StatusReason::TooManyRequests => 429,
            StatusReason::InternalError | StatusReason::StoreReadError => 500,
        }
    }
}

impl fmt::Display for StatusReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure apistore reports.
///
/// Backends produce the "backend" kinds ([`Error::Compacted`], [`Error::FutureRevision`],
/// [`Error::Unavailable`], [`Error::Timeout`], [`Error::Internal`]); the
/// [`Store`](crate::store::Store) adds the Kubernetes storage kinds. Messages follow
/// Kubernetes' wording where clients or tests match on it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist (storage code 1, 404 NotFound).
    #[error("key not found: {key}")]
    NotFound {
        /// The storage key (relative to the store, e.g. `/pods/ns/name`).
        key: String,
    },
    /// A create found the key already present (storage code 2, 409 AlreadyExists).
    #[error("key exists: {key}")]
    AlreadyExists {
        /// The storage key.
        key: String,
    },
    /// An optimistic write lost a race, e.g. a stale resourceVersion on update (409 Conflict).
    #[error("operation cannot be fulfilled on {key}: {message}")]
    Conflict {
        /// The storage key.
        key: String,
        /// What conflicted.
        message: String,
    },
    /// A precondition (UID or resourceVersion) did not hold (storage code 4 "invalid object",
    /// 409 Conflict).
    #[error("invalid object {key}: {message}")]
    InvalidObject {
        /// The storage key.
        key: String,
        /// Which precondition failed.
        message: String,
    },
    /// `metadata.resourceVersion` was set on an object passed to create (400).
    #[error("resourceVersion should not be set on objects to be created")]
    ResourceVersionSetOnCreate,
    /// A read asked for a revision the store has not reached yet (504 Timeout with cause
    /// `ResourceVersionTooLarge`).
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The requested resourceVersion.
        requested: u64,
        /// The store's current revision.
        current: u64,
        /// Suggested retry delay, seconds (0 = none).
        retry_after_seconds: u32,
    },
    /// The requested resourceVersion or continue token is older than the compacted history
    /// (410 Gone, reason Expired). `continue_token`, when set, lets a list resume
    /// inconsistently at the latest revision.
    #[error("{message}")]
    Expired {
        /// Kubernetes' message, e.g. "The resourceVersion for the provided list is too old."
        message: String,
        /// A replacement continue token (rv -1) for an inconsistent continuation.
        continue_token: Option<String>,
    },
    /// Backend level: a read or watch at `requested` is below the compaction point.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The backend's compaction revision.
        compacted: u64,
    },
    /// Backend level: a read at a revision above the current one.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The backend's current revision.
        current: u64,
    },
    /// The request is malformed: bad continue token, bad resourceVersion on a list,
    /// malformed JSON (400 BadRequest).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// A field has an invalid value: an invalid name, a resourceVersion on a watch (422).
    #[error("{field}: Invalid value: {value:?}: {message}")]
    Invalid {
        /// The field path, e.g. `metadata.name`.
        field: String,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        message: String,
    },
    /// The encoded object (or request) exceeds the configured limit (413).
    #[error("object {key} is too large: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The storage key.
        key: String,
        /// Encoded size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A call did not finish in time (storage code 6, 504).
    #[error("request timeout: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// The backend cannot be reached (503). Temporary: safe to retry reads.
    #[error("storage unavailable: {message}")]
    Unavailable {
        /// The underlying cause.
        message: String,
    },
    /// The storage (e.g. a watch cache) is not ready yet (429 with Retry-After).
    #[error("{message}")]
    NotReady {
        /// Kubernetes wording, e.g. "storage is (re)initializing".
        message: String,
        /// Suggested retry delay in seconds.
        retry_after_seconds: u32,
    },
    /// Stored data could not be transformed or decoded (storage code 7, 500).
    #[error("corrupt object at {key}: {message}")]
    Corrupt {
        /// The storage key.
        key: String,
        /// The transform or decode failure.
        message: String,
    },
    /// A guaranteed update's `try_update` chose not to write (a dry run, a rejection the
    /// caller keeps on its side): nothing was written and the update returns this error
    /// unchanged, never retried. Callers map it to their own outcome; it reaches a client
    /// only through a bug (500).
    #[error("update aborted: {message}")]
    Aborted {
        /// Why the caller aborted.
        message: String,
    },
    /// The backend's space quota is exhausted (etcd's NOSPACE alarm, `mvcc: database space
    /// exceeded`): writes that grow the store are refused until space is back; reads, deletes
    /// and compaction go on. 500 InternalError, as kube-apiserver answers etcd's
    /// `ErrGRPCNoSpace` (it is not one of the storage errors it translates, so
    /// `ErrorToAPIStatus` makes it a 500 with etcd's message); not temporary, a retry does not
    /// help until an operator or compaction frees space.
    #[error("etcdserver: mvcc: database space exceeded ({message})")]
    NoSpace {
        /// Sizes and quota, e.g. "db 9000000 bytes, quota 8000000 bytes".
        message: String,
    },
    /// Anything else that is the server's fault (500 InternalError).
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Internal`].
    pub fn internal(message: impl fmt::Display) -> Self {
        Error::Internal { message: message.to_string() }
    }

    /// Shorthand for [`Error::BadRequest`].
    pub fn bad_request(message: impl fmt::Display) -> Self {
        Error::BadRequest { message: message.to_string() }
    }

    /// Shorthand for [`Error::Unavailable`].
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Error::Unavailable { message: message.to_string() }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, value: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), value: value.into(), message: message.into() }
    }

    /// The Kubernetes `Status.reason` of this error.
    pub fn reason(&self) -> StatusReason {
        match self {
            Error::NotFound { .. } => StatusReason::NotFound,
            Error::AlreadyExists { .. } => StatusReason::AlreadyExists,
            Error::Conflict { .. } | Error::InvalidObject { .. } => StatusReason::Conflict,
            Error::ResourceVersionSetOnCreate | Error::BadRequest { .. } => StatusReason::BadRequest,
            Error::TooLargeResourceVersion { .. } | Error::FutureRevision { .. } | Error::Timeout { .. } => {
                StatusReason::Timeout
            }
            Error::Expired { .. } | Error::Compacted { .. } => StatusReason::Expired,
            Error::Invalid { .. } => StatusReason::Invalid,
            Error::TooLarge { .. } => StatusReason::RequestEntityTooLarge,
            Error::Unavailable { .. } => StatusReason::ServiceUnavailable,
            Error::NotReady { .. } => StatusReason::TooManyRequests,
            Error::Corrupt { .. } => StatusReason::StoreReadError,
            Error::Internal { .. } | Error::Aborted { .. } | Error::NoSpace { .. } => StatusReason::InternalError,
        }
    }

    /// The HTTP status code Kubernetes answers with for this error.
    pub fn code(&self) -> u16 {
        self.reason().code()
    }

    /// Seconds a client should wait before retrying, when Kubernetes sends `Retry-After`.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            Error::TooLargeResourceVersion { retry_after_seconds, .. } if *retry_after_seconds > 0 => {
                Some(*retry_after_seconds)
            }
            Error::NotReady { retry_after_seconds, .. } => Some(*retry_after_seconds),
            Error::Unavailable { .. } => Some(1),
            _ => None,
        }
    }

    /// True when retrying the same call may succeed without any change by the caller
    /// (unavailable backend, timeout, not ready, revision not reached yet). A retry layer
    /// retries only these.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Timeout { .. }
                | Error::NotReady { .. }
                | Error::TooLargeResourceVersion { .. }
                | Error::FutureRevision { .. }
        )
    }

    /// `storage.IsNotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// `storage.IsExist`.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// `storage.IsInvalidObj`: a precondition failed.
    pub fn is_invalid_object(&self) -> bool {
        matches!(self, Error::InvalidObject { .. })
    }

    /// `storage.IsConflict` (a lost optimistic-concurrency race).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// `storage.IsTooLargeResourceVersion`.
    pub fn is_too_large_resource_version(&self) -> bool {
        matches!(self, Error::TooLargeResourceVersion { .. } | Error::FutureRevision { .. })
    }

    /// The NOSPACE alarm refused a write ([`Error::NoSpace`]).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }

    /// 410 Gone: `Expired` or a backend `Compacted`.
    pub fn is_expired(&self) -> bool {
        matches!(self, Error::Expired { .. } | Error::Compacted { .. })
    }
}

impl From<serde_json::Error> for Error {
    /// A JSON (de)serialization failure of user input is a bad request.
    fn from(err: serde_json::Error) -> Self {
        Error::bad_request(format!("malformed JSON: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_kubernetes() {
        assert_eq!(Error::NotFound { key: "/pods/a".into() }.code(), 404);
        assert_eq!(Error::AlreadyExists { key: "/pods/a".into() }.code(), 409);
        let precondition = Error::InvalidObject { key: "k".into(), message: "uid".into() };
        assert_eq!(precondition.code(), 409);
        assert_eq!(precondition.reason(), StatusReason::Conflict);
        let too_large = Error::TooLargeResourceVersion { requested: 9, current: 3, retry_after_seconds: 1 };
        assert_eq!((too_large.code(), too_large.reason()), (504, StatusReason::Timeout));
        assert_eq!(too_large.to_string(), "Too large resource version: 9, current: 3");
        assert_eq!(Error::Compacted { requested: 1, compacted: 5 }.code(), 410);
        assert_eq!(Error::bad_request("x").code(), 400);
        assert_eq!(Error::invalid("metadata.name", "a/b", "bad").code(), 422);
        assert!(Error::unavailable("down").is_temporary());
        assert!(!Error::NotFound { key: "k".into() }.is_temporary());
        let no_space = Error::NoSpace { message: "db 9 bytes, quota 8 bytes".into() };
        assert_eq!(
            (no_space.code(), no_space.reason(), no_space.is_temporary()),
            (500, StatusReason::InternalError, false)
        );
        assert!(no_space.to_string().starts_with("etcdserver: mvcc: database space exceeded"));
    }
}
