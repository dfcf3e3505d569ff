//! Runs a client-library test program (Python, JavaScript) against a test server: the program
//! gets the server URL in `APISERVER_URL` and its output is shown when it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The directory of the client test sources (`tests/clients/<language>`).
pub fn sources(language: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("clients").join(language)
}

/// A program from `env_var` (set by `./scripts/test`), else `fallback`; panics with how to get
/// it when it cannot run.
pub fn tool(env_var: &str, fallback: &str, install_hint: &str) -> PathBuf {
    let program = std::env::var(env_var).map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(fallback));
    match Command::new(&program).arg("--version").output() {
        Ok(out) if out.status.success() => program,
        other => panic!(
            "{program:?} ({env_var}) cannot be run ({other:?}). {install_hint} \
             (`./scripts/test` installs it and sets {env_var})."
        ),
    }
}

/// Runs `command` with `APISERVER_URL=url`; panics with its output unless it succeeds.
pub fn run_against(mut command: Command, url: &str, server_log: impl Fn() -> String) {
    let started = Instant::now();
    let shown = format!("{command:?}");
    let out = command.env("APISERVER_URL", url).output().unwrap_or_else(|e| panic!("running {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{shown} took {:.1?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", started.elapsed());
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log (tail)\n{}",
        out.status,
        tail(&server_log(), 60)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
