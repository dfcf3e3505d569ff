//! The official JavaScript client (npm `@kubernetes/client-node`) against the example API
//! server: runs `tests/clients/js/client.test.mjs` with node's built-in test runner and the
//! server URL in `APISERVER_URL`.
//!
//! Needs node (18.15+) and the client in a `node_modules` folder named by `CLIENTS_NODE_MODULES`
//! (set by `./scripts/test`, which installs the pinned version with npm under target/clients/node).
//! The tests of the one file run one after another (node:test's default).

mod support;

use std::process::Command;

use support::clients::{run_against, sources, tool};
use support::Server;

#[test]
fn js_client() {
    let node = tool("CLIENTS_NODE", "node", "Install node and npm (Debian: apt-get install nodejs npm)");
    let modules = std::env::var("CLIENTS_NODE_MODULES").unwrap_or_else(|_| {
        panic!(
            "CLIENTS_NODE_MODULES is not set: install the client with \
             `npm install --prefix target/clients/node @kubernetes/client-node@1.4.0` and set \
             CLIENTS_NODE_MODULES=target/clients/node/node_modules (./scripts/test does both)"
        )
    });
    let server = Server::start(&[]);
    let mut command = Command::new(node);
    command.current_dir(sources("js")).arg("--test").arg("--test-reporter=spec").env("CLIENTS_NODE_MODULES", &modules);
    if let Ok(filter) = std::env::var("CLIENTS_TEST_FILTER") {
        command.arg(format!("--test-name-pattern={filter}"));
    }
    command.arg("client.test.mjs");
    run_against(command, &server.url, || server.log_text());
}
