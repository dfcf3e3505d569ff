//! The factory over a real etcd (with sled beside it): built with the `etcd` feature
//! (`required-features`), which `./scripts/test` turns on.

#[path = "etcd/factory.rs"]
mod factory;
