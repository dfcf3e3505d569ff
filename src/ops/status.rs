//! What a store holds: revision, compaction revision, per resource the object count and the
//! bytes of their values, and the backend's space (bytes on disk vs in use, quota, alarms).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::kv::{KvBackend, RangeRequest, SpaceStatus};

/// Objects and value bytes of one resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceStatus {
    /// Keys.
    pub objects: u64,
    /// Value bytes.
    pub bytes: u64,
}

/// The state of a store under a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// The current revision.
    pub revision: u64,
    /// The compaction revision.
    pub compacted: u64,
    /// Per resource storage prefix (`configmaps`, `stable.example.com/crontabs`).
    pub resources: BTreeMap<String, ResourceStatus>,
    /// The backend's space ([`KvBackend::space`]): bytes on disk, in use, quota, alarms.
    pub space: SpaceStatus,
}

impl StoreStatus {
    /// Objects and bytes of every resource together.
    pub fn total(&self) -> ResourceStatus {
        self.resources.values().fold(ResourceStatus::default(), |a, r| ResourceStatus {
            objects: a.objects + r.objects,
            bytes: a.bytes + r.bytes,
        })
    }
}

/// The resource a key belongs to: its first segment under the prefix, or the first two when
/// the first is an API group (a custom resource: `<group>/<resource>`).
fn resource_of(relative: &str) -> String {
    let mut segments = relative.split('/');
    let first = segments.next().unwrap_or("");
    match segments.next() {
        Some(second) if first.contains('.') => format!("{first}/{second}"),
        _ => first.to_owned(),
    }
}

/// Reads the status of everything under `prefix` at the current revision.
///
/// Errors: backend errors.
pub async fn status(backend: &dyn KvBackend, prefix: &str) -> Result<StoreStatus> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let revision = backend.current_revision().await?;
    let compacted = backend.compacted_revision().await?;
    let space = backend.space().await?;
    let mut status = StoreStatus { revision, compacted, resources: BTreeMap::new(), space };
    let mut request = RangeRequest { limit: 1000, revision, ..RangeRequest::prefix(&prefix) };
    loop {
        let page = backend.range(request.clone()).await?;
        for kv in &page.kvs {
            let entry = status.resources.entry(resource_of(&kv.key[prefix.len()..])).or_default();
            entry.objects += 1;
            entry.bytes += kv.value.len() as u64;
        }
        match page.kvs.last() {
            Some(last) if page.more => request.start = format!("{}\0", last.key),
            _ => break,
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    #[test]
    fn resources_of_keys() {
        assert_eq!(super::resource_of("configmaps/default/a"), "configmaps");
        assert_eq!(super::resource_of("namespaces/default"), "namespaces");
        assert_eq!(super::resource_of("stable.example.com/crontabs/default/x"), "stable.example.com/crontabs");
    }
}
