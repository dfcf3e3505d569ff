//! The two writes as kube's field manager stacks them (apimachinery `fieldmanager.go`,
//! `skipnonapplied.go`, `capmanagers.go`, `buildmanagerinfo.go`, `managedfieldsupdater.go`,
//! `stripmeta.go`, `structuredmerge.go`): [`update`] for create/PUT/non-apply PATCH, [`apply`]
//! for server-side apply. Pure: the caller passes the time and stores the result.

use super::conflict::{self, Conflict, ConflictCause};
use super::entries::{self, managed_fields_of, manager_id, Managed, ManagedFieldsError, Operation, Owned};
use super::fieldpath::{Path, Set};
use super::merge::{validate_config, MergeError};
use super::schema::{zero_object, Node};
use super::updater;
use serde_json::{Map, Value};

/// Who writes: the request's field manager, apiVersion, subresource, and the time to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manager {
    /// The `fieldManager` (empty: `unknown`, as kube's buildmanagerinfo.go).
    pub name: String,
    /// The request's group/version (`apps/v1`, `v1`).
    pub api_version: String,
    /// The subresource written (`status`, `scale`), if any.
    pub subresource: Option<String>,
    /// Now, RFC 3339 in seconds (`2001-02-03T04:05:06Z`).
    pub time: String,
}

impl Manager {
    /// A manager writing the main resource.
    pub fn new(name: &str, api_version: &str, time: &str) -> Manager {
        Manager { name: name.to_owned(), api_version: api_version.to_owned(), subresource: None, time: time.to_owned() }
    }

    /// The same manager writing through `subresource`.
    pub fn with_subresource(mut self, subresource: &str) -> Manager {
        self.subresource = Some(subresource.to_owned());
        self
    }

    fn name(&self) -> &str {
        if self.name.is_empty() {
            "unknown"
        } else {
            &self.name
        }
    }

    fn owned(&self, name: &str, operation: Operation) -> Owned {
        Owned {
            manager: name.to_owned(),
            operation,
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone().filter(|s| !s.is_empty()),
            time: None,
            set: Set::new(),
        }
    }
}

/// Why an apply failed, and the HTTP status kube answers with ([`ApplyError::code`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict, reason `Conflict`, one `FieldManagerConflict` cause per conflict
    /// ([`ApplyError::causes`]).
    #[error("{}", conflict::message(.0))]
    Conflicts(Vec<Conflict>),
    /// 400 BadRequest: the configuration carries `metadata.managedFields`.
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsMustBeNil,
    /// 400 BadRequest: the configuration (or its metadata) is not a JSON object.
    #[error("the applied configuration must be a JSON object")]
    ConfigNotAnObject,
    /// 400 BadRequest: the configuration's apiVersion is not the request's.
    #[error("Incorrect version specified in apply patch. Specified patch version: {specified}, expected: {expected}")]
    WrongVersion {
        /// The configuration's apiVersion.
        specified: String,
        /// The request's.
        expected: String,
    },
    /// 500 InternalError, as kube answers (`failed to create typed patch object`): a set or
    /// map list item that cannot be keyed, or duplicate keys.
    #[error("failed to create typed patch object: errors:\n{}", render_merge_errors(.0))]
    InvalidConfig(Vec<MergeError>),
    /// 500 InternalError, as kube answers (`failed to decode managed fields`): the live
    /// object's managedFields are invalid (the error names the entry).
    #[error("failed to decode managed fields: {0}")]
    InvalidLiveManagedFields(ManagedFieldsError),
}

fn render_merge_errors(errors: &[MergeError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

impl ApplyError {
    /// The HTTP status code of the kube `Status` for this error.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::ManagedFieldsMustBeNil | ApplyError::ConfigNotAnObject | ApplyError::WrongVersion { .. } => 400,
            ApplyError::InvalidConfig(_) | ApplyError::InvalidLiveManagedFields(_) => 500,
        }
    }

    /// The `Status` message (for conflicts kube's exact text, see [`conflict::message`]).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The `details.causes` (only conflicts have any).
    pub fn causes(&self) -> Vec<ConflictCause> {
        match self {
            ApplyError::Conflicts(c) => conflict::causes(c),
            _ => Vec::new(),
        }
    }
}

/// The fields never tracked (stripmeta.go): apiVersion, kind, `metadata` itself and its
/// name, namespace, creationTimestamp, selfLink, uid, clusterName, generation, managedFields,
/// resourceVersion.
pub fn untracked_fields() -> &'static Set {
    static UNTRACKED: std::sync::LazyLock<Set> = std::sync::LazyLock::new(build_untracked_fields);
    &UNTRACKED
}

fn build_untracked_fields() -> Set {
    let mut paths = vec![Path::fields(&["apiVersion"]), Path::fields(&["kind"]), Path::fields(&["metadata"])];
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        paths.push(Path::fields(&["metadata", f]));
    }
    Set::from_paths(&paths)
}

/// `v` without `metadata.managedFields`.
fn without_managed_fields(v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

fn kind_of(v: &Value) -> (&str, &str) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    (s("apiVersion"), s("kind"))
}

fn check_object(v: &Value) -> bool {
    v.is_object() && v.get("metadata").is_none_or(|m| m.is_object() || m.is_null())
}

/// The key used for the write in progress (managedfieldsupdater.go).
const CURRENT_OPERATION: &str = "current-operation";

/// A tracked Update by `name` (manager info, managed-fields updater, strip-meta, structured
/// merge, then the cap on Update entries).
fn track_update(live: &Value, new: &Value, name: &str, manager: &Manager, managed: &mut Managed, node: &Node) {
    updater::update(live, new, node, managed, CURRENT_OPERATION, &manager.api_version);
    if let Some(current) = managed.remove(CURRENT_OPERATION) {
        let set = current.set.difference(untracked_fields());
        if !set.is_empty() {
            let id = manager_id(name, Operation::Update, &manager.api_version, manager.subresource.as_deref());
            let previous = managed.remove(&id).map(|o| o.set).unwrap_or_default();
            let owned = Owned {
                set: set.union(&previous),
                time: Some(manager.time.clone()),
                ..manager.owned(name, Operation::Update)
            };
            managed.insert(id, owned);
        }
    }
    cap_update_managers(managed, MAX_UPDATE_MANAGERS);
}

/// Update entries kept before the oldest are folded into `ancient-changes` (capmanagers.go).
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// Folds the oldest Update entries, per apiVersion, into an `ancient-changes` Update entry
/// until at most `max` Update entries remain (Apply entries are never capped).
fn cap_update_managers(managed: &mut Managed, max: usize) {
    let mut updaters: Vec<(i64, String)> = managed
        .iter()
        .filter(|(_, o)| o.operation == Operation::Update)
        .map(|(id, o)| (entries::unix_seconds(o.time.as_deref()), id.clone()))
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort();
    let mut length = updaters.len();
    let mut first_of_version: std::collections::BTreeMap<String, String> = Default::default();
    for (_, id) in updaters {
        if length <= max {
            break;
        }
        let Some(owned) = managed.get(&id).cloned() else { continue };
        let version = owned.api_version.clone();
        let bucket = manager_id("ancient-changes", Operation::Update, &version, None);
        let Some(first) = first_of_version.get(&version).cloned() else {
            first_of_version.insert(version, id);
            continue;
        };
        if id == bucket {
            continue;
        }
        if !managed.contains_key(&bucket) {
            if let Some(moved) = managed.remove(&first) {
                let renamed = Owned { manager: "ancient-changes".to_owned(), subresource: None, ..moved };
                managed.insert(bucket.clone(), renamed);
            }
        }
        if let Some(b) = managed.get_mut(&bucket) {
            b.set = owned.set.union(&b.set);
            b.time = owned.time.clone();
        }
        managed.remove(&id);
        length -= 1;
    }
}

/// Records a non-apply write (create, PUT, merge/JSON/strategic-merge PATCH) of `new` over
/// `live` (`None`: a create) by `manager`, and returns `new` with `metadata.managedFields`
/// set. The managers are `new`'s managedFields when it carries valid non-empty ones, none
/// when it carries `[]` (or `[{}]`), else the live ones (a subresource write always uses the
/// live ones); invalid lists fall back as kube's `decodeLiveOrNew` does. Fields the write
/// changed join the manager's Update entry (its time set to `manager.time` only then); every
/// other manager loses the fields changed or removed; empty entries vanish. A create is always
/// tracked; an update of an object without managed fields stays untracked. The result is
/// `new` without its `metadata.managedFields`, then those of [`updated_managed_fields`]
/// written in.
///
/// # Errors
/// [`ManagedFieldsError::NotAnObject`] when `new` or its metadata is not a JSON object.
// The JSON-in, JSON-out form (the tests); the handlers hold a typed object and use
// `updated_managed_fields`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn update(
    live: Option<&Value>,
    new: &Value,
    manager: &Manager,
    schema: &Node,
) -> Result<Value, ManagedFieldsError> {
    let list = updated_managed_fields(live, new.clone(), manager, schema)?;
    let mut out = without_managed_fields(new);
    if let Some(list) = list {
        entries::write_list(&mut out, list)?;
    }
    Ok(out)
}

/// The `metadata.managedFields` list [`update`] writes into `new` (empty: the field is
/// removed), or None when the write stays untracked (then `new` keeps no managedFields
/// either). Computed without copying `new` (it is consumed: the caller keeps its typed object
/// and sets the list on it).
///
/// # Errors
/// As [`update`].
pub fn updated_managed_fields(
    live: Option<&Value>,
    mut new: Value,
    manager: &Manager,
    schema: &Node,
) -> Result<Option<Vec<Value>>, ManagedFieldsError> {
    if !check_object(&new) {
        return Err(ManagedFieldsError::NotAnObject);
    }
    let live_managed = || entries::decode(live.and_then(managed_fields_of)).unwrap_or_default();
    let mut managed = match (&manager.subresource, managed_fields_of(&new)) {
        (Some(_), _) | (None, None) => live_managed(),
        (None, Some(list)) if entries::is_reset(list) => Managed::new(),
        (None, Some(list)) => match entries::decode(Some(list)) {
            Ok(m) if !m.is_empty() => m,
            _ => live_managed(),
        },
    };
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let is_create = live.is_none_or(|l| l.pointer("/metadata/uid").and_then(Value::as_str).is_none_or(str::is_empty));
    if managed.is_empty() && !is_create {
        return Ok(None);
    }
    let base = match live {
        Some(l) => without_managed_fields(l),
        None => {
            let (api_version, kind) = kind_of(&new);
            zero_object(api_version, kind)
        }
    };
    // The comparison sees `new` with its kind's zero fields filled in (see
    // `updater::with_zero_fields`); filled here, in place, it is not copied for that.
    updater::fill_zero_fields(&mut new);
    track_update(&base, &new, manager.name(), manager, &mut managed, schema);
    Ok(Some(entries::to_list(&managed)))
}

/// Server-side applies `config` by `manager` to `live` (`None`: the object does not exist
/// and the apply creates it) and returns the new object with `metadata.managedFields` set.
/// The config is merged by the schema; the manager's Apply entry becomes the config's fields
/// (untracked ones stripped); fields it applied before, omits now and nobody else owns are
/// pruned; a field another manager owns and this apply changes is a conflict unless `force`
/// (then the other manager loses it); equal values are shared. The first apply to an object
/// without managed fields first gives its existing fields to `before-first-apply`. The
/// entry's time is set only when the object changed.
///
/// # Errors
/// [`ApplyError`]; see [`ApplyError::code`] for the HTTP status of each.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager,
    force: bool,
    schema: &Node,
) -> Result<Value, ApplyError> {
    if !check_object(config) {
        return Err(ApplyError::ConfigNotAnObject);
    }
    let (specified, _) = kind_of(config);
    if specified != manager.api_version {
        return Err(ApplyError::WrongVersion {
            specified: specified.to_owned(),
            expected: manager.api_version.clone(),
        });
    }
    let live_value = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut managed = entries::decode(managed_fields_of(&live_value)).map_err(ApplyError::InvalidLiveManagedFields)?;
    let live_value = without_managed_fields(&live_value);
    if managed.is_empty() && live.is_some() {
        let (api_version, kind) = kind_of(config);
        let empty = zero_object(api_version, kind);
        track_update(&empty, &live_value, "before-first-apply", manager, &mut managed, schema);
    }
    if config.pointer("/metadata/managedFields").is_some_and(|v| !v.is_null()) {
        return Err(ApplyError::ManagedFieldsMustBeNil);
    }
    validate_config(config, schema).map_err(ApplyError::InvalidConfig)?;
    let owner = manager.owned(manager.name(), Operation::Apply);
    let id = owner.id();
    let mut new =
        updater::apply(&live_value, config, schema, &mut managed, owner, force).map_err(ApplyError::Conflicts)?;
    if let Some(mine) = managed.get_mut(&id) {
        mine.set = mine.set.difference(untracked_fields());
        if mine.set.is_empty() {
            managed.remove(&id);
        }
    }
    if !super::value::equals(&live_value, &new) {
        if let Some(mine) = managed.get_mut(&id) {
            mine.time = Some(manager.time.clone());
        }
    }
    entries::write(&mut new, &managed).map_err(|_| ApplyError::ConfigNotAnObject)?;
    Ok(new)
}
