//! The apistore Storage suite through the production chain (metrics → watch cache → `Store`) on sled
//! (`conformance::chain::...`), plus the cache-only behaviours: every behaviour on a fresh
//! database in its own directory.

mod fixture;

fn main() -> std::process::ExitCode {
    let root = tempfile::tempdir().expect("temporary directory");
    apistore::testing::run_production(fixture::SledFixture::new(root.path().to_owned()))
}
