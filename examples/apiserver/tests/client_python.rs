//! The official Python client (PyPI `kubernetes`) against the example API server: runs
//! `tests/clients/python/test_client.py` (unittest) with the server URL in `APISERVER_URL`.
//!
//! Needs a Python with the client installed: `CLIENTS_PYTHON` (set by `./scripts/test`, which
//! creates a venv with the pinned version), else `python3`. `CLIENTS_TEST_FILTER=<pattern>` runs
//! only the matching test methods (unittest `-k`; node `--test-name-pattern` in client_js.rs).

mod support;

use std::process::Command;

use support::clients::{run_against, sources, tool};
use support::Server;

#[test]
fn python_client() {
    let python = tool(
        "CLIENTS_PYTHON",
        "python3",
        "Create a venv with the client: python3 -m venv target/clients/venv && \
         target/clients/venv/bin/pip install kubernetes==37.0.2",
    );
    let server = Server::start(&[]);
    let mut command = Command::new(python);
    command.current_dir(sources("python")).args(["-m", "unittest", "-v", "test_client"]);
    if let Ok(filter) = std::env::var("CLIENTS_TEST_FILTER") {
        command.args(["-k", &filter]);
    }
    run_against(command, &server.url, || server.log_text());
}
