//! The conformance suite: one behaviour suite every backend runs (feature `testing`).
//!
//! Like Kubernetes' `pkg/storage/testing` and OpenDAL's behaviour tests. A backend crate
//! provides a [`BackendFixture`] (fresh, isolated backends on demand) and calls [`run`] from
//! a test target with `harness = false`:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     apistore::testing::run(MyFixture::default())
//! }
//! ```
//!
//! Every behaviour is its own named test (`conformance::kv::...`,
//! `conformance::storage::...`), so `cargo test -p my-backend conformance` lists them and a
//! failure names the behaviour.
//!
//! [`run_cached`] runs the Storage suite again with the watch cache
//! ([`Cacher`](crate::cacher::Cacher)) over the store (`conformance::cached::...`), plus the
//! cache-only behaviours (Kubernetes' `[C]` tests). Where the cache legitimately differs from a
//! store, behaviours switch their expectation on [`fixtures::Expectations`], each flag naming
//! the Kubernetes behaviour it follows.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;

use crate::kv::KvBackend;

pub mod audit;
pub mod conformance;
pub mod fixtures;
pub mod kv;

/// Provides backends for the suite. Each call to [`BackendFixture::new_backend`] must return
/// a backend isolated from every other one handed out (a new directory, a new key prefix on
/// a shared etcd, ...), starting with an empty key space under the prefixes the suite uses.
///
/// The `Storage` suite stores pods under `/registry/pods/`, bumps the global revision with
/// writes under `/unrelated/`, compacts through [`KvBackend::compact`] and expects TTLs to be
/// honoured. Its watch behaviours assume that revisions of a fresh backend are not compacted.
#[async_trait]
pub trait BackendFixture: Send + Sync + 'static {
    /// A short name for test output, e.g. `"sled"`.
    fn name(&self) -> &str;

    /// A fresh, isolated backend.
    async fn new_backend(&self) -> Arc<dyn KvBackend>;

    /// What the Storage suite tests over each backend. Backends keep the default (the
    /// [`Store`](crate::store::Store)); [`run_cached`] selects [`StorageMode::Cached`].
    fn storage_mode(&self) -> StorageMode {
        StorageMode::Store
    }
}

/// The storage the Storage suite builds over each backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageMode {
    /// The [`Store`](crate::store::Store) itself.
    #[default]
    Store,
    /// The watch cache ([`Cacher`](crate::cacher::Cacher)) over the store.
    Cached,
}

/// A fixture whose backends are tested through the watch cache.
struct CachedFixture(Arc<dyn BackendFixture>);

#[async_trait]
impl BackendFixture for CachedFixture {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn new_backend(&self) -> Arc<dyn KvBackend> {
        self.0.new_backend().await
    }

    fn storage_mode(&self) -> StorageMode {
        StorageMode::Cached
    }
}

/// A named behaviour test: an async function over a fixture.
pub type Behaviour = fn(Arc<dyn BackendFixture>) -> futures::future::BoxFuture<'static, ()>;

/// Runs `future` to completion on a fresh multi-threaded tokio runtime (one per test, so
/// tests are independent).
pub fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => panic!("cannot start a tokio runtime for the conformance suite: {e}"),
    }
}

/// Every behaviour of the suite as `(name, test)`: the KvBackend suite, then the Storage suite.
pub fn behaviours() -> Vec<(String, Behaviour)> {
    let mut all: Vec<(String, Behaviour)> = Vec::new();
    all.extend(kv::behaviours().into_iter().map(|(n, b)| (format!("conformance::kv::{n}"), b)));
    all.extend(conformance::behaviours().into_iter().map(|(n, b)| (format!("conformance::storage::{n}"), b)));
    all
}

/// The Storage suite through the watch cache, then the cache-only behaviours, named
/// `conformance::cached::...`.
pub fn cached_behaviours() -> Vec<(String, Behaviour)> {
    conformance::behaviours()
        .into_iter()
        .chain(conformance::cache_only_behaviours())
        .map(|(n, b)| (format!("conformance::cached::{n}"), b))
        .collect()
}

/// Runs the whole suite against `fixture` as libtest-mimic tests (honours the usual test
/// arguments, e.g. a name filter or `--list`) and returns the process exit code.
pub fn run(fixture: impl BackendFixture) -> ExitCode {
    run_trials(Arc::new(fixture), behaviours())
}

/// Runs the Storage suite with the watch cache over the store built on `fixture`'s backends
/// ([`cached_behaviours`]) and returns the process exit code.
pub fn run_cached(fixture: impl BackendFixture) -> ExitCode {
    run_trials(Arc::new(CachedFixture(Arc::new(fixture))), cached_behaviours())
}

fn run_trials(fixture: Arc<dyn BackendFixture>, behaviours: Vec<(String, Behaviour)>) -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = behaviours
        .into_iter()
        .map(|(name, behaviour)| {
            let fixture = fixture.clone();
            libtest_mimic::Trial::test(name, move || {
                block_on(behaviour(fixture));
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
