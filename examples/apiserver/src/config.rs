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
    /// Seconds events live after their last write (kube `--event-ttl`, default 1h).
    pub event_ttl_seconds: u64,
}

/// kube-apiserver's default `--event-ttl`: one hour.
pub const DEFAULT_EVENT_TTL_SECONDS: u64 = 3600;

/// Usage text of `--help`.
pub const USAGE: &str = "\
apiserver: a Kubernetes-compatible API server over apistore

USAGE: cargo run --release -p apistore-apiserver -- [OPTIONS]

OPTIONS:
  --listen ADDR            listen address (default 127.0.0.1:8080)
  --data-dir DIR           data directory of the sled backend (default ./apistore-data)
  --backend NAME           default storage backend: sled (default), etcd3, memory, or a linked plugin
  --config FILE            server config (TOML): listen, [storage] (apistore Config), custom resources
  --storage-config FILE    apistore storage Config alone (TOML, YAML or JSON), as examples/factory.toml
  --event-ttl DURATION     how long events live after their last write: 1h (default), 30m, 90s, 0 = forever
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
    let mut event_ttl_seconds = DEFAULT_EVENT_TTL_SECONDS;
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
            "--event-ttl" => event_ttl_seconds = parse_duration_seconds(&value("--event-ttl")?)?,
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
    Ok(Command::Serve(Box::new(ServerConfig {
        listen,
        storage,
        custom_resources: file.custom_resources,
        event_ttl_seconds,
    })))
}

/// `90`, `90s`, `30m`, `1h`, `1h30m` → seconds.
///
/// Errors: a message for anything else.
fn parse_duration_seconds(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {text:?}: use e.g. 1h, 30m, 90s");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(total)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServerConfig {
        match parse(args.iter().map(|s| s.to_string())) {
            Ok(Command::Serve(config)) => *config,
            other => panic!("{args:?} did not give a server config: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_sled_under_apistore_data_on_8080() {
        let config = serve(&[]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.storage.config.backend.backend, "sled");
        assert_eq!(config.storage.config.backend.options["path"], "apistore-data");
    }

    #[test]
    fn flags_select_backends_and_paths() {
        let config = serve(&["--listen=127.0.0.1:9", "--data-dir", "/tmp/x"]);
        assert_eq!(config.listen.port(), 9);
        assert_eq!(config.storage.config.backend.options["path"], "/tmp/x");
        assert_eq!(serve(&["--backend", "memory"]).storage.config.backend.backend, "memory");
        let etcd = serve(&["--etcd-servers", "http://127.0.0.1:1,http://127.0.0.1:2"]);
        assert_eq!(etcd.storage.config.backend.backend, "etcd3");
        assert_eq!(
            etcd.storage.config.backend.options["endpoints"],
            serde_json::json!(["http://127.0.0.1:1", "http://127.0.0.1:2"])
        );
        assert!(matches!(parse(["--help".to_string()]), Ok(Command::Help)));
        assert_eq!(serve(&[]).event_ttl_seconds, 3600);
        assert_eq!(serve(&["--event-ttl", "1h30m"]).event_ttl_seconds, 5400);
        assert_eq!(serve(&["--event-ttl=45"]).event_ttl_seconds, 45);
        assert_eq!(serve(&["--event-ttl", "2m5s"]).event_ttl_seconds, 125);
        for bad in [
            &["--nope"][..],
            &["--listen"],
            &["--listen", "not-an-address"],
            &["--watch-cache", "maybe"],
            &["--event-ttl", "1d"],
            &["--event-ttl", "5m3"],
        ] {
            assert!(parse(bad.iter().map(|s| s.to_string())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_file_holds_storage_config_and_custom_resources() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:7"
[storage.backend]
type = "sled"
[storage.resources."events"]
backend = { type = "memory" }
[[custom_resources]]
group = "example.com"
version = "v1"
kind = "Widget"
plural = "widgets"
"#,
        )
        .expect("write");
        let config = serve(&["--config", path.to_str().expect("utf-8"), "--data-dir", "/data"]);
        assert_eq!(config.listen.port(), 7);
        assert_eq!(config.storage.config.backend.options["path"], "/data");
        let events = &config.storage.config.resources["events"];
        assert_eq!(events.backend.as_ref().map(|b| b.backend.as_str()), Some("memory"));
        assert_eq!(config.custom_resources[0].plural, "widgets");
        assert!(config.custom_resources[0].namespaced);
        std::fs::write(&path, "unknown_key = 1\n").expect("write");
        let err = parse(["--config".to_string(), path.to_string_lossy().into_owned()]).expect_err("unknown key");
        assert!(err.contains("unknown_key"), "{err}");
    }
}
