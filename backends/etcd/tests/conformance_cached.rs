//! The apistore Storage suite through the production chain (metrics → watch cache → `Store`) on real etcd
//! (`conformance::chain::...`), plus the cache-only behaviours, one etcd process per backend
//! (see `fixture`).

mod fixture;

fn main() -> std::process::ExitCode {
    apistore::testing::run_production(fixture::EtcdFixture::default())
}
