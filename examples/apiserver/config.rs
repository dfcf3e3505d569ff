//! Command-line flags and the optional config file (`--config FILE`, TOML).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//!
//! [storage]            # the default backend of every resource
//! type = "sled"        # any registered backend name: "sled", "memory", a plugin's
//! path = "./apistore-data"
//!
//! [storage_overrides.events]   # per resource (storage prefix): another backend
//! type = "memory"
//!
//! [[custom_resources]]
//! group = "stable.example.com"
//! version = "v1"
//! kind = "CronTab"
//! plural = "crontabs"
//! namespaced = true
//! short_names = ["ct"]
//! ```
//!
//! Flags win over the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use apistore::registry::BackendConfig;
use serde::Deserialize;

/// A custom resource served by the server (like a CRD, without a schema).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CustomResource {
    /// API group, e.g. `stable.example.com`.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `CronTab`.
    pub kind: String,
    /// Plural resource name, e.g. `crontabs`.
    pub plural: String,
    /// Singular name (default: lowercase kind).
    #[serde(default)]
    pub singular: String,
    /// Namespaced (default) or cluster-scoped.
    #[serde(default = "yes")]
    pub namespaced: bool,
    /// kubectl short names.
    #[serde(default)]
    pub short_names: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    pub listen: Option<String>,
    /// Data directory of the sled backend.
    pub data_dir: Option<PathBuf>,
    /// Default backend of every resource.
    pub storage: Option<BackendConfig>,
    /// Per resource (storage prefix, e.g. `configmaps`) backend overrides.
    #[serde(default)]
    pub storage_overrides: BTreeMap<String, BackendConfig>,
    /// Custom resources to serve.
    #[serde(default)]
    pub custom_resources: Vec<CustomResource>,
}

/// The resolved server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Default backend of every resource.
    pub storage: BackendConfig,
    /// Per-resource backend overrides.
    pub storage_overrides: BTreeMap<String, BackendConfig>,
    /// Custom resources to serve.
    pub custom_resources: Vec<CustomResource>,
}

/// Usage text of `--help`.
pub const USAGE: &str = "\
apiserver: a Kubernetes-compatible API server over apistore

USAGE: cargo run --release --example apiserver -- [OPTIONS]

OPTIONS:
  --listen ADDR      listen address (default 127.0.0.1:8080)
  --data-dir DIR     data directory of the sled backend (default ./apistore-data)
  --backend NAME     default storage backend: sled (default), memory, or a linked plugin
  --config FILE      TOML config: storage, per-resource overrides, custom resources
  -h, --help         this text
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this config.
    Serve(Box<ServerConfig>),
    /// Print usage.
    Help,
}

/// Parses the flags (and the config file they name).
///
/// Errors: a message for unknown flags, missing values, unreadable or invalid files.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut listen = None;
    let mut data_dir = None;
    let mut backend = None;
    let mut config_file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => listen = Some(value("--listen")?),
            "--data-dir" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--backend" => backend = Some(value("--backend")?),
            "--config" => config_file = Some(PathBuf::from(value("--config")?)),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let file = match &config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            toml::from_str::<FileConfig>(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen: SocketAddr = listen.parse().map_err(|e| format!("invalid listen address {listen:?}: {e}"))?;
    let data_dir = data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./apistore-data"));
    let mut storage = match (backend, file.storage) {
        (Some(name), _) => BackendConfig::new(&name),
        (None, Some(storage)) => storage,
        (None, None) => BackendConfig::new("sled"),
    };
    fill_sled_path(&mut storage, &data_dir);
    let mut storage_overrides = file.storage_overrides;
    for config in storage_overrides.values_mut() {
        fill_sled_path(config, &data_dir);
    }
    Ok(Command::Serve(Box::new(ServerConfig {
        listen,
        storage,
        storage_overrides,
        custom_resources: file.custom_resources,
    })))
}

/// The sled backend keeps its files in the data directory unless a path is configured.
fn fill_sled_path(config: &mut BackendConfig, data_dir: &std::path::Path) {
    if config.backend == "sled" && !config.options.contains_key("path") {
        config.options.insert("path".to_owned(), data_dir.to_string_lossy().into_owned().into());
    }
}
