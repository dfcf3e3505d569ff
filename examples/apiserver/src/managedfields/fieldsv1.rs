//! The `FieldsV1` encoding of a [`Set`] (SMD `fieldpath/serialize.go`, `serialize-pe.go`):
//! an object whose keys are serialized path elements (`f:name`, `k:{"name":"web"}`,
//! `v:"x"`, `i:3`), a leaf `{}`, and `".":{}` where a node is itself a member and has children.

use super::fieldpath::{PathElement, Set};
use super::value;
use serde_json::{Map, Value};

/// Why a `fieldsV1` value could not be decoded. `at` is the path of serialized keys leading to
/// the problem (empty at the root).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsV1Error {
    /// The value at `at` is neither an object nor null.
    #[error("fieldsV1{}: expected an object, found {found}", render_at(.at))]
    NotAnObject {
        /// Keys leading to the value.
        at: Vec<String>,
        /// The JSON type found.
        found: &'static str,
    },
    /// A key is not a valid path element.
    #[error("fieldsV1{}: invalid path element {key:?}: {reason}", render_at(.at))]
    BadPathElement {
        /// Keys leading to the object holding the key.
        at: Vec<String>,
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    #[cfg(test)]
    /// The text is not JSON.
    #[error("fieldsV1 is not JSON: {0}")]
    NotJson(String),
}

fn render_at(at: &[String]) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!(" at {}", at.join(" / "))
    }
}

/// The serialized form of a path element (`f:`, `k:`, `v:`, `i:`), as SMD writes it.
pub fn serialize_path_element(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(fields) => {
            let mut out = String::from("k:{");
            for (i, (name, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value::write_go_string(&mut out, name, false);
                out.push(':');
                out.push_str(&value::to_go_json(v));
            }
            out.push('}');
            out
        }
        PathElement::Value(v) => format!("v:{}", value::to_go_json(v)),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

/// Parses a serialized path element. `Ok(None)`: an unknown element type, which SMD skips.
///
/// # Errors
/// A key shorter than two characters, without `:` second, or with a `k:`/`v:` that is not
/// JSON (of an object, for `k:`), or an `i:` that is not an integer.
pub fn parse_path_element(s: &str) -> Result<Option<PathElement>, String> {
    let b = s.as_bytes();
    if b.len() < 2 {
        return Err("key must be 2 characters long".to_owned());
    }
    if b[1] != b':' {
        return Err(format!("missing colon: {s}"));
    }
    let rest = &s[2..];
    match b[0] {
        b'f' => Ok(Some(PathElement::Field(rest.to_owned()))),
        b'v' => serde_json::from_str::<Value>(rest).map(|v| Some(PathElement::Value(v))).map_err(|e| e.to_string()),
        b'k' => match serde_json::from_str::<Value>(rest).map_err(|e| e.to_string())? {
            Value::Object(m) => Ok(Some(PathElement::key(m.into_iter().collect()))),
            _ => Err("a key must be a JSON object".to_owned()),
        },
        b'i' => rest.parse::<i64>().map(|i| Some(PathElement::Index(i))).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

impl Set {
    #[cfg(test)]
    /// The `FieldsV1` JSON text, byte for byte as SMD writes it (elements in SMD order).
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::from("{");
        self.write_contents(false, &mut out);
        out.push('}');
        out
    }

    #[cfg(test)]
    fn write_contents(&self, include_self: bool, out: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
        };
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            sep(out);
            out.push_str("\".\":{}");
        }
        // Members and children merged in element order; a node in both is written once.
        let mut keys: Vec<&PathElement> = self.members.iter().chain(self.children.keys()).collect();
        keys.sort();
        keys.dedup();
        for pe in keys {
            sep(out);
            value::write_go_string(out, &serialize_path_element(pe), false);
            out.push(':');
            match self.children.get(pe) {
                None => out.push_str("{}"),
                Some(child) => {
                    out.push('{');
                    child.write_contents(self.members.contains(pe), out);
                    out.push('}');
                }
            }
        }
    }

    /// The `FieldsV1` value (as [`Set::to_fields_v1_string`], parsed: key order is then the
    /// JSON map's).
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        let mut keys: Vec<&PathElement> = self.members.iter().chain(self.children.keys()).collect();
        keys.sort();
        keys.dedup();
        for pe in keys {
            let v = match self.children.get(pe) {
                None => Value::Object(Map::new()),
                Some(child) => {
                    let mut inner = match child.to_fields_v1() {
                        Value::Object(inner) => inner,
                        _ => Map::new(),
                    };
                    if self.members.contains(pe) {
                        inner.insert(".".to_owned(), Value::Object(Map::new()));
                    }
                    Value::Object(inner)
                }
            };
            m.insert(serialize_path_element(pe), v);
        }
        Value::Object(m)
    }

    /// Decodes a `FieldsV1` value as SMD does: `null` or `{}` below a key is a leaf, `"."`
    /// marks the node itself a member, keys of unknown element types are skipped.
    ///
    /// # Errors
    /// [`FieldsV1Error`] naming the offending key path; never panics.
    pub fn from_fields_v1(v: &Value) -> Result<Set, FieldsV1Error> {
        match v {
            Value::Null => Ok(Set::new()),
            Value::Object(m) => Ok(decode_object(m, &mut Vec::new())?.0),
            other => Err(FieldsV1Error::NotAnObject { at: Vec::new(), found: json_type(other) }),
        }
    }

    #[cfg(test)]
    /// [`Set::from_fields_v1`] of JSON text.
    ///
    /// # Errors
    /// [`FieldsV1Error::NotJson`], or any error of [`Set::from_fields_v1`].
    pub fn from_fields_v1_str(s: &str) -> Result<Set, FieldsV1Error> {
        let v: Value = serde_json::from_str(s).map_err(|e| FieldsV1Error::NotJson(e.to_string()))?;
        Set::from_fields_v1(&v)
    }
}

/// Decodes the object below some key: its set of descendants and whether the node itself is
/// a member (it is when it has `"."` or no descendants at all).
fn decode_object(m: &Map<String, Value>, at: &mut Vec<String>) -> Result<(Set, bool), FieldsV1Error> {
    let mut set = Set::new();
    let mut is_member = false;
    for (key, v) in m {
        if key == "." {
            is_member = true;
            continue;
        }
        let pe = match parse_path_element(key) {
            Ok(Some(pe)) => pe,
            Ok(None) => continue,
            Err(reason) => return Err(FieldsV1Error::BadPathElement { at: at.clone(), key: key.clone(), reason }),
        };
        at.push(key.clone());
        let (grandchildren, child_is_member) = match v {
            Value::Null => (Set::new(), true),
            Value::Object(inner) => decode_object(inner, at)?,
            other => return Err(FieldsV1Error::NotAnObject { at: at.clone(), found: json_type(other) }),
        };
        at.pop();
        if child_is_member {
            set.members.insert(pe.clone());
        }
        if !grandchildren.is_empty() {
            let merged = match set.children.remove(&pe) {
                Some(existing) => existing.union(&grandchildren),
                None => grandchildren,
            };
            set.children.insert(pe, merged);
        }
    }
    let childless = set.is_empty();
    Ok((set, is_member || childless))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managedfields::fieldpath::Path;
    use serde_json::json;

    const EXAMPLE: &str = r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{}}}}}"#;

    #[test]
    fn managedfields_fieldsv1_round_trip_is_byte_exact() {
        let set = Set::from_fields_v1_str(EXAMPLE).expect("decodes");
        assert!(set.has(&Path::fields(&["metadata", "labels"]).0));
        assert!(set.has(&Path::fields(&["metadata", "labels", "app"]).0));
        assert!(!set.has(&Path::fields(&["metadata"]).0));
        let web = Path::fields(&["spec", "containers"]).child(PathElement::key(vec![("name".into(), json!("web"))]));
        assert!(set.has(&web.0));
        assert!(set.has(&web.child(PathElement::field("image")).0));
        assert_eq!(set.to_fields_v1_string(), EXAMPLE);
        assert_eq!(Set::from_fields_v1(&set.to_fields_v1()).expect("decodes"), set);
    }

    #[test]
    fn managedfields_fieldsv1_element_kinds_and_order() {
        let ports = Path::fields(&["ports"]);
        let mut set = Set::new();
        set.insert(&ports.child(PathElement::Index(10)).0);
        set.insert(&ports.child(PathElement::Index(2)).0);
        set.insert(&ports.child(PathElement::Value(json!("x"))).0);
        set.insert(
            &ports
                .child(PathElement::key(vec![("protocol".into(), json!("TCP")), ("containerPort".into(), json!(80))]))
                .0,
        );
        set.insert(&ports.child(PathElement::field("a")).0);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:ports":{"f:a":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{},"v:\"x\"":{},"i:2":{},"i:10":{}}}"#
        );
        assert_eq!(Set::from_fields_v1_str(&set.to_fields_v1_string()).expect("decodes"), set);
        assert_eq!(Set::new().to_fields_v1_string(), "{}");
    }

    #[test]
    fn managedfields_fieldsv1_malformed_is_a_typed_error() {
        let not_object = Set::from_fields_v1(&json!({"f:spec": {"f:replicas": 3}}));
        assert_eq!(
            not_object,
            Err(FieldsV1Error::NotAnObject { at: vec!["f:spec".into(), "f:replicas".into()], found: "number" })
        );
        assert!(matches!(Set::from_fields_v1(&json!([])), Err(FieldsV1Error::NotAnObject { .. })));
        for bad in ["f", "fx", "k:{", "k:[1]", "i:x", "v:"] {
            let err = Set::from_fields_v1(&json!({ bad: {} })).expect_err(bad);
            assert!(matches!(err, FieldsV1Error::BadPathElement { ref key, .. } if key == bad), "{bad}: {err}");
        }
        assert!(matches!(Set::from_fields_v1_str("{"), Err(FieldsV1Error::NotJson(_))));
        // Unknown element types are skipped, as SMD does.
        assert_eq!(Set::from_fields_v1(&json!({"x:y": {}})), Ok(Set::new()));
    }
}
