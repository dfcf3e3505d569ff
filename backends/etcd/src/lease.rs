//! `LeaseManager`: etcd leases for TTL'd keys, reused like kube-apiserver's
//! `pkg/storage/etcd3/lease_manager.go` to keep the number of leases (and etcd's lease
//! bookkeeping) low.
//!
//! A lease granted for a TTL is reused for a later TTL'd write when it expires after
//! `now + ttl` and before `now + ttl + reuse` (`reuse = min(5% of ttl, 60 s)`, whole
//! seconds) and fewer than 1000 objects are attached to it; a new lease is granted with
//! `ttl + reuse` seconds. A key therefore lives at least its TTL and at most TTL + reuse.

use std::time::Duration;

use apistore::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cluster::{Cluster, Idempotence};

/// Share of the TTL a lease may outlive it by (kube: `LeaseReuseDurationPercent`).
const REUSE_PERCENT: f64 = 0.05;
/// Upper bound of the reuse window (kube: `ReuseDurationSeconds`).
const REUSE_MAX_SECONDS: u64 = 60;
/// Objects attached to one lease at most (kube: `MaxObjectCount`).
const MAX_OBJECTS_PER_LEASE: u64 = 1000;

#[derive(Debug, Default)]
struct Current {
    id: i64,
    expires: Option<Instant>,
    attached: u64,
}

/// Hands out lease ids for TTLs; one per backend.
#[derive(Debug, Default)]
pub(crate) struct LeaseManager {
    current: Mutex<Current>,
}

/// A TTL in whole seconds, rounded up, at least 1.
pub(crate) fn ttl_seconds(ttl: Duration) -> u64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    secs.max(1)
}

fn reuse_seconds(ttl: u64) -> u64 {
    ((REUSE_PERCENT * ttl as f64) as u64).min(REUSE_MAX_SECONDS)
}

impl LeaseManager {
    /// A lease that expires no earlier than `ttl` from now (reused when possible).
    ///
    /// Errors: the lease grant's errors (unavailable, timeout).
    pub(crate) async fn lease_for(&self, cluster: &Cluster, ttl: Duration) -> Result<i64> {
        let ttl = ttl_seconds(ttl);
        let reuse = reuse_seconds(ttl);
        let mut current = self.current.lock().await;
        let now = Instant::now();
        current.attached += 1;
        if let Some(expires) = current.expires {
            let valid = now + Duration::from_secs(ttl) < expires;
            let sufficient = now + Duration::from_secs(ttl + reuse) > expires;
            if valid && sufficient && current.attached <= MAX_OBJECTS_PER_LEASE {
                return Ok(current.id);
            }
        }
        let granted_ttl = ttl + reuse;
        let ttl_i64 = i64::try_from(granted_ttl).unwrap_or(i64::MAX);
        let response = cluster
            .call("lease grant", Idempotence::Read, 0, |c| {
                let mut lease = c.client.lease_client();
                async move { lease.grant(ttl_i64, None).await }
            })
            .await?;
        current.id = response.id();
        current.expires = Some(now + Duration::from_secs(granted_ttl));
        current.attached = 1;
        Ok(current.id)
    }

    /// Forgets the cached lease (after etcd said it no longer exists).
    pub(crate) async fn forget(&self) {
        *self.current.lock().await = Current::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::from_secs(1)), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn reuse_window_is_five_percent_capped_at_a_minute() {
        assert_eq!(reuse_seconds(1), 0);
        assert_eq!(reuse_seconds(100), 5);
        assert_eq!(reuse_seconds(3600), 60);
        assert_eq!(reuse_seconds(1_000_000), 60);
    }
}
