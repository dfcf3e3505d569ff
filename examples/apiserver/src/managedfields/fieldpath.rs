//! Field paths and sets of them (SMD `fieldpath`): the vocabulary of field ownership.
//!
//! A [`Path`] is a list of [`PathElement`]s from the object's root; a [`Set`] is a tree of
//! paths where a node can be a member itself (owned as a whole: a leaf, an atomic value, a list
//! item, a map some write created) and/or have member descendants.

use super::value;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One step of a path. Ordered as SMD orders them: field names, then keys, then values, then
/// indexes.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of a map: `f:<name>`, printed `.name`.
    Field(String),
    /// An item of a map list by its key fields: `k:{"name":"web"}`, printed `[name="web"]`.
    /// Invariant: sorted by field name (use [`PathElement::key`]).
    Key(Vec<(String, Value)>),
    /// An item of a set by its value: `v:"x"`, printed `[="x"]`.
    Value(Value),
    /// An item of a list by position: `i:3`, printed `[3]`.
    Index(i64),
}

impl PathElement {
    /// A field-name element.
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    /// A key element, its fields sorted by name (stable for equal names, as SMD).
    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| value::compare(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => value::compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    /// As kube prints conflicts: `.name`, `[name="web",port=80]`, `[="x"]`, `[3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", value::display(v))).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value::display(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object's root.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of field names (`Path::fields(&["spec", "replicas"])`).
    pub fn fields(names: &[&str]) -> Path {
        Path(names.iter().map(|n| PathElement::field(n)).collect())
    }

    #[cfg(test)]
    /// This path with `pe` appended.
    pub fn child(&self, pe: PathElement) -> Path {
        let mut p = self.0.clone();
        p.push(pe);
        Path(p)
    }
}

impl fmt::Display for Path {
    /// As kube prints conflicts: `.spec.containers[name="web"].image`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

/// A set of paths, as a tree. Invariant: no child node holds an empty set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    /// Elements under this node that are members themselves.
    pub(crate) members: BTreeSet<PathElement>,
    /// Elements under this node with member descendants.
    pub(crate) children: BTreeMap<PathElement, Set>,
}

impl Set {
    /// The empty set.
    pub fn new() -> Set {
        Set::default()
    }

    /// A set of these paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Set {
        let mut s = Set::new();
        for p in paths {
            s.insert(&p.0);
        }
        s
    }

    /// Adds the path (the empty path adds nothing).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    #[cfg(test)]
    /// Whether the path is a member (not merely a prefix of members).
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// No member anywhere.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    #[cfg(test)]
    /// Number of members, all levels.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(Set::len).sum::<usize>()
    }

    /// Members in either set.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Members in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                let o = other.children.get(pe)?;
                let i = c.intersection(o);
                (!i.is_empty()).then(|| (pe.clone(), i))
            })
            .collect();
        Set { members, children }
    }

    /// Members of `self` that are not members of `other` (a member of `other` does not
    /// remove the descendants of that node: see [`Set::recursive_difference`]).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| match other.children.get(pe) {
                None => Some((pe.clone(), c.clone())),
                Some(o) => {
                    let d = c.difference(o);
                    (!d.is_empty()).then(|| (pe.clone(), d))
                }
            })
            .collect();
        Set { members, children }
    }

    #[cfg(test)]
    /// Like [`Set::difference`], and a member of `other` also removes every descendant.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .filter_map(|(pe, c)| match other.children.get(pe) {
                None => Some((pe.clone(), c.clone())),
                Some(o) => {
                    let d = c.recursive_difference(o);
                    (!d.is_empty()).then(|| (pe.clone(), d))
                }
            })
            .collect();
        Set { members, children }
    }

    /// Every member path, in SMD's order (a node's members, then its children's).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(Path(p));
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn managedfields_path_rendering() {
        let p = Path::fields(&["spec", "containers"])
            .child(PathElement::key(vec![("name".into(), json!("web"))]))
            .child(PathElement::field("image"));
        assert_eq!(p.to_string(), r#".spec.containers[name="web"].image"#);
        let ports = PathElement::key(vec![("protocol".into(), json!("TCP")), ("containerPort".into(), json!(80))]);
        assert_eq!(ports.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
        assert_eq!(PathElement::Value(json!("x")).to_string(), r#"[="x"]"#);
        assert_eq!(PathElement::Index(3).to_string(), "[3]");
    }

    #[test]
    fn managedfields_set_operations() {
        let a = Set::from_paths(&[Path::fields(&["a", "b"]), Path::fields(&["a"]), Path::fields(&["c"])]);
        let b = Set::from_paths(&[Path::fields(&["a"])]);
        assert!(a.difference(&b).has(&Path::fields(&["a", "b"]).0));
        assert!(!a.difference(&b).has(&Path::fields(&["a"]).0));
        assert!(!a.recursive_difference(&b).has(&Path::fields(&["a", "b"]).0));
        assert_eq!(a.intersection(&b).len(), 1);
        assert_eq!(a.union(&b).len(), 3);
        assert_eq!(a.paths().iter().map(|p| p.to_string()).collect::<Vec<_>>(), vec![".a", ".c", ".a.b"]);
    }
}
