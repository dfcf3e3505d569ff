//! apistore's Storage suite through the production chain (metrics → watch cache → `Store`)
//! over the in-memory backend (which sends
//! no progress notifications, so the cache's freshness fallbacks are exercised):
//! `cargo test -p apistore-memory --test conformance_cached -- --list`.

mod fixture;

fn main() -> std::process::ExitCode {
    apistore::testing::run_production(fixture::MemoryFixture)
}
