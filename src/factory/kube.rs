//! kube-apiserver's storage defaults (kubernetes `pkg/kubeapiserver/default_storage_factory_builder.go`).

use crate::group_resource::GroupResource;

/// `SpecialDefaultResourcePrefixes`: resources kube-apiserver stores under a historical name.
pub fn special_default_resource_prefixes() -> Vec<(GroupResource, &'static str)> {
    vec![
        (GroupResource::core("replicationcontrollers"), "controllers"),
        (GroupResource::core("endpoints"), "services/endpoints"),
        (GroupResource::core("nodes"), "minions"),
        (GroupResource::core("services"), "services/specs"),
        (GroupResource::new("extensions", "ingresses"), "ingress"),
        (GroupResource::new("networking.k8s.io", "ingresses"), "ingress"),
    ]
}

/// kube-apiserver's cohabitating resources: each list shares one storage location (the key
/// prefix drops the group), the first member whose group is enabled is where it is stored.
pub fn default_cohabitating_resources() -> Vec<Vec<GroupResource>> {
    let gr = GroupResource::new;
    vec![
        vec![gr("networking.k8s.io", "networkpolicies"), gr("extensions", "networkpolicies")],
        vec![gr("apps", "deployments"), gr("extensions", "deployments")],
        vec![gr("apps", "daemonsets"), gr("extensions", "daemonsets")],
        vec![gr("apps", "replicasets"), gr("extensions", "replicasets")],
        vec![gr("", "events"), gr("events.k8s.io", "events")],
        vec![gr("", "replicationcontrollers"), gr("extensions", "replicationcontrollers")],
        vec![gr("policy", "podsecuritypolicies"), gr("extensions", "podsecuritypolicies")],
        vec![gr("networking.k8s.io", "ingresses"), gr("extensions", "ingresses")],
    ]
}
