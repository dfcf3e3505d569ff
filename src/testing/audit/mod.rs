//! The correctness audit (feature `testing`): concurrent clients drive a backend through
//! [`Storage`]; every call and watch event is recorded with its invocation and response
//! times; the history is then checked for
//!
//! * **linearizability** per key (P-compositionality) with a memoised Wing–Gong search
//!   ([`linearize`]), bounded in time, where a call that failed without a definite answer
//!   "may or may not have happened";
//! * **revision invariants**: one write per revision, revisions in real-time order,
//!   consistent lists fresh, every list equal to the writes replayed up to its revision,
//!   reads at a resourceVersion not older than asked;
//! * **the six watch guarantees** of etcd's API: ordered, unique, reliable, atomic,
//!   resumable, bookmarkable.
//!
//! Violations come back named ([`ViolationKind`]) and explained in words, with the smallest
//! sub-history found. Like etcd's robustness tests (`tests/robustness/`: `validate/`,
//! `model/`) and porcupine, applied to any [`KvBackend`]:
//!
//! ```ignore
//! let report = apistore::testing::audit::audit_backend(backend, StorageMode::Store, Workload::default(), &CheckOptions::default()).await;
//! report.assert_ok();
//! ```
//!
//! [`FaultyBackend`] breaks each property on purpose; apistore's own tests show every
//! fault is caught.

use std::sync::Arc;
use std::time::Duration;

use crate::cacher::Cacher;
use crate::kv::KvBackend;
use crate::storage::Storage;
use crate::store::{Store, StoreConfig};

use super::fixtures::{suite_cacher_config, RESOURCE};
use super::StorageMode;

pub mod checks;
pub mod driver;
pub mod faulty;
pub mod fuzz;
pub mod history;
pub mod kv_driver;
pub mod linearize;
pub mod model;
pub mod report;
pub mod storage_driver;

pub use checks::{check, CheckOptions};
pub use driver::{parse_line, Recorder, Sink, StdoutSink, Workload};
pub use faulty::{Fault, FaultyBackend};
pub use history::{History, Record};
pub use kv_driver::{drive_kv, kv_prefix};
pub use model::check_model;
pub use report::{Report, Violation, ViolationKind};
pub use storage_driver::drive;

/// The storage the audit drives over `backend`: the store, or the watch cache over it
/// (ready, or after 10 s).
pub async fn storage_over(backend: Arc<dyn KvBackend>, mode: StorageMode) -> Arc<dyn Storage> {
    let store = match Store::new(backend, StoreConfig::new(RESOURCE)) {
        Ok(store) => store,
        Err(e) => panic!("Store::new failed: {e}"),
    };
    match mode {
        StorageMode::Store => Arc::new(store),
        StorageMode::Cached => {
            let cacher = match Cacher::new(Arc::new(store), suite_cacher_config()) {
                Ok(cacher) => Arc::new(cacher),
                Err(e) => panic!("Cacher::new failed: {e}"),
            };
            let _ = cacher.wait_until_ready(Duration::from_secs(10)).await;
            cacher
        }
    }
}

/// Records `workload` against `storage` and checks the history.
pub async fn audit(storage: Arc<dyn Storage>, workload: &Workload, options: &CheckOptions) -> (History, Report) {
    let recorder = Arc::new(Recorder::default());
    drive(storage, workload, recorder.clone()).await;
    let history = recorder.history();
    let report = check(&history, options);
    (history, report)
}

/// [`audit`] over `backend` through the store or the watch cache.
pub async fn audit_backend(
    backend: Arc<dyn KvBackend>,
    mode: StorageMode,
    workload: &Workload,
    options: &CheckOptions,
) -> Report {
    let storage = storage_over(backend, mode).await;
    audit(storage, workload, options).await.1
}

/// Records `workload` directly against `backend` (the [`KvBackend`]-level workload of
/// [`kv_driver`]) and checks the history with the same checkers.
pub async fn audit_kv(backend: Arc<dyn KvBackend>, workload: &Workload, options: &CheckOptions) -> Report {
    let recorder = Arc::new(Recorder::default());
    drive_kv(backend, workload, recorder.clone()).await;
    check(&recorder.history(), options)
}

#[cfg(test)]
mod tests;
