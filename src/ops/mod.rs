//! Day-2 operations on any [`KvBackend`](crate::kv::KvBackend): [`backup`] (online,
//! consistent at one revision, streamed, checksummed per chunk, in the backend-neutral
//! [`format`]), [`restore`] (into an empty backend, verified first), [`migrate`] (to another
//! backend while the source keeps serving) and [`status`].
//!
//! One promise holds across them: after a restore, a client's resourceVersion is either
//! valid with the same meaning or answered with 410 Gone. The restored backend's revisions
//! continue **above** the backup's revision and everything older is compacted (etcd's
//! `snapshot restore --bump-revision --mark-compacted`): the restored keys are written after
//! the revision was raised past the backup's, and the history below them is compacted away.
//! A migration keeps the same promise (see [`migrate`]).

pub mod backup;
pub mod format;
pub mod migrate;
pub mod restore;
pub mod status;

pub use backup::{backup, BackupSummary};
pub use migrate::{MigrateOptions, Migration, MigrationSummary, Verification};
pub use restore::{restore, RestoreSummary};
pub use status::{status, ResourceStatus, StoreStatus};
