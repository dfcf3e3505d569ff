//! Runs the fuzz targets linked into the core crate (`apistore::testing::audit::fuzz`, proptest,
//! stable Rust): N inputs per target; exits non-zero with the shrunk input on a panic or an
//! internal error. Every target of every crate — these, request bodies decoded and patched,
//! bodies and query parameters sent to a running API server, and sled's corrupted data
//! directories — runs through the same runner in `apiserver fuzz`
//! (`cargo run --release -p apistore-apiserver --features fuzz -- fuzz --iterations N`).
//!
//! ```text
//! cargo run --release --features testing --example audit_fuzz -- --iterations 100000 [--target config] [--seed 1] [--list]
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    apistore::testing::audit::fuzz::run_cli(&args)
}
