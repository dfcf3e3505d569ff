//! `EtcdBackend`: [`KvBackend`] mapped 1:1 onto etcd's KV, Txn, Watch, Lease and Compact
//! (kube-apiserver's `etcd3` store and `client/v3/kubernetes`).
//!
//! * get / range → `Range(key, range_end, limit, revision[, count_only])`; the response's
//!   header revision is the read revision.
//! * put → `Txn If(ModRevision(key) == expected) Then(Put(key, value[, lease])) Else(Get(key))`
//!   (expected 0 = create); delete → the same with `Delete`.
//! * watch → `Watch(key, range_end, start_revision, prev_kv[, progress_notify])`.
//! * TTL → leases from the [`LeaseManager`](crate::lease), reused like kube-apiserver;
//!   expiries → a keys-only `Range` and `LeaseTimeToLive` of each lease found.
//! * write_batch → one `Txn If(ModRevision(k1) == e1, ...) Then(Put|Delete ...)`: all or
//!   none, at one revision (at most etcd's `--max-txn-ops`, 128 by default, per batch).
//!
//! Revisions are `u64` in apistore and `i64` in etcd; a revision beyond `i64::MAX` cannot
//! exist in etcd and is reported as a future revision. With `key_prefix` set, every key is
//! stored under it and handed back without it.

use std::sync::Arc;
use std::time::Duration;

use apistore::kv::{
    check_batch, prefix_end, validate_range, BatchWrite, Capabilities, Expiry, GetResponse, KeyValue, KvBackend,
    RangeRequest, RangeResponse, Revision, TxnOutcome, WatchRequest, WatchStream,
};
use apistore::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use futures::StreamExt;

use crate::cluster::{Cluster, Idempotence};
use crate::compactor::{self, Compactor, CompactorState};
use crate::lease::LeaseManager;
use crate::options::EtcdOptions;
use crate::watch::{self, to_revision};

/// Timeout of health probes (kube-apiserver: 2 s), capped by the call timeout.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Room left in a request for the key (three times in a txn) and protobuf framing.
const REQUEST_OVERHEAD: usize = 4096;

/// A key nobody writes: probed for the current and the compaction revision.
const PROBE_KEY: &str = "\0apistore/probe";

/// Maps apistore keys into etcd's key space and back (`key_prefix`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// The etcd key of `key`.
    pub(crate) fn wrap(&self, key: &str) -> String {
        let wrapped = format!("{}{key}", self.prefix);
        if wrapped.is_empty() {
            // etcd has no empty key; "\0" is the smallest one.
            "\0".to_owned()
        } else {
            wrapped
        }
    }

    /// The etcd range end of `end` ("" = to the end of this backend's key space).
    pub(crate) fn wrap_end(&self, end: &str) -> String {
        match (end.is_empty(), self.prefix.is_empty()) {
            (false, _) => format!("{}{end}", self.prefix),
            (true, true) => "\0".to_owned(),
            (true, false) => prefix_end(&self.prefix),
        }
    }

    /// The apistore key of an etcd key.
    ///
    /// Errors: [`Error::Internal`] for a key outside the prefix or not UTF-8.
    pub(crate) fn unwrap(&self, key: &[u8]) -> Result<String> {
        let key = std::str::from_utf8(key).map_err(|e| Error::internal(format!("etcd key is not UTF-8: {e}")))?;
        key.strip_prefix(&self.prefix)
            .map(str::to_owned)
            .ok_or_else(|| Error::internal(format!("etcd key {key:?} lies outside the key prefix {:?}", self.prefix)))
    }

    /// An owned etcd key-value as an apistore [`KeyValue`], without copying the value.
    pub(crate) fn owned_key_value(&self, kv: etcd_client::KeyValue) -> Result<KeyValue> {
        let (create_revision, mod_revision, version) =
            (to_revision(kv.create_revision()), to_revision(kv.mod_revision()), to_revision(kv.version()));
        let (key, value) = kv.into_key_value();
        let key = if self.prefix.is_empty() {
            String::from_utf8(key).map_err(|e| Error::internal(format!("etcd key is not UTF-8: {e}")))?
        } else {
            self.unwrap(&key)?
        };
        Ok(KeyValue { key, value: Bytes::from(value), create_revision, mod_revision, version })
    }

    /// An etcd key-value as an apistore [`KeyValue`].
    pub(crate) fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: self.unwrap(kv.key())?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: to_revision(kv.create_revision()),
            mod_revision: to_revision(kv.mod_revision()),
            version: to_revision(kv.version()),
        })
    }
}

/// The etcd v3 backend. Cheap to share behind an `Arc`; safe to call concurrently.
///
/// Created without contacting etcd (clients connect lazily), so it survives etcd being down:
/// calls fail with [`Error::Unavailable`] or [`Error::Timeout`] within their timeout and
/// succeed again once etcd is back, without recreating the backend.
///
/// Its gRPC connections (made on first use) and its compactor run on the tokio runtime that
/// created or first used it; use it from that runtime.
pub struct EtcdBackend {
    cluster: Arc<Cluster>,
    keys: Keys,
    leases: LeaseManager,
    options: EtcdOptions,
    _compactor: Option<Compactor>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoints", &self.options.endpoints)
            .field("key_prefix", &self.keys.prefix)
            .field("timeout_ms", &self.options.timeout_ms)
            .field("compaction_interval_secs", &self.options.compaction_interval_secs)
            .finish()
    }
}

fn to_etcd_revision(revision: Revision) -> Result<i64> {
    i64::try_from(revision).map_err(|_| Error::FutureRevision { requested: revision, current: 0 })
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map(|h| to_revision(h.revision())).unwrap_or(0)
}

impl EtcdBackend {
    /// A backend for `options`; starts the compactor when its interval is not 0. Must be
    /// called inside a tokio runtime.
    ///
    /// Errors: [`Error::Invalid`] for invalid options or unreadable TLS files,
    /// [`Error::Internal`] outside a tokio runtime.
    pub fn new(options: EtcdOptions) -> Result<Self> {
        options.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::internal("EtcdBackend::new must be called inside a tokio runtime"));
        }
        let cluster = Arc::new(Cluster::new(&options)?);
        let compactor = options
            .compaction_interval()
            .map(|interval| Compactor::start(cluster.clone(), interval, options.defrag_policy()));
        Ok(EtcdBackend {
            cluster,
            keys: Keys { prefix: options.key_prefix.clone() },
            leases: LeaseManager::default(),
            options,
            _compactor: compactor,
        })
    }

    /// The options this backend was created with.
    pub fn options(&self) -> &EtcdOptions {
        &self.options
    }

    /// Runs one compactor tick now (what the background compactor does every interval;
    /// useful with `compaction_interval_secs: 0` to drive compaction from outside).
    ///
    /// Errors: the etcd call's errors.
    pub async fn compact_tick(&self, state: CompactorState) -> Result<CompactorState> {
        compactor::tick(&self.cluster, state).await
    }

    /// Defragments, one member at a time, every member whose db is fragmented per the options
    /// (`defrag_free_percent`, `defrag_min_bytes`; what the compactor does after compacting),
    /// then disarms a NOSPACE alarm if every member is below the quota.
    ///
    /// Errors: a member's defragmentation failed (later members are left alone).
    pub async fn defragment_fragmented(&self) -> Result<Vec<crate::Defragmented>> {
        crate::space::defragment_fragmented(&self.cluster, self.options.defrag_policy()).await
    }

    /// Every reachable member's db size and bytes in use.
    ///
    /// Errors: no member answers.
    pub async fn members_space(&self) -> Result<Vec<crate::MemberSpace>> {
        crate::space::members(&self.cluster).await
    }

    /// The etcd-client KV service on the connection this backend's calls use now (the
    /// preferred member's), for requests apistore does not wrap. Keys are etcd's own: the
    /// `key_prefix` is not applied, and calls made through it have no timeout or failover.
    /// The connection is made lazily: while etcd is unreachable, calls through it fail.
    ///
    /// Errors: [`Error::Unavailable`] when no member's client can be set up, [`Error::Timeout`].
    pub async fn kv_client(&self) -> Result<etcd_client::KvClient> {
        self.cluster
            .call("connect", Idempotence::Read, 0, |c| {
                let kv = c.kv.clone();
                async move { Ok(kv) }
            })
            .await
    }

    /// The largest value a put accepts for `key` (etcd's request size limit minus room for
    /// the rest of the transaction).
    fn max_value_size(&self) -> usize {
        self.options.max_request_bytes.saturating_sub(REQUEST_OVERHEAD)
    }

    async fn get_at(&self, etcd_key: String, revision: Revision, count_only: bool) -> Result<etcd_client::GetResponse> {
        let mut options = GetOptions::new().with_revision(to_etcd_revision(revision)?);
        if count_only {
            options = options.with_count_only();
        }
        self.cluster
            .call("get", Idempotence::Read, revision, |c| {
                let mut kv = c.kv.clone();
                let key = etcd_key.clone();
                let options = options.clone();
                async move { kv.get(key, Some(options)).await }
            })
            .await
    }

    /// Fills in the revisions etcd's error messages leave out.
    async fn explain(&self, error: Error) -> Error {
        match error {
            Error::Compacted { requested, compacted: 0 } => {
                let compacted = Box::pin(self.compacted_revision()).await.unwrap_or(0);
                Error::Compacted { requested, compacted }
            }
            Error::FutureRevision { requested, current: 0 } => {
                let current = self.current_revision().await.unwrap_or(0);
                Error::FutureRevision { requested, current }
            }
            other => other,
        }
    }

    async fn txn(&self, what: &str, key: &str, txn: Txn) -> Result<TxnResponse> {
        self.cluster
            .call(what, Idempotence::Write, 0, |c| {
                let mut kv = c.kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(|e| match e {
                Error::TooLarge { .. } => {
                    let limit = self.max_value_size();
                    Error::TooLarge { key: key.to_owned(), size: limit + 1, limit }
                }
                other => other,
            })
    }

    fn outcome(&self, response: TxnResponse) -> Result<TxnOutcome> {
        let revision = header_revision(response.header());
        if response.succeeded() {
            return Ok(TxnOutcome::Succeeded { revision });
        }
        let current = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| self.keys.key_value(kv)).transpose()),
                _ => None,
            })
            .transpose()?
            .flatten();
        Ok(TxnOutcome::Failed { current, revision })
    }

    async fn conditional_put(
        &self,
        etcd_key: &str,
        value: Bytes,
        expected: i64,
        ttl: Option<Duration>,
    ) -> Result<TxnResponse> {
        let lease = match ttl {
            Some(ttl) => self.leases.lease_for(&self.cluster, ttl).await?,
            None => 0,
        };
        let put_options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let txn = Txn::new()
            .when([Compare::mod_revision(etcd_key, CompareOp::Equal, expected)])
            // The store's buffer itself when it is the only owner (no copy before gRPC encoding).
            .and_then([TxnOp::put(etcd_key, Vec::from(value), put_options)])
            .or_else([TxnOp::get(etcd_key, None)]);
        self.txn("put", etcd_key, txn).await
    }

    /// One transaction of every write of a batch (see [`KvBackend::write_batch`]).
    async fn batch_txn(&self, writes: &[BatchWrite]) -> Result<TxnResponse> {
        let mut compares = Vec::with_capacity(writes.len());
        let mut ops = Vec::with_capacity(writes.len());
        let mut bytes = 0;
        for write in writes {
            let etcd_key = self.keys.wrap(&write.key);
            let expected = to_etcd_revision(write.expected_mod_revision)?;
            bytes += 3 * etcd_key.len() + 256 + write.value.as_ref().map_or(0, Bytes::len);
            compares.push(Compare::mod_revision(etcd_key.as_str(), CompareOp::Equal, expected));
            ops.push(match &write.value {
                Some(value) => {
                    let lease = match write.ttl {
                        Some(ttl) => self.leases.lease_for(&self.cluster, ttl).await?,
                        None => 0,
                    };
                    let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                    TxnOp::put(etcd_key.as_str(), Vec::from(value.clone()), options)
                }
                None => TxnOp::delete(etcd_key.as_str(), None),
            });
        }
        let first = writes.first().map_or("", |w| w.key.as_str());
        if bytes > self.options.max_request_bytes {
            let limit = self.options.max_request_bytes;
            return Err(Error::TooLarge { key: first.to_owned(), size: bytes, limit });
        }
        self.txn("batch", first, Txn::new().when(compares).and_then(ops)).await
    }
}

#[async_trait]
impl KvBackend for EtcdBackend {
    fn backend_name(&self) -> &str {
        crate::BACKEND_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            progress_notify: true,
            progress_requests: false,
            ttl: true,
            max_value_size: Some(self.max_value_size()),
        }
    }

    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        let mut response = match self.get_at(self.keys.wrap(key), revision, false).await {
            Ok(response) => response,
            Err(e) => return Err(self.explain(e).await),
        };
        let kv = response.take_kvs().into_iter().next().map(|kv| self.keys.owned_key_value(kv)).transpose()?;
        Ok(GetResponse { kv, revision: header_revision(response.header()) })
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        validate_range(&request.start, &request.end)?;
        let mut options = GetOptions::new()
            .with_range(self.keys.wrap_end(&request.end))
            .with_revision(to_etcd_revision(request.revision)?)
            .with_limit(i64::try_from(request.limit).unwrap_or(i64::MAX));
        if request.count_only {
            options = options.with_count_only();
        }
        let start = self.keys.wrap(&request.start);
        let result = self
            .cluster
            .call("range", Idempotence::Read, request.revision, |c| {
                let mut kv = c.kv.clone();
                let start = start.clone();
                let options = options.clone();
                async move { kv.get(start, Some(options)).await }
            })
            .await;
        let mut response = match result {
            Ok(response) => response,
            Err(e) => return Err(self.explain(e).await),
        };
        let revision = header_revision(response.header());
        let count = to_revision(response.count());
        let more = response.more();
        let kvs =
            response.take_kvs().into_iter().map(|kv| self.keys.owned_key_value(kv)).collect::<Result<Vec<_>>>()?;
        Ok(RangeResponse { kvs, count, more, revision })
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<TxnOutcome> {
        let etcd_key = self.keys.wrap(key);
        let limit = self.max_value_size();
        if value.len() > limit || value.len() + 3 * etcd_key.len() + 256 > self.options.max_request_bytes {
            return Err(Error::TooLarge { key: key.to_owned(), size: value.len(), limit });
        }
        let expected = to_etcd_revision(expected_mod_revision)?;
        // Only a put with a lease may be retried (a lease that expired meanwhile), so only it
        // keeps a second handle to the value.
        let retry_value = ttl.is_some().then(|| value.clone());
        let response = match (self.conditional_put(&etcd_key, value, expected, ttl).await, retry_value) {
            (Err(Error::Internal { message }), Some(value)) if message.contains("lease not found") => {
                // The reused lease expired or was revoked meanwhile: take a new one.
                self.leases.forget().await;
                self.conditional_put(&etcd_key, value, expected, ttl).await?
            }
            (other, _) => other?,
        };
        self.outcome(response)
    }

    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<TxnOutcome> {
        let etcd_key = self.keys.wrap(key);
        if expected_mod_revision == 0 {
            // "mod_revision == 0" means "absent", which a delete can never act on.
            let response = self.get_at(etcd_key, 0, false).await?;
            let current = response.kvs().first().map(|kv| self.keys.key_value(kv)).transpose()?;
            return Ok(TxnOutcome::Failed { current, revision: header_revision(response.header()) });
        }
        let expected = to_etcd_revision(expected_mod_revision)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(etcd_key.as_str(), CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(etcd_key.as_str(), None)])
            .or_else([TxnOp::get(etcd_key.as_str(), None)]);
        let response = self.txn("delete", &etcd_key, txn).await?;
        self.outcome(response)
    }

    async fn expiries(&self, start: &str, end: &str) -> Result<Vec<Expiry>> {
        validate_range(start, end)?;
        let options = GetOptions::new().with_range(self.keys.wrap_end(end)).with_keys_only();
        let start = self.keys.wrap(start);
        let response = self
            .cluster
            .call("range", Idempotence::Read, 0, |c| {
                let mut kv = c.kv.clone();
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        let mut remaining: std::collections::HashMap<i64, Option<Duration>> = std::collections::HashMap::new();
        let mut expiries = Vec::new();
        for kv in response.kvs().iter().filter(|kv| kv.lease() != 0) {
            let lease = kv.lease();
            if let std::collections::hash_map::Entry::Vacant(entry) = remaining.entry(lease) {
                let answer = self
                    .cluster
                    .call("lease time-to-live", Idempotence::Read, 0, |c| {
                        let mut leases = c.client.lease_client();
                        async move { leases.time_to_live(lease, None).await }
                    })
                    .await?;
                // etcd answers -1 for a lease that expired or does not exist.
                entry.insert(u64::try_from(answer.ttl()).ok().map(Duration::from_secs));
            }
            if let Some(Some(left)) = remaining.get(&lease) {
                expiries.push(Expiry {
                    key: self.keys.unwrap(kv.key())?,
                    mod_revision: to_revision(kv.mod_revision()),
                    remaining: *left,
                });
            }
        }
        Ok(expiries)
    }

    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Option<Vec<Revision>>> {
        check_batch(&writes)?;
        if writes.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let response = match self.batch_txn(&writes).await {
            Err(Error::Internal { message }) if message.contains("lease not found") => {
                // A reused lease expired or was revoked meanwhile: take new ones.
                self.leases.forget().await;
                self.batch_txn(&writes).await?
            }
            other => other?,
        };
        if !response.succeeded() {
            return Ok(None);
        }
        Ok(Some(vec![header_revision(response.header()); writes.len()]))
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        validate_range(&request.start, &request.end)?;
        match watch::open(&self.cluster, &self.keys, request).await {
            Ok(stream) => Ok(stream),
            Err(e) => Err(self.explain(e).await),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let response = self.get_at(PROBE_KEY.to_owned(), 0, true).await?;
        Ok(header_revision(response.header()))
    }

    async fn request_progress(&self) -> Result<bool> {
        // etcd answers RequestProgress per gRPC watch stream, and before 3.4.31 / 3.5.13 its
        // notification may overtake events of the same revision (etcd#15220; Debian ships
        // 3.4.23). Watches here get etcd's periodic progress notifications only.
        Ok(false)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let etcd_revision = match to_etcd_revision(revision) {
            Ok(r) => r,
            Err(e) => return Err(self.explain(e).await),
        };
        let result = self
            .cluster
            .call("compact", Idempotence::Read, revision, |c| {
                let mut kv = c.kv.clone();
                async move { kv.compact(etcd_revision, None).await }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // At or below the compaction point: nothing to do.
            Err(Error::Compacted { .. }) => Ok(()),
            Err(e) => Err(self.explain(e).await),
        }
    }

    async fn space(&self) -> Result<apistore::kv::SpaceStatus> {
        crate::space::space(&self.cluster, self.options.quota_backend_bytes).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        // Cheap check first: if revision 1 is still readable, nothing was compacted.
        match self.get_at(PROBE_KEY.to_owned(), 1, true).await {
            Ok(_) | Err(Error::FutureRevision { .. }) => return Ok(0),
            Err(Error::Compacted { .. }) => {}
            Err(e) => return Err(e),
        }
        // etcd tells a watch below the compaction point where that point is.
        let probe = WatchRequest {
            start: PROBE_KEY.to_owned(),
            end: format!("{PROBE_KEY}\0"),
            start_revision: 1,
            progress_notify: false,
        };
        let raw = Keys::default();
        let mut stream = match watch::open(&self.cluster, &raw, probe).await {
            Ok(stream) => stream,
            Err(Error::Compacted { compacted, .. }) => return Ok(compacted),
            Err(e) => return Err(e),
        };
        match tokio::time::timeout(self.cluster.timeout(), stream.next()).await {
            Ok(Some(Err(Error::Compacted { compacted, .. }))) => Ok(compacted),
            Ok(Some(Err(e))) => Err(e),
            Ok(other) => Err(Error::internal(format!(
                "etcd did not report its compaction revision to a watch from revision 1 (got {other:?})"
            ))),
            Err(_) => Err(Error::Timeout { message: "etcd did not report its compaction revision in time".to_owned() }),
        }
    }

    async fn health(&self) -> Result<()> {
        let timeout = HEALTH_TIMEOUT.min(self.cluster.timeout());
        let probe = self.get_at(self.keys.wrap("/health"), 0, true);
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout { message: format!("etcd health probe did not finish within {timeout:?}") }),
        }
    }
}
