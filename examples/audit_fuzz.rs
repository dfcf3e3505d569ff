//! Runs the fuzz targets of `apistore::testing::audit::fuzz` (proptest, stable Rust): N inputs
//! per target; exits non-zero with the shrunk input on a panic or an internal error.
//! Two more targets live in the crates they reach into, with N from
//! `APISTORE_FUZZ_ITERATIONS`: request and patch bodies in the API server
//! (`cargo test -p apistore-apiserver --bin apiserver patch_fuzz`) and sled's on-disk records
//! (`cargo test -p apistore-sled --test corruption`).
//!
//! ```text
//! cargo run --release --features testing --example audit_fuzz -- --iterations 100000 [--target config] [--seed 1]
//! ```

use std::process::ExitCode;

use apistore::testing::audit::fuzz::{fuzz, TARGETS};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let iterations: u32 = arg(&args, "--iterations").and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let seed: u64 = arg(&args, "--seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let targets: Vec<String> = match arg(&args, "--target") {
        Some(target) => vec![target],
        None => TARGETS.iter().map(|t| (*t).to_owned()).collect(),
    };
    let mut total = 0u64;
    for target in &targets {
        match fuzz(target, iterations, seed) {
            Ok(stats) => {
                total += stats.inputs;
                println!(
                    "{target}: {} inputs ({} accepted) in {:.1} s, no panic, only typed errors",
                    stats.inputs,
                    stats.accepted,
                    stats.elapsed.as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("total: {total} inputs");
    ExitCode::SUCCESS
}
