//! Mapping etcd client errors onto [`apistore::Error`], and deciding what may be retried.
//!
//! | etcd                                                    | apistore                     |
//! |---------------------------------------------------------|------------------------------|
//! | `mvcc: required revision has been compacted`            | [`Error::Compacted`]         |
//! | `mvcc: required revision is a future revision`          | [`Error::FutureRevision`]    |
//! | `request is too large`, `message larger than max`       | [`Error::TooLarge`]          |
//! | gRPC `DeadlineExceeded`, `request timed out`            | [`Error::Timeout`]           |
//! | connection refused / transport errors / `Unavailable`   | [`Error::Unavailable`]       |
//! | authentication / permission failures                    | [`Error::Unavailable`] (clear message; not retried) |
//! | anything else                                           | [`Error::Internal`]          |
//!
//! Retries ([`Failure`]) follow etcd's Go client: a request that certainly never reached
//! the server (connection refused) or that the server refused before doing anything
//! (`no leader`) may be retried on another member even when it is a write; a request whose
//! fate is unknown (connection lost mid-call, `leader changed`, server-side timeout) is
//! retried only when it is an idempotent read.

use apistore::Error;
use tonic::Code;

/// Substring etcd uses for reads/watches below the compaction revision.
const COMPACTED: &str = "required revision has been compacted";
/// Substring etcd uses for reads above the current revision.
const FUTURE: &str = "required revision is a future revision";

/// How a failed attempt may be handled.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request never reached a server (connect failed): retry anywhere, any call.
    NotSent(Error),
    /// The server refused it before acting (no leader, too many requests): retry with
    /// back-off, any call.
    Refused(Error),
    /// The outcome is unknown (connection lost mid-call, leader changed, server timeout):
    /// only idempotent reads may be retried.
    Unknown(Error),
    /// A definite answer (compacted, bad request, permission): never retried.
    Final(Error),
}

impl Failure {
    /// The error to report.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::NotSent(e) | Failure::Refused(e) | Failure::Unknown(e) | Failure::Final(e) => e,
        }
    }
}

/// The full `source()` chain of an error as one string (tonic hides the io error cause).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_connect_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("tcp connect error")
        || lower.contains("connection refused")
        || lower.contains("error trying to connect")
        || lower.contains("dns error")
        || lower.contains("no route to host")
}

/// Classifies a failed call to `endpoint` doing `what`. `requested` is the revision the call
/// asked for (for compacted / future errors; 0 when none).
pub(crate) fn classify(error: etcd_client::Error, endpoint: &str, what: &str, requested: u64) -> Failure {
    match error {
        etcd_client::Error::GRpcStatus(status) => classify_status(&status, endpoint, what, requested),
        etcd_client::Error::TransportError(e) => {
            let text = chain(&e);
            let err = Error::unavailable(format!("etcd {endpoint}: {what}: {text}"));
            if is_connect_failure(&text) {
                Failure::NotSent(err)
            } else {
                Failure::Unknown(err)
            }
        }
        etcd_client::Error::IoError(e) => Failure::Unknown(Error::unavailable(format!("etcd {endpoint}: {what}: {e}"))),
        etcd_client::Error::WatchError(e) => {
            Failure::Unknown(Error::unavailable(format!("etcd {endpoint}: {what}: watch stream failed: {e}")))
        }
        etcd_client::Error::InvalidArgs(e) => {
            Failure::Final(Error::invalid(format!("backend.{}", crate::BACKEND_NAME), endpoint, e))
        }
        etcd_client::Error::InvalidUri(e) => Failure::Final(Error::invalid(
            format!("backend.{}.endpoints", crate::BACKEND_NAME),
            endpoint,
            e.to_string(),
        )),
        other => Failure::Final(Error::internal(format!("etcd {endpoint}: {what}: {other}"))),
    }
}

fn classify_status(status: &tonic::Status, endpoint: &str, what: &str, requested: u64) -> Failure {
    let message = status.message();
    if message.contains(COMPACTED) {
        return Failure::Final(Error::Compacted { requested, compacted: 0 });
    }
    if message.contains(FUTURE) {
        return Failure::Final(Error::FutureRevision { requested, current: 0 });
    }
    let text = chain(status);
    let context = format!("etcd {endpoint}: {what}: {text}");
    match status.code() {
        Code::Unavailable if is_connect_failure(&text) => Failure::NotSent(Error::unavailable(context)),
        Code::Unavailable if message.contains("no leader") || message.contains("too many requests") => {
            Failure::Refused(Error::unavailable(context))
        }
        Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown => {
            if message.contains("request timed out") {
                Failure::Unknown(Error::Timeout { message: context })
            } else {
                Failure::Unknown(Error::unavailable(context))
            }
        }
        // etcd's ErrGRPCNoSpace: the NOSPACE alarm refuses writes that grow the db. Note etcd
        // applies the one write that crossed the quota and still answers it with this error
        // (quotaApplierV3), so like kube-apiserver's callers, treat it as "not acknowledged".
        Code::ResourceExhausted if message.contains("database space exceeded") => {
            Failure::Final(Error::NoSpace { message: context })
        }
        Code::ResourceExhausted if message.contains("larger than max") => {
            Failure::Final(Error::TooLarge { key: what.to_owned(), size: 0, limit: 0 })
        }
        Code::ResourceExhausted if message.contains("too many requests") => {
            Failure::Refused(Error::unavailable(context))
        }
        Code::DeadlineExceeded => Failure::Unknown(Error::Timeout { message: context }),
        Code::InvalidArgument if message.contains("request is too large") => {
            Failure::Final(Error::TooLarge { key: what.to_owned(), size: 0, limit: 0 })
        }
        Code::Unauthenticated | Code::PermissionDenied => Failure::Final(Error::unavailable(format!(
            "{context} (check the etcd username/password and client certificate)"
        ))),
        Code::InvalidArgument if message.contains("authentication failed") || message.contains("user name") => {
            Failure::Final(Error::unavailable(format!("{context} (check the etcd username and password)")))
        }
        _ => Failure::Final(Error::internal(context)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn compacted_and_future_revisions_are_typed() {
        let compacted =
            classify(status(Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted"), "e", "get", 7);
        assert!(matches!(compacted, Failure::Final(Error::Compacted { requested: 7, .. })), "{compacted:?}");
        let future = classify(
            status(Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
            "e",
            "get",
            9,
        );
        assert!(matches!(future, Failure::Final(Error::FutureRevision { requested: 9, .. })), "{future:?}");
    }

    #[test]
    fn availability_errors_are_classified_for_retry() {
        let refused =
            classify(status(Code::Unavailable, "tcp connect error: Connection refused (os error 111)"), "e", "put", 0);
        assert!(matches!(refused, Failure::NotSent(Error::Unavailable { .. })), "{refused:?}");
        let no_leader = classify(status(Code::Unavailable, "etcdserver: no leader"), "e", "put", 0);
        assert!(matches!(no_leader, Failure::Refused(Error::Unavailable { .. })), "{no_leader:?}");
        let changed = classify(status(Code::Unavailable, "etcdserver: leader changed"), "e", "put", 0);
        assert!(matches!(changed, Failure::Unknown(Error::Unavailable { .. })), "{changed:?}");
        let timed_out = classify(status(Code::Unavailable, "etcdserver: request timed out"), "e", "put", 0);
        assert!(matches!(timed_out, Failure::Unknown(Error::Timeout { .. })), "{timed_out:?}");
        let deadline = classify(status(Code::DeadlineExceeded, "context deadline exceeded"), "e", "get", 0);
        assert!(matches!(deadline, Failure::Unknown(Error::Timeout { .. })), "{deadline:?}");
    }

    #[test]
    fn auth_failures_are_final_with_a_hint() {
        let denied =
            classify(status(Code::PermissionDenied, "etcdserver: permission denied"), "e", "get", 0).into_error();
        assert!(matches!(denied, Error::Unavailable { .. }));
        assert!(denied.to_string().contains("permission denied"), "{denied}");
        let other = classify(status(Code::FailedPrecondition, "weird"), "e", "get", 0).into_error();
        assert_eq!(other.code(), 500);
    }
}
