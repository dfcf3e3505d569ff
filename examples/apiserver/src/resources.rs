//! The table of served resources: names, scope, verbs, storage and per-kind rules.
//!
//! Built-in: namespaces (cluster-scoped), configmaps, secrets, events (core/v1 and
//! events.k8s.io/v1 cohabiting in one storage location, stored in the core/v1 shape),
//! apps/v1 deployments, the rbac.authorization.k8s.io/v1 kinds, and the create-only
//! authorization.k8s.io/v1 self-subject reviews; plus custom resources from the config.

use std::sync::{Arc, RwLock};

use apistore::storage::DynStorage;
use apistore::Object;

use crate::backend::StorageProvider;
use crate::codec::Gvk;
use crate::config::CustomResource;
use crate::managedfields::{self, schema::Node, Manager};
use crate::registry::{self, Strategy};
use crate::status::{ApiError, ApiResult, Target};

/// The verbs every served resource supports.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

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
    /// What differs per kind: preparation, validation, printing, conversion.
    pub strategy: Arc<dyn Strategy>,
    /// True for custom resources (decoded as kube's unstructured objects).
    pub custom: bool,
    /// The CustomResourceDefinition that defines this resource (None: built-in or from the
    /// config file).
    pub crd: Option<String>,
    /// Set while the defining CRD is being deleted: creates are refused.
    pub terminating: std::sync::atomic::AtomicBool,
    /// [`Resource::merge_schema`], built on first use.
    pub merge_schema: std::sync::OnceLock<Node>,
    /// Objects expire this many seconds after their last write (0 = never; kube's
    /// `--event-ttl` for events).
    pub ttl_seconds: u64,
    /// Flips to true when this entry's storage is replaced (a migration's cutover): open
    /// watches on it end, so clients watch again on the new storage.
    pub retired: tokio::sync::watch::Sender<bool>,
}

impl Resource {
    /// This resource served from another storage (a migration's cutover).
    pub fn with_storage(&self, storage: DynStorage, storage_prefix: String) -> Resource {
        Resource {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
            singular: self.singular.clone(),
            namespaced: self.namespaced,
            short_names: self.short_names.clone(),
            storage_prefix,
            storage,
            strategy: self.strategy.clone(),
            custom: self.custom,
            crd: self.crd.clone(),
            terminating: std::sync::atomic::AtomicBool::new(self.terminating.load(std::sync::atomic::Ordering::SeqCst)),
            merge_schema: Default::default(),
            ttl_seconds: self.ttl_seconds,
            retired: tokio::sync::watch::Sender::new(false),
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        self.gvk().api_version()
    }

    /// The group/version/kind this resource decodes and serves.
    pub fn gvk(&self) -> Gvk<'_> {
        Gvk { group: &self.group, version: &self.version, kind: &self.kind }
    }

    /// True when `version` of this resource's group serves this kind (this server serves
    /// one version per resource entry).
    pub fn served_version(&self, version: &str) -> bool {
        self.version == version
    }

    /// `ConfigMapList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// True for a custom resource.
    pub fn is_custom(&self) -> bool {
        self.custom
    }

    /// True for core/v1 namespaces.
    pub fn is_namespaces(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// True when the resource has a `status` subresource (status kept apart from spec).
    pub fn has_status(&self) -> bool {
        self.strategy.has_status()
    }

    /// True when the resource has a `scale` subresource (autoscaling/v1 `Scale`).
    pub fn has_scale(&self) -> bool {
        self.strategy.has_scale()
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
        self.strategy.tracks_generation()
    }

    /// The type tree server-side apply and field tracking merge this resource's objects with
    /// (built once per resource).
    pub fn merge_schema(&self) -> &Node {
        self.merge_schema.get_or_init(|| {
            self.strategy
                .merge_schema()
                .unwrap_or_else(|| managedfields::schema::builtin(&self.api_version(), &self.kind))
        })
    }

    /// Records a write by `manager` in `new`'s `metadata.managedFields` (kube's field
    /// manager on create, update and non-apply patch); `live` is the stored object (API
    /// shape) of an update.
    ///
    /// Errors: 500 when an object cannot be tracked (not a JSON object).
    pub fn track_write(&self, live: Option<&Object>, new: Object, manager: &Manager) -> ApiResult<Object> {
        let live = live.map(serde_json::to_value).transpose().map_err(|e| ApiError::internal(e.to_string()))?;
        let new_value = serde_json::to_value(&new).map_err(|e| ApiError::internal(e.to_string()))?;
        // Only the list is computed from the JSON view; the object itself is not converted back.
        let managed_fields =
            managedfields::fieldmanager::updated_managed_fields(live.as_ref(), new_value, manager, self.merge_schema())
                .map_err(|e| ApiError::internal(format!("failed to update managed fields: {e}")))?;
        let mut new = new;
        new.metadata.managed_fields = managed_fields.unwrap_or_default();
        Ok(new)
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
        if self.is_namespaces() {
            if !apistore::names::is_dns1123_label(name) {
                return Err(ApiError::invalid(&target, "metadata.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
            }
        } else if !apistore::names::is_dns1123_subdomain(name) {
            return Err(ApiError::invalid(&target, "metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        }
        Ok(())
    }

    /// Validates an object about to be written (API shape): `metadata` rules every kind
    /// shares, then the kind's own (`old` is the stored object of an update).
    ///
    /// Errors: 422 Invalid listing every field error.
    pub fn validate(&self, object: &Object, old: Option<&Object>) -> ApiResult<()> {
        let mut errors = registry::validate_object_meta(object);
        errors.extend(match old {
            None => self.strategy.validate(object),
            Some(old) => self.strategy.validate_update(object, old),
        });
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(&self.target(&object.metadata.name), &errors))
        }
    }

    /// The object as stored (events.k8s.io events become core/v1 events).
    pub fn to_storage(&self, object: Object) -> Object {
        self.strategy.to_storage(object)
    }

    /// The object as this API serves it, with `apiVersion` and `kind` set.
    pub fn served(&self, object: Object) -> Object {
        let mut object = self.strategy.to_served(object);
        object.api_version = self.api_version();
        object.kind.clone_from(&self.kind);
        object
    }
}

/// Every served resource. Resources come and go at run time (CustomResourceDefinitions):
/// readers take a snapshot, writers swap in a new one.
pub struct ResourceTable {
    resources: RwLock<Arc<Vec<Arc<Resource>>>>,
}

struct Spec<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    plural: &'a str,
    namespaced: bool,
    short_names: &'a [&'a str],
    strategy: fn() -> Arc<dyn Strategy>,
}

const BUILT_IN: &[Spec<'static>] = &[
    Spec {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short_names: &["ns"],
        strategy: || Arc::new(registry::NamespaceStrategy),
    },
    Spec {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short_names: &["cm"],
        strategy: || Arc::new(registry::ConfigMapStrategy),
    },
    Spec {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short_names: &[],
        strategy: || Arc::new(registry::SecretStrategy),
    },
    Spec {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        strategy: || Arc::new(registry::CoreEventStrategy),
    },
    Spec {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &[],
        strategy: || Arc::new(registry::EventsV1Strategy),
    },
    Spec {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        short_names: &["crd", "crds"],
        strategy: || Arc::new(registry::CrdStrategy),
    },
    Spec {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short_names: &["deploy"],
        strategy: || Arc::new(registry::DeploymentStrategy),
    },
    Spec {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        short_names: &[],
        strategy: || Arc::new(registry::RbacStrategy::ClusterRole),
    },
    Spec {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        short_names: &[],
        strategy: || Arc::new(registry::RbacStrategy::ClusterRoleBinding),
    },
    Spec {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        short_names: &[],
        strategy: || Arc::new(registry::RbacStrategy::Role),
    },
    Spec {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        short_names: &[],
        strategy: || Arc::new(registry::RbacStrategy::RoleBinding),
    },
    // Create-only virtual resources: answered by `auth::access_review`, never stored.
    Spec {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        namespaced: false,
        short_names: &[],
        strategy: || Arc::new(registry::AccessReviewStrategy),
    },
    Spec {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        namespaced: false,
        short_names: &[],
        strategy: || Arc::new(registry::AccessReviewStrategy),
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
                strategy: (spec.strategy)(),
                custom: false,
                crd: None,
                terminating: Default::default(),
                merge_schema: Default::default(),
                ttl_seconds: if spec.plural == "events" { event_ttl_seconds } else { 0 },
                retired: tokio::sync::watch::Sender::new(false),
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
                strategy: Arc::new(registry::CustomStrategy),
                custom: true,
                crd: None,
                terminating: Default::default(),
                merge_schema: Default::default(),
                ttl_seconds: 0,
                retired: tokio::sync::watch::Sender::new(false),
            }));
        }
        Ok(ResourceTable { resources: RwLock::new(Arc::new(resources)) })
    }

    /// The resources served now.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Resource>>> {
        match self.resources.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the served resources with what `change` makes of the current ones.
    #[allow(dead_code)] // used by the CustomResourceDefinition controller
    pub fn update(&self, change: impl FnOnce(&mut Vec<Arc<Resource>>)) {
        let mut guard = match self.resources.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = guard.as_ref().clone();
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// The resource `plural` of `group`/`version`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.snapshot().iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    }

    /// The namespaces resource.
    pub fn namespaces(&self) -> Option<Arc<Resource>> {
        self.find("", "v1", "namespaces")
    }

    /// Served API groups (not core) with their versions, in table order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.snapshot().iter().filter(|r| !r.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version.clone()),
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        groups
    }

    /// Resources of one group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<Resource>> {
        self.snapshot().iter().filter(|r| r.group == group && r.version == version).cloned().collect()
    }

    /// One storage per storage location (cohabiting resources once).
    pub fn distinct_storages(&self) -> Vec<Arc<Resource>> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for r in self.snapshot().iter() {
            if !seen.contains(&r.storage_prefix) {
                seen.push(r.storage_prefix.clone());
                out.push(r.clone());
            }
        }
        out
    }
}

/// The built-in resource `plural` of `group` over `storage` (None: not a built-in), or a custom
/// resource of that name when `custom`: for tests of the handlers' representations.
#[cfg(test)]
pub fn for_tests(group: &str, plural: &str, custom: bool, storage: DynStorage) -> Option<Resource> {
    let (version, kind, namespaced, strategy): (&str, String, bool, Arc<dyn Strategy>) = if custom {
        ("v1", "Gizmo".into(), true, Arc::new(registry::CustomStrategy))
    } else {
        let spec = BUILT_IN.iter().find(|s| s.group == group && s.plural == plural)?;
        (spec.version, spec.kind.into(), spec.namespaced, (spec.strategy)())
    };
    Some(Resource {
        group: group.into(),
        version: version.into(),
        singular: kind.to_lowercase(),
        kind,
        plural: plural.into(),
        namespaced,
        short_names: Vec::new(),
        storage_prefix: plural.into(),
        storage,
        strategy,
        custom,
        crd: None,
        terminating: Default::default(),
        merge_schema: Default::default(),
        ttl_seconds: 0,
        retired: tokio::sync::watch::Sender::new(false),
    })
}
