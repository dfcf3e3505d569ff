//! The apistore conformance suite (KvBackend and Storage behaviours) against real etcd, one
//! etcd process per backend (see `fixture`).

mod fixture;

fn main() -> std::process::ExitCode {
    apistore::testing::run(fixture::EtcdFixture::default())
}
