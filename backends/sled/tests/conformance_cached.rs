//! The apistore Storage suite through the watch cache over a `Store` on sled
//! (`conformance::cached::...`), plus the cache-only behaviours: every behaviour on a fresh
//! database in its own directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use apistore::kv::KvBackend;
use apistore::testing::BackendFixture;
use apistore_sled::{SledBackend, SledOptions};
use async_trait::async_trait;

struct SledFixture {
    root: PathBuf,
    next: AtomicUsize,
}

#[async_trait]
impl BackendFixture for SledFixture {
    fn name(&self) -> &str {
        "sled"
    }

    async fn new_backend(&self) -> Arc<dyn KvBackend> {
        let dir = self.root.join(format!("db-{}", self.next.fetch_add(1, Ordering::SeqCst)));
        let backend = SledBackend::open(SledOptions::new(dir)).expect("open sled in a fresh directory");
        Arc::new(backend)
    }
}

fn main() -> ExitCode {
    let root = tempfile::tempdir().expect("temporary directory");
    let fixture = SledFixture { root: root.path().to_owned(), next: AtomicUsize::new(0) };
    apistore::testing::run_cached(fixture)
}
