//! Encryption at rest from Kubernetes' own `EncryptionConfiguration` file
//! (`apiserver.config.k8s.io/v1`, YAML or JSON — the file kube-apiserver reads with
//! `--encryption-provider-config`).
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets, "*.apps"]      # resource.group, *.group, *. (core), *.*
//!     providers:
//!       - aesgcm: {keys: [{name: key2, secret: <base64 of 16/24/32 bytes>}]}   # writes
//!       - aesgcm: {keys: [{name: key1, secret: <base64>}]}                      # still reads
//!       - identity: {}                                                          # reads plaintext
//! ```
//!
//! Each provider key becomes a [`PrefixTransformer`] with prefix
//! `k8s:enc:<provider>:v1:<key name>:`; the first one writes, all read, and a value read by
//! any but the first is `stale` (a no-op `guaranteed_update` rewrites it: key rotation).
//! Lookup per resource is Kubernetes': exact `resource.group`, then `*.group`, then `*.*`,
//! else identity. A rule masked by an earlier wildcard is a configuration error, as in
//! kube-apiserver. KMS providers are recognised and refused (they need a KMS plugin).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group_resource::{GroupResource, ALL};
use crate::transformer::{DynTransformer, IdentityTransformer};

mod ciphers;
mod prefix;

pub use ciphers::{AesCbcTransformer, AesGcmTransformer, SecretboxTransformer};
pub use prefix::{encryption_prefix_of, PrefixTransformer, PrefixTransformers};

/// `apiVersion` of the file.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// `kind` of the file.
pub const KIND: &str = "EncryptionConfiguration";

/// Kubernetes `EncryptionConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionConfiguration {
    /// Must be [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Must be [`KIND`].
    #[serde(default)]
    pub kind: String,
    /// Rules: which resources use which providers.
    #[serde(default)]
    pub resources: Vec<ResourceConfiguration>,
}

/// One rule of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceConfiguration {
    /// `resource.group`, `resource` (core), `*.group`, `*.` (all core) or `*.*`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Providers in priority order: the first writes, all read.
    #[serde(default)]
    pub providers: Vec<ProviderConfiguration>,
}

/// Exactly one provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfiguration {
    /// AES-GCM keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    /// AES-CBC keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfiguration>,
    /// Secretbox keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<KeysConfiguration>,
    /// Plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
    /// KMS (recognised so the error can say it is unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
}

/// The keys of a provider; the first encrypts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeysConfiguration {
    /// Keys in priority order.
    #[serde(default)]
    pub keys: Vec<Key>,
}

/// A named key.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Key {
    /// The key's name: part of the stored prefix, so it must stay stable.
    #[serde(default)]
    pub name: String,
    /// Base64 of the key bytes.
    #[serde(default)]
    pub secret: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("name", &self.name).field("secret", &"REDACTED").finish()
    }
}

const EVENTS_GROUP_ERR: &str = "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file";
const EXTENSIONS_GROUP_ERR: &str = "'extensions' group has been removed and cannot be used for encryption";
const STAR_RESOURCE_ERR: &str =
    "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources";
const RESOURCE_NAME_ERR: &str = "resource name should not contain capital letters";
const DUPLICATE_RESOURCE_ERR: &str = "the same resource cannot be specified multiple times";

impl EncryptionConfiguration {
    /// Reads and validates a file (YAML or JSON; JSON is YAML).
    ///
    /// Errors: [`Error::Invalid`] on field `encryption_provider_config` for an unreadable or
    /// unparsable file; the errors of [`EncryptionConfiguration::validate`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "encryption_provider_config",
                &shown,
                format!("cannot read the encryption configuration: {e}"),
            )
        })?;
        let config = Self::parse(&text).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::invalid("encryption_provider_config", &shown, message),
            other => other,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses the text of a file (not validated).
    ///
    /// Errors: [`Error::Invalid`] with the parser's message.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Err(Error::invalid("encryption_provider_config", "", "the encryption configuration is empty"));
        }
        serde_yaml::from_str(text)
            .map_err(|e| Error::invalid("encryption_provider_config", "", format!("cannot parse: {e}")))
    }

    /// Checks the file as kube-apiserver does, naming the field path
    /// (`resources[0].providers[1].aesgcm.keys[0].secret`) and value (secrets are shown as
    /// `REDACTED`).
    ///
    /// Errors: [`Error::Invalid`].
    pub fn validate(&self) -> Result<()> {
        if self.api_version != API_VERSION {
            return Err(Error::invalid("apiVersion", &self.api_version, format!("must be {API_VERSION}")));
        }
        if self.kind != KIND {
            return Err(Error::invalid("kind", &self.kind, format!("must be {KIND}")));
        }
        if self.resources.is_empty() {
            return Err(Error::invalid("resources", "[]", "at least one resources is required"));
        }
        let mut seen: BTreeMap<GroupResource, String> = BTreeMap::new();
        for (i, rule) in self.resources.iter().enumerate() {
            let r = format!("resources[{i}].resources");
            let p = format!("resources[{i}].providers");
            if rule.resources.is_empty() {
                return Err(Error::invalid(&r, "[]", format!("at least one {r} is required")));
            }
            if rule.providers.is_empty() {
                return Err(Error::invalid(&p, "[]", format!("at least one {p} is required")));
            }
            for (j, text) in rule.resources.iter().enumerate() {
                let field = format!("{r}[{j}]");
                let gr = validate_resource_name(&field, text)?;
                if let Some(earlier) = masking_rule(&seen, &gr) {
                    return Err(Error::invalid(
                        &field,
                        text,
                        format!("resource {:?} is masked by earlier rule {:?}", yaml_string(&gr), earlier),
                    ));
                }
                if seen.contains_key(&gr) {
                    return Err(Error::invalid(&field, text, DUPLICATE_RESOURCE_ERR));
                }
                seen.insert(gr.clone(), yaml_string(&gr));
            }
            for (j, provider) in rule.providers.iter().enumerate() {
                validate_provider(&format!("{p}[{j}]"), provider)?;
            }
        }
        Ok(())
    }

    /// Builds the per-resource transformers (validating first).
    ///
    /// Errors: those of [`EncryptionConfiguration::validate`].
    pub fn transformers(&self) -> Result<ResourceTransformers> {
        self.validate()?;
        let mut by_resource = BTreeMap::new();
        for rule in &self.resources {
            let mut list = Vec::new();
            for provider in &rule.providers {
                list.extend(provider_transformers(provider)?);
            }
            let transformers: DynTransformer = Arc::new(PrefixTransformers::new(list)?);
            for text in &rule.resources {
                by_resource.insert(GroupResource::parse_lenient(text), transformers.clone());
            }
        }
        Ok(ResourceTransformers { by_resource })
    }
}

/// The transformer of each resource (Kubernetes `ResourceTransformers`).
#[derive(Clone, Debug, Default)]
pub struct ResourceTransformers {
    by_resource: BTreeMap<GroupResource, DynTransformer>,
}

impl ResourceTransformers {
    /// Loads a file and builds its transformers.
    ///
    /// Errors: those of [`EncryptionConfiguration::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        EncryptionConfiguration::load(path)?.transformers()
    }

    /// The transformer for `gr`: its exact rule, else `*.group`, else `*.*`, else identity.
    pub fn transformer_for_resource(&self, gr: &GroupResource) -> DynTransformer {
        self.by_resource
            .get(gr)
            .or_else(|| self.by_resource.get(&gr.group_alias()))
            .or_else(|| self.by_resource.get(&GroupResource::new(ALL, ALL)))
            .cloned()
            .unwrap_or_else(|| Arc::new(IdentityTransformer))
    }
}

/// Kubernetes `grYAMLString`: `*.` for all core resources, else `resource[.group]`.
fn yaml_string(gr: &GroupResource) -> String {
    if gr.group.is_empty() && gr.resource == ALL {
        "*.".to_owned()
    } else {
        gr.to_string()
    }
}

fn masking_rule(seen: &BTreeMap<GroupResource, String>, gr: &GroupResource) -> Option<String> {
    let any = GroupResource::new(ALL, ALL);
    if let Some(rule) = seen.get(&any) {
        return Some(rule.clone());
    }
    if !gr.is_wildcard() {
        if let Some(rule) = seen.get(&gr.group_alias()) {
            return Some(rule.clone());
        }
    }
    None
}

fn validate_resource_name(field: &str, text: &str) -> Result<GroupResource> {
    if text.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(Error::invalid(field, text, RESOURCE_NAME_ERR));
    }
    if text == ALL {
        return Err(Error::invalid(field, text, STAR_RESOURCE_ERR));
    }
    if text.is_empty() || text.contains(['/', ' ']) {
        return Err(Error::invalid(field, text, "must be resource[.group], *.group, *. or *.*"));
    }
    let gr = GroupResource::parse_lenient(text);
    if gr.resource.is_empty() {
        return Err(Error::invalid(field, text, "must be resource[.group], *.group, *. or *.*"));
    }
    if gr.group == "events.k8s.io" {
        return Err(Error::invalid(field, text, EVENTS_GROUP_ERR));
    }
    if gr.group == "extensions" {
        return Err(Error::invalid(field, text, EXTENSIONS_GROUP_ERR));
    }
    if gr.group == ALL && gr.resource != ALL {
        return Err(Error::invalid(field, text, STAR_RESOURCE_ERR));
    }
    Ok(gr)
}

fn validate_provider(field: &str, provider: &ProviderConfiguration) -> Result<()> {
    let found = [
        provider.aesgcm.is_some(),
        provider.aescbc.is_some(),
        provider.secretbox.is_some(),
        provider.identity.is_some(),
        provider.kms.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if found == 0 {
        return Err(Error::invalid(
            field,
            "{}",
            "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity",
        ));
    }
    if found > 1 {
        return Err(Error::invalid(
            field,
            "multiple",
            "more than one provider specified in a single element, should split into different list elements",
        ));
    }
    if provider.kms.is_some() {
        return Err(Error::invalid(
            format!("{field}.kms"),
            "kms",
            "KMS providers are not supported by apistore (use aesgcm, aescbc, secretbox or identity)",
        ));
    }
    let checks: [(&str, &Option<KeysConfiguration>, &[usize]); 3] = [
        ("aesgcm", &provider.aesgcm, &[16, 24, 32]),
        ("aescbc", &provider.aescbc, &[16, 24, 32]),
        ("secretbox", &provider.secretbox, &[32]),
    ];
    for (name, keys, sizes) in checks {
        if let Some(keys) = keys {
            validate_keys(&format!("{field}.{name}.keys"), &keys.keys, sizes)?;
        }
    }
    Ok(())
}

fn validate_keys(field: &str, keys: &[Key], sizes: &[usize]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::invalid(field, "[]", "at least one keys is required"));
    }
    for (index, key) in keys.iter().enumerate() {
        let path = format!("{field}[{index}]");
        if key.name.is_empty() {
            return Err(Error::invalid(format!("{path}.name"), "", "name is a mandatory field for a key"));
        }
        if key.name.contains(':') {
            return Err(Error::invalid(format!("{path}.name"), &key.name, "must not contain ':'"));
        }
        if key.secret.is_empty() {
            return Err(Error::invalid(format!("{path}.secret"), "", "secret is a mandatory field for a key"));
        }
        let secret = decode_secret(&format!("{path}.secret"), &key.secret)?;
        if !sizes.contains(&secret.len()) {
            let expected: Vec<String> = sizes.iter().map(ToString::to_string).collect();
            return Err(Error::invalid(
                format!("{path}.secret"),
                "REDACTED",
                format!(
                    "secret is not of the expected length, got {}, expected one of [{}]",
                    secret.len(),
                    expected.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

fn decode_secret(field: &str, secret: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .map_err(|_| Error::invalid(field, "REDACTED", "secrets must be base64 encoded"))
}

fn provider_transformers(provider: &ProviderConfiguration) -> Result<Vec<PrefixTransformer>> {
    type Make = fn(&[u8]) -> Result<DynTransformer>;
    let make_gcm: Make = |k| Ok(Arc::new(AesGcmTransformer::new(k)?));
    let make_cbc: Make = |k| Ok(Arc::new(AesCbcTransformer::new(k)?));
    let make_secretbox: Make = |k| Ok(Arc::new(SecretboxTransformer::new(k)?));
    let (name, keys, make) = match provider {
        ProviderConfiguration { aesgcm: Some(keys), .. } => ("aesgcm", keys, make_gcm),
        ProviderConfiguration { aescbc: Some(keys), .. } => ("aescbc", keys, make_cbc),
        ProviderConfiguration { secretbox: Some(keys), .. } => ("secretbox", keys, make_secretbox),
        ProviderConfiguration { identity: Some(_), .. } => {
            return Ok(vec![PrefixTransformer::new(Vec::new(), Arc::new(IdentityTransformer))]);
        }
        _ => return Err(Error::invalid("providers", "kms", "unsupported provider")),
    };
    keys.keys
        .iter()
        .map(|key| {
            let secret = decode_secret("secret", &key.secret)?;
            Ok(PrefixTransformer::new(format!("k8s:enc:{name}:v1:{}:", key.name).into_bytes(), make(&secret)?))
        })
        .collect()
}

#[cfg(test)]
mod tests;
