//! The JSONPath subset of client-go `util/jsonpath` that printer columns use, with missing
//! keys allowed: `.a.b`, `.a['b.c']`, `.a.b\.c`, `[0]`, `[-1]`, `[*]`, `[1:3]`, `..name`,
//! `.*` and filters `[?(@.type=="Ready")]` (`==`, `!=`, `<`, `<=`, `>`, `>=`, or bare
//! existence).
//!
//! Hand-written rather than a JSONPath crate: those follow RFC 9535 (`$` root, shorthand
//! names without `-` or `/`, no `\.` escapes), which is not the syntax CRDs are written in.

use serde_json::Value;

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    Recursive(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Box<Filter>),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Vec<Step>,
    op: Option<(String, Literal)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Path(Vec<Step>),
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses a column path (`.spec.replicas`); `{...}` braces are optional.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        let inner = path.trim();
        let inner = inner.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(inner).trim();
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let chars: Vec<char> = inner.chars().collect();
        let (steps, rest) = parse_steps(&chars, 0, false)?;
        if rest != chars.len() {
            return Err(format!("unrecognized path {path:?}"));
        }
        Ok(JsonPath { steps })
    }

    /// All values the path finds in `data`, in order (empty when a key is missing).
    pub fn find<'a>(&self, data: &'a Value) -> Vec<&'a Value> {
        eval(&self.steps, data)
    }
}

fn is_name_char(c: char) -> bool {
    !matches!(
        c,
        '.' | '[' | ']' | '(' | ')' | '=' | '!' | '<' | '>' | ' ' | '\'' | '"' | ',' | '{' | '}' | '@' | '?' | '*'
    )
}

/// Parses steps from `i`; in a filter (`nested`) stops at an operator or `)`.
fn parse_steps(c: &[char], mut i: usize, nested: bool) -> Result<(Vec<Step>, usize), String> {
    let mut steps = Vec::new();
    while i < c.len() {
        match c[i] {
            '.' if c.get(i + 1) == Some(&'.') => {
                let (name, next) = parse_name(c, i + 2);
                steps.push(Step::Recursive(name));
                i = next;
            }
            '.' if c.get(i + 1) == Some(&'*') => {
                steps.push(Step::Wildcard);
                i += 2;
            }
            '.' => {
                let (name, next) = parse_name(c, i + 1);
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
                i = next;
            }
            '[' => {
                let close = find_close(c, i)?;
                let body: String = c[i + 1..close].iter().collect();
                steps.push(parse_bracket(body.trim())?);
                i = close + 1;
            }
            _ if nested => break,
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok((steps, i))
}

fn parse_name(c: &[char], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while i < c.len() {
        if c[i] == '\\' && i + 1 < c.len() {
            name.push(c[i + 1]);
            i += 2;
        } else if is_name_char(c[i]) {
            name.push(c[i]);
            i += 1;
        } else {
            break;
        }
    }
    (name, i)
}

fn find_close(c: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &ch) in c.iter().enumerate().skip(open) {
        match (quote, ch) {
            (Some(q), ch) if ch == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(ch),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err("unclosed [".to_owned())
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let first = s.chars().next()?;
    (s.len() >= 2 && (first == '\'' || first == '"') && s.ends_with(first)).then(|| s[1..s.len() - 1].to_owned())
}

fn parse_bracket(body: &str) -> Result<Step, String> {
    if body == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(name) = unquote(body) {
        return Ok(Step::Field(name));
    }
    if let Some(filter) = body.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(filter.trim()).map(|f| Step::Filter(Box::new(f)));
    }
    let num = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| format!("invalid array index {s:?}"))
        }
    };
    match body.split_once(':') {
        Some((a, b)) => Ok(Step::Slice(num(a)?, num(b.split(':').next().unwrap_or(""))?)),
        None => num(body)?.map(Step::Index).ok_or_else(|| "empty []".to_owned()),
    }
}

fn parse_filter(f: &str) -> Result<Filter, String> {
    let c: Vec<char> = f.chars().collect();
    if c.first() != Some(&'@') {
        return Err(format!("unsupported filter {f:?}"));
    }
    let (left, i) = parse_steps(&c, 1, true)?;
    let rest: String = c[i..].iter().collect();
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(Filter { left, op: None });
    }
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some(lit) = rest.strip_prefix(op) {
            return Ok(Filter { left, op: Some((op.to_owned(), parse_literal(lit.trim())?)) });
        }
    }
    Err(format!("unsupported filter {f:?}"))
}

fn parse_literal(s: &str) -> Result<Literal, String> {
    if let Some(text) = unquote(s) {
        return Ok(Literal::Str(text));
    }
    match s {
        "true" => return Ok(Literal::Bool(true)),
        "false" => return Ok(Literal::Bool(false)),
        _ => {}
    }
    if let Some(path) = s.strip_prefix('@') {
        let c: Vec<char> = path.chars().collect();
        let (steps, _) = parse_steps(&c, 0, true)?;
        return Ok(Literal::Path(steps));
    }
    s.parse().map(Literal::Num).map_err(|_| format!("invalid literal {s:?}"))
}

fn eval<'a>(steps: &[Step], data: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, v, &mut next);
        }
        current = next;
    }
    current
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => out.extend(v.get(name)),
        Step::Wildcard => match v {
            Value::Object(m) => out.extend(m.values()),
            Value::Array(a) => out.extend(a.iter()),
            _ => {}
        },
        Step::Recursive(name) => recurse(name, v, out),
        Step::Index(i) => {
            if let Value::Array(a) = v {
                let i = if *i < 0 { a.len() as i64 + i } else { *i };
                out.extend(usize::try_from(i).ok().and_then(|i| a.get(i)));
            }
        }
        Step::Slice(start, end) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let clamp = |x: i64| (if x < 0 { len + x } else { x }).clamp(0, len) as usize;
                let (s, e) = (clamp(start.unwrap_or(0)), clamp(end.unwrap_or(len)));
                if s < e {
                    out.extend(a[s..e].iter());
                }
            }
        }
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => Vec::new(),
            };
            out.extend(items.into_iter().filter(|item| matches(f, item)));
        }
    }
}

fn recurse<'a>(name: &str, v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if name.is_empty() {
                out.push(v);
            } else if let Some(found) = m.get(name) {
                out.push(found);
            }
            for child in m.values() {
                recurse(name, child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|child| recurse(name, child, out)),
        _ => {}
    }
}

fn matches(f: &Filter, item: &Value) -> bool {
    let found = eval(&f.left, item);
    let Some((op, lit)) = &f.op else { return !found.is_empty() };
    let Some(left) = found.first() else { return false };
    let right = match lit {
        Literal::Str(s) => Value::String(s.clone()),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Literal::Path(p) => match eval(p, item).first() {
            Some(v) => (*v).clone(),
            None => return false,
        },
    };
    let ordering = match (left, &right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) => (*a == b).then_some(std::cmp::Ordering::Equal),
    };
    match op.as_str() {
        "==" => ordering == Some(std::cmp::Ordering::Equal),
        "!=" => ordering != Some(std::cmp::Ordering::Equal),
        "<" => ordering == Some(std::cmp::Ordering::Less),
        "<=" => matches!(ordering, Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)),
        ">" => ordering == Some(std::cmp::Ordering::Greater),
        ">=" => matches!(ordering, Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_columns_point_at() {
        let obj = json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "web", "tier-x": "a"}},
            "spec": {"replicas": 3, "items": [{"n": 1}, {"n": 2}, {"n": 3}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}
        });
        let find = |p: &str| JsonPath::parse(p).map(|jp| jp.find(&obj).into_iter().cloned().collect::<Vec<_>>());
        assert_eq!(find(".spec.replicas"), Ok(vec![json!(3)]));
        assert_eq!(find(".status.conditions[0].type"), Ok(vec![json!("Ready")]));
        assert_eq!(find(".status.conditions[-1].type"), Ok(vec![json!("Synced")]));
        assert_eq!(find(r#".status.conditions[?(@.type=="Ready")].status"#), Ok(vec![json!("True")]));
        assert_eq!(find(".spec.items[*].n"), Ok(vec![json!(1), json!(2), json!(3)]));
        assert_eq!(find(".spec.items[1:].n"), Ok(vec![json!(2), json!(3)]));
        assert_eq!(find(r".metadata.labels.app\.kubernetes\.io/name"), Ok(vec![json!("web")]));
        assert_eq!(find(".metadata.labels['app.kubernetes.io/name']"), Ok(vec![json!("web")]));
        assert_eq!(find(".metadata.labels.tier-x"), Ok(vec![json!("a")]));
        assert_eq!(find("..n"), Ok(vec![json!(1), json!(2), json!(3)]));
        assert_eq!(find(".spec.missing.deeper"), Ok(vec![]));
        assert_eq!(find("{.spec.items[?(@.n>1)].n}"), Ok(vec![json!(2), json!(3)]));
        assert!(JsonPath::parse(".spec[").is_err());
    }
}
