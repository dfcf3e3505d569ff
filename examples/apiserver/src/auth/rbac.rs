//! RBAC authorization, as kubernetes `plugin/pkg/auth/authorizer/rbac/rbac.go` and
//! `pkg/registry/rbac/validation/rule.go` evaluate it: allow-only rules reached through the
//! ClusterRoleBindings and the RoleBindings of the request's namespace, read from the
//! `rbac.authorization.k8s.io/v1` storages on every request (a binding written at run time
//! counts at once).
//!
//! Also the bootstrap policy this server writes at start when RBAC is on (kube's
//! `bootstrappolicy`): `cluster-admin` for `system:masters`, `system:discovery`,
//! `system:public-info-viewer` and `system:basic-user`.

use std::collections::HashMap;
use std::fmt::Write as _;

use apistore::names;
use apistore::storage::{GetOptions, ListOptions};
use apistore::Object;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::request_info::RequestInfo;
use super::UserInfo;
use crate::server::App;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// One rule of a Role or ClusterRole.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs (`*` = all).
    pub verbs: Vec<String>,
    /// API groups (`""` core, `*` all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`*`, `pods`, `pods/log`, `*/scale`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names (empty = all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis/*`, `*`).
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

/// Who a binding grants its role to.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// A service account's namespace (default: the binding's).
    pub namespace: String,
}

/// The role a binding grants.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// A RoleBinding (namespace set) or ClusterRoleBinding (namespace empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// The binding's name.
    pub name: String,
    /// The binding's namespace ("" for a ClusterRoleBinding).
    pub namespace: String,
    /// The role granted.
    pub role_ref: RoleRef,
    /// Who gets it.
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// A binding read from a stored object (missing or malformed fields read as empty).
    pub fn from_object(object: &Object) -> Binding {
        let field = |name: &str| object.fields.get(name).cloned().unwrap_or(Value::Null);
        Binding {
            name: object.metadata.name.clone(),
            namespace: object.metadata.namespace.clone(),
            role_ref: serde_json::from_value(field("roleRef")).unwrap_or_default(),
            subjects: serde_json::from_value(field("subjects")).unwrap_or_default(),
        }
    }

    /// kube's `appliesTo`: the index of the first subject that is `user`.
    fn applies_to(&self, user: &UserInfo) -> Option<usize> {
        self.subjects.iter().position(|s| applies_to_user(user, s, &self.namespace))
    }

    /// How kube names the source of an allowing rule (`RBAC: allowed by ...`).
    fn describe(&self, subject: &Subject) -> String {
        let who = match subject.kind.as_str() {
            "ServiceAccount" => {
                let ns = if subject.namespace.is_empty() { &self.namespace } else { &subject.namespace };
                format!("{} {:?}", subject.kind, format!("{}/{ns}", subject.name))
            }
            _ => format!("{} {:?}", subject.kind, subject.name),
        };
        if self.namespace.is_empty() {
            format!("ClusterRoleBinding {:?} of {} {:?} to {who}", self.name, self.role_ref.kind, self.role_ref.name)
        } else {
            let name = format!("{}/{}", self.name, self.namespace);
            format!("RoleBinding {name:?} of {} {:?} to {who}", self.role_ref.kind, self.role_ref.name)
        }
    }
}

fn applies_to_user(user: &UserInfo, subject: &Subject, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() { namespace } else { &subject.namespace };
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

/// The rules of a role, read from a stored Role or ClusterRole.
pub fn rules_of(object: &Object) -> Vec<PolicyRule> {
    object.fields.get("rules").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

fn matches_any(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

/// kube's `RuleAllows`: does `rule` allow the request `info`?
pub fn rule_allows(info: &RequestInfo, rule: &PolicyRule) -> bool {
    if !matches_any(&rule.verbs, &info.verb) {
        return false;
    }
    if !info.is_resource_request {
        return rule.non_resource_urls.iter().any(|url| {
            url == "*" || *url == info.path || (url.ends_with('*') && info.path.starts_with(url.trim_end_matches('*')))
        });
    }
    let combined = info.combined_resource();
    let resource_matches = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!info.subresource.is_empty()
                && r.len() == info.subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(info.subresource.as_str()))
    });
    matches_any(&rule.api_groups, &info.api_group)
        && resource_matches
        && (rule.resource_names.is_empty() || rule.resource_names.contains(&info.name))
}

/// The RBAC objects one decision reads: every ClusterRole and ClusterRoleBinding, the Roles
/// and RoleBindings of the request's namespace.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// ClusterRole rules by name.
    pub cluster_roles: HashMap<String, Vec<PolicyRule>>,
    /// Role rules of the namespace by name.
    pub roles: HashMap<String, Vec<PolicyRule>>,
    /// Every ClusterRoleBinding.
    pub cluster_role_bindings: Vec<Binding>,
    /// The RoleBindings of the namespace.
    pub role_bindings: Vec<Binding>,
}

/// What an RBAC check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// True when a rule allows the request.
    pub allowed: bool,
    /// `RBAC: allowed by ...`, or the resolution errors (`RBAC: role... not found`), or "".
    pub reason: String,
}

impl Policy {
    /// kube's `VisitRulesFor`: the rules reaching `user` in `namespace` ("" = cluster
    /// bindings only), each with its source, and resolution errors; `visit` returns false to
    /// stop.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(Option<(&Binding, &Subject)>, Option<&PolicyRule>, Option<String>) -> bool,
    ) {
        let cluster_bindings = self.cluster_role_bindings.iter().map(|b| (b, false));
        let namespace_bindings =
            self.role_bindings.iter().filter(|b| !namespace.is_empty() && b.namespace == namespace).map(|b| (b, true));
        for (binding, namespaced) in cluster_bindings.chain(namespace_bindings) {
            let Some(index) = binding.applies_to(user) else { continue };
            let name = &binding.role_ref.name;
            let rules = match binding.role_ref.kind.as_str() {
                "ClusterRole" => {
                    self.cluster_roles.get(name).ok_or_else(|| format!("clusterrole.{GROUP} {name:?} not found"))
                }
                "Role" if namespaced => self.roles.get(name).ok_or_else(|| format!("role.{GROUP} {name:?} not found")),
                other => Err(format!("unsupported role reference kind: {other:?}")),
            };
            let keep_going = match rules {
                Err(e) => visit(None, None, Some(e)),
                Ok(rules) => {
                    rules.iter().all(|rule| visit(Some((binding, &binding.subjects[index])), Some(rule), None))
                }
            };
            if !keep_going {
                return;
            }
        }
    }

    /// kube's RBAC `Authorize`: allowed when some rule reaching `user` allows `info`.
    pub fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Outcome {
        let mut allowed_by = None;
        let mut errors = Vec::new();
        self.visit_rules(user, &info.namespace, |source, rule, error| {
            if let (Some((binding, subject)), Some(rule)) = (source, rule) {
                if rule_allows(info, rule) {
                    allowed_by = Some(binding.describe(subject));
                    return false;
                }
            }
            errors.extend(error);
            true
        });
        match allowed_by {
            Some(source) => Outcome { allowed: true, reason: format!("RBAC: allowed by {source}") },
            None if errors.is_empty() => Outcome { allowed: false, reason: String::new() },
            None => Outcome { allowed: false, reason: format!("RBAC: {}", aggregate(&errors)) },
        }
    }

    /// Every rule reaching `user` in `namespace` and the resolution errors (kube's
    /// `RulesFor`, what a SelfSubjectRulesReview lists).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules(user, namespace, |_, rule, error| {
            rules.extend(rule.cloned());
            errors.extend(error);
            true
        });
        (rules, errors)
    }
}

/// Go's `utilerrors.NewAggregate(...).Error()`: one error alone, several as `[a, b]`.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => {
            let mut text = String::from("[");
            for (i, e) in many.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                let _ = write!(text, "{e}");
            }
            text.push(']');
            text
        }
    }
}

async fn list(app: &App, plural: &str, namespace: &str) -> Result<Vec<Object>, String> {
    let Some(resource) = app.table.find(GROUP, "v1", plural) else {
        return Ok(Vec::new());
    };
    let key = names::list_key(&resource.storage_prefix, namespace).map_err(|e| e.to_string())?;
    let options = ListOptions { recursive: true, ..Default::default() };
    let list = resource.storage.get_list(&key, options).await.map_err(|e| format!("listing {plural}: {e}"))?;
    Ok(list.items)
}

/// Reads the RBAC objects a decision in `namespace` needs from the storages.
///
/// Errors: a storage failure, as text.
pub async fn load_policy(app: &App, namespace: &str) -> Result<Policy, String> {
    let mut policy = Policy::default();
    for object in list(app, "clusterroles", "").await? {
        policy.cluster_roles.insert(object.metadata.name.clone(), rules_of(&object));
    }
    policy.cluster_role_bindings =
        list(app, "clusterrolebindings", "").await?.iter().map(Binding::from_object).collect();
    if !namespace.is_empty() {
        for object in list(app, "roles", namespace).await? {
            policy.roles.insert(object.metadata.name.clone(), rules_of(&object));
        }
        policy.role_bindings = list(app, "rolebindings", namespace).await?.iter().map(Binding::from_object).collect();
    }
    Ok(policy)
}

/// kube's bootstrap ClusterRoles and ClusterRoleBindings this server writes at start (the
/// ones that make authentication usable; kube's admin/edit/view and controller roles are
/// not written).
pub fn bootstrap_objects() -> Vec<(&'static str, Value)> {
    let annotations = json!({ "rbac.authorization.kubernetes.io/autoupdate": "true" });
    let labels = json!({ "kubernetes.io/bootstrapping": "rbac-defaults" });
    let role = |name: &str, rules: Value| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": { "name": name, "annotations": annotations, "labels": labels },
            "rules": rules,
        })
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> =
            groups.iter().map(|g| json!({ "kind": "Group", "apiGroup": GROUP, "name": g })).collect();
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": name, "annotations": annotations, "labels": labels },
            "roleRef": { "apiGroup": GROUP, "kind": "ClusterRole", "name": name },
            "subjects": subjects,
        })
    };
    vec![
        (
            "clusterroles",
            role(
                "cluster-admin",
                json!([
                    { "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] },
                    { "nonResourceURLs": ["*"], "verbs": ["*"] },
                ]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:discovery",
                json!([{
                    "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                        "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:public-info-viewer",
                json!([{
                    "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:basic-user",
                json!([{
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                }]),
            ),
        ),
        ("clusterrolebindings", binding("cluster-admin", &["system:masters"])),
        ("clusterrolebindings", binding("system:discovery", &["system:authenticated"])),
        (
            "clusterrolebindings",
            binding("system:public-info-viewer", &["system:authenticated", "system:unauthenticated"]),
        ),
        ("clusterrolebindings", binding("system:basic-user", &["system:authenticated"])),
    ]
}

/// Writes the [`bootstrap_objects`] that are missing (existing ones are left as they are).
///
/// Errors: a storage failure, naming the object.
pub async fn ensure_bootstrap_policy(app: &App) -> Result<(), String> {
    for (plural, value) in bootstrap_objects() {
        let Some(resource) = app.table.find(GROUP, "v1", plural) else { continue };
        let mut object: Object = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let name = object.metadata.name.clone();
        let failed = |e: apistore::Error| format!("writing {plural}/{name}: {e}");
        let key = names::object_key(&resource.storage_prefix, "", &name).map_err(failed)?;
        let options = GetOptions { ignore_not_found: true, ..GetOptions::default() };
        if resource.storage.get(&key, options).await.map_err(failed)?.is_some() {
            continue;
        }
        crate::handlers::before_create(&resource, &mut object);
        match resource.storage.create(&key, resource.to_storage(object), 0).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: strings(verbs),
            api_groups: strings(groups),
            resources: strings(resources),
            resource_names: strings(names),
            non_resource_urls: Vec::new(),
        }
    }

    fn request(method: &str, path: &str) -> RequestInfo {
        RequestInfo::new(method, path, "")
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.into(), uid: String::new(), groups: strings(groups) }
    }

    fn binding(name: &str, namespace: &str, kind: &str, role: &str, subjects: &[(&str, &str, &str)]) -> Binding {
        Binding {
            name: name.into(),
            namespace: namespace.into(),
            role_ref: RoleRef { kind: kind.into(), name: role.into() },
            subjects: subjects
                .iter()
                .map(|(k, n, ns)| Subject { kind: (*k).into(), name: (*n).into(), namespace: (*ns).into() })
                .collect(),
        }
    }

    #[test]
    fn rule_allows_as_kube() {
        let pods = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(rule_allows(&request("GET", "/api/v1/namespaces/a/pods"), &pods));
        assert!(rule_allows(&request("GET", "/api/v1/namespaces/a/pods/p"), &pods));
        assert!(!rule_allows(&request("DELETE", "/api/v1/namespaces/a/pods/p"), &pods));
        assert!(!rule_allows(&request("GET", "/apis/apps/v1/namespaces/a/deployments"), &pods));
        // Subresources must be named: exactly, or as */sub.
        assert!(!rule_allows(&request("GET", "/api/v1/namespaces/a/pods/p/log"), &pods));
        assert!(rule_allows(
            &request("GET", "/api/v1/namespaces/a/pods/p/log"),
            &rule(&["get"], &[""], &["pods/log"], &[])
        ));
        let any_scale = rule(&["update"], &["*"], &["*/scale"], &[]);
        assert!(rule_allows(&request("PUT", "/apis/apps/v1/namespaces/a/deployments/d/scale"), &any_scale));
        assert!(!rule_allows(&request("PUT", "/apis/apps/v1/namespaces/a/deployments/d/status"), &any_scale));
        assert!(!rule_allows(&request("PUT", "/apis/apps/v1/namespaces/a/deployments/d"), &any_scale));
        // resourceNames: named requests only, never list or create.
        let named = rule(&["*"], &[""], &["configmaps"], &["one"]);
        assert!(rule_allows(&request("GET", "/api/v1/namespaces/a/configmaps/one"), &named));
        assert!(!rule_allows(&request("GET", "/api/v1/namespaces/a/configmaps/two"), &named));
        assert!(!rule_allows(&request("GET", "/api/v1/namespaces/a/configmaps"), &named));
        assert!(!rule_allows(&request("POST", "/api/v1/namespaces/a/configmaps"), &named));
        let all = rule(&["*"], &["*"], &["*"], &[]);
        assert!(rule_allows(&request("DELETE", "/apis/x.io/v1/things"), &all));
        assert!(!rule_allows(&request("GET", "/healthz"), &all), "resource rules never match paths");
        let paths = PolicyRule {
            verbs: strings(&["get"]),
            non_resource_urls: strings(&["/healthz", "/apis/*"]),
            ..Default::default()
        };
        assert!(rule_allows(&request("GET", "/healthz"), &paths));
        assert!(!rule_allows(&request("GET", "/healthz/etcd"), &paths));
        assert!(rule_allows(&request("GET", "/apis/apps"), &paths));
        assert!(!rule_allows(&request("POST", "/apis/apps"), &paths));
        assert!(!rule_allows(&request("GET", "/api/v1/pods"), &paths), "paths never match resources");
    }

    fn policy() -> Policy {
        let mut p = Policy::default();
        p.cluster_roles.insert("view-cm".into(), vec![rule(&["get", "list", "watch"], &[""], &["configmaps"], &[])]);
        p.roles.insert("edit-cm".into(), vec![rule(&["*"], &[""], &["configmaps"], &[])]);
        p.cluster_role_bindings = vec![
            binding("viewers", "", "ClusterRole", "view-cm", &[("Group", "viewers", "")]),
            binding("dangling", "", "ClusterRole", "gone", &[("User", "carol", "")]),
        ];
        p.role_bindings = vec![
            binding("alice-edit", "team", "Role", "edit-cm", &[("User", "alice", "")]),
            binding("sa-view", "team", "ClusterRole", "view-cm", &[("ServiceAccount", "robot", "")]),
            binding("missing-role", "team", "Role", "nope", &[("User", "carol", "")]),
        ];
        p
    }

    #[test]
    fn bindings_reach_users_groups_and_service_accounts() {
        let p = policy();
        let create = request("POST", "/api/v1/namespaces/team/configmaps");
        let list_all = request("GET", "/api/v1/configmaps");
        let alice = user("alice", &["system:authenticated"]);
        let allowed = p.authorize(&alice, &create);
        assert!(allowed.allowed);
        assert_eq!(
            allowed.reason,
            "RBAC: allowed by RoleBinding \"alice-edit/team\" of Role \"edit-cm\" to User \"alice\""
        );
        // The RoleBinding counts in its namespace only.
        assert!(!p.authorize(&alice, &request("POST", "/api/v1/namespaces/other/configmaps")).allowed);
        assert!(!p.authorize(&alice, &list_all).allowed);
        let viewer = user("bob", &["viewers"]);
        let outcome = p.authorize(&viewer, &list_all);
        assert_eq!(
            outcome.reason,
            "RBAC: allowed by ClusterRoleBinding \"viewers\" of ClusterRole \"view-cm\" to Group \"viewers\""
        );
        assert!(!p.authorize(&viewer, &create).allowed);
        let robot = user("system:serviceaccount:team:robot", &[]);
        assert!(p.authorize(&robot, &request("GET", "/api/v1/namespaces/team/configmaps")).allowed);
        assert!(!p.authorize(&robot, &list_all).allowed, "a namespace-less SA subject needs the binding's namespace");
        assert_eq!(p.authorize(&user("dave", &[]), &create), Outcome { allowed: false, reason: String::new() });
        let carol = p.authorize(&user("carol", &[]), &create);
        assert_eq!(
            carol.reason,
            "RBAC: [clusterrole.rbac.authorization.k8s.io \"gone\" not found, role.rbac.authorization.k8s.io \"nope\" not found]"
        );
        let (rules, errors) = p.rules_for(&alice, "team");
        assert_eq!((rules.len(), errors.len()), (1, 0));
    }

    #[test]
    fn bootstrap_policy_reads_back() {
        let objects = bootstrap_objects();
        let mut p = Policy::default();
        for (plural, value) in &objects {
            let object: Object = serde_json::from_value(value.clone()).expect("object");
            match *plural {
                "clusterroles" => {
                    p.cluster_roles.insert(object.metadata.name.clone(), rules_of(&object));
                }
                _ => p.cluster_role_bindings.push(Binding::from_object(&object)),
            }
        }
        let anonymous = user("system:anonymous", &["system:unauthenticated"]);
        assert!(p.authorize(&anonymous, &request("GET", "/healthz")).allowed);
        assert!(!p.authorize(&anonymous, &request("GET", "/apis")).allowed);
        let someone = user("x", &["system:authenticated"]);
        assert!(p.authorize(&someone, &request("GET", "/apis")).allowed);
        assert!(
            p.authorize(&someone, &request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")).allowed
        );
        assert!(!p.authorize(&someone, &request("GET", "/api/v1/secrets")).allowed);
        let admin = user("root", &["system:masters"]);
        assert!(p.authorize(&admin, &request("DELETE", "/api/v1/namespaces/x/secrets/y")).allowed);
        assert!(p.authorize(&admin, &request("GET", "/metrics")).allowed);
    }
}
