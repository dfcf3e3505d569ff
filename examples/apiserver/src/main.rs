//! A Kubernetes-compatible API server over apistore, driven by kubectl.
//!
//! ```text
//! cargo run --release -p apistore-apiserver            # sled under ./apistore-data, :8080
//! kubectl --server http://127.0.0.1:8080 get ns
//! ```
//!
//! ```text
//!  HTTP (axum) ── server: routes, health, metrics, graceful shutdown
//!     │
//!     ├─ discovery: /version /api /apis ... (what kubectl maps kinds with)
//!     └─ handlers: create/get/list/watch/update/patch/delete per resource, and the
//!           │ status and scale (autoscaling/v1 Scale of deployments) subresources
//!           │ patch (merge, JSON, strategic), watch (chunked event stream),
//!           │ table (kubectl's server-side printing), status (kube Status errors)
//!           ▼
//!     resources: the served resource table ── backend: Arc<dyn Storage> per resource
//!                                               (apistore Store over a registry backend)
//! ```
#![forbid(unsafe_code)]

// Link the backend crates so their `inventory` registrations are found: "sled" (default),
// "etcd3" (with the `etcd` feature: its build needs protoc) and the plugin example "memory".
#[cfg(feature = "etcd")]
use apistore_etcd as _;
use apistore_memory as _;
use apistore_sled as _;

mod admin;
mod apiextensions;
mod auth;
mod backend;
mod clock;
mod codec;
mod config;
mod crds;
mod discovery;
#[cfg(feature = "fuzz")]
mod fuzz;
mod gofmt;
mod handlers;
mod list_options;
mod managedfields;
mod metrics;
mod namespaces;
mod negotiation;
mod patch;
mod registry;
mod representations;
mod resources;
mod routing;
mod scale;
mod server;
mod status;
mod table;
#[allow(dead_code)] // wired into the strategies
mod validation;

/// jemalloc as the server's allocator: glibc's malloc took a fifth of the server's CPU in
/// durable creates at 64 connections (much of it consolidating its arenas); with jemalloc a
/// create costs a quarter less CPU, and a cached object less memory (see
/// `benchmarks/README.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    #[cfg(feature = "fuzz")]
    if std::env::args().nth(1).as_deref() == Some("fuzz") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(if fuzz::main(&args) == std::process::ExitCode::SUCCESS { 0 } else { 1 });
    }
    let config = match config::parse_command_line(std::env::args_os()) {
        Ok(config::Command::Serve(config)) => *config,
        Ok(config::Command::Help) => {
            config::print_help();
            return;
        }
        // clap's message on stderr, exit code 2.
        Err(config::ParseError::Usage(e)) => e.exit(),
        Err(config::ParseError::Invalid(message)) => {
            eprintln!("apiserver: {message}");
            std::process::exit(2);
        }
    };
    // Logs (the audit lines of `auth` among them) on stderr; RUST_LOG filters them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    // Explicit registration: the fallback when a linker drops an `inventory` entry.
    apistore_sled::register();
    #[cfg(feature = "etcd")]
    apistore_etcd::register();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("apiserver: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(server::run(config)) {
        eprintln!("apiserver: {message}");
        if !cfg!(feature = "etcd") && message.contains("etcd3") {
            eprintln!(
                "apiserver: this build has no etcd backend; run it with `--features etcd` \
                 (etcd-client's build needs protoc: apt-get install protobuf-compiler)"
            );
        }
        std::process::exit(1);
    }
}
