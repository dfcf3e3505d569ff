//! `additionalPrinterColumns` as `meta.k8s.io/v1` Table columns and cells
//! (apiextensions-apiserver `pkg/registry/customresource/tableconvertor`, `apiserver/helpers.go`):
//! a `Name` column first, then each column's JSONPath value typed as the column says; a
//! version without columns gets `Age`. A missing or mistyped value is a `null` cell (kubectl
//! shows `<none>`); a `date` is shown as an age (`5m`, `3h`, `2d`).

use serde_json::{json, Value};

use super::duration;
use super::jsonpath::JsonPath;
use crate::clock;
use crate::gofmt;

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrinterColumn {
    /// `name` (the header).
    pub name: String,
    /// `type`: integer, number, boolean, string or date.
    pub type_: String,
    /// `format`.
    pub format: String,
    /// `description`.
    pub description: String,
    /// `priority` (0: shown by default; more: `-o wide`).
    pub priority: i64,
    /// `jsonPath`.
    pub json_path: String,
}

impl PrinterColumn {
    /// Reads a column from its v1 JSON.
    pub fn from_value(v: &Value) -> PrinterColumn {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        PrinterColumn {
            name: s("name"),
            type_: s("type"),
            format: s("format"),
            description: s("description"),
            priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
            json_path: s("jsonPath"),
        }
    }
}

/// The columns a version is served with: its own, or `Age` when it has none.
pub fn serve_default_columns(columns: &[PrinterColumn]) -> Vec<PrinterColumn> {
    if !columns.is_empty() {
        return columns.to_vec();
    }
    vec![PrinterColumn {
        name: "Age".to_owned(),
        type_: "date".to_owned(),
        description: CREATION_TIMESTAMP_DESCRIPTION.to_owned(),
        json_path: ".metadata.creationTimestamp".to_owned(),
        ..PrinterColumn::default()
    }]
}

/// Turns custom resources into Table column definitions and row cells.
#[derive(Clone, Debug)]
pub struct TableConvertor {
    columns: Vec<(PrinterColumn, JsonPath)>,
}

impl TableConvertor {
    /// A convertor for a version's columns (defaulted with [`serve_default_columns`]);
    /// fails as kube does on a path it cannot parse (`unrecognized column definition ".x["`).
    pub fn new(columns: &[PrinterColumn]) -> Result<TableConvertor, String> {
        let columns = serve_default_columns(columns)
            .into_iter()
            .map(|c| match JsonPath::parse(&c.json_path) {
                Ok(path) => Ok((c, path)),
                Err(_) => Err(format!("unrecognized column definition {:?}", c.json_path)),
            })
            .collect::<Result<_, _>>()?;
        Ok(TableConvertor { columns })
    }

    /// `columnDefinitions`: `Name`, then the columns.
    pub fn column_definitions(&self) -> Vec<Value> {
        let mut defs = vec![json!({
            "name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0,
        })];
        for (c, _) in &self.columns {
            let description = if c.description.is_empty() {
                format!("Custom resource definition column (in JSONPath format): {}", c.json_path)
            } else {
                c.description.clone()
            };
            defs.push(json!({
                "name": c.name, "type": c.type_, "format": c.format, "description": description, "priority": c.priority,
            }));
        }
        defs
    }

    /// A row's `cells` for `object`, with dates aged relative to `now` (epoch seconds).
    pub fn cells(&self, object: &Value, now: i64) -> Vec<Value> {
        let name = object.pointer("/metadata/name").cloned().unwrap_or(Value::String(String::new()));
        let mut cells = vec![name];
        for (c, path) in &self.columns {
            let cell = match path.find(object).first() {
                None | Some(Value::Null) => Value::Null,
                Some(value) if c.type_ == "string" => Value::String(print(value)),
                Some(value) => typed_cell(&c.type_, value, now),
            };
            cells.push(cell);
        }
        cells
    }
}

/// client-go JSONPath's printing of one value: strings raw, maps and lists as JSON, other
/// scalars as Go's `%v`.
fn print(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(_) | Value::Array(_) => value.to_string(),
        other => gofmt::value(other),
    }
}

fn typed_cell(ty: &str, value: &Value, now: i64) -> Value {
    match (ty, value) {
        ("integer", Value::Number(n)) => {
            n.as_i64().map_or_else(|| json!(n.as_f64().unwrap_or(0.0) as i64), |i| json!(i))
        }
        ("number", Value::Number(n)) => json!(n.as_f64().unwrap_or(0.0)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => json!(age(s, now)),
        _ => Value::Null,
    }
}

/// `ConvertToHumanReadableDateType` of an RFC 3339 timestamp.
fn age(timestamp: &str, now: i64) -> String {
    if timestamp.is_empty() || timestamp == "null" {
        return "<unknown>".to_owned();
    }
    match parse_rfc3339(timestamp) {
        Some(t) => duration::human(now - t),
        None => "<invalid>".to_owned(),
    }
}

/// `2006-01-02T15:04:05[.999]Z07:00` to epoch seconds (as Go's `time.RFC3339` parse).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || !super::formats::is_date(s.get(..10)?) {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) && &zone[3..4] == ":" => {
            let h: i64 = zone[1..3].parse().ok()?;
            let m: i64 = zone[4..6].parse().ok()?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let (h, m, sec): (i64, i64, i64) =
        (s.get(11..13)?.parse().ok()?, s.get(14..16)?.parse().ok()?, s.get(17..19)?.parse().ok()?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(clock::parse_rfc3339(s)? - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: &str, path: &str) -> PrinterColumn {
        PrinterColumn { name: name.into(), type_: ty.into(), json_path: path.into(), ..PrinterColumn::default() }
    }

    #[test]
    fn columns_of_each_type_make_cells() {
        let now = clock::parse_rfc3339("2026-11-27T16:27:00Z").unwrap_or(0);
        let columns = vec![
            column("Replicas", "integer", ".spec.replicas"),
            column("Ratio", "number", ".spec.ratio"),
            column("Paused", "boolean", ".spec.paused"),
            column("Ready", "string", ".status.conditions[0].type"),
            PrinterColumn { priority: 1, ..column("Created", "date", ".metadata.creationTimestamp") },
            column("Missing", "string", ".status.nothing"),
            column("Mistyped", "integer", ".spec.paused"),
            column("Selector", "string", ".spec.selector"),
        ];
        let convertor = TableConvertor::new(&columns).unwrap_or_else(|e| panic!("{e}"));
        let object = json!({
            "metadata": {"name": "a", "creationTimestamp": "2026-11-27T13:27:00Z"},
            "spec": {"replicas": 3, "ratio": 1, "paused": true, "selector": {"app": "x"}},
            "status": {"conditions": [{"type": "Ready"}]},
        });
        assert_eq!(
            convertor.cells(&object, now),
            vec![
                json!("a"),
                json!(3),
                json!(1.0),
                json!(true),
                json!("Ready"),
                json!("3h"),
                Value::Null,
                Value::Null,
                json!("{\"app\":\"x\"}")
            ]
        );
        let defs = convertor.column_definitions();
        assert_eq!(defs[0]["name"], "Name");
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[1]["description"], "Custom resource definition column (in JSONPath format): .spec.replicas");
        assert_eq!(defs[5]["priority"], 1);
        assert_eq!(defs[5]["type"], "date");
    }

    #[test]
    fn no_columns_means_age() {
        let convertor = TableConvertor::new(&[]).unwrap_or_else(|e| panic!("{e}"));
        let defs = convertor.column_definitions();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[1]["name"], "Age");
        assert_eq!(defs[1]["type"], "date");
        let now = clock::parse_rfc3339("2026-11-27T16:27:00Z").unwrap_or(0);
        let object = json!({"metadata": {"name": "a", "creationTimestamp": "2026-11-25T12:27:00+00:00"}});
        assert_eq!(convertor.cells(&object, now), vec![json!("a"), json!("2d4h")]);
        let bad = json!({"metadata": {"name": "a", "creationTimestamp": "yesterday"}});
        assert_eq!(convertor.cells(&bad, now)[1], json!("<invalid>"));
        assert!(TableConvertor::new(&[column("X", "string", ".a[")]).is_err());
    }
}
