//! `Cluster`: one etcd client per endpoint, a preferred member, failover and a timeout
//! around every call.
//!
//! etcd-client balances requests over all endpoints and keeps routing a share of them to a
//! dead member (it never evicts it), so a single balanced client makes every n-th call fail
//! after a member dies. Instead, like etcd's Go client, calls go to one *preferred* member;
//! when it cannot be reached the call moves on to the next member and that one becomes
//! preferred. What is retried is decided by [`Failure`]: requests that never reached a server
//! or that a server refused without acting are retried for every call; requests with an
//! unknown outcome only for idempotent reads. Everything, retries included, runs inside the
//! call's timeout.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apistore::{Error, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::errors::{classify, Failure};
use crate::options::EtcdOptions;

/// The largest message a client accepts (etcd's Go client allows `math.MaxInt32`).
const MAX_DECODING_MESSAGE_SIZE: usize = i32::MAX as usize;

/// First and largest pause between retries.
const BACKOFF_START: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Whether a call may be repeated when its outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotence {
    /// A read (or a harmless request such as a lease grant): repeat on any transient error.
    Read,
    /// A write: repeat only when it certainly did not happen.
    Write,
}

/// The gRPC clients of one member.
#[derive(Clone)]
pub(crate) struct Clients {
    /// The member's URL.
    pub(crate) endpoint: String,
    /// The underlying client.
    pub(crate) client: Client,
    /// KV service with the large message limit.
    pub(crate) kv: etcd_client::KvClient,
    /// Watch service with the large message limit.
    pub(crate) watch: etcd_client::WatchClient,
}

struct Member {
    url: String,
    clients: OnceCell<Clients>,
}

/// Every member's client plus the preferred member. Cheap to share behind an `Arc`.
pub(crate) struct Cluster {
    members: Vec<Member>,
    connect: ConnectOptions,
    preferred: AtomicUsize,
    timeout: Duration,
    /// Added to connection failures when TLS is on but no client certificate is set: with
    /// TLS 1.3 a server requiring one just closes the connection after the handshake.
    tls_hint: Option<&'static str>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("endpoints", &self.members.iter().map(|m| m.url.as_str()).collect::<Vec<_>>())
            .field("preferred", &self.preferred.load(Ordering::Relaxed))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Cluster {
    /// Prepares clients for every endpoint of `options` (connections are made lazily, so
    /// this succeeds while etcd is down).
    ///
    /// Errors: [`Error::Invalid`] when a TLS file cannot be read.
    pub(crate) fn new(options: &EtcdOptions) -> Result<Self> {
        let timeout = options.timeout();
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_keep_alive(Duration::from_secs(10), timeout.max(Duration::from_secs(1)))
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&options.username, &options.password) {
            connect = connect.with_user(user.clone(), password.clone()).with_auto_token_refresh(true);
        }
        if options.uses_tls() {
            connect = connect.with_tls(tls_options(options)?);
        }
        let members = options.endpoint_urls().into_iter().map(|url| Member { url, clients: OnceCell::new() }).collect();
        let tls_hint = (options.uses_tls() && options.cert_file.is_none()).then_some(
            "no client certificate is configured: if etcd runs with --client-cert-auth, set cert_file and key_file",
        );
        Ok(Cluster { members, connect, preferred: AtomicUsize::new(0), timeout, tls_hint })
    }

    /// The per-call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Endpoint URLs in configuration order.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    async fn clients(&self, index: usize) -> std::result::Result<&Clients, etcd_client::Error> {
        let member = &self.members[index];
        member
            .clients
            .get_or_try_init(|| async {
                let client = Client::connect([member.url.as_str()], Some(self.connect.clone())).await?;
                Ok::<_, etcd_client::Error>(Clients {
                    endpoint: member.url.clone(),
                    kv: client.kv_client().max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
                    watch: client.watch_client().max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
                    client,
                })
            })
            .await
    }

    /// Runs `op` against the preferred member within the call timeout, failing over and
    /// retrying as described in the module docs. `requested` is the revision the call asks
    /// for (used in compacted / future-revision errors).
    ///
    /// Errors: [`Error::Timeout`] when the timeout passes (naming the last failure),
    /// [`Error::Unavailable`] when no member can be reached, or the mapped etcd error.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        idempotence: Idempotence,
        requested: u64,
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut(&Clients) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let count = self.members.len();
        let mut index = self.preferred.load(Ordering::Relaxed) % count;
        let mut unreachable_in_a_row = 0;
        let mut backoff = BACKOFF_START;
        let mut last: Option<Error> = None;
        loop {
            let url = &self.members[index].url;
            let attempt = async {
                let clients = self.clients(index).await?;
                op(clients).await
            };
            let failure = match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => return Err(self.timed_out(what, last)),
                Ok(Ok(value)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(error)) => self.explain(classify(error, url, what, requested)),
            };
            let next = (index + 1) % count;
            match failure {
                Failure::NotSent(error) => {
                    // Move the preference on unless another call already did.
                    let _ = self.preferred.compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
                    unreachable_in_a_row += 1;
                    last = Some(error);
                    if unreachable_in_a_row >= count {
                        // Every member refused the connection: etcd is down, say so now.
                        let detail = last.map(|e| e.to_string()).unwrap_or_default();
                        return Err(Error::unavailable(format!(
                            "no etcd member of {:?} is reachable: {detail}",
                            self.endpoints()
                        )));
                    }
                    index = next;
                    continue;
                }
                Failure::Refused(error) => {
                    unreachable_in_a_row = 0;
                    last = Some(error);
                }
                Failure::Unknown(error) if idempotence == Idempotence::Read => {
                    unreachable_in_a_row = 0;
                    last = Some(error);
                }
                Failure::Unknown(error) | Failure::Final(error) => return Err(error),
            }
            // Transient: pause, then try the next member.
            let _ = self.preferred.compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
            index = next;
            if Instant::now() + backoff >= deadline {
                return Err(self.timed_out(what, last));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Runs `op` once against member `index` (no failover: maintenance calls such as
    /// `Status` and `Defragment` are about that member), within `timeout`.
    ///
    /// Errors: [`Error::Timeout`] when `timeout` passes, or the mapped etcd error.
    pub(crate) async fn on_member<T, F, Fut>(&self, index: usize, what: &str, timeout: Duration, op: F) -> Result<T>
    where
        F: FnOnce(&Clients) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let url = &self.members[index].url;
        let attempt = async {
            let clients = self.clients(index).await?;
            op(clients).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Err(Error::Timeout { message: format!("etcd {url}: {what} did not finish within {timeout:?}") }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.explain(classify(error, url, what, 0)).into_error()),
        }
    }

    /// Adds the TLS hint to connection failures (see `tls_hint`).
    fn explain(&self, failure: Failure) -> Failure {
        let Some(hint) = self.tls_hint else {
            return failure;
        };
        let add = |error: Error| match error {
            Error::Unavailable { message } if message.contains("transport error") || message.contains("connection") => {
                Error::Unavailable { message: format!("{message} ({hint})") }
            }
            other => other,
        };
        match failure {
            Failure::NotSent(e) => Failure::NotSent(add(e)),
            Failure::Refused(e) => Failure::Refused(add(e)),
            Failure::Unknown(e) => Failure::Unknown(add(e)),
            Failure::Final(e) => Failure::Final(add(e)),
        }
    }

    fn timed_out(&self, what: &str, last: Option<Error>) -> Error {
        let detail = last.map(|e| format!("; last error: {e}")).unwrap_or_default();
        Error::Timeout { message: format!("etcd {what} did not finish within {:?}{detail}", self.timeout) }
    }
}

fn read_pem(path: &std::path::Path, field: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(format!("backend.{}.{field}", crate::BACKEND_NAME), path.display().to_string(), e.to_string())
    })
}

fn tls_options(options: &EtcdOptions) -> Result<TlsOptions> {
    let mut tls = TlsOptions::new();
    if let Some(ca) = &options.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca, "ca_file")?));
    }
    if let (Some(cert), Some(key)) = (&options.cert_file, &options.key_file) {
        tls = tls.identity(Identity::from_pem(read_pem(cert, "cert_file")?, read_pem(key, "key_file")?));
    }
    Ok(tls)
}
