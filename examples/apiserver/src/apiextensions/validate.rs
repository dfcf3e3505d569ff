//! Validating a custom resource against its structural schema, with the messages of
//! kube-openapi's `pkg/validation/validate` as apiextensions-apiserver turns them into field
//! errors (`pkg/apiserver/validation/validation.go` `kubeOpenAPIResultToFieldErrors`), plus
//! the `x-kubernetes-list-type` set/map uniqueness (`pkg/apiserver/schema/listtype`).
//!
//! kube-openapi names a value by its path from the validated root (`spec.replicas`) and
//! says `in body`; the field path is that name under the caller's path (none for the whole
//! object, `status` for the status subresource). Errors that are not tied to a value
//! (allOf/anyOf/oneOf/not, number-range checks) are `Invalid value: ""` at the caller's path,
//! which kube prints as `<nil>` for the whole object.

use serde_json::{Map, Number, Value};

use super::formats;
use super::schema::{child, field_error, index, key, AdditionalProperties, SchemaNode, StructuralSchema};
use crate::gofmt;
use crate::validation::{ErrorType, FieldError};

impl StructuralSchema {
    /// Validates a whole custom resource (create/update): the schema, then list sets/maps.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let mut out = Vec::new();
        Validator { prefix: None }.node(&self.root, object, "", &mut out);
        if let Some(obj) = object.as_object() {
            list_sets_and_maps_object("", &self.root, obj, &mut out);
        }
        dedup(out)
    }

    /// Validates `value` against the root with field paths under `prefix` (a default value
    /// at `...properties[x].default`).
    pub(crate) fn validate_at(&self, value: &Value, prefix: &str) -> Vec<FieldError> {
        let mut out = Vec::new();
        Validator { prefix: Some(prefix) }.node(&self.root, value, "", &mut out);
        dedup(out)
    }

    #[cfg(test)]
    /// Validates the `status` of a custom resource as the `/status` subresource does:
    /// against `properties.status`, errors under `status` (`status.num: Invalid value: 15:
    /// num in body should be less than or equal to 10`).
    pub fn validate_status(&self, object: &Value) -> Vec<FieldError> {
        let (Some(status), Some(schema)) = (object.get("status"), self.root.properties.get("status")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        Validator { prefix: Some("status") }.node(schema, status, "", &mut out);
        dedup(out)
    }
}

fn dedup(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::with_capacity(errors.len());
    for e in errors {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

struct Validator<'a> {
    prefix: Option<&'a str>,
}

fn in_body(name: &str, tail: &str) -> String {
    format!("{name} in body {tail}")
}

/// (kube-openapi's type name, Go format) of a decoded JSON value.
fn schema_info(data: &Value) -> (&'static str, &'static str) {
    match data {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) if n.is_i64() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

impl Validator<'_> {
    /// The field path of kube-openapi name `name`.
    fn field(&self, name: &str) -> String {
        let name = name.strip_prefix('.').unwrap_or(name);
        match (self.prefix, name.is_empty()) {
            (Some(p), true) => p.to_owned(),
            (None, true) => "<nil>".to_owned(),
            (Some(p), false) => format!("{p}.{name}"),
            (None, false) => name.to_owned(),
        }
    }

    fn invalid(&self, name: &str, value: Value, detail: String) -> FieldError {
        FieldError::invalid(self.field(name), value, detail)
    }

    /// An error kube-openapi does not tie to a value (`field.Invalid(fldPath, "", msg)`).
    fn plain(&self, detail: String) -> FieldError {
        FieldError::invalid(self.field(""), Value::String(String::new()), detail)
    }

    fn invalid_type(&self, name: &str, type_name: &str, value: &str) -> FieldError {
        let detail = in_body(name, &format!("must be of type {type_name}: {}", gofmt::quote(value)));
        self.invalid(name, Value::String(value.to_owned()), detail)
    }

    fn node(&self, s: &SchemaNode, data: &Value, name: &str, out: &mut Vec<FieldError>) {
        self.check_type(s, data, name, out);
        if data.is_null() {
            self.check_enum(s, data, name, out);
            return;
        }
        self.junctors(s, data, name, out);
        if let Value::String(text) = data {
            self.check_string(s, text, name, out);
            let format = s.effective_format();
            if !format.is_empty() && !formats::validates(format, text) {
                out.push(self.invalid_type(name, format, text));
            }
        }
        if let Value::Number(n) = data {
            self.check_number(s, n, name, out);
        }
        if let Value::Array(items) = data {
            self.check_array(s, items, name, out);
        }
        self.check_enum(s, data, name, out);
        if let Value::Object(map) = data {
            self.check_object(s, map, name, out);
        }
    }

    #[allow(clippy::nonminimal_bool)] // written as kube-openapi's typeValidator reads
    fn check_type(&self, s: &SchemaNode, data: &Value, name: &str, out: &mut Vec<FieldError>) {
        let types = s.types();
        let format = s.effective_format();
        if types.is_empty() && format.is_empty() {
            return;
        }
        let joined = types.join(",");
        if data.is_null() {
            if !types.is_empty() && !types.contains(&"null") && !s.nullable {
                out.push(self.invalid_type(name, &joined, "null"));
            }
            return;
        }
        let (sch_type, go_format) = schema_info(data);
        let has = |t: &str| types.contains(&t);
        let is_float_int =
            sch_type == "number" && data.as_f64().is_some_and(|f| f.fract() == 0.0 && f.is_finite()) && has("integer");
        let is_int_float = sch_type == "integer" && has("number");
        let string_or_slice = data.is_string() || data.is_array();
        if !string_or_slice
            && !format.is_empty()
            && !(has(sch_type) || go_format == format || is_float_int || is_int_float)
        {
            out.push(self.invalid_type(name, format, go_format));
            return;
        }
        if !(has("number") || has("integer")) && !format.is_empty() && string_or_slice {
            return;
        }
        if !(has(sch_type) || is_float_int || is_int_float) {
            out.push(self.invalid_type(name, &joined, sch_type));
        }
    }

    fn sub(&self, s: &SchemaNode, data: &Value, name: &str) -> Vec<FieldError> {
        let mut out = Vec::new();
        self.node(s, data, name, &mut out);
        out
    }

    /// allOf/anyOf/oneOf/not (kube-openapi `schemaPropsValidator`).
    fn junctors(&self, s: &SchemaNode, data: &Value, name: &str, out: &mut Vec<FieldError>) {
        let quoted = gofmt::quote(name);
        if !s.any_of.is_empty() {
            let results: Vec<Vec<FieldError>> = s.any_of.iter().map(|a| self.sub(a, data, name)).collect();
            if !results.iter().any(Vec::is_empty) {
                out.push(self.plain(format!("{quoted} must validate at least one schema (anyOf)")));
                if let Some(best) = results.iter().min_by_key(|r| r.len()) {
                    out.extend(best.iter().cloned());
                }
            }
        }
        if !s.one_of.is_empty() {
            let results: Vec<Vec<FieldError>> = s.one_of.iter().map(|a| self.sub(a, data, name)).collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let more = if valid == 0 {
                    "Found none valid".to_owned()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                out.push(self.plain(format!("{quoted} must validate one and only one schema (oneOf). {more}")));
                if valid == 0 {
                    if let Some(best) = results.iter().min_by_key(|r| r.len()) {
                        out.extend(best.iter().cloned());
                    }
                }
            }
        }
        if !s.all_of.is_empty() {
            let mut valid = 0;
            for a in &s.all_of {
                let r = self.sub(a, data, name);
                if r.is_empty() {
                    valid += 1;
                }
                out.extend(r);
            }
            if valid != s.all_of.len() {
                let more = if valid == 0 { ". None validated" } else { "" };
                out.push(self.plain(format!("{quoted} must validate all the schemas (allOf){more}")));
            }
        }
        if let Some(not) = &s.not {
            if self.sub(not, data, name).is_empty() {
                out.push(self.plain(format!("{quoted} must not validate the schema (not)")));
            }
        }
    }

    fn check_string(&self, s: &SchemaNode, text: &str, name: &str, out: &mut Vec<FieldError>) {
        let len = text.chars().count() as i64;
        let value = || Value::String(text.to_owned());
        if let Some(max) = s.max_length {
            if len > max {
                let unit = if max == 1 { "byte" } else { "bytes" };
                let detail = format!("may not be more than {max} {unit}");
                out.push(field_error(ErrorType::TooLong, self.field(name), None, detail));
                return;
            }
        }
        if let Some(min) = s.min_length {
            if len < min {
                out.push(self.invalid(name, value(), in_body(name, &format!("should be at least {min} chars long"))));
                return;
            }
        }
        if let (Some(pattern), Some(re)) = (&s.pattern, &s.regex.0) {
            if !re.is_match(text) {
                out.push(self.invalid(name, value(), in_body(name, &format!("should match '{pattern}'"))));
            }
        }
    }

    fn check_number(&self, s: &SchemaNode, n: &Number, name: &str, out: &mut Vec<FieldError>) {
        let value = Value::Number(n.clone());
        let int = n.as_i64();
        let f = n.as_f64().unwrap_or(0.0);
        // The range check of the value against the declared type and format.
        if let [ty] = s.types().as_slice() {
            let format = s.effective_format();
            let fits = match (*ty, format) {
                ("integer", "int32") => int
                    .map_or(f.fract() == 0.0 && f >= i32::MIN as f64 && f <= i32::MAX as f64, |i| {
                        i32::try_from(i).is_ok()
                    }),
                ("integer", _) => int.is_some() || (f.fract() == 0.0 && f.abs() < 9.2e18),
                ("number", "float") => f.abs() <= f32::MAX as f64,
                _ => true,
            };
            if !fits {
                let detail = if format.is_empty() {
                    format!("Checked value must be of type {ty} (default format) in {name}")
                } else {
                    format!("Checked value must be of type {ty} with format {format} in {name}")
                };
                out.push(self.plain(detail));
            }
        }
        if let Some(factor) = s.multiple_of {
            match int {
                Some(i) => {
                    let factor = factor as i64;
                    if factor <= 0 {
                        let d = format!("factor MultipleOf declared for {name} must be positive: {factor}");
                        out.push(self.invalid(name, Value::from(factor), d));
                    } else if i % factor != 0 {
                        out.push(self.invalid(
                            name,
                            value.clone(),
                            in_body(name, &format!("should be a multiple of {factor}")),
                        ));
                    }
                }
                None => {
                    if factor <= 0.0 {
                        let d =
                            format!("factor MultipleOf declared for {name} must be positive: {}", gofmt::float(factor));
                        out.push(self.invalid(name, Value::from(factor), d));
                    } else {
                        let mult = if factor < 1.0 { 1.0 / factor * f } else { f / factor };
                        if mult.fract() != 0.0 {
                            let d = in_body(name, &format!("should be a multiple of {}", gofmt::float(factor)));
                            out.push(self.invalid(name, value.clone(), d));
                        }
                    }
                }
            }
        }
        let bound = |b: f64| match int {
            Some(_) => (b as i64).to_string(),
            None => gofmt::float(b),
        };
        if let Some(min) = s.minimum {
            let fails = match int {
                Some(i) => (!s.exclusive_minimum && i < min as i64) || (s.exclusive_minimum && i <= min as i64),
                None => (!s.exclusive_minimum && f < min) || (s.exclusive_minimum && f <= min),
            };
            if fails {
                let cmp = if s.exclusive_minimum { "greater than" } else { "greater than or equal to" };
                out.push(self.invalid(name, value.clone(), in_body(name, &format!("should be {cmp} {}", bound(min)))));
            }
        }
        if let Some(max) = s.maximum {
            let fails = match int {
                Some(i) => (!s.exclusive_maximum && i > max as i64) || (s.exclusive_maximum && i >= max as i64),
                None => (!s.exclusive_maximum && f > max) || (s.exclusive_maximum && f >= max),
            };
            if fails {
                let cmp = if s.exclusive_maximum { "less than" } else { "less than or equal to" };
                out.push(self.invalid(name, value, in_body(name, &format!("should be {cmp} {}", bound(max)))));
            }
        }
    }

    fn check_array(&self, s: &SchemaNode, items: &[Value], name: &str, out: &mut Vec<FieldError>) {
        if let Some(item_schema) = &s.items {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &format!("{name}[{i}]"), out);
            }
        }
        let size = items.len() as i64;
        if let Some(min) = s.min_items {
            if size < min {
                out.push(self.invalid(
                    name,
                    Value::from(size),
                    in_body(name, &format!("should have at least {min} items")),
                ));
            }
        }
        if let Some(max) = s.max_items {
            if size > max {
                out.push(too_many(self.field(name), size, max));
            }
        }
        if s.unique_items && items.iter().enumerate().any(|(i, a)| items[..i].contains(a)) {
            out.push(self.invalid(name, Value::String(String::new()), in_body(name, "shouldn't contain duplicates")));
        }
    }

    fn check_enum(&self, s: &SchemaNode, data: &Value, name: &str, out: &mut Vec<FieldError>) {
        let Some(values) = &s.enum_ else { return };
        if values.is_empty() || values.iter().any(|e| enum_matches(data, e)) {
            return;
        }
        let supported: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        out.push(FieldError::not_supported(self.field(name), data.clone(), &refs));
    }

    fn check_object(&self, s: &SchemaNode, map: &Map<String, Value>, name: &str, out: &mut Vec<FieldError>) {
        let count = map.len() as i64;
        if let Some(min) = s.min_properties {
            if count < min {
                let d = in_body(name, &format!("should have at least {min} properties"));
                out.push(self.invalid(name, Value::from(count), d));
            }
        }
        if let Some(max) = s.max_properties {
            if count > max {
                out.push(too_many(self.field(name), count, max));
            }
        }
        match &s.additional_properties {
            Some(AdditionalProperties::Allows(false)) => {
                for k in map.keys().filter(|k| !s.properties.contains_key(*k)) {
                    let d = format!("{name}.{k} in body is a forbidden property");
                    out.push(self.invalid(name, Value::String(k.clone()), d));
                }
            }
            Some(AdditionalProperties::Schema(ap)) => {
                for (k, v) in map.iter().filter(|(k, _)| !s.properties.contains_key(*k)) {
                    self.node(ap, v, &format!("{name}.{k}"), out);
                }
            }
            _ => {}
        }
        for (k, p) in &s.properties {
            if let Some(v) = map.get(k) {
                self.node(p, v, &child(name, k), out);
            }
        }
        for k in &s.required {
            if !map.contains_key(k) {
                out.push(FieldError::required(self.field(&format!("{name}.{k}")), ""));
            }
        }
    }
}

fn too_many(field: String, actual: i64, max: i64) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    field_error(ErrorType::TooMany, field, Some(Value::from(actual)), format!("must have at most {max} {unit}"))
}

/// Go's enum check: equal, or equal after converting the value to the enum value's type
/// (so a float matches an integer enum value after truncation).
fn enum_matches(data: &Value, e: &Value) -> bool {
    if data == e {
        return true;
    }
    match (data, e) {
        (Value::Number(d), Value::Number(e)) => match (d.as_i64(), e.as_i64()) {
            (_, Some(ei)) => d.as_f64().is_some_and(|f| f.trunc() as i64 == ei),
            (_, None) => d.as_f64() == e.as_f64(),
        },
        _ => false,
    }
}

/// `ValidateListSetsAndMaps` over an object whose schema is `s`.
fn list_sets_and_maps_object(path: &str, s: &SchemaNode, obj: &Map<String, Value>, out: &mut Vec<FieldError>) {
    if let Some(ap) = s.additional_properties.as_ref().and_then(AdditionalProperties::schema) {
        for (k, v) in obj {
            list_sets_and_maps(&key(path, k), ap, v, out);
        }
    }
    for (k, v) in obj {
        if let Some(sub) = s.properties.get(k) {
            list_sets_and_maps(&child(path, k), sub, v, out);
        }
    }
}

fn list_sets_and_maps(path: &str, s: &SchemaNode, value: &Value, out: &mut Vec<FieldError>) {
    match value {
        Value::Array(items) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for i in duplicates(items) {
                        out.push(FieldError::duplicate(index(path, i), items[i].clone()));
                    }
                }
                Some("map") => list_map(path, s, items, out),
                _ => {}
            }
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    list_sets_and_maps(&index(path, i), item_schema, item, out);
                }
            }
        }
        Value::Object(obj) => list_sets_and_maps_object(path, s, obj, out),
        _ => {}
    }
}

/// The indices of second occurrences (each repeated value reported once), as kube's
/// `validateListSet`: integers and floats differ, compounds compare as JSON.
fn duplicates(items: &[Value]) -> Vec<usize> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::new();
    for (i, x) in items.iter().enumerate() {
        let identity = match x {
            Value::Number(n) if n.is_f64() => format!("f:{n}"),
            other => other.to_string(),
        };
        match seen.iter_mut().find(|(k, _)| *k == identity) {
            Some((_, times)) => {
                if *times == 1 {
                    out.push(i);
                }
                *times += 1;
            }
            None => seen.push((identity, 1)),
        }
    }
    out
}

fn list_map(path: &str, s: &SchemaNode, items: &[Value], out: &mut Vec<FieldError>) {
    for (i, x) in items.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(FieldError::invalid(index(path, i), x.clone(), "must be an object for an array of list-type map"));
            return;
        }
    }
    if items.len() <= 1 {
        return;
    }
    let keys: Vec<Value> = items
        .iter()
        .map(|x| {
            let mut key = Map::new();
            for k in &s.list_map_keys {
                if let Some(v) = x.get(k) {
                    key.insert(k.clone(), v.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in duplicates(&keys) {
        out.push(FieldError::duplicate(index(path, i), keys[i].clone()));
    }
}
