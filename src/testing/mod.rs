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
//! [`run_chain`] runs the Storage suite over any [`LayerChain`] on the store
//! (`conformance::chain::...`), so a layer author runs it over their own layers;
//! [`run_production`] runs it over the production chain (metrics → watch cache → store, see
//! [`ChainUnderTest::production`]) plus the cache-only behaviours (Kubernetes' `[C]` tests).
//! Where a chain legitimately differs from a store (a watch cache does), behaviours switch their
//! expectation on [`fixtures::Expectations`], each flag naming the Kubernetes behaviour it
//! follows.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;

use crate::cacher::WatchCacheLayer;
use crate::kv::KvBackend;
use crate::layer::LayerChain;
use crate::layers::{production_chain, StorageMetrics};

pub mod audit;
pub mod conformance;
pub mod fixtures;
pub mod kv;
pub mod tmpfs;

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

    /// The chain the Storage suite tests over the store of each backend. Backends keep the
    /// default (none: the [`Store`](crate::store::Store) itself); [`run_chain`] sets one.
    fn chain(&self) -> Option<&ChainUnderTest> {
        None
    }
}

/// The storage the audit builds over a backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageMode {
    /// The [`Store`](crate::store::Store) itself.
    #[default]
    Store,
    /// The watch cache ([`Cacher`](crate::cacher::Cacher)) over the store.
    Cached,
}

/// A chain of layers the Storage suite runs over the store, and how the storage it builds
/// differs from a plain store.
#[derive(Clone, Debug)]
pub struct ChainUnderTest {
    /// The layers, innermost first (applied over the suite's `Store` for `pods`).
    pub layers: LayerChain,
    /// Where the chain's answers legitimately differ from a store's.
    pub expect: fixtures::Expectations,
}

impl ChainUnderTest {
    /// `layers`, expected to answer exactly like a store (e.g. metrics, tracing, retries).
    pub fn transparent(layers: LayerChain) -> Self {
        ChainUnderTest { layers, expect: fixtures::Expectations::default() }
    }

    /// `layers` containing a watch cache: a cache's expectations (Kubernetes' cacher tests).
    pub fn cached(layers: LayerChain) -> Self {
        ChainUnderTest { layers, expect: fixtures::Expectations::for_mode(StorageMode::Cached) }
    }

    /// The production chain: metrics → watch cache → store
    /// ([`production_chain`](crate::layers::production_chain)), the cache with the suite's
    /// bookmark frequency ([`fixtures::suite_cacher_config`]).
    pub fn production() -> Self {
        let cache = WatchCacheLayer::new(fixtures::suite_cacher_config());
        Self::cached(production_chain(cache, &StorageMetrics::new()))
    }
}

/// A fixture whose backends are tested through a chain.
struct ChainFixture {
    fixture: Arc<dyn BackendFixture>,
    chain: ChainUnderTest,
}

#[async_trait]
impl BackendFixture for ChainFixture {
    fn name(&self) -> &str {
        self.fixture.name()
    }

    async fn new_backend(&self) -> Arc<dyn KvBackend> {
        self.fixture.new_backend().await
    }

    fn chain(&self) -> Option<&ChainUnderTest> {
        Some(&self.chain)
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

/// The Storage suite over a chain, named `conformance::chain::...`.
pub fn chain_behaviours() -> Vec<(String, Behaviour)> {
    conformance::behaviours().into_iter().map(|(n, b)| (format!("conformance::chain::{n}"), b)).collect()
}

/// The Storage suite over the production chain, then the cache-only behaviours, named
/// `conformance::chain::...`.
pub fn production_behaviours() -> Vec<(String, Behaviour)> {
    let cache_only =
        conformance::cache_only_behaviours().into_iter().map(|(n, b)| (format!("conformance::chain::{n}"), b));
    chain_behaviours().into_iter().chain(cache_only).collect()
}

/// Runs the whole suite against `fixture` as libtest-mimic tests (honours the usual test
/// arguments, e.g. a name filter or `--list`) and returns the process exit code.
pub fn run(fixture: impl BackendFixture) -> ExitCode {
    run_trials(Arc::new(fixture), behaviours())
}

/// Runs the Storage suite over `chain` on the store built on each of `fixture`'s backends
/// ([`chain_behaviours`]) and returns the process exit code. A layer author's test target:
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     let chain = LayerChain::new().with(MyLayer::default());
///     apistore::testing::run_chain(MyFixture::default(), ChainUnderTest::transparent(chain))
/// }
/// ```
pub fn run_chain(fixture: impl BackendFixture, chain: ChainUnderTest) -> ExitCode {
    run_trials(Arc::new(ChainFixture { fixture: Arc::new(fixture), chain }), chain_behaviours())
}

/// Runs the Storage suite over the production chain ([`ChainUnderTest::production`]) plus the
/// cache-only behaviours ([`production_behaviours`]) and returns the process exit code.
pub fn run_production(fixture: impl BackendFixture) -> ExitCode {
    let chain = ChainUnderTest::production();
    run_trials(Arc::new(ChainFixture { fixture: Arc::new(fixture), chain }), production_behaviours())
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
