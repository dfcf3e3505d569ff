//! apistore's Storage suite over a chain of transparent layers (tracing, then metrics) on the
//! in-memory backend: what a third-party layer author runs over their own layers
//! (`apistore::testing::run_chain`). The metrics must have seen the suite's calls.

mod fixture;

use apistore::layer::LayerChain;
use apistore::layers::{StorageMetrics, TracingLayer};
use apistore::testing::ChainUnderTest;

fn main() -> std::process::ExitCode {
    let metrics = StorageMetrics::new();
    let chain = LayerChain::new().with(TracingLayer).with(metrics.layer());
    let code = apistore::testing::run_chain(fixture::MemoryFixture, ChainUnderTest::transparent(chain));
    let listing = std::env::args().any(|arg| arg == "--list");
    let filtered = std::env::args().skip(1).any(|arg| !arg.starts_with('-'));
    if !listing && !filtered && metrics.request_count("pods", "create") == 0 {
        eprintln!("the metrics layer of the chain recorded no create: the suite did not run through the chain");
        return std::process::ExitCode::FAILURE;
    }
    code
}
