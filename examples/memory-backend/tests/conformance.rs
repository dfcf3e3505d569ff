//! Runs apistore's conformance suite against the in-memory backend. Each behaviour is its own
//! named test: `cargo test -p apistore-memory --test conformance -- --list`.

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
    apistore::testing::run(MemoryFixture)
}
