//! The table of served resources: names, scope, verbs, storage and per-kind rules.
//!
//! Built-in: namespaces (cluster-scoped), configmaps, secrets, events (core/v1 and
//! events.k8s.io/v1 cohabiting in one storage location, stored in the core/v1 shape),
//! apps/v1 deployments; plus custom resources from the config.

use std::sync::Arc;

use apistore::storage::DynStorage;
use apistore::Object;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::backend::StorageProvider;
use crate::config::CustomResource;
use crate::status::{ApiError, ApiResult, Target};

/// The verbs every served resource supports.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Per-kind behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// core/v1 Namespace: DNS-1123 label names, `spec.finalizers`, `status.phase`.
    Namespace,
    /// core/v1 ConfigMap: `data` values are strings.
    ConfigMap,
    /// core/v1 Secret: `stringData` folds into base64 `data`; `type` defaults to Opaque.
    Secret,
    /// core/v1 Event (the storage shape of events).
    CoreEvent,
    /// events.k8s.io/v1 Event: converted to and from the core/v1 shape.
    EventsV1Event,
    /// apps/v1 Deployment: generation, status subresource.
    Deployment,
    /// A custom resource: generation, status subresource.
    Custom,
}

/// One served resource.
pub struct Resource {
    /// API group ("" for core).
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Plural name, e.g. `configmaps`.
    pub plural: String,
    /// Singular name, e.g. `configmap`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Storage key prefix from the factory (`events` for both event APIs).
    pub storage_prefix: String,
    /// Where objects live.
    pub storage: DynStorage,
    /// Kind-specific rules.
    pub flavor: Flavor,
    /// Objects expire this many seconds after their last write (0 = never; kube's
    /// `--event-ttl` for events).
    pub ttl_seconds: u64,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `ConfigMapList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// True when the resource has a `status` subresource (status kept apart from spec).
    pub fn has_status(&self) -> bool {
        matches!(self.flavor, Flavor::Deployment | Flavor::Custom)
    }

    /// True when the resource has a `scale` subresource (autoscaling/v1 `Scale`).
    pub fn has_scale(&self) -> bool {
        self.flavor == Flavor::Deployment
    }

    /// True when `subresource` (`status`, `scale`) is served for this resource.
    pub fn has_subresource(&self, subresource: &str) -> bool {
        match subresource {
            "status" => self.has_status(),
            "scale" => self.has_scale(),
            _ => false,
        }
    }

    /// True when `metadata.generation` tracks spec changes.
    pub fn tracks_generation(&self) -> bool {
        matches!(self.flavor, Flavor::Deployment | Flavor::Custom)
    }

    /// The target of an error message about `name`.
    pub fn target(&self, name: &str) -> Target {
        Target {
            resource: self.plural.clone(),
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: name.to_owned(),
        }
    }

    /// Checks a name: DNS-1123 label for namespaces, DNS-1123 subdomain otherwise.
    ///
    /// Errors: 422 Invalid on `metadata.name` with kube's wording.
    pub fn validate_name(&self, name: &str) -> ApiResult<()> {
        let target = self.target(name);
        if name.is_empty() {
            return Err(ApiError::invalid(&target, "metadata.name", name, "name or generateName is required"));
        }
        if self.flavor == Flavor::Namespace {
            if !apistore::names::is_dns1123_label(name) {
                return Err(ApiError::invalid(&target, "metadata.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
            }
        } else if !apistore::names::is_dns1123_subdomain(name) {
            return Err(ApiError::invalid(&target, "metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        }
        Ok(())
    }

    /// Kind-specific defaulting and validation of an object about to be written (create,
    /// update, patch result), in the API shape.
    ///
    /// Errors: 422 Invalid naming the field.
    pub fn prepare_for_write(&self, object: &mut Object, creating: bool) -> ApiResult<()> {
        let target = self.target(&object.metadata.name);
        for (key, value) in object.metadata.labels.iter() {
            if !valid_label_key(key) {
                return Err(ApiError::invalid(&target, "metadata.labels", key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            if !valid_label_value(value) {
                return Err(ApiError::invalid(&target, &format!("metadata.labels.{key}"), value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
        }
        match self.flavor {
            Flavor::Namespace => {
                if creating {
                    object.fields.insert("spec".into(), json!({ "finalizers": ["kubernetes"] }));
                    object.fields.insert("status".into(), json!({ "phase": "Active" }));
                }
            }
            Flavor::ConfigMap => {
                for field in ["data", "binaryData"] {
                    match object.fields.get(field) {
                        None | Some(Value::Null) => {}
                        Some(Value::Object(map)) => {
                            if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                                return Err(ApiError::invalid(
                                    &target,
                                    &format!("{field}[{k}]"),
                                    k,
                                    "value must be a string",
                                ));
                            }
                        }
                        Some(_) => return Err(ApiError::invalid(&target, field, "", "must be a map of strings")),
                    }
                }
            }
            Flavor::Secret => {
                let mut data = match object.fields.remove("data") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(map)) => map,
                    Some(_) => return Err(ApiError::invalid(&target, "data", "", "must be a map of base64 strings")),
                };
                for (k, v) in &data {
                    let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
                    if !ok {
                        return Err(ApiError::invalid(
                            &target,
                            &format!("data[{k}]"),
                            k,
                            "must be a base64-encoded string",
                        ));
                    }
                }
                match object.fields.remove("stringData") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(map)) => {
                        for (k, v) in map {
                            let Some(s) = v.as_str() else {
                                return Err(ApiError::invalid(
                                    &target,
                                    &format!("stringData[{k}]"),
                                    &k,
                                    "must be a string",
                                ));
                            };
                            data.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(s)));
                        }
                    }
                    Some(_) => return Err(ApiError::invalid(&target, "stringData", "", "must be a map of strings")),
                }
                if !data.is_empty() {
                    object.fields.insert("data".into(), Value::Object(data));
                }
                if !object.fields.get("type").is_some_and(Value::is_string) {
                    object.fields.insert("type".into(), json!("Opaque"));
                }
            }
            Flavor::Deployment => {
                let Some(spec) = object.fields.get("spec").filter(|spec| spec.is_object()) else {
                    return Err(ApiError::invalid(&target, "spec", "", "Required value"));
                };
                match spec.get("replicas") {
                    None | Some(Value::Null) => {}
                    Some(replicas) => match replicas.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
                        Some(n) if n < 0 => {
                            return Err(ApiError::invalid_value(
                                &target,
                                "spec.replicas",
                                replicas,
                                "must be greater than or equal to 0",
                            ))
                        }
                        Some(_) => {}
                        None => {
                            return Err(ApiError::invalid_value(
                                &target,
                                "spec.replicas",
                                replicas,
                                "must be a 32-bit integer",
                            ))
                        }
                    },
                }
            }
            Flavor::CoreEvent | Flavor::EventsV1Event | Flavor::Custom => {}
        }
        Ok(())
    }

    /// The object as stored (events.k8s.io events become core/v1 events).
    pub fn to_storage(&self, mut object: Object) -> Object {
        if self.flavor == Flavor::EventsV1Event {
            rename_fields(&mut object.fields, EVENT_FIELD_MAP.iter().map(|(core, v1)| (*v1, *core)));
            object.api_version = "v1".into();
        }
        object
    }

    /// The object as this API serves it, with `apiVersion` and `kind` set.
    pub fn served(&self, mut object: Object) -> Object {
        if self.flavor == Flavor::EventsV1Event {
            rename_fields(&mut object.fields, EVENT_FIELD_MAP.iter().copied());
        }
        object.api_version = self.api_version();
        object.kind.clone_from(&self.kind);
        object
    }
}

/// core/v1 Event field ↔ events.k8s.io/v1 Event field.
const EVENT_FIELD_MAP: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename_fields<'a>(fields: &mut Map<String, Value>, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (from, to) in pairs {
        if let Some(value) = fields.remove(from) {
            fields.insert(to.to_owned(), value);
        }
    }
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(apistore::names::is_dns1123_subdomain) && !name.is_empty() && valid_label_value(name)
}

/// Every served resource.
pub struct ResourceTable {
    resources: Vec<Arc<Resource>>,
}

struct Spec<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    plural: &'a str,
    namespaced: bool,
    short_names: &'a [&'a str],
    flavor: Flavor,
}

const BUILT_IN: &[Spec<'static>] = &[
    Spec {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short_names: &["ns"],
        flavor: Flavor::Namespace,
    },
    Spec {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short_names: &["cm"],
        flavor: Flavor::ConfigMap,
    },
    Spec {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short_names: &[],
        flavor: Flavor::Secret,
    },
    Spec {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        flavor: Flavor::CoreEvent,
    },
    Spec {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &[],
        flavor: Flavor::EventsV1Event,
    },
    Spec {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short_names: &["deploy"],
        flavor: Flavor::Deployment,
    },
];

impl ResourceTable {
    /// Opens the storage of every built-in and custom resource.
    ///
    /// Errors: a message naming the resource whose backend could not be opened, or a
    /// custom resource that clashes with a served one.
    pub async fn open(
        provider: &mut StorageProvider,
        custom: &[CustomResource],
        event_ttl_seconds: u64,
    ) -> Result<Self, String> {
        let mut resources = Vec::new();
        for spec in BUILT_IN {
            let (storage, storage_prefix) = provider
                .storage(spec.group, spec.plural, false)
                .await
                .map_err(|e| format!("opening storage of {}: {e}", spec.plural))?;
            resources.push(Arc::new(Resource {
                group: spec.group.into(),
                version: spec.version.into(),
                kind: spec.kind.into(),
                plural: spec.plural.into(),
                singular: spec.kind.to_lowercase(),
                namespaced: spec.namespaced,
                short_names: spec.short_names.iter().map(|s| s.to_string()).collect(),
                storage_prefix,
                storage,
                flavor: spec.flavor,
                ttl_seconds: if spec.plural == "events" { event_ttl_seconds } else { 0 },
            }));
        }
        for cr in custom {
            if cr.group.is_empty() || cr.plural.is_empty() || cr.kind.is_empty() || cr.version.is_empty() {
                return Err(format!("custom resource {cr:?}: group, version, kind and plural are required"));
            }
            if resources.iter().any(|r| r.group == cr.group && r.version == cr.version && r.plural == cr.plural) {
                return Err(format!("custom resource {}.{} is served twice", cr.plural, cr.group));
            }
            let (storage, storage_prefix) = provider
                .storage(&cr.group, &cr.plural, true)
                .await
                .map_err(|e| format!("opening storage of {}.{}: {e}", cr.plural, cr.group))?;
            resources.push(Arc::new(Resource {
                group: cr.group.clone(),
                version: cr.version.clone(),
                kind: cr.kind.clone(),
                plural: cr.plural.clone(),
                singular: if cr.singular.is_empty() { cr.kind.to_lowercase() } else { cr.singular.clone() },
                namespaced: cr.namespaced,
                short_names: cr.short_names.clone(),
                storage_prefix,
                storage,
                flavor: Flavor::Custom,
                ttl_seconds: 0,
            }));
        }
        Ok(ResourceTable { resources })
    }

    /// The resource `plural` of `group`/`version`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    }

    /// The namespaces resource.
    pub fn namespaces(&self) -> Option<Arc<Resource>> {
        self.find("", "v1", "namespaces")
    }

    /// Served API groups (not core) with their versions, in table order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version.clone()),
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        groups
    }

    /// Resources of one group/version.
    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Arc<Resource>> {
        self.resources.iter().filter(move |r| r.group == group && r.version == version)
    }

    /// One storage per storage location (cohabiting resources once).
    pub fn distinct_storages(&self) -> Vec<Arc<Resource>> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for r in &self.resources {
            if !seen.contains(&r.storage_prefix) {
                seen.push(r.storage_prefix.clone());
                out.push(r.clone());
            }
        }
        out
    }
}
