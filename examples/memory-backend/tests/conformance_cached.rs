//! apistore's Storage suite through the watch cache over the in-memory backend (which sends
//! no progress notifications, so the cache's freshness fallbacks are exercised):
//! `cargo test -p apistore-memory --test conformance_cached -- --list`.

use std::process::ExitCode;
use std::sync::Arc;

use apistore::testing::BackendFixture;
use apistore::KvBackend;
use apistore_memory::MemoryBackend;

/// Hands out a fresh, empty backend per behaviour.
struct MemoryFixture;

#[async_trait::async_trait]
impl BackendFixture for MemoryFixture {
    fn name(&self) -> &str {
        "memory"
    }

    async fn new_backend(&self) -> Arc<dyn KvBackend> {
        Arc::new(MemoryBackend::new())
    }
}

fn main() -> ExitCode {
    apistore::testing::run_cached(MemoryFixture)
}
