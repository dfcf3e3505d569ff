//! The apistore Storage suite through the watch cache over a `Store` on real etcd
//! (`conformance::cached::...`), plus the cache-only behaviours, one etcd process per backend
//! (see `fixture`).

mod fixture;

fn main() -> std::process::ExitCode {
    apistore::testing::run_cached(fixture::EtcdFixture::default())
}
