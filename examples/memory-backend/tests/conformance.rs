//! Runs apistore's conformance suite against the in-memory backend. Each behaviour is its own
//! named test: `cargo test -p apistore-memory --test conformance -- --list`.

mod fixture;

fn main() -> std::process::ExitCode {
    apistore::testing::run(fixture::MemoryFixture)
}
