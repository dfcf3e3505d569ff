//! A CRD version's `openAPIV3Schema` as a structural schema (apiextensions-apiserver
//! `pkg/apiserver/schema`): parsed from JSON, checked to be structural with kube's field
//! errors, then used to validate, prune and default custom resources and to give
//! server-side apply its type tree. Those uses live beside this file (`validate.rs`,
//! `pruning.rs`, `defaulting.rs`, `smd.rs`) as `impl StructuralSchema` blocks.
//!
//! No JSON-schema crate: kube's exact error texts and field paths (kube-openapi's
//! `validate` package, Go-formatted) are the contract, and the `x-kubernetes-*` rules are
//! Kubernetes-specific, so a generic validator (e.g. `jsonschema`) would be wrapped and
//! re-worded everywhere; only `regex` (RE2-like, as Go's `regexp`) is taken for `pattern`.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::validation::{ErrorType, FieldError};

/// `additionalProperties`: a boolean or a schema.
#[derive(Clone, Debug, PartialEq)]
pub enum AdditionalProperties {
    /// `additionalProperties: true|false`.
    Allows(bool),
    /// `additionalProperties: {schema}`.
    Schema(Box<SchemaNode>),
}

impl AdditionalProperties {
    /// The schema of additional properties, if one is given.
    pub fn schema(&self) -> Option<&SchemaNode> {
        match self {
            AdditionalProperties::Schema(s) => Some(s),
            AdditionalProperties::Allows(_) => None,
        }
    }
}

/// One node of a `JSONSchemaProps` tree: the structural part (type, properties, items,
/// additionalProperties, extensions) and the value validations (enum, bounds, junctors).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchemaNode {
    /// `type` (empty when unset).
    pub type_: String,
    /// `format` as written.
    pub format: String,
    /// `description`.
    pub description: String,
    /// `title`.
    pub title: String,
    /// `nullable`.
    pub nullable: bool,
    /// `default`.
    pub default: Option<Value>,
    /// `properties`.
    pub properties: BTreeMap<String, SchemaNode>,
    /// `additionalProperties`.
    pub additional_properties: Option<AdditionalProperties>,
    /// `items` (a single schema; an array of schemas is recorded in `unsupported`).
    pub items: Option<Box<SchemaNode>>,
    /// `required`.
    pub required: Vec<String>,
    /// `enum`.
    pub enum_: Option<Vec<Value>>,
    /// `pattern`.
    pub pattern: Option<String>,
    /// `maximum`.
    pub maximum: Option<f64>,
    /// `exclusiveMaximum`.
    pub exclusive_maximum: bool,
    /// `minimum`.
    pub minimum: Option<f64>,
    /// `exclusiveMinimum`.
    pub exclusive_minimum: bool,
    /// `maxLength`.
    pub max_length: Option<i64>,
    /// `minLength`.
    pub min_length: Option<i64>,
    /// `maxItems`.
    pub max_items: Option<i64>,
    /// `minItems`.
    pub min_items: Option<i64>,
    /// `uniqueItems`.
    pub unique_items: bool,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `maxProperties`.
    pub max_properties: Option<i64>,
    /// `minProperties`.
    pub min_properties: Option<i64>,
    /// `allOf`.
    pub all_of: Vec<SchemaNode>,
    /// `anyOf`.
    pub any_of: Vec<SchemaNode>,
    /// `oneOf`.
    pub one_of: Vec<SchemaNode>,
    /// `not`.
    pub not: Option<Box<SchemaNode>>,
    /// `x-kubernetes-preserve-unknown-fields` (None when unset).
    pub preserve_unknown_fields: Option<bool>,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`.
    pub map_type: Option<String>,
    /// `x-kubernetes-validations` (CEL rules; kept, not evaluated).
    pub x_validations: Vec<Value>,
    /// Fields kube does not support in CRD schemas that were given (`id`, `$ref`,
    /// `patternProperties`, `definitions`, `dependencies`, `additionalItems`, an `items`
    /// array), by JSON name.
    pub unsupported: Vec<String>,
    /// `externalDocs` or `example` given (allowed, unused).
    pub has_docs_or_example: bool,
    /// The node as written (for error values).
    pub raw: Value,
    /// `pattern` compiled (None when absent or invalid).
    pub(crate) regex: Compiled,
}

/// `pattern`, compiled once; equal to any other (it follows `pattern`, which is compared).
#[derive(Clone, Debug, Default)]
pub(crate) struct Compiled(pub(crate) Option<Regex>);

impl PartialEq for Compiled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A structural schema: the root node of one version's `openAPIV3Schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct StructuralSchema {
    /// The root (`type: object`).
    pub root: SchemaNode,
}

/// `spec.versions[i].schema.openAPIV3Schema.properties[spec]`-style path building.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn invalid_shape(errs: &mut Vec<FieldError>, path: &str, value: &Value, want: &str) {
    errs.push(FieldError::invalid(path, value.clone(), format!("must be {want}")));
}

impl SchemaNode {
    /// Parses one schema node; shape errors (a `properties` that is not an object, ...) are
    /// reported at `path`, as kube's decoder would refuse them.
    pub fn parse(value: &Value, path: &str, errs: &mut Vec<FieldError>) -> SchemaNode {
        let mut node = SchemaNode { raw: value.clone(), ..SchemaNode::default() };
        let Some(obj) = value.as_object() else {
            invalid_shape(errs, path, value, "an object");
            return node;
        };
        for (k, v) in obj {
            let p = child(path, k);
            match k.as_str() {
                "type" => node.type_ = string(v, &p, errs),
                "format" => node.format = string(v, &p, errs),
                "description" => node.description = string(v, &p, errs),
                "title" => node.title = string(v, &p, errs),
                "nullable" => node.nullable = boolean(v, &p, errs),
                "default" => node.default = Some(v.clone()),
                "properties" => match v.as_object() {
                    Some(props) => {
                        for (name, s) in props {
                            let sub = SchemaNode::parse(s, &key(&child(path, "properties"), name), errs);
                            node.properties.insert(name.clone(), sub);
                        }
                    }
                    None => invalid_shape(errs, &p, v, "an object"),
                },
                "additionalProperties" => {
                    node.additional_properties = Some(match v {
                        Value::Bool(b) => AdditionalProperties::Allows(*b),
                        other => AdditionalProperties::Schema(Box::new(SchemaNode::parse(other, &p, errs))),
                    })
                }
                "items" => match v {
                    Value::Array(_) => node.unsupported.push("items".to_owned()),
                    other => node.items = Some(Box::new(SchemaNode::parse(other, &p, errs))),
                },
                "required" => node.required = strings(v, &p, errs),
                "enum" => match v.as_array() {
                    Some(values) => node.enum_ = Some(values.clone()),
                    None => invalid_shape(errs, &p, v, "a list"),
                },
                "pattern" => {
                    let pattern = string(v, &p, errs);
                    node.regex = Compiled(Regex::new(&pattern).ok());
                    node.pattern = Some(pattern);
                }
                "maximum" => node.maximum = number(v, &p, errs),
                "minimum" => node.minimum = number(v, &p, errs),
                "multipleOf" => node.multiple_of = number(v, &p, errs),
                "exclusiveMaximum" => node.exclusive_maximum = boolean(v, &p, errs),
                "exclusiveMinimum" => node.exclusive_minimum = boolean(v, &p, errs),
                "maxLength" => node.max_length = integer(v, &p, errs),
                "minLength" => node.min_length = integer(v, &p, errs),
                "maxItems" => node.max_items = integer(v, &p, errs),
                "minItems" => node.min_items = integer(v, &p, errs),
                "maxProperties" => node.max_properties = integer(v, &p, errs),
                "minProperties" => node.min_properties = integer(v, &p, errs),
                "uniqueItems" => node.unique_items = boolean(v, &p, errs),
                "allOf" => node.all_of = list(v, &p, errs),
                "anyOf" => node.any_of = list(v, &p, errs),
                "oneOf" => node.one_of = list(v, &p, errs),
                "not" => node.not = Some(Box::new(SchemaNode::parse(v, &p, errs))),
                "x-kubernetes-preserve-unknown-fields" => node.preserve_unknown_fields = Some(boolean(v, &p, errs)),
                "x-kubernetes-embedded-resource" => node.embedded_resource = boolean(v, &p, errs),
                "x-kubernetes-int-or-string" => node.int_or_string = boolean(v, &p, errs),
                "x-kubernetes-list-type" => node.list_type = Some(string(v, &p, errs)),
                "x-kubernetes-list-map-keys" => node.list_map_keys = strings(v, &p, errs),
                "x-kubernetes-map-type" => node.map_type = Some(string(v, &p, errs)),
                "x-kubernetes-validations" => match v.as_array() {
                    Some(rules) => node.x_validations = rules.clone(),
                    None => invalid_shape(errs, &p, v, "a list"),
                },
                "id" | "$ref" | "$schema" | "patternProperties" | "definitions" | "dependencies"
                | "additionalItems" => node.unsupported.push(k.clone()),
                "externalDocs" | "example" => node.has_docs_or_example = true,
                // Unknown fields of JSONSchemaProps are dropped by kube's decoder.
                _ => {}
            }
        }
        node
    }

    /// The types the value may have, as kube-openapi sees them (`x-kubernetes-int-or-string`
    /// means `integer` or `string`).
    pub(crate) fn types(&self) -> Vec<&str> {
        if self.int_or_string {
            vec!["integer", "string"]
        } else if self.type_.is_empty() {
            vec![]
        } else {
            vec![self.type_.as_str()]
        }
    }

    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub fn preserves_unknown(&self) -> bool {
        self.preserve_unknown_fields == Some(true)
    }

    /// The format kube's validator keeps (StripUnsupportedFormats): known string formats,
    /// int32/int64 for integers, float/double for numbers; others are ignored.
    pub(crate) fn effective_format(&self) -> &str {
        let f = self.format.as_str();
        if f.is_empty() {
            return "";
        }
        let ty = if self.int_or_string { "" } else { self.type_.as_str() };
        let keep = match ty {
            "" | "string" => super::formats::is_supported(f),
            "integer" => f == "int32" || f == "int64",
            "number" => f == "float" || f == "double",
            _ => false,
        };
        if keep {
            f
        } else {
            ""
        }
    }

    /// True when this node or any below it satisfies `pred` (kube's `SchemaHas`).
    pub fn any(&self, pred: &dyn Fn(&SchemaNode) -> bool) -> bool {
        pred(self)
            || self.properties.values().any(|s| s.any(pred))
            || self.items.as_deref().is_some_and(|s| s.any(pred))
            || self.additional_properties.as_ref().and_then(AdditionalProperties::schema).is_some_and(|s| s.any(pred))
            || self.all_of.iter().chain(&self.any_of).chain(&self.one_of).any(|s| s.any(pred))
            || self.not.as_deref().is_some_and(|s| s.any(pred))
    }

    /// True when a `default` is set anywhere in the tree.
    pub fn has_defaults(&self) -> bool {
        self.any(&|s| s.default.is_some())
    }
}

fn string(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => {
            invalid_shape(errs, path, other, "a string");
            String::new()
        }
    }
}

fn boolean(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> bool {
    match v {
        Value::Bool(b) => *b,
        other => {
            invalid_shape(errs, path, other, "a boolean");
            false
        }
    }
}

fn number(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<f64> {
    let n = v.as_f64();
    if n.is_none() {
        invalid_shape(errs, path, v, "a number");
    }
    n
}

fn integer(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    let n = v.as_i64();
    if n.is_none() {
        invalid_shape(errs, path, v, "an integer");
    }
    n
}

fn strings(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Vec<String> {
    match v.as_array() {
        Some(items) => items.iter().enumerate().map(|(i, s)| string(s, &index(path, i), errs)).collect(),
        None => {
            invalid_shape(errs, path, v, "a list of strings");
            Vec::new()
        }
    }
}

fn list(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Vec<SchemaNode> {
    match v.as_array() {
        Some(items) => items.iter().enumerate().map(|(i, s)| SchemaNode::parse(s, &index(path, i), errs)).collect(),
        None => {
            invalid_shape(errs, path, v, "a list");
            Vec::new()
        }
    }
}

/// How a schema is checked when a CRD is written (the `validationOptions` kube uses for
/// creates; updates relax some for schemas already stored).
#[derive(Clone, Copy, Debug)]
pub struct SchemaOptions {
    /// The status subresource is enabled for the version(s) using the schema.
    pub status_enabled: bool,
    /// `default` may be used.
    pub allow_defaults: bool,
    /// The schema must be structural.
    pub require_structural: bool,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions { status_enabled: false, allow_defaults: true, require_structural: true }
    }
}

impl StructuralSchema {
    /// Parses `openAPIV3Schema` without checking it (for schemas already accepted).
    pub fn from_value(schema: &Value) -> StructuralSchema {
        let mut ignored = Vec::new();
        StructuralSchema { root: SchemaNode::parse(schema, "", &mut ignored) }
    }

    /// Parses and checks `openAPIV3Schema` (at `path`, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`) as kube's CRD validation does: the
    /// OpenAPI subset, the structural rules, the `x-kubernetes-*` rules and the defaults.
    pub fn parse(schema: &Value, path: &str, opts: SchemaOptions) -> Result<StructuralSchema, Vec<FieldError>> {
        let mut errs = Vec::new();
        let root = SchemaNode::parse(schema, path, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        let s = StructuralSchema { root };
        let errs = s.check(path, opts);
        if errs.is_empty() {
            Ok(s)
        } else {
            Err(errs)
        }
    }

    /// The checks of `validateCustomResourceDefinitionValidation`, in kube's order.
    pub fn check(&self, path: &str, opts: SchemaOptions) -> Vec<FieldError> {
        let root = &self.root;
        let mut errs = Vec::new();
        if opts.status_enabled {
            errs.extend(check_status_root(root, path));
        }
        if root.nullable {
            errs.push(FieldError::forbidden(child(path, "nullable"), "nullable cannot be true at the root"));
        }
        let convertible = !root.any(&|s| !s.unsupported.is_empty());
        if opts.require_structural && convertible {
            let structural = validate_structural(root, path);
            if !structural.is_empty() {
                errs.extend(structural);
            } else {
                errs.extend(super::defaulting::validate_defaults(root, path));
            }
        }
        let ssv =
            SpecValidator { allow_defaults: opts.allow_defaults, disallow_reason: String::new(), inside_meta: false };
        openapi_checks(root, path, &ssv, true, &mut errs);
        errs
    }
}

const ROOT_ALLOWED: &str = "[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations]";

fn check_status_root(root: &SchemaNode, path: &str) -> Vec<FieldError> {
    // Fields in JSONSchemaProps order up to `type`: id, $schema, $ref, description.
    let before_type = root.unsupported.iter().any(|u| u == "id" || u == "$schema" || u == "$ref");
    let not_allowed = |r: &SchemaNode| {
        before_type
            || r.default.is_some()
            || r.enum_.is_some()
            || r.max_properties.is_some()
            || r.min_properties.is_some()
            || !r.all_of.is_empty()
            || !r.one_of.is_empty()
            || !r.any_of.is_empty()
            || r.not.is_some()
            || r.additional_properties.is_some()
            || r.nullable
            || r.embedded_resource
            || r.int_or_string
            || !r.list_map_keys.is_empty()
            || r.list_type.is_some()
            || r.map_type.is_some()
            || !r.unsupported.is_empty()
    };
    if !before_type && !root.type_.is_empty() && root.type_ != "object" {
        return vec![FieldError::invalid(
            child(path, "type"),
            Value::String(root.type_.clone()),
            r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
        )];
    }
    if not_allowed(root) {
        return vec![FieldError::invalid(
            path,
            root.raw.clone(),
            format!(
                "only {ROOT_ALLOWED} fields are allowed at the root of the schema if the status subresource is enabled"
            ),
        )];
    }
    Vec::new()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// `ValidateStructural`: invariants and completeness, sorted by message as kube does.
fn validate_structural(root: &SchemaNode, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    invariants(root, Level::Root, path, &mut errs);
    completeness_value(root, root, path, path, &mut errs);
    errs.sort_by_key(|e| e.to_string());
    errs
}

fn invariants(s: &SchemaNode, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if s.type_ == "array" && s.items.is_none() {
        errs.push(FieldError::required(child(path, "items"), "must be specified"));
    }
    if let Some(items) = &s.items {
        invariants(items, Level::Item, &child(path, "items"), errs);
    }
    for (k, v) in &s.properties {
        invariants(v, Level::Field, &key(&child(path, "properties"), k), errs);
    }
    if let Some(ap) = &s.additional_properties {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(child(path, "additionalProperties"), "must not be used at the root"));
        }
        if let Some(schema) = ap.schema() {
            invariants(schema, Level::Field, &child(path, "additionalProperties"), errs);
        }
    }
    if s.int_or_string && s.preserves_unknown() {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded_resource {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-embedded-resource"),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = is_int_or_string_any_of(&s.any_of);
    let skip_first_all_of_any_of = s.all_of.first().is_some_and(|a| is_int_or_string_any_of(&a.any_of));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errs);

    let check_metadata = lvl == Level::Root || s.embedded_resource;
    if s.embedded_resource && s.type_ != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(type_error(path, &s.type_, detail));
    } else if s.type_.is_empty() && !s.int_or_string && !s.preserves_unknown() {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(child(path, "type"), detail));
    }
    if s.embedded_resource && s.additional_properties.is_some() {
        errs.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !s.type_.is_empty() && s.type_ != "object" {
        errs.push(FieldError::invalid(
            child(path, "type"),
            Value::String(s.type_.clone()),
            "must be object at the root",
        ));
    }
    for meta in ["kind", "apiVersion"] {
        if let Some(p) = s.properties.get(meta) {
            if check_metadata && p.type_ != "string" {
                let at = child(&key(&child(path, "properties"), meta), "type");
                errs.push(FieldError::invalid(at, Value::String(p.type_.clone()), "must be string"));
            }
        }
    }
    if let Some(metadata) = s.properties.get("metadata") {
        let at = key(&child(path, "properties"), "metadata");
        if check_metadata && metadata.type_ != "object" {
            errs.push(FieldError::invalid(child(&at, "type"), Value::String(metadata.type_.clone()), "must be object"));
        }
        if lvl == Level::Root && !metadata_is_only_names(metadata) {
            errs.push(FieldError::forbidden(
                at,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if s.embedded_resource && !s.preserves_unknown() && s.properties.is_empty() {
        errs.push(FieldError::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

fn type_error(path: &str, ty: &str, detail: &str) -> FieldError {
    if ty.is_empty() {
        FieldError::required(child(path, "type"), detail)
    } else {
        FieldError::invalid(child(path, "type"), Value::String(ty.to_owned()), detail)
    }
}

/// Root `metadata` may only restrict `name` and `generateName` (its type and default are
/// checked elsewhere).
fn metadata_is_only_names(m: &SchemaNode) -> bool {
    let names_only = m.properties.keys().all(|k| k == "name" || k == "generateName");
    let bare = SchemaNode {
        type_: String::new(),
        default: None,
        properties: BTreeMap::new(),
        raw: Value::Null,
        has_docs_or_example: false,
        regex: Compiled(None),
        ..m.clone()
    };
    let empty = SchemaNode { raw: Value::Null, ..SchemaNode::default() };
    names_only && bare == empty && !m.has_docs_or_example
}

fn is_int_or_string_any_of(any_of: &[SchemaNode]) -> bool {
    let only_type = |s: &SchemaNode, t: &str| {
        let bare = SchemaNode { type_: String::new(), raw: Value::Null, ..s.clone() };
        s.type_ == t && bare == SchemaNode { raw: Value::Null, ..SchemaNode::default() }
    };
    any_of.len() == 2 && only_type(&any_of[0], "integer") && only_type(&any_of[1], "string")
}

/// `validateValueValidation`: junctors of `v` must be free of structural fields.
fn value_validation(
    v: &SchemaNode,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, a) in v.any_of.iter().enumerate() {
            nested(a, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, a) in v.all_of.iter().enumerate() {
        nested(a, skip_first_all_of_any_of && i == 0, &index(&child(path, "allOf"), i), errs);
    }
    for (i, a) in v.one_of.iter().enumerate() {
        nested(a, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(n) = &v.not {
        nested(n, false, &child(path, "not"), errs);
    }
    if let Some(pattern) = &v.pattern {
        if let Err(e) = Regex::new(pattern) {
            errs.push(FieldError::invalid(
                child(path, "pattern"),
                Value::String(pattern.clone()),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
}

fn nested(v: &SchemaNode, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    value_validation(v, skip_any_of, false, path, errs);
    if let Some(items) = &v.items {
        nested(items, false, &child(path, "items"), errs);
    }
    for (k, p) in &v.properties {
        nested(p, false, &key(&child(path, "properties"), k), errs);
    }
    let forbid = |errs: &mut Vec<FieldError>, name: &str, detail: &str| {
        errs.push(FieldError::forbidden(child(path, name), detail));
    };
    if !v.type_.is_empty() {
        forbid(errs, "type", "must be empty to be structural");
    }
    if v.additional_properties.is_some() {
        forbid(errs, "additionalProperties", "must be undefined to be structural");
    }
    if v.default.is_some() {
        forbid(errs, "default", "must be undefined to be structural");
    }
    if !v.title.is_empty() {
        forbid(errs, "title", "must be empty to be structural");
    }
    if !v.description.is_empty() {
        forbid(errs, "description", "must be empty to be structural");
    }
    if v.nullable {
        forbid(errs, "nullable", "must be false to be structural");
    }
    if v.preserves_unknown() {
        forbid(errs, "x-kubernetes-preserve-unknown-fields", "must be false to be structural");
    }
    if v.embedded_resource {
        forbid(errs, "x-kubernetes-embedded-resource", "must be false to be structural");
    }
    if v.int_or_string {
        forbid(errs, "x-kubernetes-int-or-string", "must be false to be structural");
    }
    if !v.list_map_keys.is_empty() {
        forbid(errs, "x-kubernetes-list-map-keys", "must be empty to be structural");
    }
    if v.list_type.is_some() {
        forbid(errs, "x-kubernetes-list-type", "must be undefined to be structural");
    }
    if v.map_type.is_some() {
        forbid(errs, "x-kubernetes-map-type", "must be undefined to be structural");
    }
    if !v.x_validations.is_empty() {
        forbid(errs, "x-kubernetes-validations", "must be empty to be structural");
    }
    if v.properties.contains_key("metadata") {
        errs.push(FieldError::forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// `validateStructuralCompleteness`: whatever the junctors of `v` mention must be specified
/// in the structural node `s`.
fn completeness_value(v: &SchemaNode, s: &SchemaNode, s_path: &str, v_path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = &v.not {
        completeness_nested(n, Some(s), s_path, &child(v_path, "not"), errs);
    }
    for (name, list) in [("allOf", &v.all_of), ("anyOf", &v.any_of), ("oneOf", &v.one_of)] {
        for (i, a) in list.iter().enumerate() {
            completeness_nested(a, Some(s), s_path, &index(&child(v_path, name), i), errs);
        }
    }
}

fn completeness_nested(v: &SchemaNode, s: Option<&SchemaNode>, s_path: &str, v_path: &str, errs: &mut Vec<FieldError>) {
    let Some(s) = s else {
        errs.push(FieldError::required(s_path, format!("because it is defined in {v_path}")));
        return;
    };
    completeness_value(v, s, s_path, v_path, errs);
    if let Some(items) = &v.items {
        completeness_nested(items, s.items.as_deref(), &child(s_path, "items"), &child(v_path, "items"), errs);
    }
    for (k, p) in &v.properties {
        let sp = key(&child(s_path, "properties"), k);
        let vp = key(&child(v_path, "properties"), k);
        match s.properties.get(k) {
            Some(sf) => completeness_nested(p, Some(sf), &sp, &vp, errs),
            None => errs.push(FieldError::required(sp, format!("because it is defined in {vp}"))),
        }
    }
}

/// The context `ValidateCustomResourceDefinitionOpenAPISchema` carries down the tree.
#[derive(Clone)]
struct SpecValidator {
    allow_defaults: bool,
    disallow_reason: String,
    inside_meta: bool,
}

impl SpecValidator {
    fn forbidding_defaults(&self, reason: &str) -> SpecValidator {
        SpecValidator { allow_defaults: false, disallow_reason: reason.to_owned(), inside_meta: self.inside_meta }
    }
}

const OPENAPI_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// `specStandardValidatorV3.validate`: the OpenAPI subset CRDs may use.
fn spec_validate(s: &SchemaNode, path: &str, ssv: &SpecValidator, errs: &mut Vec<FieldError>) {
    if !s.type_.is_empty() && !OPENAPI_TYPES.contains(&s.type_.as_str()) {
        errs.push(FieldError::not_supported(child(path, "type"), Value::String(s.type_.clone()), &OPENAPI_TYPES));
    }
    if s.default.is_some() && !ssv.allow_defaults {
        let mut detail = "must not be set".to_owned();
        if !ssv.disallow_reason.is_empty() {
            detail.push(' ');
            detail.push_str(&ssv.disallow_reason);
        }
        errs.push(FieldError::forbidden(child(path, "default"), detail));
    }
    let has = |name: &str| s.unsupported.iter().any(|u| u == name);
    for (name, detail) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if has(name) {
            errs.push(FieldError::forbidden(child(path, name), detail));
        }
    }
    if s.type_ == "null" {
        errs.push(FieldError::forbidden(
            child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if has("items") {
        errs.push(FieldError::forbidden(child(path, "items"), "items must be a schema object and not an array"));
    }
    if ssv.inside_meta && s.embedded_resource {
        errs.push(FieldError::forbidden(
            child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

const META_FIELDS: [&str; 3] = ["metadata", "kind", "apiVersion"];

fn str_list(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

/// `ValidateCustomResourceDefinitionOpenAPISchema` (without CEL).
fn openapi_checks(s: &SchemaNode, path: &str, ssv: &SpecValidator, is_root: bool, errs: &mut Vec<FieldError>) {
    spec_validate(s, path, ssv, errs);
    if s.unique_items {
        errs.push(FieldError::forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(ap) = &s.additional_properties {
        if !s.properties.is_empty() && !matches!(ap, AdditionalProperties::Allows(true)) {
            errs.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Some(schema) = ap.schema() {
            let sub = if ssv.inside_meta {
                ssv.forbidding_defaults("inside additionalProperties applying to object metadata")
            } else {
                ssv.clone()
            };
            openapi_checks(schema, &child(path, "additionalProperties"), &sub, false, errs);
        }
    }
    for (k, p) in &s.properties {
        let mut sub = ssv.clone();
        if (is_root || s.embedded_resource) && META_FIELDS.contains(&k.as_str()) {
            sub.inside_meta = true;
            if is_root {
                sub = sub.forbidding_defaults(&format!("in top-level {k}"));
            }
        }
        openapi_checks(p, &key(&child(path, "properties"), k), &sub, false, errs);
    }
    if let Some(n) = &s.not {
        openapi_checks(n, &child(path, "not"), ssv, false, errs);
    }
    for (name, list) in [("allOf", &s.all_of), ("oneOf", &s.one_of), ("anyOf", &s.any_of)] {
        for (i, a) in list.iter().enumerate() {
            openapi_checks(a, &index(&child(path, name), i), ssv, false, errs);
        }
    }
    if let Some(items) = &s.items {
        openapi_checks(items, &child(path, "items"), ssv, false, errs);
    }
    if s.preserve_unknown_fields == Some(false) {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if let Some(map_type) = &s.map_type {
        if s.type_ != "object" {
            errs.push(type_error(path, &s.type_, "must be object if x-kubernetes-map-type is specified"));
        }
        if map_type != "atomic" && map_type != "granular" {
            errs.push(FieldError::not_supported(
                child(path, "x-kubernetes-map-type"),
                Value::String(map_type.clone()),
                &["atomic", "granular"],
            ));
        }
    }
    list_checks(s, path, errs);
    for (i, rule) in s.x_validations.iter().enumerate() {
        let at = index(&child(path, "x-kubernetes-validations"), i);
        if rule.get("rule").and_then(Value::as_str).is_none_or(|r| r.trim().is_empty()) {
            errs.push(FieldError::required(child(&at, "rule"), "rule is not specified"));
        }
    }
}

fn list_checks(s: &SchemaNode, path: &str, errs: &mut Vec<FieldError>) {
    let list_type = s.list_type.as_deref();
    if let Some(lt) = list_type {
        if s.type_ != "array" {
            errs.push(type_error(path, &s.type_, "must be array if x-kubernetes-list-type is specified"));
        } else if lt == "set" {
            if let Some(is) = &s.items {
                let items_path = child(path, "items");
                match is.type_.as_str() {
                    "array" if is.list_type.as_deref().is_some_and(|t| t != "atomic") => {
                        errs.push(FieldError::invalid(
                            child(&items_path, "x-kubernetes-list-type"),
                            is.list_type.clone().map_or(Value::Null, Value::String),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ))
                    }
                    "object" if is.map_type.as_deref() != Some("atomic") => errs.push(FieldError::invalid(
                        child(&items_path, "x-kubernetes-map-type"),
                        is.list_type.clone().map_or(Value::Null, Value::String),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )),
                    _ => {}
                }
            }
        }
        if !["atomic", "set", "map"].contains(&lt) {
            errs.push(FieldError::not_supported(
                child(path, "x-kubernetes-list-type"),
                Value::String(lt.to_owned()),
                &["atomic", "set", "map"],
            ));
        }
    }
    if !s.list_map_keys.is_empty() {
        match list_type {
            None => errs.push(FieldError::required(
                child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => errs.push(FieldError::invalid(
                child(path, "x-kubernetes-list-type"),
                Value::String(lt.to_owned()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if list_type == Some("map") {
        if s.list_map_keys.is_empty() {
            errs.push(FieldError::required(
                child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        let items_path = child(path, "items");
        match &s.items {
            None if s.unsupported.iter().any(|u| u == "items") => errs.push(FieldError::invalid(
                &items_path,
                s.raw.get("items").cloned().unwrap_or(Value::Null),
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            None => errs.push(FieldError::required(&items_path, "must have a schema if x-kubernetes-list-type is map")),
            Some(is) if is.type_ != "object" => errs.push(FieldError::invalid(
                child(&items_path, "type"),
                Value::String(is.type_.clone()),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(is) => {
                let mut seen = Vec::new();
                for k in &s.list_map_keys {
                    match is.properties.get(k) {
                        Some(p) if p.type_ == "array" || p.type_ == "object" => errs.push(FieldError::invalid(
                            child(&key(&child(&items_path, "properties"), k), "type"),
                            Value::String(is.type_.clone()),
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        )),
                        Some(_) => {}
                        None => errs.push(FieldError::invalid(
                            child(path, "x-kubernetes-list-map-keys"),
                            str_list(&s.list_map_keys),
                            "entries must all be names of item properties",
                        )),
                    }
                    if seen.contains(&k) {
                        errs.push(FieldError::invalid(
                            child(path, "x-kubernetes-list-map-keys"),
                            str_list(&s.list_map_keys),
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(k);
                }
            }
        }
    }
    // validateMapListKeysMapSet
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, &s.items) {
        let items_path = child(path, "items");
        if is.nullable {
            errs.push(FieldError::forbidden(
                child(&items_path, "nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            for k in &s.list_map_keys {
                let Some(p) = is.properties.get(k) else { continue };
                let at = key(&child(&items_path, "properties"), k);
                if !is.required.contains(k) && p.default.is_none() {
                    errs.push(FieldError::required(
                        child(&at, "default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if p.nullable {
                    errs.push(FieldError::forbidden(
                        child(&at, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

/// A field error of a kind without a constructor in `validation` (TooLong, TooMany).
pub(crate) fn field_error(kind: ErrorType, field: String, value: Option<Value>, detail: String) -> FieldError {
    FieldError { kind, field, value, detail }
}
