//! `Config`: where each resource is stored, read from a TOML, YAML or JSON file.
//!
//! ```toml
//! prefix = "/registry"                       # key prefix of every backend key
//! storage_media_type = "application/json"    # default codec (or application/yaml)
//! encryption_provider_config = "encryption.yaml"   # Kubernetes EncryptionConfiguration
//! etcd_servers_overrides = ["/events#http://127.0.0.1:2379"]   # kube flag syntax
//!
//! [backend]                                  # the default backend
//! type = "sled"
//! path = "/var/lib/apistore"
//!
//! [watch_cache]
//! enabled = true
//! sizes = ["events#0", "events.events.k8s.io#0"]   # kube --watch-cache-sizes syntax
//! memory_budget_bytes = 268435456            # per resource's cache (absent: no limit)
//! memory_budgets = ["configmaps#67108864"]   # resource[.group]#bytes, over the default
//!
//! [resources."configmaps"]                   # per GroupResource (resource[.group], or *.group)
//! backend = { type = "sled", path = "/var/lib/apistore-cm" }
//! resource_prefix = "cm"
//! media_type = "application/yaml"
//! watch_cache = false
//! ```
//!
//! [`Config::validate`] checks every field and names the offending one in an
//! [`Error::Invalid`]; the kube-apiserver flag syntaxes are parsed by
//! [`parse_etcd_servers_overrides`] and [`parse_watch_cache_sizes`] with Kubernetes' messages,
//! the budgets by [`parse_watch_cache_memory_budgets`] in the same syntax.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group_resource::GroupResource;
use crate::registry::BackendConfig;
use crate::store::DEFAULT_PREFIX;

/// `application/json`: the default storage media type (as for Kubernetes custom resources).
pub const MEDIA_TYPE_JSON: &str = "application/json";
/// `application/yaml`: the optional human-readable storage media type.
pub const MEDIA_TYPE_YAML: &str = "application/yaml";
/// Kubernetes' protobuf media type: recognised, but apistore's objects are untyped.
pub const MEDIA_TYPE_PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The message kube-apiserver gives for a malformed `--etcd-servers-overrides` entry.
pub const ETCD_SERVERS_OVERRIDES_FORMAT: &str = "--etcd-servers-overrides invalid, must be of format: group/resource#servers, where servers are URLs, semicolon separated";

/// The backend type name `--etcd-servers-overrides` selects.
pub const ETCD_BACKEND: &str = "etcd3";

/// The whole storage configuration. Every field has a default, so an empty file is a valid
/// config (sled in `./apistore-data`, prefix `/registry`, JSON, watch cache on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The default backend: `{type = "sled", path = ...}`, `{type = "etcd3", endpoints = [...]}`
    /// or any registered plugin.
    pub backend: BackendConfig,
    /// Prefix of every backend key (kube `--etcd-prefix`, default `/registry`).
    pub prefix: String,
    /// Default codec media type (kube `--storage-media-type`): `application/json` or
    /// `application/yaml`.
    pub storage_media_type: String,
    /// Path of a Kubernetes `EncryptionConfiguration` file (kube
    /// `--encryption-provider-config`); relative paths are relative to the config file.
    pub encryption_provider_config: Option<PathBuf>,
    /// Watch cache settings.
    pub watch_cache: WatchCacheConfig,
    /// Per-resource etcd servers in kube's flag syntax `group/resource#url;url`.
    pub etcd_servers_overrides: Vec<String>,
    /// Per-GroupResource overrides keyed by `resource[.group]` (`*.group` for a whole group).
    pub resources: BTreeMap<String, ResourceOverride>,
    /// Extra cohabitation lists (each ordered, first = preferred storage location), added to
    /// kube-apiserver's defaults. Entries are `resource[.group]`.
    pub cohabitating_resources: Vec<Vec<String>>,
    /// API groups that are served by nobody (`""` = core). Cohabitation skips them.
    pub disabled_groups: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: BackendConfig::new("sled").with_option("path", "apistore-data"),
            prefix: DEFAULT_PREFIX.to_owned(),
            storage_media_type: MEDIA_TYPE_JSON.to_owned(),
            encryption_provider_config: None,
            watch_cache: WatchCacheConfig::default(),
            etcd_servers_overrides: Vec::new(),
            resources: BTreeMap::new(),
            cohabitating_resources: Vec::new(),
            disabled_groups: Vec::new(),
        }
    }
}

/// Watch cache settings (kube `--watch-cache`, `--watch-cache-sizes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchCacheConfig {
    /// Master switch (kube `--watch-cache`, default on).
    pub enabled: bool,
    /// `resource[.group]#size` entries; size 0 disables the cache for that resource, any
    /// other size only means "on" (the cache is dynamically sized, as in Kubernetes).
    /// Default: kube-apiserver's `events#0`, `events.events.k8s.io#0`.
    pub sizes: Vec<String>,
    /// The memory budget in bytes of each resource's cache (> 0; absent: no limit). Over it a
    /// cache holds nothing and serves from storage until the resource fits again.
    pub memory_budget_bytes: Option<u64>,
    /// `resource[.group]#bytes` entries (bytes > 0): a resource's own budget instead of
    /// `memory_budget_bytes`; a later entry for the same resource wins.
    pub memory_budgets: Vec<String>,
}

impl Default for WatchCacheConfig {
    fn default() -> Self {
        WatchCacheConfig {
            enabled: true,
            sizes: default_watch_cache_sizes(),
            memory_budget_bytes: None,
            memory_budgets: Vec::new(),
        }
    }
}

impl WatchCacheConfig {
    /// The default budget in bytes, checked.
    ///
    /// Errors: [`Error::Invalid`] on `watch_cache.memory_budget_bytes` for 0 or a value that
    /// does not fit this machine's memory.
    pub fn memory_budget(&self) -> Result<Option<usize>> {
        let Some(bytes) = self.memory_budget_bytes else {
            return Ok(None);
        };
        budget_bytes(bytes)
            .map(Some)
            .map_err(|why| Error::invalid("watch_cache.memory_budget_bytes", bytes.to_string(), why))
    }
}

/// A budget in bytes: positive and addressable. Errors: the reason.
fn budget_bytes(bytes: u64) -> std::result::Result<usize, String> {
    if bytes == 0 {
        return Err("must be positive (a watch cache size of 0 turns a resource's cache off)".to_owned());
    }
    usize::try_from(bytes).map_err(|_| "does not fit this machine's address space".to_owned())
}

/// kube-apiserver's `DefaultWatchCacheSizes`: no watch cache for events.
pub fn default_watch_cache_sizes() -> Vec<String> {
    vec!["events#0".to_owned(), "events.events.k8s.io#0".to_owned()]
}

/// What one GroupResource (or `*.group`) changes relative to the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceOverride {
    /// A backend of its own (may be of a different type than the default backend).
    pub backend: Option<BackendConfig>,
    /// Key prefix instead of [`Config::prefix`] (kube `SetEtcdPrefix`).
    pub prefix: Option<String>,
    /// Resource prefix instead of the default (kube `SetResourceEtcdPrefix`), e.g. `cm` →
    /// `/registry/cm/<ns>/<name>`.
    pub resource_prefix: Option<String>,
    /// Codec media type instead of [`Config::storage_media_type`].
    pub media_type: Option<String>,
    /// Force the watch cache on or off for this resource (wins over `watch_cache.sizes`).
    pub watch_cache: Option<bool>,
}

impl Config {
    /// Reads a config file, choosing the format by extension: `.toml`, `.yaml`/`.yml` or
    /// `.json`. A relative `encryption_provider_config` is resolved against the file's folder.
    /// The result is validated.
    ///
    /// Errors: [`Error::Invalid`] on field `config` for an unreadable file, an unknown
    /// extension or a syntax error (the parser's message names the line and key); the
    /// errors of [`Config::validate`].
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid("config", &shown, format!("cannot read the config file: {e}")))?;
        let format = ConfigFormat::from_path(path)?;
        let mut config = Config::parse(&text, format).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::invalid("config", &shown, message),
            other => other,
        })?;
        if let (Some(encryption), Some(dir)) = (&config.encryption_provider_config, path.parent()) {
            if encryption.is_relative() {
                config.encryption_provider_config = Some(dir.join(encryption));
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses config text in `format` (not validated; call [`Config::validate`]).
    ///
    /// Errors: [`Error::Invalid`] on field `config` with the parser's message.
    pub fn parse(text: &str, format: ConfigFormat) -> Result<Config> {
        let parsed = match format {
            ConfigFormat::Toml => toml::from_str::<Config>(text).map_err(|e| e.to_string()),
            ConfigFormat::Yaml => {
                if text.trim().is_empty() {
                    Ok(Config::default())
                } else {
                    serde_yaml::from_str::<Config>(text).map_err(|e| e.to_string())
                }
            }
            ConfigFormat::Json => serde_json::from_str::<Config>(text).map_err(|e| e.to_string()),
        };
        parsed.map_err(|message| Error::invalid("config", format.name(), message.trim().to_owned()))
    }

    /// Checks every field.
    ///
    /// Errors: [`Error::Invalid`] naming the field (`prefix`, `backend.type`,
    /// `storage_media_type`, `resources."<key>".media_type`, `watch_cache.sizes`,
    /// `etcd_servers_overrides`, ...) and the offending value.
    pub fn validate(&self) -> Result<()> {
        validate_backend("backend", &self.backend)?;
        validate_prefix("prefix", &self.prefix)?;
        validate_media_type("storage_media_type", &self.storage_media_type)?;
        parse_watch_cache_sizes(&self.watch_cache.sizes)
            .map_err(|e| Error::invalid("watch_cache.sizes", self.watch_cache.sizes.join(","), e.to_string()))?;
        self.watch_cache.memory_budget()?;
        parse_watch_cache_memory_budgets(&self.watch_cache.memory_budgets)?;
        parse_etcd_servers_overrides(&self.etcd_servers_overrides)?;
        for (key, entry) in &self.resources {
            let field = format!("resources.{key:?}");
            GroupResource::parse(key).map_err(|e| match e {
                Error::Invalid { message, .. } => Error::invalid("resources", key, message),
                other => other,
            })?;
            if let Some(backend) = &entry.backend {
                validate_backend(&format!("{field}.backend"), backend)?;
            }
            if let Some(prefix) = &entry.prefix {
                validate_prefix(&format!("{field}.prefix"), prefix)?;
            }
            if let Some(resource_prefix) = &entry.resource_prefix {
                validate_resource_prefix(&format!("{field}.resource_prefix"), resource_prefix)?;
            }
            if let Some(media_type) = &entry.media_type {
                validate_media_type(&format!("{field}.media_type"), media_type)?;
            }
        }
        for (index, list) in self.cohabitating_resources.iter().enumerate() {
            let field = format!("cohabitating_resources[{index}]");
            if list.len() < 2 {
                return Err(Error::invalid(field, list.join(","), "a cohabitation list needs at least two resources"));
            }
            for (member, text) in list.iter().enumerate() {
                GroupResource::parse(text)
                    .map_err(|_| Error::invalid(format!("{field}[{member}]"), text, "must be resource[.group]"))?;
            }
        }
        for (index, group) in self.disabled_groups.iter().enumerate() {
            if group.contains(['/', ' ', '#']) || group == "*" {
                return Err(Error::invalid(format!("disabled_groups[{index}]"), group, "must be an API group name"));
            }
        }
        Ok(())
    }

    /// The per-resource overrides with parsed keys.
    ///
    /// Errors: [`Error::Invalid`] on `resources` for a key that is not `resource[.group]`.
    pub fn resource_overrides(&self) -> Result<BTreeMap<GroupResource, ResourceOverride>> {
        self.resources
            .iter()
            .map(|(key, value)| {
                let gr = GroupResource::parse(key).map_err(|e| match e {
                    Error::Invalid { message, .. } => Error::invalid("resources", key, message),
                    other => other,
                })?;
                Ok((gr, value.clone()))
            })
            .collect()
    }
}

/// The syntax of a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// `.toml`
    Toml,
    /// `.yaml` / `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl ConfigFormat {
    /// The format of a file, by its extension.
    ///
    /// Errors: [`Error::Invalid`] on field `config` for any other extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("toml") => Ok(ConfigFormat::Toml),
            Some("yaml" | "yml") => Ok(ConfigFormat::Yaml),
            Some("json") => Ok(ConfigFormat::Json),
            _ => Err(Error::invalid(
                "config",
                path.display().to_string(),
                "unknown config file extension: use .toml, .yaml, .yml or .json",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConfigFormat::Toml => "toml",
            ConfigFormat::Yaml => "yaml",
            ConfigFormat::Json => "json",
        }
    }
}

fn validate_backend(field: &str, backend: &BackendConfig) -> Result<()> {
    if backend.backend.trim().is_empty() {
        return Err(Error::invalid(format!("{field}.type"), &backend.backend, "a backend type is required"));
    }
    Ok(())
}

/// A key prefix: empty or `/`-rooted, no `.`/`..` segments, no whitespace.
fn validate_prefix(field: &str, prefix: &str) -> Result<()> {
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(Error::invalid(field, prefix, "must start with '/'"));
    }
    check_path(field, prefix)
}

/// A resource prefix: not empty, not `/`, no `.`/`..` segments.
fn validate_resource_prefix(field: &str, prefix: &str) -> Result<()> {
    if prefix.trim_matches('/').is_empty() {
        return Err(Error::invalid(field, prefix, "must not be empty or '/'"));
    }
    check_path(field, prefix)
}

fn check_path(field: &str, path: &str) -> Result<()> {
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(field, path, "must not contain whitespace"));
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(Error::invalid(field, path, "must not contain '.' or '..' segments"));
    }
    Ok(())
}

/// Checks a storage media type is one apistore can encode.
///
/// Errors: [`Error::Invalid`] on `field`: protobuf is refused (objects are untyped), anything
/// else is unknown.
pub fn validate_media_type(field: &str, media_type: &str) -> Result<()> {
    match media_type {
        MEDIA_TYPE_JSON | MEDIA_TYPE_YAML => Ok(()),
        MEDIA_TYPE_PROTOBUF => Err(Error::invalid(
            field,
            media_type,
            "protobuf needs typed objects; apistore stores application/json or application/yaml",
        )),
        _ => Err(Error::invalid(
            field,
            media_type,
            format!("unsupported storage media type; supported: {MEDIA_TYPE_JSON}, {MEDIA_TYPE_YAML}"),
        )),
    }
}

/// Parses `--etcd-servers-overrides` entries (`group/resource#url;url`; core group empty:
/// `/events#...`) exactly as kube-apiserver validates them.
///
/// Errors: [`Error::Invalid`] on `etcd_servers_overrides` with the entry and kube's message
/// ([`ETCD_SERVERS_OVERRIDES_FORMAT`]); an empty server is rejected the same way.
pub fn parse_etcd_servers_overrides(entries: &[String]) -> Result<Vec<(GroupResource, Vec<String>)>> {
    let invalid = |entry: &str| Error::invalid("etcd_servers_overrides", entry, ETCD_SERVERS_OVERRIDES_FORMAT);
    let mut parsed = Vec::with_capacity(entries.len());
    for entry in entries {
        let tokens: Vec<&str> = entry.split('#').collect();
        let [resource, servers] = tokens.as_slice() else {
            return Err(invalid(entry));
        };
        let parts: Vec<&str> = resource.split('/').collect();
        let [group, resource] = parts.as_slice() else {
            return Err(invalid(entry));
        };
        if resource.is_empty() {
            return Err(invalid(entry));
        }
        let servers: Vec<String> = servers.split(';').map(str::to_owned).collect();
        if servers.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid(entry));
        }
        parsed.push((GroupResource::new(group, resource), servers));
    }
    Ok(parsed)
}

/// Parses `--watch-cache-sizes` entries (`resource[.group]#size`) as kube-apiserver's
/// `ParseWatchCacheSizes` does; a later entry for the same resource wins.
///
/// Errors: [`Error::Invalid`] on `watch_cache.sizes` with kube's message: "invalid value of
/// watch cache size: `<entry>`", "invalid size of watch cache size: `<entry>`", "watch cache size
/// cannot be negative: `<entry>`".
pub fn parse_watch_cache_sizes(entries: &[String]) -> Result<BTreeMap<GroupResource, usize>> {
    let mut sizes = BTreeMap::new();
    for entry in entries {
        let tokens: Vec<&str> = entry.split('#').collect();
        let [resource, size] = tokens.as_slice() else {
            return Err(Error::invalid(
                "watch_cache.sizes",
                entry,
                format!("invalid value of watch cache size: {entry}"),
            ));
        };
        let size: i64 = size.parse().map_err(|_| {
            Error::invalid("watch_cache.sizes", entry, format!("invalid size of watch cache size: {entry}"))
        })?;
        let size = usize::try_from(size).map_err(|_| {
            Error::invalid("watch_cache.sizes", entry, format!("watch cache size cannot be negative: {entry}"))
        })?;
        sizes.insert(GroupResource::parse_lenient(resource), size);
    }
    Ok(sizes)
}

/// Parses `watch_cache.memory_budgets` entries (`resource[.group]#bytes`, the syntax of
/// `--watch-cache-sizes`); a later entry for the same resource wins.
///
/// Errors: [`Error::Invalid`] on `watch_cache.memory_budgets` naming the entry: "invalid value
/// of watch cache memory budget" (not `resource#bytes`), "invalid memory budget" (not an
/// unsigned integer), or a budget that is 0.
pub fn parse_watch_cache_memory_budgets(entries: &[String]) -> Result<BTreeMap<GroupResource, usize>> {
    const FIELD: &str = "watch_cache.memory_budgets";
    let mut budgets = BTreeMap::new();
    for entry in entries {
        let tokens: Vec<&str> = entry.split('#').collect();
        let [resource, bytes] = tokens.as_slice() else {
            return Err(Error::invalid(
                FIELD,
                entry,
                format!("invalid value of watch cache memory budget: {entry} (expected resource[.group]#bytes)"),
            ));
        };
        if resource.is_empty() {
            return Err(Error::invalid(FIELD, entry, format!("no resource in watch cache memory budget: {entry}")));
        }
        let bytes: u64 = bytes.parse().map_err(|_| {
            Error::invalid(FIELD, entry, format!("invalid memory budget (bytes, an unsigned integer): {entry}"))
        })?;
        let bytes = budget_bytes(bytes).map_err(|why| Error::invalid(FIELD, entry, format!("{entry}: {why}")))?;
        budgets.insert(GroupResource::parse_lenient(resource), bytes);
    }
    Ok(budgets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_field(err: &Error) -> (&str, &str, &str) {
        match err {
            Error::Invalid { field, value, message } => (field, value, message),
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn toml_and_yaml_give_the_same_config() {
        let toml_text = r#"
            prefix = "/custom"
            [backend]
            type = "etcd3"
            endpoints = ["http://127.0.0.1:2379"]
            [resources."configmaps"]
            backend = { type = "sled", path = "/tmp/cm" }
            resource_prefix = "cm"
            [resources."*.apps"]
            media_type = "application/yaml"
        "#;
        let yaml_text = r#"
prefix: /custom
backend:
  type: etcd3
  endpoints: ["http://127.0.0.1:2379"]
resources:
  configmaps:
    backend: {type: sled, path: /tmp/cm}
    resource_prefix: cm
  "*.apps":
    media_type: application/yaml
"#;
        let a = Config::parse(toml_text, ConfigFormat::Toml).expect("toml");
        let b = Config::parse(yaml_text, ConfigFormat::Yaml).expect("yaml");
        assert_eq!(a, b);
        a.validate().expect("valid");
        assert_eq!(a.backend.backend, "etcd3");
        let overrides = a.resource_overrides().expect("keys");
        let cm = &overrides[&GroupResource::core("configmaps")];
        assert_eq!(cm.backend.as_ref().map(|b| b.backend.as_str()), Some("sled"));
        assert_eq!(overrides[&GroupResource::all_resources_of("apps")].media_type.as_deref(), Some(MEDIA_TYPE_YAML));
        // Defaults fill in what the file leaves out.
        assert!(a.watch_cache.enabled);
        assert_eq!(a.watch_cache.sizes, default_watch_cache_sizes());
        assert_eq!(a.storage_media_type, MEDIA_TYPE_JSON);
    }

    #[test]
    fn unknown_fields_and_syntax_errors_are_invalid() {
        let err = Config::parse("prefx = \"/x\"", ConfigFormat::Toml).expect_err("unknown field");
        let (field, _, message) = invalid_field(&err);
        assert_eq!(field, "config");
        assert!(message.contains("prefx"), "{message}");
        let err = Config::parse("prefix: [", ConfigFormat::Yaml).expect_err("bad yaml");
        assert_eq!(invalid_field(&err).0, "config");
    }

    #[test]
    fn each_bad_field_is_named_with_its_value() {
        let cases: Vec<(Config, &str, &str)> = vec![
            (Config { prefix: "registry".into(), ..Config::default() }, "prefix", "registry"),
            (Config { prefix: "/a/../b".into(), ..Config::default() }, "prefix", "/a/../b"),
            (Config { backend: BackendConfig::new(""), ..Config::default() }, "backend.type", ""),
            (
                Config { storage_media_type: "text/plain".into(), ..Config::default() },
                "storage_media_type",
                "text/plain",
            ),
            (
                Config { storage_media_type: MEDIA_TYPE_PROTOBUF.into(), ..Config::default() },
                "storage_media_type",
                MEDIA_TYPE_PROTOBUF,
            ),
            (
                Config {
                    resources: [(
                        "configmaps".to_owned(),
                        ResourceOverride { media_type: Some("x/y".into()), ..Default::default() },
                    )]
                    .into(),
                    ..Config::default()
                },
                "resources.\"configmaps\".media_type",
                "x/y",
            ),
            (
                Config {
                    resources: [(
                        "configmaps".to_owned(),
                        ResourceOverride { resource_prefix: Some("/".into()), ..Default::default() },
                    )]
                    .into(),
                    ..Config::default()
                },
                "resources.\"configmaps\".resource_prefix",
                "/",
            ),
            (
                Config { resources: [("a/b".to_owned(), ResourceOverride::default())].into(), ..Config::default() },
                "resources",
                "a/b",
            ),
            (
                Config { cohabitating_resources: vec![vec!["deployments.apps".into()]], ..Config::default() },
                "cohabitating_resources[0]",
                "deployments.apps",
            ),
        ];
        for (config, want_field, want_value) in cases {
            let err = config.validate().expect_err(want_field);
            let (field, value, _) = invalid_field(&err);
            assert_eq!((field, value), (want_field, want_value), "{err}");
        }
    }

    #[test]
    fn watch_cache_sizes_follow_kubernetes() {
        let sizes = parse_watch_cache_sizes(&["events#0".into(), "deployments.apps#100".into()]).expect("parse");
        assert_eq!(sizes[&GroupResource::core("events")], 0);
        assert_eq!(sizes[&GroupResource::new("apps", "deployments")], 100);
        let cases = [
            ("events", "invalid value of watch cache size: events"),
            ("events#1#2", "invalid value of watch cache size: events#1#2"),
            ("events#x", "invalid size of watch cache size: events#x"),
            ("events#-1", "watch cache size cannot be negative: events#-1"),
        ];
        for (entry, message) in cases {
            let err = parse_watch_cache_sizes(&[entry.to_owned()]).expect_err(entry);
            assert_eq!(invalid_field(&err), ("watch_cache.sizes", entry, message));
        }
        // Through Config::validate the field is named too.
        let config = Config {
            watch_cache: WatchCacheConfig { sizes: vec!["pods#-3".into()], ..WatchCacheConfig::default() },
            ..Config::default()
        };
        let err = config.validate().expect_err("negative");
        assert_eq!(invalid_field(&err).0, "watch_cache.sizes");
        assert!(err.to_string().contains("watch cache size cannot be negative: pods#-3"), "{err}");
    }

    #[test]
    fn watch_cache_memory_budgets_parse_from_every_format_and_bad_ones_name_the_field() {
        let toml_text = "[watch_cache]\nmemory_budget_bytes = 1048576\nmemory_budgets = [\"configmaps#4096\", \"deployments.apps#65536\"]\n";
        let yaml_text = "watch_cache:\n  memory_budget_bytes: 1048576\n  memory_budgets: [\"configmaps#4096\", \"deployments.apps#65536\"]\n";
        let json_text = r#"{"watch_cache": {"memory_budget_bytes": 1048576, "memory_budgets": ["configmaps#4096", "deployments.apps#65536"]}}"#;
        for (text, format) in
            [(toml_text, ConfigFormat::Toml), (yaml_text, ConfigFormat::Yaml), (json_text, ConfigFormat::Json)]
        {
            let config = Config::parse(text, format).expect("parse");
            config.validate().expect("valid");
            assert_eq!(config.watch_cache.memory_budget(), Ok(Some(1 << 20)), "{format:?}");
            let budgets = parse_watch_cache_memory_budgets(&config.watch_cache.memory_budgets).expect("budgets");
            assert_eq!(budgets[&GroupResource::core("configmaps")], 4096, "{format:?}");
            assert_eq!(budgets[&GroupResource::new("apps", "deployments")], 65_536, "{format:?}");
            assert!(config.watch_cache.enabled, "the other watch cache settings keep their defaults");
            assert_eq!(config.watch_cache.sizes, default_watch_cache_sizes());
        }
        assert_eq!(Config::default().watch_cache.memory_budget(), Ok(None), "no limit by default");
        let later_wins = parse_watch_cache_memory_budgets(&["pods#10".into(), "pods#20".into()]).expect("parse");
        assert_eq!(later_wins[&GroupResource::core("pods")], 20);
        let cases = [
            ("pods", "invalid value of watch cache memory budget: pods (expected resource[.group]#bytes)"),
            ("pods#1#2", "invalid value of watch cache memory budget: pods#1#2 (expected resource[.group]#bytes)"),
            ("pods#64Mi", "invalid memory budget (bytes, an unsigned integer): pods#64Mi"),
            ("pods#-1", "invalid memory budget (bytes, an unsigned integer): pods#-1"),
            ("pods#0", "pods#0: must be positive (a watch cache size of 0 turns a resource's cache off)"),
            ("#5", "no resource in watch cache memory budget: #5"),
        ];
        for (entry, message) in cases {
            let config = Config {
                watch_cache: WatchCacheConfig { memory_budgets: vec![entry.to_owned()], ..WatchCacheConfig::default() },
                ..Config::default()
            };
            let err = config.validate().expect_err(entry);
            assert_eq!(invalid_field(&err), ("watch_cache.memory_budgets", entry, message));
        }
        let zero = Config {
            watch_cache: WatchCacheConfig { memory_budget_bytes: Some(0), ..WatchCacheConfig::default() },
            ..Config::default()
        };
        let err = zero.validate().expect_err("a zero default budget");
        assert_eq!(invalid_field(&err).0, "watch_cache.memory_budget_bytes");
        assert_eq!(invalid_field(&err).1, "0");
        let err = Config::parse("[watch_cache]\nmemory_budget_bytes = -5\n", ConfigFormat::Toml).expect_err("negative");
        assert_eq!(invalid_field(&err).0, "config", "{err}");
        assert!(err.to_string().contains("memory_budget_bytes"), "the parser names the key: {err}");
    }

    #[test]
    fn etcd_servers_overrides_follow_kubernetes() {
        let parsed = parse_etcd_servers_overrides(&[
            "/events#http://127.0.0.1:2379;http://127.0.0.1:2380".into(),
            "apps/deployments#http://e:2379".into(),
        ])
        .expect("parse");
        assert_eq!(parsed[0].0, GroupResource::core("events"));
        assert_eq!(parsed[0].1, vec!["http://127.0.0.1:2379", "http://127.0.0.1:2380"]);
        assert_eq!(parsed[1].0, GroupResource::new("apps", "deployments"));
        for bad in ["events#http://x", "/events", "a/b/c#http://x", "/events#", "/events#http://a;", "a#b#c"] {
            let err = parse_etcd_servers_overrides(&[bad.to_owned()]).expect_err(bad);
            assert_eq!(invalid_field(&err), ("etcd_servers_overrides", bad, ETCD_SERVERS_OVERRIDES_FORMAT));
        }
    }

    #[test]
    fn load_picks_the_format_by_extension_and_resolves_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml_path = dir.path().join("apistore.toml");
        std::fs::write(&toml_path, "encryption_provider_config = \"enc.yaml\"\n").expect("write");
        let config = Config::load(&toml_path).expect("load");
        assert_eq!(config.encryption_provider_config, Some(dir.path().join("enc.yaml")));
        let ini = dir.path().join("apistore.ini");
        std::fs::write(&ini, "").expect("write");
        let err = Config::load(&ini).expect_err("ini");
        assert!(err.to_string().contains("unknown config file extension"), "{err}");
        let missing = Config::load(dir.path().join("missing.toml")).expect_err("missing");
        assert!(missing.to_string().contains("cannot read the config file"), "{missing}");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "storage_media_type: text/plain\n").expect("write");
        let err = Config::load(&bad).expect_err("bad media type");
        assert_eq!(invalid_field(&err).0, "storage_media_type");
    }
}
