//! A Kubernetes-compatible API server over apistore, driven by kubectl.
//!
//! ```text
//! cargo run --release --example apiserver            # sled under ./apistore-data, :8080
//! kubectl --server http://127.0.0.1:8080 get ns
//! ```
//!
//! ```text
//!  HTTP (axum) ── server: routes, health, metrics, graceful shutdown
//!     │
//!     ├─ discovery: /version /api /apis ... (what kubectl maps kinds with)
//!     └─ handlers: create/get/list/watch/update/patch/delete per resource
//!           │ patch (merge, JSON, strategic), watch (chunked event stream),
//!           │ table (kubectl's server-side printing), status (kube Status errors)
//!           ▼
//!     resources: the served resource table ── backend: Arc<dyn Storage> per resource
//!                                               (apistore Store over a registry backend)
//! ```
#![forbid(unsafe_code)]

mod backend;
mod clock;
mod config;
mod devmem;
mod discovery;
mod handlers;
mod metrics;
mod patch;
mod resources;
mod server;
mod status;
mod table;
mod watch;

fn main() {
    let command = match config::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("apiserver: {message}");
            std::process::exit(2);
        }
    };
    let config = match command {
        config::Command::Help => {
            print!("{}", config::USAGE);
            return;
        }
        config::Command::Serve(config) => *config,
    };
    devmem::register_if_missing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("apiserver: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(server::run(config)) {
        eprintln!("apiserver: {message}");
        std::process::exit(1);
    }
}
