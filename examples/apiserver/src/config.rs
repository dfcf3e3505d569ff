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
//! The command line is [`Flags`] (clap; `--help` is generated from it). Flags win over the
//! file; kube-apiserver's storage flags (`--etcd-servers`, `--etcd-servers-overrides`,
//! `--storage-backend`, `--etcd-prefix`, `--storage-media-type`,
//! `--encryption-provider-config`, `--watch-cache`, `--watch-cache-sizes`,
//! `--delete-collection-workers`, `--enable-garbage-collector`) apply on top, spelled and
//! valued as kube-apiserver spells them (`--watch-cache=false`, comma-separated and repeated
//! list values).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use apistore::config::Config;
use apistore::factory::StorageOptions;
use apistore::registry::BackendConfig;
use clap::{CommandFactory, Parser};
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
    /// TLS, authentication and authorization flags.
    pub security: crate::auth::SecurityConfig,
    /// Where a migration writes the new storage config: [`MIGRATED_CONFIG_FILE`] in the data
    /// directory.
    pub migrated_config: Option<PathBuf>,
}

/// The storage config a migration (`apistore migrate --server`) leaves in the data directory;
/// a server started without an explicit storage config (`--storage-config`, `[storage]`,
/// `--backend`, `--etcd-servers`) on that data directory uses it.
pub const MIGRATED_CONFIG_FILE: &str = "apistore-migrated-storage.json";

/// kube-apiserver's default `--event-ttl`: one hour.
pub const DEFAULT_EVENT_TTL_SECONDS: u64 = 3600;

const AFTER_HELP: &str = "\
Flags win over the config file; the kube-apiserver storage flags apply on top of the storage \
config (--backend first, then --storage-backend, --etcd-servers and the rest). List flags take \
comma-separated values and may be repeated, as in kube-apiserver.";

/// The command line, in kube-apiserver's spellings (`--flag value` or `--flag=value`).
#[derive(Clone, Debug, Default, Parser)]
#[command(
    name = "apiserver",
    about = "A Kubernetes-compatible API server over apistore",
    after_help = AFTER_HELP,
    args_override_self = true
)]
pub struct Flags {
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory of sled backends that name no path [default: ./apistore-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Default storage backend: sled (default), etcd3, memory, or a linked plugin.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Server config (TOML): listen, data_dir, [storage] (apistore Config), custom resources.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// apistore storage Config alone (TOML, YAML or JSON), as examples/factory.toml; replaces
    /// the config file's [storage].
    #[arg(long, value_name = "FILE")]
    pub storage_config: Option<PathBuf>,
    /// How long events live after their last write: 1h (default), 30m, 90s, 1h30m, 0 = forever.
    #[arg(long, value_name = "DURATION", value_parser = parse_event_ttl)]
    pub event_ttl: Option<u64>,
    /// etcd servers to connect to (scheme://ip:port), comma separated; selects the etcd3 backend.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Per-resource etcd servers, comma separated: group/resource#servers, servers separated by ';'.
    #[arg(long, value_name = "OVERRIDES", value_delimiter = ',')]
    pub etcd_servers_overrides: Vec<String>,
    /// The storage backend for persistence (kube: etcd3).
    #[arg(long, value_name = "NAME")]
    pub storage_backend: Option<String>,
    /// The prefix to prepend to all resource paths in storage [default: /registry].
    #[arg(long, value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// The media type to use to store objects in storage (application/json, application/yaml).
    #[arg(long, value_name = "TYPE")]
    pub storage_media_type: Option<String>,
    /// The file with the configuration for encryption providers for storing secrets.
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// Enable the watch cache for all resources but events (--watch-cache=false disables it).
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub watch_cache: Option<bool>,
    /// Watch cache size settings, comma separated: resource[.group]#size.
    #[arg(long, value_name = "SIZES", value_delimiter = ',')]
    pub watch_cache_sizes: Vec<String>,
    /// The memory budget in bytes of each resource's watch cache (over the config file's
    /// `[watch_cache] memory_budget_bytes`). Over it a cache holds nothing and serves from
    /// storage until the resource fits again.
    #[arg(long, value_name = "BYTES")]
    pub watch_cache_memory_budget: Option<String>,
    /// Per-resource watch cache memory budgets, comma separated: resource[.group]#bytes (over
    /// the config file's `[watch_cache] memory_budgets` and --watch-cache-memory-budget).
    #[arg(long, value_name = "BUDGETS", value_delimiter = ',')]
    pub watch_cache_memory_budgets: Vec<String>,
    /// Number of workers spawned for DeleteCollection call.
    #[arg(long, value_name = "N")]
    pub delete_collection_workers: Option<u32>,
    /// Enables the generic garbage collector.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub enable_garbage_collector: Option<bool>,
    /// File containing the default x509 certificate for HTTPS (PEM; CA certificates after
    /// the server certificate). With it the server serves HTTPS only.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,
    /// If set, any request presenting a client certificate signed by one of the authorities
    /// in this file is authenticated with an identity from the certificate's CommonName
    /// (user) and Organizations (groups). Needs HTTPS.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// If set, the file that will be used to secure the secure port of the API server via
    /// token authentication (CSV: token,user,uid,"group1,group2").
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// Ordered list of plug-ins to do authorization on the secure port, comma separated:
    /// AlwaysAllow (default), AlwaysDeny, RBAC.
    #[arg(long, value_name = "MODES", value_delimiter = ',')]
    pub authorization_mode: Vec<String>,
    /// Enables anonymous requests to the health endpoints (/healthz, /livez, /readyz,
    /// /version) when an authenticator is configured [default: true].
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub anonymous_auth: Option<bool>,
    /// Serve a non-loopback --listen address without authentication: anyone who can reach
    /// it can read and write everything.
    #[arg(long)]
    pub insecure_allow_any: bool,
}

impl Flags {
    /// The kube storage flags set, as `(flag, value)` pairs for [`StorageOptions::apply_flag`],
    /// in the order they apply (the backend type before its servers).
    fn storage_flags(&self) -> Vec<(&'static str, String)> {
        let mut flags = Vec::new();
        let mut one = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                flags.push((name, value));
            }
        };
        one("--storage-backend", self.storage_backend.clone());
        one("--etcd-servers", (!self.etcd_servers.is_empty()).then(|| self.etcd_servers.join(",")));
        one("--etcd-prefix", self.etcd_prefix.clone());
        one("--storage-media-type", self.storage_media_type.clone());
        let encryption = self.encryption_provider_config.as_ref().map(|p| p.to_string_lossy().into_owned());
        one("--encryption-provider-config", encryption);
        let overrides = &self.etcd_servers_overrides;
        one("--etcd-servers-overrides", (!overrides.is_empty()).then(|| overrides.join(",")));
        one("--watch-cache", self.watch_cache.map(|b| b.to_string()));
        let sizes = &self.watch_cache_sizes;
        one("--watch-cache-sizes", (!sizes.is_empty()).then(|| sizes.join(",")));
        one("--watch-cache-memory-budget", self.watch_cache_memory_budget.clone());
        let budgets = &self.watch_cache_memory_budgets;
        one("--watch-cache-memory-budgets", (!budgets.is_empty()).then(|| budgets.join(",")));
        one("--delete-collection-workers", self.delete_collection_workers.map(|n| n.to_string()));
        one("--enable-garbage-collector", self.enable_garbage_collector.map(|b| b.to_string()));
        flags
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this config.
    Serve(Box<ServerConfig>),
    /// Print usage ([`print_help`]).
    Help,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Bad flags or values (clap's message; [`clap::Error::exit`] prints it and exits 2).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// Flags that parse but do not make a valid config (unreadable or invalid files, a bad
    /// listen address, invalid storage settings).
    #[error("{0}")]
    Invalid(String),
}

/// Prints the `--help` text (generated from [`Flags`]) to stdout.
pub fn print_help() {
    let _ = Flags::command().print_long_help();
}

/// The `--help` text, uncolored.
#[cfg(test)]
fn help() -> String {
    Flags::command().render_long_help().to_string()
}

/// Parses the command line (`args` starts with the program name) and the config files it
/// names.
///
/// Errors: [`ParseError::Usage`] for unknown flags, missing or invalid values;
/// [`ParseError::Invalid`] for unreadable or invalid files and settings.
pub fn parse_command_line<I, T>(args: I) -> Result<Command, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Flags::try_parse_from(args) {
        Ok(flags) => Ok(Command::Serve(Box::new(resolve(flags).map_err(ParseError::Invalid)?))),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => Ok(Command::Help),
        Err(e) => Err(e.into()),
    }
}

/// [`parse_command_line`] over the arguments after the program name, errors as text.
#[cfg(test)]
fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    parse_command_line(std::iter::once("apiserver".to_owned()).chain(args)).map_err(|e| e.to_string())
}

/// Resolves parsed flags and the config files they name into the server config: flags win
/// over the file, then the kube storage flags apply.
///
/// Errors: a message for unreadable or invalid files, a bad listen address, invalid storage
/// settings.
pub fn resolve(flags: Flags) -> Result<ServerConfig, String> {
    let storage_flags = flags.storage_flags();
    let file = match &flags.config {
        Some(path) => read_server_config(path)?,
        None => FileConfig::default(),
    };
    let listen = flags.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen: SocketAddr = listen.parse().map_err(|e| format!("invalid listen address {listen:?}: {e}"))?;
    let explicit_data_dir = flags.data_dir.is_some() || file.data_dir.is_some();
    let data_dir = flags.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./apistore-data"));
    let migrated_config = data_dir.join(MIGRATED_CONFIG_FILE);
    let explicit_storage = flags.backend.is_some() || !storage_flags.is_empty();
    let mut storage = match (flags.storage_config, file.storage) {
        (Some(path), _) => StorageOptions::load(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        (None, Some(config)) => StorageOptions::new(config),
        (None, None) if !explicit_storage && migrated_config.is_file() => {
            eprintln!("apiserver: using the storage config a migration left in {}", migrated_config.display());
            StorageOptions::load(&migrated_config).map_err(|e| format!("{}: {e}", migrated_config.display()))?
        }
        (None, None) => StorageOptions::default(),
    };
    if let Some(name) = flags.backend {
        storage.config.backend = BackendConfig::new(&name);
    }
    for (flag, value) in storage_flags {
        storage.apply_flag(flag, &value).map_err(|e| e.to_string())?;
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
    let security = crate::auth::SecurityConfig {
        tls_cert_file: flags.tls_cert_file,
        tls_private_key_file: flags.tls_private_key_file,
        client_ca_file: flags.client_ca_file,
        token_auth_file: flags.token_auth_file,
        authorization_modes: crate::auth::parse_modes(&flags.authorization_mode)?,
        anonymous_auth: flags.anonymous_auth.unwrap_or(true),
        insecure_allow_any: flags.insecure_allow_any,
    };
    security.validate(listen)?;
    Ok(ServerConfig {
        listen,
        storage,
        custom_resources: file.custom_resources,
        event_ttl_seconds: flags.event_ttl.unwrap_or(DEFAULT_EVENT_TTL_SECONDS),
        security,
        migrated_config: Some(migrated_config),
    })
}

/// Go's `time.ParseDuration` units, the ones kube-apiserver's duration flags accept.
const GO_DURATION_UNITS: &[&str] = &["ns", "us", "µs", "ms", "s", "m", "h"];

/// `--event-ttl`: a kube duration (`1h`, `30m`, `90s`, `1h30m`, `0`; a bare number is
/// seconds) → whole seconds, a non-zero fraction of a second rounding up (0 means forever).
///
/// Errors: a message for anything else, units Go's durations lack (`1d`) included.
pub fn parse_event_ttl(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why} (use e.g. 1h, 30m, 90s)");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    // Go spells micro with either mu; humantime with the micro sign.
    let text = text.trim().replace('\u{3bc}', "\u{b5}");
    for unit in text.split(|c: char| c.is_ascii_digit() || c.is_whitespace()).filter(|u| !u.is_empty()) {
        if !GO_DURATION_UNITS.contains(&unit) {
            return Err(bad(&format!("unknown unit {unit:?}")));
        }
    }
    let duration = humantime::parse_duration(&text).map_err(|e| bad(&e.to_string()))?;
    Ok(duration.as_secs().saturating_add(u64::from(duration.subsec_nanos() > 0)))
}

/// Go's `strconv.ParseBool`, as kube-apiserver's boolean flags read their values.
fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {text:?}: use true or false")),
    }
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

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("apiserver").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn clap_parses_every_flag_in_kube_spelling() {
        let all = flags(&[
            "--listen=127.0.0.1:1",
            "--data-dir",
            "/d",
            "--backend=memory",
            "--config",
            "/c.toml",
            "--storage-config=/s.yaml",
            "--event-ttl",
            "30m",
            "--etcd-servers=http://a:1,http://b:2",
            "--etcd-servers",
            "http://c:3",
            "--etcd-servers-overrides=/events#http://e:1;http://e:2,apps/deployments#http://f:1",
            "--storage-backend=etcd3",
            "--etcd-prefix=/kube",
            "--storage-media-type",
            "application/yaml",
            "--encryption-provider-config=/enc.yaml",
            "--watch-cache=false",
            "--watch-cache-sizes=pods#100,secrets#0",
            "--watch-cache-sizes",
            "nodes#5",
            "--delete-collection-workers=3",
            "--enable-garbage-collector=F",
        ]);
        assert_eq!(all.listen.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(all.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(all.backend.as_deref(), Some("memory"));
        assert_eq!(all.config, Some(PathBuf::from("/c.toml")));
        assert_eq!(all.storage_config, Some(PathBuf::from("/s.yaml")));
        assert_eq!(all.event_ttl, Some(1800));
        assert_eq!(all.etcd_servers, ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(all.etcd_servers_overrides, ["/events#http://e:1;http://e:2", "apps/deployments#http://f:1"]);
        assert_eq!(all.storage_backend.as_deref(), Some("etcd3"));
        assert_eq!(all.etcd_prefix.as_deref(), Some("/kube"));
        assert_eq!(all.storage_media_type.as_deref(), Some("application/yaml"));
        assert_eq!(all.encryption_provider_config, Some(PathBuf::from("/enc.yaml")));
        assert_eq!(all.watch_cache, Some(false));
        assert_eq!(all.watch_cache_sizes, ["pods#100", "secrets#0", "nodes#5"]);
        assert_eq!(all.delete_collection_workers, Some(3));
        assert_eq!(all.enable_garbage_collector, Some(false));
        // Bare boolean flags are true, as in kube; single-valued flags: the last one wins.
        let bare = flags(&["--watch-cache", "--enable-garbage-collector", "--etcd-prefix=/a", "--etcd-prefix=/b"]);
        assert_eq!((bare.watch_cache, bare.enable_garbage_collector), (Some(true), Some(true)));
        assert_eq!(bare.etcd_prefix.as_deref(), Some("/b"));
        assert_eq!(flags(&["--watch-cache", "false"]).watch_cache, Some(false));
        assert_eq!(flags(&[]).watch_cache, None);
    }

    #[test]
    fn storage_flags_reach_the_storage_options() {
        let config = serve(&[
            "--etcd-servers=http://127.0.0.1:1",
            "--etcd-servers=http://127.0.0.1:2",
            "--etcd-prefix=/kube",
            "--watch-cache=false",
            "--watch-cache-sizes=pods#100",
            "--etcd-servers-overrides=/events#http://127.0.0.1:3",
        ]);
        let storage = &config.storage.config;
        assert_eq!(storage.backend.backend, "etcd3");
        assert_eq!(
            storage.backend.options["endpoints"],
            serde_json::json!(["http://127.0.0.1:1", "http://127.0.0.1:2"])
        );
        assert_eq!(storage.prefix, "/kube");
        assert!(!storage.watch_cache.enabled);
        assert_eq!(storage.watch_cache.sizes, ["pods#100"]);
        assert_eq!(storage.etcd_servers_overrides, ["/events#http://127.0.0.1:3"]);
        // --backend applies before --storage-backend whatever their order.
        assert_eq!(serve(&["--storage-backend=memory", "--backend=sled"]).storage.config.backend.backend, "memory");
        assert!(serve(&["--watch-cache"]).storage.config.watch_cache.enabled);
    }

    #[test]
    fn watch_cache_memory_budget_flags_override_the_config_file_and_bad_ones_name_the_flag() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("storage.toml");
        std::fs::write(&file, "[watch_cache]\nmemory_budget_bytes = 1000\nmemory_budgets = [\"secrets#50\"]\n")
            .expect("write");
        let storage_config = format!("--storage-config={}", file.display());
        let from_file = serve(&[&storage_config]).storage.config.watch_cache;
        assert_eq!((from_file.memory_budget_bytes, from_file.memory_budgets), (Some(1000), vec!["secrets#50".into()]));
        let flagged = serve(&[
            &storage_config,
            "--watch-cache-memory-budget=268435456",
            "--watch-cache-memory-budgets=configmaps#4096,deployments.apps#65536",
            "--watch-cache-memory-budgets=pods#100",
        ])
        .storage
        .config
        .watch_cache;
        assert_eq!(flagged.memory_budget_bytes, Some(268_435_456), "the flag wins over the file");
        assert_eq!(flagged.memory_budgets, ["configmaps#4096", "deployments.apps#65536", "pods#100"]);
        let budgets = apistore::config::parse_watch_cache_memory_budgets(&flagged.memory_budgets).expect("valid");
        let deployments = apistore::group_resource::GroupResource::new("apps", "deployments");
        assert_eq!(budgets.get(&deployments), Some(&65_536));
        // Only one flag: the other value stays the file's.
        let one = serve(&[&storage_config, "--watch-cache-memory-budget", "2000"]).storage.config.watch_cache;
        assert_eq!((one.memory_budget_bytes, one.memory_budgets), (Some(2000), vec!["secrets#50".into()]));
        for (bad, flag, says) in [
            ("--watch-cache-memory-budget=lots", "--watch-cache-memory-budget", "positive number of bytes"),
            ("--watch-cache-memory-budget=0", "--watch-cache-memory-budget", "must be positive"),
            ("--watch-cache-memory-budget=-5", "--watch-cache-memory-budget", "unsigned integer"),
            ("--watch-cache-memory-budgets=pods", "--watch-cache-memory-budgets", "expected resource[.group]#bytes"),
            ("--watch-cache-memory-budgets=pods#x", "--watch-cache-memory-budgets", "invalid memory budget"),
            ("--watch-cache-memory-budgets=pods#0", "--watch-cache-memory-budgets", "must be positive"),
            ("--watch-cache-memory-budgets=#5", "--watch-cache-memory-budgets", "no resource"),
        ] {
            match parse_command_line(["apiserver", bad]) {
                Err(ParseError::Invalid(message)) => {
                    assert!(message.contains(flag) && message.contains(says), "{bad}: {message}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(help().contains("--watch-cache-memory-budgets <BUDGETS>"), "{}", help());
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for bad in [
            &["--nope"][..],
            &["positional"],
            &["--listen"],
            &["--event-ttl"],
            &["--event-ttl", "1d"],
            &["--event-ttl=-1h"],
            &["--watch-cache=maybe"],
            &["--delete-collection-workers=-1"],
            &["--help=yes"],
        ] {
            let args = std::iter::once("apiserver").chain(bad.iter().copied());
            match parse_command_line(args) {
                Err(ParseError::Usage(e)) => assert_eq!(e.exit_code(), 2, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Flags that parse but make no valid config are the other kind of error.
        let invalid = parse_command_line(["apiserver", "--listen", "nowhere"]);
        assert!(matches!(invalid, Err(ParseError::Invalid(ref m)) if m.contains("nowhere")), "{invalid:?}");
        assert!(matches!(parse(["-h".to_string()]), Ok(Command::Help)));
    }

    #[test]
    fn help_lists_the_kube_flags() {
        let text = help();
        for flag in [
            "--listen",
            "--data-dir",
            "--backend",
            "--config",
            "--storage-config",
            "--event-ttl",
            "--etcd-servers",
            "--etcd-servers-overrides",
            "--storage-backend",
            "--etcd-prefix",
            "--storage-media-type",
            "--encryption-provider-config",
            "--watch-cache",
            "--watch-cache-sizes",
            "--delete-collection-workers",
            "--enable-garbage-collector",
            "--tls-cert-file",
            "--tls-private-key-file",
            "--client-ca-file",
            "--token-auth-file",
            "--authorization-mode",
            "--anonymous-auth",
            "--insecure-allow-any",
            "--help",
        ] {
            assert!(text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")), "{flag}: {text}");
        }
    }

    #[test]
    fn security_flags_resolve_and_check_each_other() {
        let config = serve(&[
            "--tls-cert-file=/c.pem",
            "--tls-private-key-file",
            "/k.pem",
            "--client-ca-file=/ca.pem",
            "--token-auth-file=/t.csv",
            "--authorization-mode=RBAC,AlwaysDeny",
            "--anonymous-auth=false",
        ]);
        let security = &config.security;
        assert_eq!(security.tls_cert_file, Some(PathBuf::from("/c.pem")));
        assert_eq!(security.tls_private_key_file, Some(PathBuf::from("/k.pem")));
        assert_eq!(security.client_ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(security.token_auth_file, Some(PathBuf::from("/t.csv")));
        assert_eq!(security.authorization_modes, [crate::auth::Mode::Rbac, crate::auth::Mode::AlwaysDeny]);
        assert!(!security.anonymous_auth);
        let defaults = serve(&[]).security;
        assert_eq!(defaults.authorization_modes, [crate::auth::Mode::AlwaysAllow]);
        assert!(defaults.anonymous_auth && !defaults.authenticates() && !defaults.tls());
        assert!(serve(&["--listen=0.0.0.0:8080", "--insecure-allow-any"]).security.insecure_allow_any);
        for (args, words) in [
            (&["--listen=0.0.0.0:8080"][..], "--insecure-allow-any"),
            (&["--authorization-mode=ABAC"], "not supported"),
            (&["--tls-cert-file=/c.pem"], "--tls-private-key-file"),
            (&["--client-ca-file=/ca.pem"], "--tls-cert-file"),
        ] {
            let error = parse(args.iter().map(|s| s.to_string())).expect_err("refused");
            assert!(error.contains(words), "{args:?}: {error}");
        }
    }

    #[test]
    fn event_ttl_takes_kube_durations() {
        for (text, seconds) in [
            ("0", 0),
            ("90", 90),
            ("90s", 90),
            ("30m", 1800),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2m5s", 125),
            ("1500ms", 2),
            ("1ns", 1),
            ("2\u{3bc}s", 1),
            ("0s", 0),
        ] {
            assert_eq!(parse_event_ttl(text), Ok(seconds), "{text}");
        }
        for bad in ["", "1d", "2w", "5m3", "h", "-1h", "1.5h", "1 hour", "forever", "18446744073709551616s"] {
            assert!(parse_event_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
