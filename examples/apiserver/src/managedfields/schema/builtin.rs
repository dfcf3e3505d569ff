//! The schemas of the built-in kinds served, from the markers of kubernetes/api
//! `core/v1/types.go`, `apps/v1/types.go`, `events/v1/types.go` and apimachinery
//! `meta/v1/types.go` (`+listType`, `+listMapKey`, `+mapType`, `+structType`), and the empty
//! object of each kind as kube's converter renders a zero Go struct.
//!
//! Declared struct fields are listed so their fields are not owned as map members; what is
//! not listed is deduced (objects granular, lists atomic).

use super::{ListKind, Node};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The schema of `kind` in `api_version`: the kinds served (core/v1 Namespace, ConfigMap,
/// Secret, Event; events.k8s.io/v1 Event; apps/v1 Deployment), else [`deduced_kind`].
pub fn builtin(api_version: &str, kind: &str) -> Node {
    match (api_version, kind) {
        ("v1", "Namespace") => object([
            ("spec", Node::map([("finalizers", Node::atomic_list(Node::Scalar))])),
            ("status", Node::map([("phase", Node::Scalar), ("conditions", conditions())])),
        ]),
        ("v1", "ConfigMap") => object([
            ("data", Node::map_of(Node::Scalar)),
            ("binaryData", Node::map_of(Node::Scalar)),
            ("immutable", Node::Scalar),
        ]),
        ("v1", "Secret") => object([
            ("data", Node::map_of(Node::Scalar)),
            ("stringData", Node::map_of(Node::Scalar)),
            ("type", Node::Scalar),
            ("immutable", Node::Scalar),
        ]),
        ("v1", "Event") => object([
            ("involvedObject", object_reference()),
            ("reason", Node::Scalar),
            ("message", Node::Scalar),
            ("source", event_source()),
            ("firstTimestamp", Node::Scalar),
            ("lastTimestamp", Node::Scalar),
            ("count", Node::Scalar),
            ("type", Node::Scalar),
            ("eventTime", Node::Scalar),
            ("series", Node::map([("count", Node::Scalar), ("lastObservedTime", Node::Scalar)])),
            ("action", Node::Scalar),
            ("related", object_reference()),
            ("reportingComponent", Node::Scalar),
            ("reportingInstance", Node::Scalar),
        ]),
        ("events.k8s.io/v1", "Event") => object([
            ("eventTime", Node::Scalar),
            ("series", Node::map([("count", Node::Scalar), ("lastObservedTime", Node::Scalar)])),
            ("reportingController", Node::Scalar),
            ("reportingInstance", Node::Scalar),
            ("action", Node::Scalar),
            ("reason", Node::Scalar),
            ("regarding", object_reference()),
            ("related", object_reference()),
            ("note", Node::Scalar),
            ("type", Node::Scalar),
            ("deprecatedSource", event_source()),
            ("deprecatedFirstTimestamp", Node::Scalar),
            ("deprecatedLastTimestamp", Node::Scalar),
            ("deprecatedCount", Node::Scalar),
        ]),
        ("apps/v1", "Deployment") => deployment(),
        _ => deduced_kind(),
    }
}

/// Any other kind (custom resources without a schema): `apiVersion`, `kind` and `metadata`
/// typed, the rest deduced.
pub fn deduced_kind() -> Node {
    object([])
}

/// The empty object of a served built-in kind, as kube's converter renders the zero Go struct
/// (non-pointer structs `{}`, non-omitempty nil slices and times `null`); for other kinds
/// just `apiVersion` and `kind`. Ownership of a create is computed against it, which is why
/// kube's entries have no `".":{}` on `f:spec` of a created Deployment.
pub fn zero_object(api_version: &str, kind: &str) -> Value {
    let mut zero = match (api_version, kind) {
        ("v1", "Namespace") => json!({"metadata": {"creationTimestamp": null}, "spec": {}, "status": {}}),
        ("v1", "ConfigMap") | ("v1", "Secret") => json!({"metadata": {"creationTimestamp": null}}),
        ("v1", "Event") => json!({
            "metadata": {"creationTimestamp": null}, "involvedObject": {}, "source": {},
            "firstTimestamp": null, "lastTimestamp": null, "eventTime": null,
            "reportingComponent": "", "reportingInstance": ""
        }),
        ("events.k8s.io/v1", "Event") => json!({
            "metadata": {"creationTimestamp": null}, "eventTime": null, "regarding": {},
            "deprecatedSource": {}, "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null
        }),
        ("apps/v1", "Deployment") => json!({
            "metadata": {"creationTimestamp": null},
            "spec": {
                "selector": null,
                "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}},
                "strategy": {}
            },
            "status": {}
        }),
        _ => json!({}),
    };
    if let Value::Object(m) = &mut zero {
        m.insert("apiVersion".to_owned(), Value::String(api_version.to_owned()));
        m.insert("kind".to_owned(), Value::String(kind.to_owned()));
    }
    zero
}

/// `ObjectMeta`: labels and annotations granular string maps, `finalizers` a set,
/// `ownerReferences` a map list keyed by `uid`.
pub fn metadata() -> Node {
    Node::map([
        ("name", Node::Scalar),
        ("generateName", Node::Scalar),
        ("namespace", Node::Scalar),
        ("selfLink", Node::Scalar),
        ("uid", Node::Scalar),
        ("resourceVersion", Node::Scalar),
        ("generation", Node::Scalar),
        ("creationTimestamp", Node::Scalar),
        ("deletionTimestamp", Node::Scalar),
        ("deletionGracePeriodSeconds", Node::Scalar),
        ("labels", Node::map_of(Node::Scalar)),
        ("annotations", Node::map_of(Node::Scalar)),
        (
            "ownerReferences",
            Node::keyed_list(
                &["uid"],
                Node::map([
                    ("apiVersion", Node::Scalar),
                    ("kind", Node::Scalar),
                    ("name", Node::Scalar),
                    ("uid", Node::Scalar),
                    ("controller", Node::Scalar),
                    ("blockOwnerDeletion", Node::Scalar),
                ]),
            ),
        ),
        ("finalizers", Node::set()),
        ("managedFields", Node::atomic_list(Node::Deduced)),
    ])
}

/// A top-level object: `apiVersion`, `kind`, `metadata` and these fields.
fn object<const N: usize>(fields: [(&str, Node); N]) -> Node {
    let mut all: BTreeMap<String, Node> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    all.insert("apiVersion".to_owned(), Node::Scalar);
    all.insert("kind".to_owned(), Node::Scalar);
    all.insert("metadata".to_owned(), metadata());
    Node::Map { fields: all, additional: None, atomic: false }
}

/// A struct owned as a whole (`+structType=atomic`, `+mapType=atomic`).
fn atomic_map(values: Node) -> Node {
    Node::Map { fields: BTreeMap::new(), additional: Some(Box::new(values)), atomic: true }
}

fn scalars(names: &[&str]) -> Vec<(String, Node)> {
    names.iter().map(|n| ((*n).to_owned(), Node::Scalar)).collect()
}

fn structure(mut fields: Vec<(String, Node)>, more: Vec<(&str, Node)>) -> Node {
    fields.extend(more.into_iter().map(|(k, v)| (k.to_owned(), v)));
    Node::Map { fields: fields.into_iter().collect(), additional: None, atomic: false }
}

fn object_reference() -> Node {
    structure(scalars(&["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"]), vec![])
}

fn event_source() -> Node {
    Node::map([("component", Node::Scalar), ("host", Node::Scalar)])
}

/// `[]Condition` keyed by `type` (`+listType=map +listMapKey=type`).
fn conditions() -> Node {
    Node::keyed_list(
        &["type"],
        structure(scalars(&["type", "status", "lastUpdateTime", "lastTransitionTime", "reason", "message"]), vec![]),
    )
}

/// `metav1.LabelSelector` is `+structType=atomic`.
fn label_selector() -> Node {
    atomic_map(Node::Deduced)
}

fn deployment() -> Node {
    object([
        (
            "spec",
            structure(
                scalars(&["replicas", "minReadySeconds", "revisionHistoryLimit", "paused", "progressDeadlineSeconds"]),
                vec![
                    ("selector", label_selector()),
                    ("template", pod_template()),
                    (
                        "strategy",
                        Node::map([
                            ("type", Node::Scalar),
                            (
                                "rollingUpdate",
                                Node::map([("maxUnavailable", Node::Scalar), ("maxSurge", Node::Scalar)]),
                            ),
                        ]),
                    ),
                ],
            ),
        ),
        (
            "status",
            structure(
                scalars(&[
                    "observedGeneration",
                    "replicas",
                    "updatedReplicas",
                    "readyReplicas",
                    "availableReplicas",
                    "unavailableReplicas",
                    "terminatingReplicas",
                    "collisionCount",
                ]),
                vec![("conditions", conditions())],
            ),
        ),
    ])
}

fn pod_template() -> Node {
    Node::map([("metadata", metadata()), ("spec", pod_spec())])
}

fn pod_spec() -> Node {
    structure(
        scalars(&[
            "restartPolicy",
            "terminationGracePeriodSeconds",
            "activeDeadlineSeconds",
            "dnsPolicy",
            "serviceAccountName",
            "serviceAccount",
            "automountServiceAccountToken",
            "nodeName",
            "hostNetwork",
            "hostPID",
            "hostIPC",
            "shareProcessNamespace",
            "hostname",
            "subdomain",
            "schedulerName",
            "priorityClassName",
            "priority",
            "runtimeClassName",
            "enableServiceLinks",
            "preemptionPolicy",
            "setHostnameAsFQDN",
            "hostUsers",
        ]),
        vec![
            ("volumes", Node::keyed_list(&["name"], volume())),
            ("initContainers", Node::keyed_list(&["name"], container())),
            ("containers", Node::keyed_list(&["name"], container())),
            ("ephemeralContainers", Node::keyed_list(&["name"], container())),
            ("nodeSelector", atomic_map(Node::Scalar)),
            ("securityContext", pod_security_context()),
            ("imagePullSecrets", Node::keyed_list(&["name"], Node::map([("name", Node::Scalar)]))),
            ("affinity", Node::Deduced),
            ("tolerations", Node::atomic_list(Node::Deduced)),
            (
                "hostAliases",
                Node::keyed_list(
                    &["ip"],
                    Node::map([("ip", Node::Scalar), ("hostnames", Node::atomic_list(Node::Scalar))]),
                ),
            ),
            (
                "dnsConfig",
                Node::map([
                    ("nameservers", Node::atomic_list(Node::Scalar)),
                    ("searches", Node::atomic_list(Node::Scalar)),
                    ("options", Node::atomic_list(Node::Deduced)),
                ]),
            ),
            ("readinessGates", Node::atomic_list(Node::Deduced)),
            ("overhead", Node::map_of(Node::Scalar)),
            (
                "topologySpreadConstraints",
                Node::keyed_list(
                    &["topologyKey", "whenUnsatisfiable"],
                    structure(
                        scalars(&[
                            "maxSkew",
                            "topologyKey",
                            "whenUnsatisfiable",
                            "minDomains",
                            "nodeAffinityPolicy",
                            "nodeTaintsPolicy",
                        ]),
                        vec![("labelSelector", label_selector()), ("matchLabelKeys", Node::atomic_list(Node::Scalar))],
                    ),
                ),
            ),
            ("os", Node::map([("name", Node::Scalar)])),
            ("schedulingGates", Node::keyed_list(&["name"], Node::map([("name", Node::Scalar)]))),
            ("resourceClaims", Node::keyed_list(&["name"], Node::Deduced)),
            ("resources", resource_requirements()),
        ],
    )
}

fn pod_security_context() -> Node {
    structure(
        scalars(&[
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "fsGroup",
            "fsGroupChangePolicy",
            "supplementalGroupsPolicy",
            "seLinuxChangePolicy",
        ]),
        vec![
            ("supplementalGroups", Node::atomic_list(Node::Scalar)),
            ("sysctls", Node::atomic_list(Node::Deduced)),
            ("seLinuxOptions", Node::Deduced),
            ("windowsOptions", Node::Deduced),
            ("seccompProfile", Node::Deduced),
            ("appArmorProfile", Node::Deduced),
        ],
    )
}

fn resource_requirements() -> Node {
    Node::map([
        ("limits", Node::map_of(Node::Scalar)),
        ("requests", Node::map_of(Node::Scalar)),
        ("claims", Node::keyed_list(&["name"], Node::map([("name", Node::Scalar), ("request", Node::Scalar)]))),
    ])
}

fn container() -> Node {
    structure(
        scalars(&[
            "name",
            "image",
            "workingDir",
            "restartPolicy",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "imagePullPolicy",
            "stdin",
            "stdinOnce",
            "tty",
            "targetContainerName",
        ]),
        vec![
            ("command", Node::atomic_list(Node::Scalar)),
            ("args", Node::atomic_list(Node::Scalar)),
            (
                "ports",
                Node::List {
                    kind: ListKind::Map(vec!["containerPort".to_owned(), "protocol".to_owned()]),
                    items: Box::new(Node::map([
                        ("name", Node::Scalar),
                        ("hostPort", Node::Scalar),
                        ("containerPort", Node::Scalar),
                        ("protocol", Node::DefaultedScalar(Value::String("TCP".to_owned()))),
                        ("hostIP", Node::Scalar),
                    ])),
                },
            ),
            ("envFrom", Node::atomic_list(Node::Deduced)),
            (
                "env",
                Node::keyed_list(
                    &["name"],
                    Node::map([
                        ("name", Node::Scalar),
                        ("value", Node::Scalar),
                        (
                            "valueFrom",
                            Node::map([
                                ("fieldRef", Node::Deduced),
                                ("resourceFieldRef", Node::Deduced),
                                ("configMapKeyRef", Node::Deduced),
                                ("secretKeyRef", Node::Deduced),
                                ("fileKeyRef", Node::Deduced),
                            ]),
                        ),
                    ]),
                ),
            ),
            ("resources", resource_requirements()),
            ("resizePolicy", Node::atomic_list(Node::Deduced)),
            (
                "volumeMounts",
                Node::keyed_list(
                    &["mountPath"],
                    structure(
                        scalars(&[
                            "name",
                            "readOnly",
                            "recursiveReadOnly",
                            "mountPath",
                            "subPath",
                            "mountPropagation",
                            "subPathExpr",
                        ]),
                        vec![],
                    ),
                ),
            ),
            (
                "volumeDevices",
                Node::keyed_list(&["devicePath"], Node::map([("name", Node::Scalar), ("devicePath", Node::Scalar)])),
            ),
            ("livenessProbe", probe()),
            ("readinessProbe", probe()),
            ("startupProbe", probe()),
            (
                "lifecycle",
                Node::map([("postStart", handler(vec![])), ("preStop", handler(vec![])), ("stopSignal", Node::Scalar)]),
            ),
            (
                "securityContext",
                structure(
                    scalars(&[
                        "privileged",
                        "runAsUser",
                        "runAsGroup",
                        "runAsNonRoot",
                        "readOnlyRootFilesystem",
                        "allowPrivilegeEscalation",
                        "procMount",
                    ]),
                    vec![
                        (
                            "capabilities",
                            Node::map([
                                ("add", Node::atomic_list(Node::Scalar)),
                                ("drop", Node::atomic_list(Node::Scalar)),
                            ]),
                        ),
                        ("seLinuxOptions", Node::Deduced),
                        ("windowsOptions", Node::Deduced),
                        ("seccompProfile", Node::Deduced),
                        ("appArmorProfile", Node::Deduced),
                    ],
                ),
            ),
        ],
    )
}

/// A probe or lifecycle handler: `exec.command` and `httpGet.httpHeaders` atomic.
fn handler(more: Vec<(&str, Node)>) -> Node {
    let mut fields = vec![
        ("exec", Node::map([("command", Node::atomic_list(Node::Scalar))])),
        (
            "httpGet",
            Node::map([
                ("path", Node::Scalar),
                ("port", Node::Scalar),
                ("host", Node::Scalar),
                ("scheme", Node::Scalar),
                ("httpHeaders", Node::atomic_list(Node::Deduced)),
            ]),
        ),
        ("tcpSocket", Node::map([("port", Node::Scalar), ("host", Node::Scalar)])),
        ("grpc", Node::map([("port", Node::Scalar), ("service", Node::Scalar)])),
        ("sleep", Node::map([("seconds", Node::Scalar)])),
    ];
    fields.extend(more);
    structure(vec![], fields)
}

fn probe() -> Node {
    handler(
        [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
            "terminationGracePeriodSeconds",
        ]
        .into_iter()
        .map(|n| (n, Node::Scalar))
        .collect(),
    )
}

fn volume() -> Node {
    let sources = [
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    structure(scalars(&["name"]), sources.into_iter().map(|s| (s, Node::Deduced)).collect())
}
