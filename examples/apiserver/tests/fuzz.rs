//! The fuzz runner in CI: `apiserver fuzz --iterations 64` runs 64 inputs of every target
//! linked into the server binary (apistore's parsers, request bodies decoded and patched,
//! requests sent to a running server, sled's corrupted data directories) and must report no
//! failure. The large run is the README's (`--iterations` in the millions, release build).

use std::process::Command;

const N: &str = "64";

fn runner(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_apiserver"))
        .arg("fuzz")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running apiserver fuzz");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

fn listed() -> Vec<String> {
    let (ok, stdout, stderr) = runner(&["--list"]);
    assert!(ok, "--list failed: {stderr}");
    stdout.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
}

#[test]
fn every_target_of_every_crate_is_registered() {
    let names = listed();
    let server_targets = ["object_body", "patch_body", "http_body", "sled_files", "sled_records", "sled_ceiling"];
    for target in apistore::testing::audit::fuzz::TARGETS.iter().chain(&server_targets) {
        assert!(names.iter().any(|n| n == target), "{target} is not registered: {names:?}");
    }
}

#[test]
fn every_target_runs_n_inputs_without_a_finding() {
    let names = listed();
    let (ok, stdout, stderr) = runner(&["--iterations", N, "--seed", "12"]);
    assert!(ok, "the fuzz runner found something:\n{stdout}\n{stderr}");
    for name in &names {
        let line = format!("{name}: {N} inputs (");
        assert!(stdout.contains(&line), "no line {line:?} in:\n{stdout}");
    }
    let total = format!("total: {} inputs over {} targets, 0 failed", 64 * names.len(), names.len());
    assert!(stdout.contains(&total), "no {total:?} in:\n{stdout}");
}

#[test]
fn an_unknown_target_fails_the_run() {
    let (ok, _, stderr) = runner(&["--iterations", "1", "--target", "config,no_such_target"]);
    assert!(!ok, "an unknown target must fail the run");
    assert!(stderr.contains("unknown fuzz target \"no_such_target\""), "{stderr}");
}
