//! JSON values as structured-merge-diff orders, compares and prints them (SMD `value`
//! package): the order of set items and keys, equality (`1 == 1.0`), the `%v` text of conflict
//! paths and the JSON text inside `k:`/`v:` path elements (jsoniter, standard-library
//! compatible: HTML characters escaped).

use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::fmt::Write;

/// SMD's total order of values (`value.Compare`): floats, then integers (compared
/// numerically with floats), strings, booleans, lists, maps, null.
pub fn compare(lhs: &Value, rhs: &Value) -> Ordering {
    match (lhs, rhs) {
        (Value::Number(l), Value::Number(r)) => compare_numbers(l, r),
        (Value::Number(_), _) => Ordering::Less,
        (_, Value::Number(_)) => Ordering::Greater,
        (Value::String(l), Value::String(r)) => l.cmp(r),
        (Value::String(_), _) => Ordering::Less,
        (_, Value::String(_)) => Ordering::Greater,
        (Value::Bool(l), Value::Bool(r)) => l.cmp(r),
        (Value::Bool(_), _) => Ordering::Less,
        (_, Value::Bool(_)) => Ordering::Greater,
        (Value::Array(l), Value::Array(r)) => compare_lists(l, r),
        (Value::Array(_), _) => Ordering::Less,
        (_, Value::Array(_)) => Ordering::Greater,
        (Value::Object(l), Value::Object(r)) => compare_maps(l, r),
        (Value::Object(_), _) => Ordering::Less,
        (_, Value::Object(_)) => Ordering::Greater,
        (Value::Null, Value::Null) => Ordering::Equal,
    }
}

/// SMD equality (`value.Equals`): structural, with integers equal to equal floats.
pub fn equals(lhs: &Value, rhs: &Value) -> bool {
    compare(lhs, rhs) == Ordering::Equal
}

fn is_float(n: &Number) -> bool {
    !n.is_i64() && !n.is_u64()
}

fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(0.0)
}

fn as_i128(n: &Number) -> i128 {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).unwrap_or(0)
}

fn compare_numbers(l: &Number, r: &Number) -> Ordering {
    if is_float(l) || is_float(r) {
        as_f64(l).partial_cmp(&as_f64(r)).unwrap_or(Ordering::Equal)
    } else {
        as_i128(l).cmp(&as_i128(r))
    }
}

fn compare_lists(l: &[Value], r: &[Value]) -> Ordering {
    for (a, b) in l.iter().zip(r) {
        let c = compare(a, b);
        if c != Ordering::Equal {
            return c;
        }
    }
    l.len().cmp(&r.len())
}

/// Maps zipped in key order: the first differing key decides (a key only the left has sorts
/// it first), then the first differing value.
fn compare_maps(l: &Map<String, Value>, r: &Map<String, Value>) -> Ordering {
    let mut li = l.iter().peekable();
    let mut ri = r.iter().peekable();
    loop {
        match (li.peek(), ri.peek()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((lk, lv)), Some((rk, rv))) => match lk.cmp(rk) {
                Ordering::Less => return Ordering::Less,
                Ordering::Greater => return Ordering::Greater,
                Ordering::Equal => {
                    let c = compare(lv, rv);
                    if c != Ordering::Equal {
                        return c;
                    }
                    li.next();
                    ri.next();
                }
            },
        }
    }
}

/// The text SMD prints for a value in a path (`value.ToString`): strings quoted as Go's `%q`,
/// numbers and booleans bare, `null`, lists `[a,b]`.
pub fn display(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => crate::gofmt::quote(s),
        Value::Array(items) => format!("[{}]", items.iter().map(display).collect::<Vec<_>>().join(",")),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={}", display(v))).collect::<Vec<_>>().join(""),
    }
}

/// A number as Go prints a float64 that holds an integer (`1`, not `1.0`); other numbers as
/// serde_json prints them.
fn go_number(n: &Number) -> String {
    if is_float(n) {
        let f = as_f64(n);
        if f.fract() == 0.0 && f.abs() < 1e21 {
            return format!("{f:.0}");
        }
    }
    n.to_string()
}

/// The JSON text jsoniter (`ConfigCompatibleWithStandardLibrary`) writes for a value, as it
/// appears inside `k:{...}` and `v:...` path elements: map keys sorted, strings with `<`, `>`,
/// `&`, U+2028 and U+2029 escaped.
pub fn to_go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(&mut out, v);
    out
}

fn write_go_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => write_go_string(out, s, true),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(out, k, true);
                out.push(':');
                write_go_json(out, item);
            }
            out.push('}');
        }
    }
}

/// A JSON string as jsoniter writes it: `\"`, `\\`, `\n`, `\r`, `\t`, other control
/// characters `\u00XX`; with `html`, also `<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`.
pub fn write_go_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn managedfields_value_order_and_equality() {
        assert!(equals(&json!(1), &json!(1.0)));
        assert_eq!(compare(&json!(1.5), &json!(2)), Ordering::Less);
        assert_eq!(compare(&json!(3), &json!("a")), Ordering::Less);
        assert_eq!(compare(&json!("a"), &json!(true)), Ordering::Less);
        assert_eq!(compare(&json!(null), &json!({})), Ordering::Greater);
        assert!(!equals(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn managedfields_value_text() {
        assert_eq!(display(&json!("web")), "\"web\"");
        assert_eq!(display(&json!(80)), "80");
        assert_eq!(to_go_json(&json!({"name": "a<b", "port": 8.0})), r#"{"name":"a\u003cb","port":8}"#);
    }
}
