//! The apistore conformance suite (KvBackend and Storage behaviours) against sled: every
//! behaviour is its own named test, on a fresh database in its own directory (under one
//! temporary directory removed when the run ends).

mod fixture;

fn main() -> std::process::ExitCode {
    let root = tempfile::tempdir().expect("temporary directory");
    apistore::testing::run(fixture::SledFixture::new(root.path().to_owned()))
}
