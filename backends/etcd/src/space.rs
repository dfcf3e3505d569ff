//! Space of an etcd cluster: each member's db size and bytes in use (`Status`), the
//! cluster's alarms, and defragmentation of fragmented members — one member at a time, never
//! all at once.
//!
//! etcd's compaction frees pages inside bbolt's file but never shrinks it; `Defragment`
//! rewrites one member's file and blocks that member (reads and writes to it wait) while it
//! runs, so members are defragmented strictly in turn, each only once the previous one
//! answers its `Status` again, and only members whose free fraction is large. Afterwards a
//! NOSPACE alarm is disarmed when every member is back below the quota (etcd raises it again
//! on the next write if not: disarming is safe).

use std::time::{Duration, Instant};

use apistore::kv::SpaceStatus;
use apistore::{Error, Result};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType};

use crate::cluster::Cluster;

/// etcd's default `--quota-backend-bytes` (2 GiB), the quota when the option is 0.
pub const ETCD_DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// How long one member's defragmentation may take.
const DEFRAG_TIMEOUT: Duration = Duration::from_secs(300);

/// When to defragment (from [`crate::EtcdOptions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DefragPolicy {
    /// Defragment a member when at least this percent of its db is free; 0 = never.
    pub free_percent: u64,
    /// ... and its db is at least this large.
    pub min_bytes: u64,
    /// The cluster's quota (0 = etcd's default).
    pub quota_bytes: u64,
}

/// One member's db: size and bytes in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpace {
    /// The member's client URL.
    pub endpoint: String,
    /// etcd's member id.
    pub member_id: u64,
    /// `dbSize`: the bbolt file's size.
    pub db_bytes: u64,
    /// `dbSizeInUse`: bytes of it holding data.
    pub in_use_bytes: u64,
}

impl MemberSpace {
    /// The free share of the db, percent.
    pub fn free_percent(&self) -> u64 {
        if self.db_bytes == 0 {
            return 0;
        }
        self.db_bytes.saturating_sub(self.in_use_bytes) * 100 / self.db_bytes
    }
}

/// What one defragmentation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defragmented {
    /// The member before.
    pub before: MemberSpace,
    /// The member after.
    pub after: MemberSpace,
    /// How long the member was blocked.
    pub took: Duration,
}

/// The `Status` of member `index`.
///
/// Errors: the member cannot be reached within the call timeout.
pub(crate) async fn member_space(cluster: &Cluster, index: usize) -> Result<MemberSpace> {
    let timeout = cluster.timeout();
    cluster
        .on_member(index, "status", timeout, |c| {
            let mut maintenance = c.client.maintenance_client();
            async move { maintenance.status().await }
        })
        .await
        .map(|status| MemberSpace {
            endpoint: cluster.endpoints()[index].clone(),
            member_id: status.header().map_or(0, |h| h.member_id()),
            db_bytes: u64::try_from(status.db_size()).unwrap_or(0),
            in_use_bytes: u64::try_from(status.raft_used_db_size()).unwrap_or(0),
        })
}

/// Every reachable member's space (unreachable members are left out).
///
/// Errors: [`Error::Unavailable`] when no member answers.
pub(crate) async fn members(cluster: &Cluster) -> Result<Vec<MemberSpace>> {
    let mut found = Vec::new();
    let mut last = None;
    for index in 0..cluster.endpoints().len() {
        match member_space(cluster, index).await {
            Ok(member) => found.push(member),
            Err(e) => last = Some(e),
        }
    }
    match (found.is_empty(), last) {
        (true, Some(e)) => Err(Error::unavailable(format!("no etcd member answers Status: {e}"))),
        _ => Ok(found),
    }
}

/// The cluster's active alarms: (member id, alarm).
///
/// Errors: the call's errors.
pub(crate) async fn alarms(cluster: &Cluster) -> Result<Vec<(u64, AlarmType)>> {
    let response = cluster
        .call("alarm list", crate::cluster::Idempotence::Read, 0, |c| {
            let mut maintenance = c.client.maintenance_client();
            async move { maintenance.alarm(AlarmAction::Get, AlarmType::None, None).await }
        })
        .await?;
    Ok(response.alarms().iter().map(|a| (a.member_id(), a.alarm())).collect())
}

fn alarm_name(alarm: AlarmType) -> &'static str {
    match alarm {
        AlarmType::Nospace => SpaceStatus::NOSPACE,
        AlarmType::Corrupt => "CORRUPT",
        AlarmType::None => "NONE",
    }
}

/// The cluster's space: the largest member's db (the quota is per member), its bytes in
/// use, the quota and the active alarms.
///
/// Errors: no member answers.
pub(crate) async fn space(cluster: &Cluster, quota_bytes: u64) -> Result<SpaceStatus> {
    let members = members(cluster).await?;
    let largest = members.iter().max_by_key(|m| m.db_bytes);
    let mut alarms: Vec<String> = alarms(cluster).await?.into_iter().map(|(_, a)| alarm_name(a).to_owned()).collect();
    alarms.sort();
    alarms.dedup();
    Ok(SpaceStatus {
        db_bytes: largest.map_or(0, |m| m.db_bytes),
        in_use_bytes: largest.map_or(0, |m| m.in_use_bytes),
        quota_bytes: if quota_bytes == 0 { ETCD_DEFAULT_QUOTA_BYTES } else { quota_bytes },
        alarms,
    })
}

/// Defragments, in turn, every member whose free fraction reached the policy's, waiting for
/// each to answer again before the next; then disarms a NOSPACE alarm when every member is
/// below the quota. Returns what was defragmented.
///
/// Errors: a member's defragmentation failed (the members after it are left alone).
pub(crate) async fn defragment_fragmented(cluster: &Cluster, policy: DefragPolicy) -> Result<Vec<Defragmented>> {
    let mut done = Vec::new();
    if policy.free_percent == 0 {
        return Ok(done);
    }
    for index in 0..cluster.endpoints().len() {
        let Ok(before) = member_space(cluster, index).await else { continue };
        if before.db_bytes < policy.min_bytes || before.free_percent() < policy.free_percent {
            continue;
        }
        let started = Instant::now();
        cluster
            .on_member(index, "defragment", DEFRAG_TIMEOUT, |c| {
                let mut maintenance = c.client.maintenance_client();
                async move { maintenance.defragment().await }
            })
            .await?;
        let took = started.elapsed();
        // The next member only once this one serves again.
        let after = wait_answering(cluster, index).await?;
        tracing::info!(endpoint = %after.endpoint, before = before.db_bytes, after = after.db_bytes, ?took, "etcd: defragmented");
        done.push(Defragmented { before, after, took });
    }
    disarm_if_space_is_back(cluster, policy.quota_bytes).await?;
    Ok(done)
}

async fn wait_answering(cluster: &Cluster, index: usize) -> Result<MemberSpace> {
    let deadline = Instant::now() + DEFRAG_TIMEOUT;
    loop {
        match member_space(cluster, index).await {
            Ok(member) => return Ok(member),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Disarms NOSPACE alarms when every member is below the quota.
async fn disarm_if_space_is_back(cluster: &Cluster, quota_bytes: u64) -> Result<()> {
    let nospace: Vec<u64> =
        alarms(cluster).await?.into_iter().filter(|(_, a)| *a == AlarmType::Nospace).map(|(m, _)| m).collect();
    if nospace.is_empty() {
        return Ok(());
    }
    let quota = if quota_bytes == 0 { ETCD_DEFAULT_QUOTA_BYTES } else { quota_bytes };
    let members = members(cluster).await?;
    if members.len() < cluster.endpoints().len() || members.iter().any(|m| m.db_bytes >= quota) {
        return Ok(());
    }
    for member in nospace {
        cluster
            .call("alarm disarm", crate::cluster::Idempotence::Read, 0, |c| {
                let mut maintenance = c.client.maintenance_client();
                let mut options = AlarmOptions::new();
                options.with_member(member);
                async move { maintenance.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options)).await }
            })
            .await?;
        tracing::info!(member, "etcd: NOSPACE alarm disarmed, space is back");
    }
    Ok(())
}
