//! Command-line flags and the optional config file (`--config FILE`, TOML).
//!
//! The `[storage]` table is apistore's storage [`Config`] — the same document
//! `examples/factory.toml` uses (`--storage-config FILE` reads such a file on its own, in
//! TOML, YAML or JSON): the default backend, the key prefix, per-resource overrides
//! (backend, prefix, media type), encryption at rest, watch cache settings.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//!
//! [storage.backend]             # the default backend of every resource
//! type = "sled"                 # any registered name: "sled", "etcd3", "memory", a plugin's
//! path = "./apistore-data"
//!
//! [storage.resources."events"]  # events (both APIs: they cohabit) on another backend
//! backend = { type = "memory" }
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
//! Flags win over the file; kube-apiserver's storage flags (`--etcd-servers`,
//! `--etcd-servers-overrides`, `--storage-backend`, `--etcd-prefix`, `--storage-media-type`,
//! `--encryption-provider-config`, `--watch-cache`, `--watch-cache-sizes`) apply on top.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use apistore::config::Config;
use apistore::factory::StorageOptions;
use apistore::registry::BackendConfig;
use serde::Deserialize;

/// A custom resource served by the server (like a CRD, without a schema).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
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
    /// Data directory of sled backends that name no path.
    pub data_dir: Option<PathBuf>,
    /// apistore's storage config.
    pub storage: Option<Config>,
    /// Custom resources to serve.
    #[serde(default)]
    pub custom_resources: Vec<CustomResource>,
}

/// The resolved server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Storage options (config plus kube storage flags), validated.
    pub storage: StorageOptions,
    /// Custom resources to serve.
    pub custom_resources: Vec<CustomResource>,
}

/// Usage text of `--help`.
pub const USAGE: &str = "\
apiserver: a Kubernetes-compatible API server over apistore

USAGE: cargo run --release --example apiserver -- [OPTIONS]

OPTIONS:
  --listen ADDR            listen address (default 127.0.0.1:8080)
  --data-dir DIR           data directory of the sled backend (default ./apistore-data)
  --backend NAME           default storage backend: sled (default), etcd3, memory, or a linked plugin
  --config FILE            server config (TOML): listen, [storage] (apistore Config), custom resources
  --storage-config FILE    apistore storage Config alone (TOML, YAML or JSON), as examples/factory.toml
  --etcd-servers URLS      kube-apiserver storage flags: --etcd-servers, --etcd-servers-overrides,
                           --storage-backend, --etcd-prefix, --storage-media-type,
                           --encryption-provider-config, --watch-cache, --watch-cache-sizes
  -h, --help               this text
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this config.
    Serve(Box<ServerConfig>),
    /// Print usage.
    Help,
}

/// kube-apiserver storage flags passed to [`StorageOptions::apply_flag`].
const STORAGE_FLAGS: &[&str] = &[
    "--etcd-servers",
    "--etcd-servers-overrides",
    "--storage-backend",
    "--etcd-prefix",
    "--storage-media-type",
    "--encryption-provider-config",
    "--watch-cache",
    "--watch-cache-sizes",
];

/// Parses the flags (and the config files they name).
///
/// Errors: a message for unknown flags, missing values, unreadable or invalid files.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut listen = None;
    let mut data_dir = None;
    let mut backend = None;
    let mut config_file = None;
    let mut storage_file = None;
    let mut storage_flags = Vec::new();
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
            "--storage-config" => storage_file = Some(PathBuf::from(value("--storage-config")?)),
            f if STORAGE_FLAGS.contains(&f) => storage_flags.push((f.to_owned(), value(f)?)),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let file = match &config_file {
        Some(path) => read_server_config(path)?,
        None => FileConfig::default(),
    };
    let listen = listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen: SocketAddr = listen.parse().map_err(|e| format!("invalid listen address {listen:?}: {e}"))?;
    let explicit_data_dir = data_dir.is_some() || file.data_dir.is_some();
    let data_dir = data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./apistore-data"));
    let mut storage = match (storage_file, file.storage) {
        (Some(path), _) => StorageOptions::load(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        (None, Some(config)) => StorageOptions::new(config),
        (None, None) => StorageOptions::default(),
    };
    if let Some(name) = backend {
        storage.config.backend = BackendConfig::new(&name);
    }
    for (flag, value) in storage_flags {
        storage.apply_flag(&flag, &value).map_err(|e| e.to_string())?;
    }
    if explicit_data_dir && storage.config.backend.backend == "sled" {
        storage.config.backend.options.remove("path");
    }
    fill_sled_path(&mut storage.config.backend, &data_dir);
    for entry in storage.config.resources.values_mut() {
        if let Some(backend) = entry.backend.as_mut() {
            fill_sled_path(backend, &data_dir);
        }
    }
    storage.validate().map_err(|e| format!("storage config: {e}"))?;
    Ok(Command::Serve(Box::new(ServerConfig { listen, storage, custom_resources: file.custom_resources })))
}

fn read_server_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut file: FileConfig = toml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    // Like `Config::load`: the encryption config is relative to the file naming it.
    if let (Some(storage), Some(dir)) = (file.storage.as_mut(), path.parent()) {
        if let Some(encryption) = storage.encryption_provider_config.as_mut() {
            if encryption.is_relative() {
                *encryption = dir.join(&*encryption);
            }
        }
    }
    Ok(file)
}

/// Sled backends keep their files in the data directory unless a path is configured (an
/// explicit `--data-dir` replaces the default backend's path).
fn fill_sled_path(config: &mut BackendConfig, data_dir: &Path) {
    if config.backend == "sled" && !config.options.contains_key("path") {
        config.options.insert("path".to_owned(), data_dir.to_string_lossy().into_owned().into());
    }
}
