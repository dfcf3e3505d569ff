//! `apiserver fuzz` (feature `fuzz`): the fuzz runner of every target linked into this
//! binary — apistore's parsers (`apistore::testing::audit::fuzz`), request bodies decoded and
//! patched (`handlers::patch_fuzz`), requests sent to a running server ([`http`]) and sled's
//! corrupted data directories ([`sled_dirs`]) — N inputs per target:
//!
//! ```text
//! apiserver fuzz [--iterations N] [--seed S] [--target NAME[,NAME]...] [--list]
//! ```

mod http;
mod sled_dirs;

/// Runs the fuzz runner on `args` (the words after `fuzz`).
pub fn main(args: &[String]) -> std::process::ExitCode {
    apistore::testing::audit::fuzz::run_cli(args)
}
