//! `EtcdOptions`: what a `{"type":"etcd3", ...}` backend config may say, validated.

use std::path::PathBuf;
use std::time::Duration;

use apistore::registry::BackendConfig;
use apistore::{Error, Result};
use serde::{Deserialize, Serialize};

/// Default per-call timeout (every etcd call, including retries, finishes within it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default compaction interval, as kube-apiserver's `--etcd-compaction-interval`.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Defragment a member after a compaction when at least this percent of its db is free.
pub const DEFAULT_DEFRAG_FREE_PERCENT: u64 = 50;

/// ... and its db is at least this large (bytes).
pub const DEFAULT_DEFRAG_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 * 512 * 1024;

/// Options of the `etcd3` backend, parsed from a [`BackendConfig`]:
///
/// ```json
/// {"type": "etcd3", "endpoints": ["http://127.0.0.1:2379"], "timeout_ms": 5000,
///  "compaction_interval_secs": 300, "ca_file": "...", "cert_file": "...", "key_file": "...",
///  "username": "...", "password": "...", "key_prefix": ""}
/// ```
///
/// Unknown fields are rejected. Invariants after [`EtcdOptions::validate`]: at least one
/// endpoint; `timeout_ms > 0`; `cert_file` and `key_file` both set or both unset; TLS files
/// only with `https://` (or scheme-less) endpoints; `username` and `password` together;
/// `key_prefix` empty or starting with `/` and not ending with `/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdOptions {
    /// Client URLs of the members: `http://host:port`, `https://host:port` or `host:port`
    /// (https when TLS files are set, else http).
    pub endpoints: Vec<String>,
    /// Timeout of every call in milliseconds (default 5000). A call that cannot finish in
    /// time fails with [`Error::Timeout`] or [`Error::Unavailable`].
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds between compactions (default 300 = kube-apiserver's 5 minutes); 0 disables
    /// the compactor.
    #[serde(default = "default_compaction_interval_secs")]
    pub compaction_interval_secs: u64,
    /// PEM file of the CA that signed the servers' certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client key (with `cert_file`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// etcd user name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// etcd password (with `username`).
    #[serde(default)]
    pub password: Option<String>,
    /// A namespace inside etcd: every key is stored as `key_prefix + key` and handed back
    /// without it (like etcd's namespace client). Empty by default, so a Store's keys sit
    /// exactly where kube-apiserver puts them (`/registry/pods/ns/name`).
    #[serde(default)]
    pub key_prefix: String,
    /// etcd's `--max-request-bytes` of the cluster (default 1.5 MiB); values that cannot fit
    /// in a request are refused with [`Error::TooLarge`] before they are sent.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// The cluster's `--quota-backend-bytes` (etcd enforces it and raises the NOSPACE alarm;
    /// apistore reports it and disarms the alarm once every member is below it again);
    /// 0 = etcd's default, 2 GiB.
    #[serde(default)]
    pub quota_backend_bytes: u64,
    /// After a compaction, defragment (one member at a time) each member whose db is at
    /// least this percent free (default [`DEFAULT_DEFRAG_FREE_PERCENT`]); 0 = never.
    #[serde(default = "default_defrag_free_percent")]
    pub defrag_free_percent: u64,
    /// ... and at least this large in bytes (default [`DEFAULT_DEFRAG_MIN_BYTES`]).
    #[serde(default = "default_defrag_min_bytes")]
    pub defrag_min_bytes: u64,
}

fn default_defrag_free_percent() -> u64 {
    DEFAULT_DEFRAG_FREE_PERCENT
}

fn default_defrag_min_bytes() -> u64 {
    DEFAULT_DEFRAG_MIN_BYTES
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT.as_millis() as u64
}

fn default_compaction_interval_secs() -> u64 {
    DEFAULT_COMPACTION_INTERVAL.as_secs()
}

fn default_max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}

impl EtcdOptions {
    /// Options for `endpoints` with every default.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            timeout_ms: default_timeout_ms(),
            compaction_interval_secs: default_compaction_interval_secs(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            key_prefix: String::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            quota_backend_bytes: 0,
            defrag_free_percent: DEFAULT_DEFRAG_FREE_PERCENT,
            defrag_min_bytes: DEFAULT_DEFRAG_MIN_BYTES,
        }
    }

    /// The defragmentation policy of these options.
    pub(crate) fn defrag_policy(&self) -> crate::space::DefragPolicy {
        crate::space::DefragPolicy {
            free_percent: self.defrag_free_percent,
            min_bytes: self.defrag_min_bytes,
            quota_bytes: self.quota_backend_bytes,
        }
    }

    /// Parses and validates the options of a backend config.
    ///
    /// Errors: [`Error::Invalid`] naming the field for unknown fields, wrong types or
    /// values that fail [`EtcdOptions::validate`].
    pub fn from_config(config: &BackendConfig) -> Result<Self> {
        let options: EtcdOptions = config.parse_options()?;
        options.validate()?;
        Ok(options)
    }

    /// The options as a [`BackendConfig`] of type `etcd3`.
    pub fn to_config(&self) -> BackendConfig {
        let mut config = BackendConfig::new(crate::BACKEND_NAME);
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) {
            for (key, value) in map {
                if !value.is_null() {
                    config.options.insert(key, value);
                }
            }
        }
        config
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The compaction interval; `None` when compaction is disabled.
    pub fn compaction_interval(&self) -> Option<Duration> {
        (self.compaction_interval_secs > 0).then(|| Duration::from_secs(self.compaction_interval_secs))
    }

    /// True when any TLS file is configured.
    pub fn uses_tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Checks the invariants listed on [`EtcdOptions`].
    ///
    /// Errors: [`Error::Invalid`] with field `backend.etcd3.<field>`.
    pub fn validate(&self) -> Result<()> {
        let field = |name: &str| format!("backend.{}.{name}", crate::BACKEND_NAME);
        if self.defrag_free_percent > 100 {
            return Err(Error::invalid(
                field("defrag_free_percent"),
                self.defrag_free_percent.to_string(),
                "must be a percentage (0 = never defragment)",
            ));
        }
        if self.endpoints.is_empty() {
            return Err(Error::invalid(field("endpoints"), "[]", "at least one etcd endpoint is required"));
        }
        for endpoint in &self.endpoints {
            let rest = if let Some(rest) = endpoint.strip_prefix("https://") {
                rest
            } else if let Some(rest) = endpoint.strip_prefix("http://") {
                if self.uses_tls() {
                    return Err(Error::invalid(
                        field("endpoints"),
                        endpoint,
                        "TLS files are set but the endpoint is plain http; use https://",
                    ));
                }
                rest
            } else if endpoint.contains("://") {
                return Err(Error::invalid(field("endpoints"), endpoint, "the scheme must be http or https"));
            } else {
                endpoint.as_str()
            };
            let host_port = rest.trim_end_matches('/');
            let port_ok =
                host_port.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok || host_port.contains('/') {
                return Err(Error::invalid(field("endpoints"), endpoint, "expected [http[s]://]host:port"));
            }
            if endpoint.starts_with("https://") && self.ca_file.is_none() {
                return Err(Error::invalid(
                    field("ca_file"),
                    "",
                    "https endpoints need ca_file (the CA that signed the etcd server certificates)",
                ));
            }
        }
        if self.timeout_ms == 0 {
            return Err(Error::invalid(field("timeout_ms"), "0", "must be greater than 0"));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(Error::invalid(
                field(if self.cert_file.is_some() { "key_file" } else { "cert_file" }),
                "",
                "cert_file and key_file must be set together",
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(Error::invalid(
                field(if self.username.is_some() { "password" } else { "username" }),
                "",
                "username and password must be set together",
            ));
        }
        if !self.key_prefix.is_empty() && (!self.key_prefix.starts_with('/') || self.key_prefix.ends_with('/')) {
            return Err(Error::invalid(
                field("key_prefix"),
                &self.key_prefix,
                "must be empty or start with '/' and not end with '/'",
            ));
        }
        if self.max_request_bytes < 4096 {
            return Err(Error::invalid(
                field("max_request_bytes"),
                self.max_request_bytes.to_string(),
                "must be at least 4096",
            ));
        }
        Ok(())
    }

    /// Endpoint URLs with their scheme made explicit.
    pub(crate) fn endpoint_urls(&self) -> Vec<String> {
        let scheme = if self.uses_tls() { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.trim_end_matches('/').to_owned()
                } else {
                    format!("{scheme}://{}", e.trim_end_matches('/'))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> BackendConfig {
        serde_json::from_value(json).expect("config json")
    }

    #[test]
    fn defaults_apply() {
        let options = EtcdOptions::from_config(&config(
            serde_json::json!({"type":"etcd3","endpoints":["http://127.0.0.1:2379"]}),
        ))
        .expect("valid");
        assert_eq!(options.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(options.compaction_interval(), Some(DEFAULT_COMPACTION_INTERVAL));
        assert_eq!(options.key_prefix, "");
        assert!(!options.uses_tls());
    }

    #[test]
    fn zero_compaction_interval_disables() {
        let options = EtcdOptions::from_config(&config(
            serde_json::json!({"type":"etcd3","endpoints":["127.0.0.1:2379"],"compaction_interval_secs":0}),
        ))
        .expect("valid");
        assert_eq!(options.compaction_interval(), None);
        assert_eq!(options.endpoint_urls(), vec!["http://127.0.0.1:2379".to_owned()]);
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let cases = [
            (serde_json::json!({"type":"etcd3"}), "endpoints"),
            (serde_json::json!({"type":"etcd3","endpoints":[]}), "endpoints"),
            (serde_json::json!({"type":"etcd3","endpoints":["ftp://x:1"]}), "endpoints"),
            (serde_json::json!({"type":"etcd3","endpoints":["localhost"]}), "endpoints"),
            (serde_json::json!({"type":"etcd3","endpoints":["http://a:1"],"timeout_ms":0}), "timeout_ms"),
            (serde_json::json!({"type":"etcd3","endpoints":["http://a:1"],"timeout_ms":"soon"}), "etcd3"),
            (serde_json::json!({"type":"etcd3","endpoints":["http://a:1"],"bogus":1}), "bogus"),
            (
                serde_json::json!({"type":"etcd3","endpoints":["https://a:1"],"ca_file":"ca","cert_file":"c"}),
                "key_file",
            ),
            (serde_json::json!({"type":"etcd3","endpoints":["https://a:1"]}), "ca_file"),
            (serde_json::json!({"type":"etcd3","endpoints":["http://a:1"],"ca_file":"ca"}), "endpoints"),
            (serde_json::json!({"type":"etcd3","endpoints":["http://a:1"],"username":"u"}), "password"),
            (serde_json::json!({"type":"etcd3","endpoints":["http://a:1"],"key_prefix":"x/"}), "key_prefix"),
        ];
        for (json, mention) in cases {
            let err = EtcdOptions::from_config(&config(json.clone())).expect_err("invalid options accepted");
            assert_eq!(err.code(), 422, "{json}: {err}");
            assert!(err.to_string().contains(mention), "{json}: {err} should mention {mention}");
        }
    }

    #[test]
    fn options_round_trip_through_config() {
        let mut options = EtcdOptions::new(["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        options.key_prefix = "/t1".into();
        options.timeout_ms = 750;
        let back = EtcdOptions::from_config(&options.to_config()).expect("round trip");
        assert_eq!(back, options);
    }
}
