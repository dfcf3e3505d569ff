//! The factory over a real etcd (with sled beside it): built with the `etcd` feature, which
//! `./scripts/test` turns on. Without it the test fails and says how to run it.

#[cfg(feature = "etcd")]
#[path = "etcd/factory.rs"]
mod factory;

#[cfg(not(feature = "etcd"))]
#[test]
fn factory_over_etcd_needs_the_etcd_feature() {
    panic!(
        "the etcd tests need the `etcd` feature: run ./scripts/test, or `cargo test --features etcd` \
         after `apt-get install protobuf-compiler etcd-server etcd-client`"
    );
}
