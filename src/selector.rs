//! Label and field selectors (Kubernetes `labels.Parse` / `fields.ParseSelector` syntax).
//!
//! * Label selectors: comma-separated requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`,
//!   `k in (a,b)`, `k notin (a,b)`, `k>3`, `k<3`. Keys and values are validated like
//!   Kubernetes label keys/values.
//! * Field selectors: comma-separated `path=v`, `path==v`, `path!=v`; `\` escapes `,`, `=`,
//!   `!` and `\` in values. A missing field compares as `""`.
//!
//! Parse errors are [`Error::BadRequest`] naming the selector and the problem.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::object::Object;

/// The operator of one label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelOp {
    /// `k=v`, `k==v`, `k in (..)`: present with a value in the set.
    In(Vec<String>),
    /// `k!=v`, `k notin (..)`: absent, or a value not in the set.
    NotIn(Vec<String>),
    /// `k`: present.
    Exists,
    /// `!k`: absent.
    DoesNotExist,
    /// `k>n`: present with an integer value above n.
    GreaterThan(i64),
    /// `k<n`: present with an integer value below n.
    LessThan(i64),
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// What the key's value must satisfy.
    pub op: LabelOp,
}

impl LabelRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    /// True when a label with this key and `value` (None = absent) satisfies the requirement.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match &self.op {
            LabelOp::In(set) => value.is_some_and(|v| set.iter().any(|s| s == v)),
            LabelOp::NotIn(set) => value.is_none_or(|v| !set.iter().any(|s| s == v)),
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
            LabelOp::LessThan(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// All requirements must hold.
    pub requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// True when the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Like [`LabelSelector::matches`], with the labels given by a lookup (key → value).
    pub fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches_value(label(&r.key)))
    }

    /// The `(key, value)` pairs every match must carry (`k=v`, `k==v`, `k in (v)`): what an
    /// equality index can answer.
    pub fn equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.requirements.iter().filter_map(|r| match &r.op {
            LabelOp::In(values) if values.len() == 1 => Some((r.key.as_str(), values[0].as_str())),
            _ => None,
        })
    }

    /// Parses Kubernetes label-selector syntax. Errors: [`Error::BadRequest`].
    pub fn parse(input: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for part in split_top_level(input) {
            let part = part.trim();
            if part.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(bad_label(input, "empty requirement"));
            }
            requirements.push(parse_requirement(input, part)?);
        }
        Ok(LabelSelector { requirements })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match &r.op {
                LabelOp::In(set) if set.len() == 1 => format!("{}={}", r.key, set[0]),
                LabelOp::In(set) => format!("{} in ({})", r.key, set.join(",")),
                LabelOp::NotIn(set) if set.len() == 1 => format!("{}!={}", r.key, set[0]),
                LabelOp::NotIn(set) => format!("{} notin ({})", r.key, set.join(",")),
                LabelOp::Exists => r.key.clone(),
                LabelOp::DoesNotExist => format!("!{}", r.key),
                LabelOp::GreaterThan(n) => format!("{}>{n}", r.key),
                LabelOp::LessThan(n) => format!("{}<{n}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn bad_label(selector: &str, why: &str) -> Error {
    Error::bad_request(format!("unable to parse requirement: invalid label selector {selector:?}: {why}"))
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn parse_requirement(selector: &str, part: &str) -> Result<LabelRequirement> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        validate_label_key(selector, key)?;
        return Ok(LabelRequirement { key: key.to_owned(), op: LabelOp::DoesNotExist });
    }
    for (token, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(token) {
            let (key, value) = (key.trim(), value.trim());
            validate_label_key(selector, key)?;
            validate_label_value(selector, value)?;
            let set = vec![value.to_owned()];
            let op = if negate { LabelOp::NotIn(set) } else { LabelOp::In(set) };
            return Ok(LabelRequirement { key: key.to_owned(), op });
        }
    }
    for (token, greater) in [(">", true), ("<", false)] {
        if let Some((key, value)) = part.split_once(token) {
            let key = key.trim();
            validate_label_key(selector, key)?;
            let n: i64 =
                value.trim().parse().map_err(|_| bad_label(selector, &format!("{value:?} is not an integer")))?;
            let op = if greater { LabelOp::GreaterThan(n) } else { LabelOp::LessThan(n) };
            return Ok(LabelRequirement { key: key.to_owned(), op });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0];
        let rest = words[1].trim_start();
        let (negate, set) = if let Some(set) = rest.strip_prefix("notin") {
            (true, set)
        } else if let Some(set) = rest.strip_prefix("in") {
            (false, set)
        } else {
            return Err(bad_label(selector, &format!("unknown operator in {part:?}")));
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| bad_label(selector, "expected a parenthesised set of values"))?;
        validate_label_key(selector, key)?;
        let mut values = Vec::new();
        for value in inner.split(',') {
            let value = value.trim();
            validate_label_value(selector, value)?;
            values.push(value.to_owned());
        }
        let op = if negate { LabelOp::NotIn(values) } else { LabelOp::In(values) };
        return Ok(LabelRequirement { key: key.to_owned(), op });
    }
    validate_label_key(selector, part)?;
    Ok(LabelRequirement { key: part.to_owned(), op: LabelOp::Exists })
}

fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn validate_label_key(selector: &str, key: &str) -> Result<()> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(crate::names::is_dns1123_subdomain);
    if prefix_ok && is_name_part(name) {
        Ok(())
    } else {
        Err(bad_label(selector, &format!("invalid label key {key:?}: must be a qualified name")))
    }
}

fn validate_label_value(selector: &str, value: &str) -> Result<()> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(bad_label(selector, &format!("invalid label value {value:?}")))
    }
}

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path, e.g. `metadata.name`.
    pub field: String,
    /// The value compared against.
    pub value: String,
    /// True for `!=`.
    pub negate: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// All requirements must hold.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector `field=value`.
    pub fn equals(field: &str, value: &str) -> Self {
        FieldSelector {
            requirements: vec![FieldRequirement { field: field.to_owned(), value: value.to_owned(), negate: false }],
        }
    }

    /// True when the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value `field` must equal exactly, if the selector requires one
    /// (`MatchesSingle` / `RequiresExactMatch`).
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|r| !r.negate && r.field == field).map(|r| r.value.as_str())
    }

    /// True when every requirement holds for `object`.
    pub fn matches(&self, object: &Object) -> bool {
        self.requirements.iter().all(|r| {
            let actual = object.field_value(&r.field).unwrap_or_default();
            (actual == r.value) != r.negate
        })
    }

    /// Parses Kubernetes field-selector syntax. Errors: [`Error::BadRequest`].
    pub fn parse(input: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for part in split_unescaped(input, ',') {
            let (field, value, negate) = split_field_requirement(&part).ok_or_else(|| {
                Error::bad_request(format!("invalid field selector {input:?}: {part:?} is not of the form field=value"))
            })?;
            let field = field.trim();
            if field.is_empty()
                || !field.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
            {
                return Err(Error::bad_request(format!("invalid field selector {input:?}: invalid field {field:?}")));
            }
            requirements.push(FieldRequirement { field: field.to_owned(), value: unescape(&value), negate });
        }
        Ok(FieldSelector { requirements })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| format!("{}{}{}", r.field, if r.negate { "!=" } else { "=" }, r.value))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on `sep` not preceded by a backslash; keeps escapes for [`unescape`].
fn split_unescaped(input: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            if let Some(last) = parts.last_mut() {
                last.push('\\');
                last.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// Finds the first unescaped `!=`, `==` or `=` and splits there.
fn split_field_requirement(part: &str) -> Option<(String, String, bool)> {
    let chars: Vec<char> = part.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '!' if chars.get(i + 1) == Some(&'=') => {
                return Some((chars[..i].iter().collect(), chars[i + 2..].iter().collect(), true));
            }
            '=' => {
                let skip = if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                return Some((chars[..i].iter().collect(), chars[i + skip..].iter().collect(), false));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        for (selector, expected) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("missing notin (a)", true),
            ("app,tier=front", true),
            ("!app", false),
            ("!missing", true),
            ("n>4", true),
            ("n<4", false),
            ("example.com/key=x", false),
        ] {
            let parsed = LabelSelector::parse(selector).expect(selector);
            assert_eq!(parsed.matches(&l), expected, "{selector}");
        }
    }

    #[test]
    fn bad_label_selectors_are_bad_requests() {
        for selector in ["app in web", "a b c", "=x", "app=-bad-", "app in (a", "n>x"] {
            let err = LabelSelector::parse(selector).expect_err(selector);
            assert_eq!(err.code(), 400, "{selector}");
        }
    }

    #[test]
    fn field_selectors_parse_and_match() {
        let object = Object::new("v1", "Pod", "ns", "a,b").with_field("spec", serde_json::json!({"nodeName": "n1"}));
        let s = FieldSelector::parse("metadata.name=a\\,b,spec.nodeName!=n2").expect("parse");
        assert!(s.matches(&object));
        assert_eq!(s.exact_match("metadata.name"), Some("a,b"));
        assert!(!FieldSelector::parse("spec.nodeName==n2").expect("parse").matches(&object));
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("=x").is_err());
    }
}
