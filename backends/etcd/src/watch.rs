//! Watch: an etcd watch (`prev_kv`, optional progress notify) as a [`kv::WatchStream`].
//!
//! The stream yields events in etcd's order (revision order, exactly once) and ends with one
//! `Err` item whenever the watch cannot go on: the member went away or lost its leader
//! (`Unavailable`), etcd cancelled it because history was compacted (`Compacted`), or an
//! event broke the contract (an update without its previous value after compaction,
//! revisions going backwards). It never ends silently: even a clean end of the gRPC stream
//! is reported as `Unavailable`, so the caller relists.

use std::collections::VecDeque;

use apistore::kv::{self, Revision, WatchEvent};
use apistore::{Error, Result};
use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures::StreamExt;

use crate::backend::Keys;
use crate::cluster::{Cluster, Idempotence};
use crate::errors::classify;

/// Opens a watch and waits for etcd to confirm it (within the call timeout).
///
/// Errors: [`Error::Compacted`] when `start_revision` is below the compaction revision,
/// [`Error::Unavailable`] / [`Error::Timeout`] when no member can serve it.
pub(crate) async fn open(cluster: &Cluster, keys: &Keys, request: kv::WatchRequest) -> Result<kv::WatchStream> {
    let start = keys.wrap(&request.start);
    let end = keys.wrap_end(&request.end);
    let start_revision = i64::try_from(request.start_revision)
        .map_err(|_| Error::FutureRevision { requested: request.start_revision, current: 0 })?;
    let mut options =
        WatchOptions::new().with_range(end.into_bytes()).with_prev_key().with_start_revision(start_revision);
    if request.progress_notify {
        options = options.with_progress_notify();
    }
    let (stream, first, endpoint) = cluster
        .call("watch", Idempotence::Read, request.start_revision, |c| {
            let mut watch = c.watch.clone();
            let start = start.clone();
            let options = options.clone();
            let endpoint = c.endpoint.clone();
            async move {
                let mut stream = watch.watch(start, Some(options)).await?;
                let first = stream.message().await?;
                Ok((stream, first, endpoint))
            }
        })
        .await?;
    let mut state = State {
        stream,
        pending: VecDeque::new(),
        finished: false,
        last_revision: 0,
        requested: request.start_revision,
        progress_notify: request.progress_notify,
        keys: keys.clone(),
        endpoint,
    };
    match first {
        None => return Err(Error::unavailable("etcd closed the watch before confirming it")),
        Some(response) if response.canceled() => return Err(state.cancelled(&response)),
        Some(response) => state.absorb(response),
    }
    let stream = futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    });
    Ok(stream.boxed())
}

struct State {
    stream: etcd_client::WatchStream,
    pending: VecDeque<Result<WatchEvent>>,
    finished: bool,
    last_revision: Revision,
    requested: Revision,
    progress_notify: bool,
    keys: crate::backend::Keys,
    endpoint: String,
}

impl State {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            match self.stream.message().await {
                Ok(Some(response)) if response.canceled() => {
                    let error = self.cancelled(&response);
                    self.fail(error);
                }
                Ok(Some(response)) => self.absorb(response),
                Ok(None) => self.fail(Error::unavailable(format!(
                    "etcd {}: the watch stream ended; relist and watch again",
                    self.endpoint
                ))),
                Err(error) => {
                    let error = classify(error, &self.endpoint, "watch", self.requested).into_error();
                    let error = match error {
                        Error::Compacted { .. } | Error::Unavailable { .. } => error,
                        other => Error::unavailable(format!("watch lost: {other}")),
                    };
                    self.fail(error);
                }
            }
        }
    }

    fn fail(&mut self, error: Error) {
        self.pending.push_back(Err(error));
        self.finished = true;
    }

    fn cancelled(&self, response: &WatchResponse) -> Error {
        if response.compact_revision() > 0 {
            Error::Compacted { requested: self.requested, compacted: to_revision(response.compact_revision()) }
        } else {
            Error::unavailable(format!("etcd {} cancelled the watch: {}", self.endpoint, response.cancel_reason()))
        }
    }

    /// Queues the events (or the progress notification) of one response.
    fn absorb(&mut self, response: WatchResponse) {
        let header_revision = response.header().map(|h| to_revision(h.revision())).unwrap_or(0);
        if response.events().is_empty() {
            if !response.created() && self.progress_notify && header_revision > 0 {
                let revision = header_revision.max(self.last_revision);
                self.pending.push_back(Ok(WatchEvent::Progress { revision }));
            }
            return;
        }
        for event in response.events() {
            match self.convert(event) {
                Ok(converted) => {
                    let revision = converted.revision();
                    if revision < self.last_revision {
                        self.fail(Error::internal(format!(
                            "etcd watch went back in time: revision {revision} after {}",
                            self.last_revision
                        )));
                        return;
                    }
                    self.last_revision = revision;
                    self.pending.push_back(Ok(converted));
                }
                Err(error) => {
                    self.fail(error);
                    return;
                }
            }
        }
    }

    fn convert(&self, event: &etcd_client::Event) -> Result<WatchEvent> {
        let Some(kv) = event.kv() else {
            return Err(Error::internal("etcd sent a watch event without a key"));
        };
        let prev = event.prev_kv().map(|p| self.keys.key_value(p)).transpose()?;
        match event.event_type() {
            EventType::Put => {
                let kv = self.keys.key_value(kv)?;
                if kv.version > 1 && prev.is_none() {
                    return Err(Error::Compacted { requested: kv.mod_revision, compacted: 0 });
                }
                Ok(WatchEvent::Put { kv, prev })
            }
            EventType::Delete => Ok(WatchEvent::Delete {
                key: self.keys.unwrap(kv.key())?,
                revision: to_revision(kv.mod_revision()),
                prev,
            }),
        }
    }
}

/// An etcd revision (never negative in practice) as an apistore revision.
pub(crate) fn to_revision(revision: i64) -> Revision {
    u64::try_from(revision).unwrap_or(0)
}
