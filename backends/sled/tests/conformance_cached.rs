//! The apistore Storage suite through the watch cache over a `Store` on sled
//! (`conformance::cached::...`), plus the cache-only behaviours: every behaviour on a fresh
//! database in its own directory.

mod fixture;

fn main() -> std::process::ExitCode {
    let root = tempfile::tempdir().expect("temporary directory");
    apistore::testing::run_cached(fixture::SledFixture::new(root.path().to_owned()))
}
