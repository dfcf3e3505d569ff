//! A CustomResourceDefinition (apiextensions.k8s.io/v1): defaulting
//! (`pkg/apis/apiextensions/v1/defaults.go`), the create/update preparation of the registry
//! strategy, validation with kube's field paths and messages
//! (`pkg/apis/apiextensions/validation/validation.go`), and the typed [`Crd`] the handlers
//! serve custom resources with.
//!
//! Like kube (which converts v1 to its internal type first), when every version carries the
//! same schema, subresources or printer columns, those are checked once at the top level:
//! schema errors then read `spec.validation.openAPIV3Schema...` rather than
//! `spec.versions[0].schema.openAPIV3Schema...`.

use serde_json::{json, Value};

use super::columns::PrinterColumn;
use super::dns;
use super::schema::{child, index, key, SchemaOptions, StructuralSchema};
use crate::validation::FieldError;

/// Whether custom resources live in namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `Namespaced`.
    Namespaced,
    /// `Cluster`.
    Cluster,
}

/// `spec.names` (or `status.acceptedNames`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// `plural`, the resource name in URLs.
    pub plural: String,
    /// `singular`.
    pub singular: String,
    /// `kind`.
    pub kind: String,
    /// `listKind`.
    pub list_kind: String,
    /// `shortNames`.
    pub short_names: Vec<String>,
    /// `categories` (`all`, ...).
    pub categories: Vec<String>,
}

impl Names {
    /// Reads names from `spec.names`-shaped JSON (absent fields empty).
    pub fn from_value(v: &Value) -> Names {
        Names {
            plural: str_at(v, "plural").to_owned(),
            singular: str_at(v, "singular").to_owned(),
            kind: str_at(v, "kind").to_owned(),
            list_kind: str_at(v, "listKind").to_owned(),
            short_names: strings_at(v, "shortNames"),
            categories: strings_at(v, "categories"),
        }
    }

    /// The names as JSON (`acceptedNames`), empty fields omitted as kube's omitempty does.
    pub fn to_value(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in [
            ("plural", &self.plural),
            ("singular", &self.singular),
            ("kind", &self.kind),
            ("listKind", &self.list_kind),
        ] {
            if !v.is_empty() || k == "plural" || k == "kind" {
                out.insert(k.to_owned(), Value::String(v.clone()));
            }
        }
        if !self.short_names.is_empty() {
            out.insert("shortNames".to_owned(), json!(self.short_names));
        }
        if !self.categories.is_empty() {
            out.insert("categories".to_owned(), json!(self.categories));
        }
        Value::Object(out)
    }
}

/// `subresources.scale`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scale {
    /// `specReplicasPath` (`.spec.replicas`).
    pub spec_replicas_path: String,
    /// `statusReplicasPath` (`.status.replicas`).
    pub status_replicas_path: String,
    /// `labelSelectorPath`.
    pub label_selector_path: Option<String>,
}

/// A version's `subresources`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subresources {
    /// `status: {}` given.
    pub status: bool,
    /// `scale`, if given.
    pub scale: Option<Scale>,
}

impl Subresources {
    fn from_value(v: Option<&Value>) -> Subresources {
        let Some(v) = v else { return Subresources::default() };
        Subresources {
            status: v.get("status").is_some_and(|s| !s.is_null()),
            scale: v.get("scale").filter(|s| s.is_object()).map(|s| Scale {
                spec_replicas_path: str_at(s, "specReplicasPath").to_owned(),
                status_replicas_path: str_at(s, "statusReplicasPath").to_owned(),
                label_selector_path: s.get("labelSelectorPath").and_then(Value::as_str).map(str::to_owned),
            }),
        }
    }
}

/// One entry of `spec.versions`.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// `name` (`v1`, `v1beta1`).
    pub name: String,
    /// `served`.
    pub served: bool,
    /// `storage`.
    pub storage: bool,
    /// `deprecated`.
    pub deprecated: bool,
    /// `deprecationWarning`.
    pub deprecation_warning: Option<String>,
    /// `schema.openAPIV3Schema`.
    pub schema: StructuralSchema,
    /// `subresources`.
    pub subresources: Subresources,
    /// `additionalPrinterColumns` as given (see `columns::serve_default_columns`).
    pub additional_printer_columns: Vec<PrinterColumn>,
}

impl Version {
    /// The `Warning` a deprecated version's requests get: `deprecationWarning`, or
    /// `<group>/<version> <Kind> is deprecated`.
    pub fn deprecation_message(&self, group: &str, kind: &str) -> Option<String> {
        self.deprecated.then(|| {
            self.deprecation_warning.clone().unwrap_or_else(|| format!("{group}/{} {kind} is deprecated", self.name))
        })
    }
}

/// A validated CustomResourceDefinition.
#[derive(Clone, Debug, PartialEq)]
pub struct Crd {
    /// `metadata.name` (`<plural>.<group>`).
    pub name: String,
    /// `spec.group`.
    pub group: String,
    /// `spec.names`.
    pub names: Names,
    /// `spec.scope`.
    pub scope: Scope,
    /// `spec.versions`.
    pub versions: Vec<Version>,
    /// `spec.preserveUnknownFields` (always false for an accepted v1 CRD).
    pub preserve_unknown_fields: bool,
}

impl Crd {
    /// Validates `crd` (already defaulted, see [`set_defaults`]) and reads it.
    pub fn parse(crd: &Value) -> Result<Crd, Vec<FieldError>> {
        let errs = validate(crd);
        if !errs.is_empty() {
            return Err(errs);
        }
        let spec = &crd["spec"];
        let versions = array_at(spec, "versions")
            .iter()
            .map(|v| Version {
                name: str_at(v, "name").to_owned(),
                served: bool_at(v, "served"),
                storage: bool_at(v, "storage"),
                deprecated: bool_at(v, "deprecated"),
                deprecation_warning: v.get("deprecationWarning").and_then(Value::as_str).map(str::to_owned),
                schema: StructuralSchema::from_value(&v["schema"]["openAPIV3Schema"]),
                subresources: Subresources::from_value(v.get("subresources")),
                additional_printer_columns: array_at(v, "additionalPrinterColumns")
                    .iter()
                    .map(PrinterColumn::from_value)
                    .collect(),
            })
            .collect();
        Ok(Crd {
            name: str_at(&crd["metadata"], "name").to_owned(),
            group: str_at(spec, "group").to_owned(),
            names: Names::from_value(&spec["names"]),
            scope: if str_at(spec, "scope") == "Cluster" { Scope::Cluster } else { Scope::Namespaced },
            versions,
            preserve_unknown_fields: bool_at(spec, "preserveUnknownFields"),
        })
    }

    /// The storage version.
    pub fn storage_version(&self) -> Option<&Version> {
        self.versions.iter().find(|v| v.storage)
    }
}

fn str_at<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn bool_at(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn array_at<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn strings_at(v: &Value, k: &str) -> Vec<String> {
    array_at(v, k).iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// kube's v1 defaulting of a CRD (applied on decode): `singular` = lowercase `kind`,
/// `listKind` = `kind` + `List`, `conversion.strategy: None`, webhook service port 443, and
/// `status.storedVersions` = the storage version when empty.
pub fn set_defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
        if names.get("singular").and_then(Value::as_str).is_none_or(str::is_empty) {
            names.insert("singular".to_owned(), Value::String(kind.to_lowercase()));
        }
        if names.get("listKind").and_then(Value::as_str).is_none_or(str::is_empty) && !kind.is_empty() {
            names.insert("listKind".to_owned(), Value::String(format!("{kind}List")));
        }
    }
    let conversion = spec.entry("conversion").or_insert_with(|| json!({ "strategy": "None" }));
    if let Some(service) = conversion.pointer_mut("/webhook/clientConfig/service").and_then(Value::as_object_mut) {
        service.entry("port").or_insert(json!(443));
    }
    let storage = spec
        .get("versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| bool_at(v, "storage")))
        .map(|v| str_at(v, "name").to_owned());
    if let (Some(storage), Some(obj)) = (storage, crd.as_object_mut()) {
        let status = obj.entry("status").or_insert_with(|| json!({}));
        if array_at(status, "storedVersions").is_empty() {
            if let Some(status) = status.as_object_mut() {
                status.insert("storedVersions".to_owned(), json!([storage]));
            }
        }
    }
}

/// The registry's `PrepareForCreate`: status reset to `storedVersions: [<storage>]`,
/// `generation` 1.
pub fn prepare_for_create(crd: &mut Value) {
    let storage: Vec<String> = array_at(&crd["spec"], "versions")
        .iter()
        .filter(|v| bool_at(v, "storage"))
        .take(1)
        .map(|v| str_at(v, "name").to_owned())
        .collect();
    let Some(obj) = crd.as_object_mut() else { return };
    obj.insert("status".to_owned(), json!({ "storedVersions": storage }));
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("generation".to_owned(), json!(1));
    }
}

/// The registry's `PrepareForUpdate`: the old status is kept (plus a new storage version in
/// `storedVersions`), `generation` +1 when the spec changed.
pub fn prepare_for_update(crd: &mut Value, old: &Value) {
    let spec_changed = crd.get("spec") != old.get("spec");
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let storage =
        array_at(&crd["spec"], "versions").iter().find(|v| bool_at(v, "storage")).map(|v| str_at(v, "name").to_owned());
    let Some(obj) = crd.as_object_mut() else { return };
    let mut status = old.get("status").cloned().unwrap_or_else(|| json!({}));
    if let Some(storage) = storage {
        if !strings_at(&status, "storedVersions").contains(&storage) {
            if let Some(s) = status.as_object_mut() {
                let list = s.entry("storedVersions").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(Value::String(storage));
                }
            }
        }
    }
    obj.insert("status".to_owned(), status);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("generation".to_owned(), json!(if spec_changed { generation + 1 } else { generation }));
    }
}

/// `ValidateCustomResourceDefinition` for a create (after [`set_defaults`] and
/// [`prepare_for_create`]).
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = validate_metadata(crd);
    errs.extend(validate_spec(&crd["spec"]));
    errs.extend(validate_status(crd));
    errs.extend(validate_api_approval(crd));
    if bool_at(&crd["spec"], "preserveUnknownFields") {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            Value::Bool(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    errs
}

/// `ValidateCustomResourceDefinitionUpdate`: the create checks plus immutable `spec.group`
/// and `spec.names.plural`, and, once Established, `spec.scope` and `spec.names.kind`.
pub fn validate_update(crd: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate(crd);
    let immutable = |errs: &mut Vec<FieldError>, path: &str, pointer: &str| {
        let new = crd.pointer(pointer).cloned().unwrap_or(Value::String(String::new()));
        if Some(&new) != old.pointer(pointer) {
            errs.push(FieldError::invalid(path, new, "field is immutable"));
        }
    };
    if super::status::is_condition_true(old, "Established") {
        immutable(&mut errs, "spec.scope", "/spec/scope");
        immutable(&mut errs, "spec.names.kind", "/spec/names/kind");
    }
    immutable(&mut errs, "spec.group", "/spec/group");
    immutable(&mut errs, "spec.names.plural", "/spec/names/plural");
    errs
}

fn validate_metadata(crd: &Value) -> Vec<FieldError> {
    let spec = &crd["spec"];
    let required = format!("{}.{}", str_at(&spec["names"], "plural"), str_at(spec, "group"));
    let name_checks = |name: &str, prefix: bool| {
        let masked =
            if prefix && name.ends_with('-') { format!("{}a", &name[..name.len() - 1]) } else { name.to_owned() };
        let mut msgs = dns::dns1123_subdomain(&masked);
        if name != required {
            msgs.push(r#"must be spec.names.plural+"."+spec.group"#.to_owned());
        }
        msgs
    };
    let meta = &crd["metadata"];
    let mut errs = Vec::new();
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_checks(generate_name, true) {
            errs.push(FieldError::invalid("metadata.generateName", json!(generate_name), msg));
        }
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        for msg in name_checks(name, false) {
            errs.push(FieldError::invalid("metadata.name", json!(name), msg));
        }
    }
    if !str_at(meta, "namespace").is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    errs
}

/// The per-version fields that kube's conversion hoists to the top level when identical.
struct Hoisted<'a> {
    schema: Option<&'a Value>,
    subresources: Option<&'a Value>,
    columns: Option<&'a Value>,
}

fn hoist(versions: &[Value]) -> Hoisted<'_> {
    let identical = |field: &str| {
        let first = versions.first().and_then(|v| v.get(field));
        (!versions.is_empty() && versions.iter().all(|v| v.get(field) == first)).then_some(first)
    };
    Hoisted {
        schema: identical("schema").flatten(),
        subresources: identical("subresources").flatten(),
        columns: identical("additionalPrinterColumns").flatten(),
    }
}

fn validate_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = str_at(spec, "group");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let problems = dns::dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid("spec.group", json!(group), problems.join(",")));
        } else if group.split('.').count() < 2 {
            errs.push(FieldError::invalid("spec.group", json!(group), "should be a domain with at least one dot"));
        }
    }
    errs.extend(enum_string("spec.scope", str_at(spec, "scope"), &["Cluster", "Namespaced"], true));

    let versions = array_at(spec, "versions");
    let hoisted = hoist(versions);
    let all_identical =
        |field: &str| !versions.is_empty() && versions.iter().all(|v| v.get(field) == versions[0].get(field));
    let schema_hoisted = all_identical("schema");
    let subresources_hoisted = all_identical("subresources");
    let columns_hoisted = all_identical("additionalPrinterColumns");
    let per_version = |v: &'_ Value, field: &str, hoisted: bool| if hoisted { None } else { v.get(field).cloned() };

    let top_schema = hoisted.schema.and_then(|s| s.get("openAPIV3Schema"));
    if top_schema.is_none() {
        for (i, v) in versions.iter().enumerate() {
            let own = per_version(v, "schema", schema_hoisted);
            if own.as_ref().and_then(|s| s.get("openAPIV3Schema")).is_none() {
                errs.push(FieldError::required(format!("spec.versions[{i}].schema.openAPIV3Schema"), ""));
            }
        }
    }
    let preserve = bool_at(spec, "preserveUnknownFields");
    let any_defaults = versions
        .iter()
        .filter_map(|v| v.pointer("/schema/openAPIV3Schema"))
        .any(|s| StructuralSchema::from_value(s).root.has_defaults());
    if any_defaults && preserve {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            Value::Bool(true),
            "must be false in order to use defaults in the schema",
        ));
    }

    let status_enabled = |sub: Option<&Value>| sub.and_then(|s| s.get("status")).is_some_and(|s| !s.is_null());
    let mut storage = 0;
    let mut names: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        if bool_at(v, "storage") {
            storage += 1;
        }
        let name = str_at(v, "name");
        if names.contains(&name) {
            unique = false;
        } else {
            names.push(name);
        }
        let problems = dns::dns1035_label(name);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(child(&at, "name"), json!(name), problems.join(",")));
        }
        errs.extend(validate_deprecation(v, &at));
        let subresources = if subresources_hoisted { hoisted.subresources } else { v.get("subresources") };
        if let Some(schema) = per_version(v, "schema", schema_hoisted) {
            errs.extend(validate_schema(&schema, &child(&at, "schema"), status_enabled(subresources)));
        }
        if let Some(sub) = per_version(v, "subresources", subresources_hoisted) {
            errs.extend(validate_subresources(&sub, &child(&at, "subresources")));
        }
        if let Some(cols) = per_version(v, "additionalPrinterColumns", columns_hoisted) {
            errs.extend(validate_columns(&cols, &child(&at, "additionalPrinterColumns")));
        }
    }
    let versions_value = spec.get("versions").cloned().unwrap_or(Value::Null);
    if !unique {
        errs.push(FieldError::invalid("spec.versions", versions_value.clone(), "must contain unique version names"));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            versions_value,
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(first) = versions.first() {
        let name = str_at(first, "name");
        let problems = dns::dns1035_label(name);
        if !name.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid("spec.version", json!(name), problems.join(",")));
        }
    }
    let names_value = &spec["names"];
    for (field, json_name) in
        [("plural", "plural"), ("singular", "singular"), ("kind", "kind"), ("listKind", "listKind")]
    {
        if str_at(names_value, json_name).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{field}"), ""));
        }
    }
    errs.extend(validate_names(&Names::from_value(names_value), "spec.names"));
    if let Some(schema) = hoisted.schema {
        let any_status = versions.iter().any(|v| status_enabled(v.get("subresources")));
        errs.extend(validate_schema(schema, "spec.validation", any_status));
    }
    if let Some(sub) = hoisted.subresources {
        errs.extend(validate_subresources(sub, "spec.subresources"));
    }
    if let Some(cols) = hoisted.columns {
        errs.extend(validate_columns(cols, "spec.additionalPrinterColumns"));
    }
    let strategy = spec.pointer("/conversion/strategy").and_then(Value::as_str).unwrap_or("");
    if !strategy.is_empty() && strategy != "None" && preserve {
        errs.push(FieldError::invalid(
            "spec.conversion.strategy",
            json!(strategy),
            "must be None if spec.preserveUnknownFields is true",
        ));
    }
    if let Some(conversion) = spec.get("conversion") {
        errs.extend(validate_conversion(conversion));
    }
    errs
}

fn enum_string(path: &str, value: &str, accepted: &[&str], required: bool) -> Vec<FieldError> {
    if value.is_empty() {
        return if required { vec![FieldError::required(path, "")] } else { Vec::new() };
    }
    if accepted.contains(&value) {
        Vec::new()
    } else {
        vec![FieldError::not_supported(path, json!(value), accepted)]
    }
}

fn validate_deprecation(v: &Value, at: &str) -> Vec<FieldError> {
    let Some(warning) = v.get("deprecationWarning").and_then(Value::as_str) else { return Vec::new() };
    let path = child(at, "deprecationWarning");
    let mut msgs = Vec::new();
    if !bool_at(v, "deprecated") {
        msgs.push("can only be set for deprecated versions".to_owned());
    } else {
        if warning.len() > 256 {
            msgs.push("must be <= 256 characters long".to_owned());
        }
        if warning.is_empty() {
            msgs.push("must not be an empty string".to_owned());
        }
        if let Some((i, _)) = warning.char_indices().find(|(_, c)| c.is_control()) {
            msgs.push(format!("must only contain printable UTF-8 characters; control character found at index {i}"));
        }
    }
    msgs.into_iter().map(|m| FieldError::invalid(&path, json!(warning), m)).collect()
}

fn validate_schema(schema: &Value, path: &str, status_enabled: bool) -> Vec<FieldError> {
    let Some(openapi) = schema.get("openAPIV3Schema") else { return Vec::new() };
    let at = child(path, "openAPIV3Schema");
    let opts = SchemaOptions { status_enabled, ..SchemaOptions::default() };
    StructuralSchema::parse(openapi, &at, opts).err().unwrap_or_default()
}

fn simple_json_path(s: &str, path: &str) -> Vec<FieldError> {
    if s.is_empty() {
        vec![FieldError::invalid(path, json!(s), "must not be empty")]
    } else if !s.starts_with('.') {
        vec![FieldError::invalid(path, json!(s), "must be a simple json path starting with .")]
    } else {
        Vec::new()
    }
}

fn validate_subresources(sub: &Value, path: &str) -> Vec<FieldError> {
    let Some(scale) = sub.get("scale").filter(|s| s.is_object()) else { return Vec::new() };
    let mut errs = Vec::new();
    for (field, prefix, detail) in [
        ("specReplicasPath", ".spec.", "should be a json path under .spec"),
        ("statusReplicasPath", ".status.", "should be a json path under .status"),
    ] {
        let at = child(path, &format!("scale.{field}"));
        let value = str_at(scale, field);
        if value.is_empty() {
            errs.push(FieldError::required(at, ""));
        } else {
            let problems = simple_json_path(value, &at);
            if !problems.is_empty() {
                errs.extend(problems);
            } else if !value.starts_with(prefix) {
                errs.push(FieldError::invalid(at, json!(value), detail));
            }
        }
    }
    let selector = str_at(scale, "labelSelectorPath");
    if !selector.is_empty() {
        let at = child(path, "scale.labelSelectorPath");
        let problems = simple_json_path(selector, &at);
        if !problems.is_empty() {
            errs.extend(problems);
        } else if !selector.starts_with(".spec.") && !selector.starts_with(".status.") {
            errs.push(FieldError::invalid(at, json!(selector), "should be a json path under either .spec or .status"));
        }
    }
    errs
}

const COLUMN_TYPES: &str = "boolean,date,integer,number,string";
const COLUMN_FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";

fn validate_columns(cols: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, col) in cols.as_array().map_or(&[][..], Vec::as_slice).iter().enumerate() {
        let at = index(path, i);
        if str_at(col, "name").is_empty() {
            errs.push(FieldError::required(child(&at, "name"), ""));
        }
        let ty = str_at(col, "type");
        if ty.is_empty() {
            errs.push(FieldError::required(child(&at, "type"), format!("must be one of {COLUMN_TYPES}")));
        } else if !COLUMN_TYPES.split(',').any(|t| t == ty) {
            errs.push(FieldError::invalid(child(&at, "type"), json!(ty), format!("must be one of {COLUMN_TYPES}")));
        }
        let format = str_at(col, "format");
        if !format.is_empty() && !COLUMN_FORMATS.split(',').any(|f| f == format) {
            errs.push(FieldError::invalid(
                child(&at, "format"),
                json!(format),
                format!("must be one of {COLUMN_FORMATS}"),
            ));
        }
        let json_path = str_at(col, "jsonPath");
        if json_path.is_empty() {
            errs.push(FieldError::required(child(&at, "JSONPath"), ""));
        } else {
            errs.extend(simple_json_path(json_path, &child(&at, "JSONPath")));
        }
    }
    errs
}

/// `ValidateCustomResourceDefinitionNames`.
pub fn validate_names(names: &Names, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let label = |errs: &mut Vec<FieldError>, field: String, value: &str, checked: &str, prefix: &str| {
        let problems = dns::dns1035_label(checked);
        if !value.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(field, json!(value), format!("{prefix}{}", problems.join(","))));
        }
    };
    label(&mut errs, child(path, "plural"), &names.plural, &names.plural, "");
    label(&mut errs, child(path, "singular"), &names.singular, &names.singular, "");
    let mixed = "may have mixed case, but should otherwise match: ";
    label(&mut errs, child(path, "kind"), &names.kind, &names.kind.to_lowercase(), mixed);
    label(&mut errs, child(path, "listKind"), &names.list_kind, &names.list_kind.to_lowercase(), mixed);
    for (i, short) in names.short_names.iter().enumerate() {
        let problems = dns::dns1035_label(short);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(index(&child(path, "shortNames"), i), json!(short), problems.join(",")));
        }
    }
    if !names.kind.is_empty() && names.kind == names.list_kind {
        errs.push(FieldError::invalid(
            child(path, "listKind"),
            json!(names.list_kind),
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in names.categories.iter().enumerate() {
        let problems = dns::dns1035_label(category);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(index(&child(path, "categories"), i), json!(category), problems.join(",")));
        }
    }
    errs
}

fn validate_conversion(conversion: &Value) -> Vec<FieldError> {
    let path = "spec.conversion";
    let strategy = str_at(conversion, "strategy");
    let mut errs = enum_string(&child(path, "strategy"), strategy, &["None", "Webhook"], true);
    let webhook = conversion.get("webhook");
    let client_config = webhook.and_then(|w| w.get("clientConfig")).filter(|c| !c.is_null());
    let review_versions = webhook.map(|w| strings_at(w, "conversionReviewVersions")).unwrap_or_default();
    let config_path = child(path, "webhookClientConfig");
    let versions_path = child(path, "conversionReviewVersions");
    if strategy == "Webhook" {
        match client_config {
            None => errs.push(FieldError::required(&config_path, "required when strategy is set to Webhook")),
            Some(cc) => {
                if cc.get("url").is_some_and(|u| !u.is_null()) == cc.get("service").is_some_and(|s| !s.is_null()) {
                    errs.push(FieldError::required(&config_path, "exactly one of url or service is required"));
                }
            }
        }
        if review_versions.is_empty() {
            errs.push(FieldError::required(&versions_path, ""));
        } else {
            let mut seen: Vec<&String> = Vec::new();
            for (i, v) in review_versions.iter().enumerate() {
                if seen.contains(&v) {
                    errs.push(FieldError::invalid(index(&versions_path, i), json!(v), "duplicate version"));
                    continue;
                }
                seen.push(v);
                for problem in dns::dns1035_label(v) {
                    errs.push(FieldError::invalid(index(&versions_path, i), json!(v), problem));
                }
            }
            if !review_versions.iter().any(|v| v == "v1" || v == "v1beta1") {
                errs.push(FieldError::invalid(
                    &versions_path,
                    json!(review_versions),
                    "must include at least one of v1, v1beta1",
                ));
            }
        }
    } else {
        if client_config.is_some() {
            errs.push(FieldError::forbidden(&config_path, "should not be set when strategy is not set to Webhook"));
        }
        if !review_versions.is_empty() {
            errs.push(FieldError::forbidden(&versions_path, "should not be set when strategy is not set to Webhook"));
        }
    }
    errs
}

fn validate_status(crd: &Value) -> Vec<FieldError> {
    let status = &crd["status"];
    let mut errs = validate_names(&Names::from_value(&status["acceptedNames"]), "status.acceptedNames");
    let path = "status.storedVersions";
    let stored = strings_at(status, "storedVersions");
    if stored.is_empty() {
        errs.push(FieldError::invalid(path, json!(stored), "must have at least one stored version"));
        return errs;
    }
    let versions = array_at(&crd["spec"], "versions");
    for v in versions {
        let name = str_at(v, "name");
        if bool_at(v, "storage") && !stored.iter().any(|s| s == name) {
            errs.push(FieldError::invalid(path, json!(stored), format!("must have the storage version {name}")));
        }
    }
    for (i, s) in stored.iter().enumerate() {
        if !versions.iter().any(|v| str_at(v, "name") == s) {
            errs.push(FieldError::invalid(
                index(path, i),
                json!(s),
                format!("missing from spec.versions; {s} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {s} and removes {s} from status.storedVersions"),
            ));
        }
    }
    errs
}

const APPROVAL: &str = "api-approved.kubernetes.io";

fn validate_api_approval(crd: &Value) -> Vec<FieldError> {
    let group = str_at(&crd["spec"], "group");
    let protected = group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io");
    if !protected {
        return Vec::new();
    }
    let annotation =
        crd.pointer("/metadata/annotations").and_then(|a| a.get(APPROVAL)).and_then(Value::as_str).unwrap_or("");
    let path = key("metadata.annotations", APPROVAL);
    let is_url = annotation
        .split_once("://")
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty() && !rest.starts_with('/'));
    if annotation.is_empty() {
        vec![FieldError::required(path, format!("protected groups must have approval annotation {APPROVAL:?}, see https://github.com/kubernetes/enhancements/pull/1111"))]
    } else if annotation.starts_with("unapproved") || is_url {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            path,
            json!(annotation),
            format!("protected groups must have approval annotation {APPROVAL:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"),
        )]
    }
}
