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

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;

use crate::kv::KvBackend;

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

/// Runs the whole suite against `fixture` as libtest-mimic tests (honours the usual test
/// arguments, e.g. a name filter or `--list`) and returns the process exit code.
pub fn run(fixture: impl BackendFixture) -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let fixture: Arc<dyn BackendFixture> = Arc::new(fixture);
    let trials = behaviours()
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
