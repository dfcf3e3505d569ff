//! The status kube's controllers give a CRD, as pure functions: names accepted or in
//! conflict (`controller/status/naming_controller.go`), `Established`
//! (`controller/establish`), and the `Terminating` steps of deletion
//! (`registry/customresourcedefinition/etcd.go`, `controller/finalizer/crd_finalizer.go`).
//! Times are passed in (RFC 3339) so results are deterministic.

use serde_json::{json, Value};

use super::crd::Names;

/// The finalizer a CRD gets while its custom resources are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// One `status.conditions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// `NamesAccepted`, `Established`, `Terminating`, ...
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl Condition {
    fn new(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition { type_: type_.into(), status: status.into(), reason: reason.into(), message: message.into() }
    }
}

/// Names already served in the CRD's group by other CRDs (their accepted plural, singular
/// and short names; kinds and list kinds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamesInUse {
    /// Resource names (plural, singular, short names).
    pub resources: Vec<String>,
    /// Kinds and list kinds.
    pub kinds: Vec<String>,
}

impl NamesInUse {
    /// The accepted names of `crds` in `group`, except the CRD named `except`.
    pub fn from_crds<'a>(group: &str, except: &str, crds: impl IntoIterator<Item = &'a Value>) -> NamesInUse {
        let mut used = NamesInUse::default();
        for crd in crds {
            let same_group = crd.pointer("/spec/group").and_then(Value::as_str) == Some(group);
            let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            if !same_group || name == except {
                continue;
            }
            let accepted = Names::from_value(crd.pointer("/status/acceptedNames").unwrap_or(&Value::Null));
            used.resources.extend([accepted.plural, accepted.singular].into_iter().filter(|n| !n.is_empty()));
            used.resources.extend(accepted.short_names);
            used.kinds.extend([accepted.kind, accepted.list_kind].into_iter().filter(|n| !n.is_empty()));
        }
        used
    }
}

fn fresh(requested: &str, accepted: &str, used: &[String]) -> Result<(), String> {
    if requested == accepted || !used.iter().any(|u| u == requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

/// The naming controller's result for a CRD: the names it may have, `NamesAccepted`, and
/// `Established` (kept if already True, else False `Installing` or `NotAccepted`).
pub fn calculate_names(crd: &Value, used: &NamesInUse) -> (Names, Condition, Condition) {
    let requested = Names::from_value(crd.pointer("/spec/names").unwrap_or(&Value::Null));
    let accepted = Names::from_value(crd.pointer("/status/acceptedNames").unwrap_or(&Value::Null));
    let mut names = accepted.clone();
    let mut cond: Option<Condition> = None;
    let mut conflict = |reason: &str, message: String| {
        cond = Some(Condition::new("NamesAccepted", "False", reason, &message));
    };
    match fresh(&requested.plural, &accepted.plural, &used.resources) {
        Ok(()) => names.plural = requested.plural.clone(),
        Err(e) => conflict("PluralConflict", e),
    }
    match fresh(&requested.singular, &accepted.singular, &used.resources) {
        Ok(()) => names.singular = requested.singular.clone(),
        Err(e) => conflict("SingularConflict", e),
    }
    if requested.short_names != accepted.short_names {
        let errs: Vec<String> = requested
            .short_names
            .iter()
            .filter(|s| !accepted.short_names.contains(s))
            .filter_map(|s| fresh(s, "", &used.resources).err())
            .collect();
        match errs.as_slice() {
            [] => names.short_names = requested.short_names.clone(),
            [one] => conflict("ShortNamesConflict", one.clone()),
            many => conflict("ShortNamesConflict", format!("[{}]", many.join(", "))),
        }
    }
    match fresh(&requested.kind, &accepted.kind, &used.kinds) {
        Ok(()) => names.kind = requested.kind.clone(),
        Err(e) => conflict("KindConflict", e),
    }
    match fresh(&requested.list_kind, &accepted.list_kind, &used.kinds) {
        Ok(()) => names.list_kind = requested.list_kind.clone(),
        Err(e) => conflict("ListKindConflict", e),
    }
    names.categories = requested.categories;
    let names_accepted =
        cond.unwrap_or_else(|| Condition::new("NamesAccepted", "True", "NoConflicts", "no conflicts found"));
    let mut established = find_condition(crd, "Established")
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
            Condition::new("Established", s("status"), s("reason"), s("message"))
        })
        .unwrap_or_else(|| Condition::new("Established", "False", "NotAccepted", "not all names are accepted"));
    if established.status != "True" && names_accepted.status == "True" {
        established = Condition::new("Established", "False", "Installing", "the initial names have been accepted");
    }
    (names, names_accepted, established)
}

/// `Established` True `InitialNamesAccepted` (the establishing controller).
pub fn established() -> Condition {
    Condition::new("Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
}

/// Applies the naming controller, then establishes the CRD when its names are accepted:
/// the status a new CRD settles to. `now` is the `lastTransitionTime` of changed conditions.
pub fn reconcile(crd: &mut Value, used: &NamesInUse, now: &str) {
    let (names, names_accepted, establishing) = calculate_names(crd, used);
    let accepted = names_accepted.status == "True";
    let Some(obj) = crd.as_object_mut() else { return };
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if let Some(s) = status.as_object_mut() {
        s.insert("acceptedNames".to_owned(), names.to_value());
    }
    set_condition(status, names_accepted, now);
    set_condition(status, establishing, now);
    if accepted {
        set_condition(status, established(), now);
    }
}

/// The condition of `type_` in a CRD's status.
pub fn find_condition<'a>(crd: &'a Value, type_: &str) -> Option<&'a Value> {
    crd.pointer("/status/conditions")?.as_array()?.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// True when the CRD's condition `type_` is `True`.
pub fn is_condition_true(crd: &Value, type_: &str) -> bool {
    find_condition(crd, type_).and_then(|c| c.get("status")).and_then(Value::as_str) == Some("True")
}

/// `SetCRDCondition` on a status object: added, or updated with `lastTransitionTime` moved
/// to `now` only when the status changes.
pub fn set_condition(status: &mut Value, cond: Condition, now: &str) {
    let Some(s) = status.as_object_mut() else { return };
    let list = s.entry("conditions").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else { return };
    let fresh = json!({
        "type": cond.type_, "status": cond.status, "lastTransitionTime": now, "reason": cond.reason, "message": cond.message,
    });
    match list.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(cond.type_.as_str())) {
        None => list.push(fresh),
        Some(existing) => {
            let changed = existing.get("status").and_then(Value::as_str) != Some(cond.status.as_str());
            let unset = existing.get("lastTransitionTime").and_then(Value::as_str).is_none_or(str::is_empty);
            let time =
                if changed || unset { Value::String(now.to_owned()) } else { existing["lastTransitionTime"].clone() };
            *existing = fresh;
            existing["lastTransitionTime"] = time;
        }
    }
}

/// Where a CRD's deletion stands (the `Terminating` condition's reasons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminating {
    /// Marked for deletion; the finalizer will delete the custom resources.
    Pending,
    /// Custom resources are being deleted.
    InProgress,
    /// All custom resources are gone.
    Completed,
    /// Deleting custom resources failed (the message says why).
    Failed(String),
    /// The CRD never served resources, so nothing was deleted.
    NeverEstablished,
}

/// The `Terminating` condition for a deletion step.
pub fn terminating(step: &Terminating) -> Condition {
    match step {
        Terminating::Pending => Condition::new(
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        ),
        Terminating::InProgress => Condition::new(
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ),
        Terminating::Completed => {
            Condition::new("Terminating", "False", "InstanceDeletionCompleted", "removed all instances")
        }
        Terminating::Failed(why) => Condition::new("Terminating", "True", "InstanceDeletionFailed", why),
        Terminating::NeverEstablished => {
            Condition::new("Terminating", "False", "NeverEstablished", "resource was never established")
        }
    }
}

/// The CRD registry's delete: the first delete sets `deletionTimestamp`, adds
/// [`CLEANUP_FINALIZER`] and `Terminating` True `InstanceDeletionPending`, and returns true
/// (the CRD is kept); a CRD already being deleted is left as is (false).
pub fn mark_for_deletion(crd: &mut Value, now: &str) -> bool {
    if crd.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return false;
    }
    let Some(obj) = crd.as_object_mut() else { return false };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.insert("deletionTimestamp".to_owned(), json!(now));
        let finalizers = m.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut() {
            if !list.iter().any(|f| f == CLEANUP_FINALIZER) {
                list.push(json!(CLEANUP_FINALIZER));
            }
        }
    }
    let status = obj.entry("status").or_insert_with(|| json!({}));
    set_condition(status, terminating(&Terminating::Pending), now);
    true
}

/// Drops [`CLEANUP_FINALIZER`] once the custom resources are gone.
pub fn remove_cleanup_finalizer(crd: &mut Value) {
    if let Some(list) = crd.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
        list.retain(|f| f != CLEANUP_FINALIZER);
    }
}

/// True when custom resource creates must be refused (403 `create not allowed while custom
/// resource definition is terminating`).
pub fn is_terminating(crd: &Value) -> bool {
    is_condition_true(crd, "Terminating") || crd.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}
