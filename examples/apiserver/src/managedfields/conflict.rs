//! Apply conflicts and the 409 kube answers with (SMD `merge/conflict.go`, apimachinery
//! `conflict.go`).

use super::entries::{manager_id, Operation};
use super::fieldpath::Path;
use std::collections::BTreeMap;

/// Another manager owns a field the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// Its operation.
    pub operation: Operation,
    /// Its apiVersion (printed for Update managers).
    pub api_version: String,
    /// Its subresource, if any.
    pub subresource: Option<String>,
    /// A time to print (` at <time>`) for Update managers. Conflicts found by
    /// [`super::apply`] carry none: kube's manager identifier has no time, so real kube never
    /// prints one; kube's own tests (conflict_test.go) pass one in.
    pub time: Option<String>,
    /// The contested field.
    pub path: Path,
}

/// One `details.causes` item of the 409.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictCause {
    /// Always `FieldManagerConflict`.
    pub reason: &'static str,
    /// `conflict with "foo" using v1`.
    pub message: String,
    /// The path, `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// `"foo"`, `"foo" with subresource "scale"`, then for Update ` using v1[ at <time>]`.
    pub fn manager_text(&self) -> String {
        let mut s = crate::gofmt::quote(&self.manager);
        if let Some(sub) = self.subresource.as_deref().filter(|s| !s.is_empty()) {
            s.push_str(&format!(" with subresource {}", crate::gofmt::quote(sub)));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
            if let Some(t) = &self.time {
                s.push_str(&format!(" at {t}"));
            }
        }
        s
    }

    fn id(&self) -> String {
        manager_id(&self.manager, self.operation, &self.api_version, self.subresource.as_deref())
    }
}

/// The 409 message: `Apply failed with 1 conflict: conflict with "foo" using v1: .spec.replicas`,
/// or for several, per manager (sorted by identifier) `conflicts with "m":` then `- <path>` lines.
pub fn message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", only.manager_text(), only.path);
    }
    let mut by_manager: BTreeMap<String, (String, Vec<&Path>)> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry(c.id()).or_insert_with(|| (c.manager_text(), Vec::new())).1.push(&c.path);
    }
    let mut lines = Vec::new();
    for (text, paths) in by_manager.values() {
        lines.push(format!("conflicts with {text}:"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// The 409's `details.causes`, one per conflict in order.
pub fn causes(conflicts: &[Conflict]) -> Vec<ConflictCause> {
    conflicts
        .iter()
        .map(|c| ConflictCause {
            reason: "FieldManagerConflict",
            message: format!("conflict with {}", c.manager_text()),
            field: c.path.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(manager: &str, op: Operation, sub: Option<&str>, path: &[&str]) -> Conflict {
        Conflict {
            manager: manager.into(),
            operation: op,
            api_version: "v1".into(),
            subresource: sub.map(Into::into),
            time: (op == Operation::Update).then(|| "2001-02-03T04:05:06Z".to_owned()),
            path: Path::fields(path),
        }
    }

    #[test]
    fn managedfields_conflict_messages_match_kube() {
        let foo = conflict("foo", Operation::Update, None, &["spec", "replicas"]);
        assert_eq!(
            message(std::slice::from_ref(&foo)),
            r#"Apply failed with 1 conflict: conflict with "foo" using v1 at 2001-02-03T04:05:06Z: .spec.replicas"#
        );
        let bar = conflict("bar", Operation::Apply, None, &["metadata", "labels", "app"]);
        let both = [foo.clone(), bar];
        assert_eq!(
            message(&both),
            "Apply failed with 2 conflicts: conflicts with \"bar\":\n- .metadata.labels.app\nconflicts with \"foo\" using v1 at 2001-02-03T04:05:06Z:\n- .spec.replicas"
        );
        let c = causes(&both);
        assert_eq!(c[0].message, r#"conflict with "foo" using v1 at 2001-02-03T04:05:06Z"#);
        assert_eq!(c[0].field, ".spec.replicas");
        assert_eq!(c[1].message, r#"conflict with "bar""#);
        assert_eq!(c[1].reason, "FieldManagerConflict");
        let scale = conflict("foo", Operation::Update, Some("scale"), &["spec", "replicas"]);
        assert_eq!(
            message(&[scale]),
            r#"Apply failed with 1 conflict: conflict with "foo" with subresource "scale" using v1 at 2001-02-03T04:05:06Z: .spec.replicas"#
        );
    }
}
