//! Protobuf request bodies of the kinds this module serves. client-go's typed clients send
//! built-in kinds as `application/vnd.kubernetes.protobuf` (`kubectl create rolebinding`,
//! `kubectl auth can-i`); the RBAC kinds and the self-subject reviews are decoded here into
//! their JSON form: kube's envelope (`k8s\0` + `runtime.Unknown{typeMeta, raw}`) and the
//! messages of k8s.io/api `rbac/v1` and `authorization/v1` `generated.proto`, with the
//! `ObjectMeta` fields clients write on create and update (managedFields are not read).

use serde_json::{json, Map, Value};

/// What one field of a message holds.
#[derive(Clone, Copy)]
enum Kind {
    /// A string.
    Str,
    /// An integer (varint).
    Int,
    /// A boolean (varint).
    Bool,
    /// A `metav1.Time` (seconds, nanos) as RFC 3339.
    Time,
    /// A nested message.
    Message(&'static [Field]),
    /// A `map<string, string>` (repeated key=1/value=2 entries).
    StringMap,
}

/// One field: number, JSON name, kind, repeated.
type Field = (u64, &'static str, Kind, bool);

const OWNER_REFERENCE: &[Field] = &[
    (1, "kind", Kind::Str, false),
    (3, "name", Kind::Str, false),
    (4, "uid", Kind::Str, false),
    (5, "apiVersion", Kind::Str, false),
    (6, "controller", Kind::Bool, false),
    (7, "blockOwnerDeletion", Kind::Bool, false),
];

const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str, false),
    (2, "generateName", Kind::Str, false),
    (3, "namespace", Kind::Str, false),
    (5, "uid", Kind::Str, false),
    (6, "resourceVersion", Kind::Str, false),
    (7, "generation", Kind::Int, false),
    (8, "creationTimestamp", Kind::Time, false),
    (11, "labels", Kind::StringMap, false),
    (12, "annotations", Kind::StringMap, false),
    (13, "ownerReferences", Kind::Message(OWNER_REFERENCE), true),
    (14, "finalizers", Kind::Str, true),
];

const POLICY_RULE: &[Field] = &[
    (1, "verbs", Kind::Str, true),
    (2, "apiGroups", Kind::Str, true),
    (3, "resources", Kind::Str, true),
    (4, "resourceNames", Kind::Str, true),
    (5, "nonResourceURLs", Kind::Str, true),
];

const REQUIREMENT: &[Field] =
    &[(1, "key", Kind::Str, false), (2, "operator", Kind::Str, false), (3, "values", Kind::Str, true)];

const LABEL_SELECTOR: &[Field] =
    &[(1, "matchLabels", Kind::StringMap, false), (2, "matchExpressions", Kind::Message(REQUIREMENT), true)];

const AGGREGATION_RULE: &[Field] = &[(1, "clusterRoleSelectors", Kind::Message(LABEL_SELECTOR), true)];

const ROLE: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "rules", Kind::Message(POLICY_RULE), true),
    (3, "aggregationRule", Kind::Message(AGGREGATION_RULE), false),
];

const SUBJECT: &[Field] = &[
    (1, "kind", Kind::Str, false),
    (2, "apiGroup", Kind::Str, false),
    (3, "name", Kind::Str, false),
    (4, "namespace", Kind::Str, false),
];

const ROLE_REF: &[Field] =
    &[(1, "apiGroup", Kind::Str, false), (2, "kind", Kind::Str, false), (3, "name", Kind::Str, false)];

const BINDING: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "subjects", Kind::Message(SUBJECT), true),
    (3, "roleRef", Kind::Message(ROLE_REF), false),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    (1, "namespace", Kind::Str, false),
    (2, "verb", Kind::Str, false),
    (3, "group", Kind::Str, false),
    (4, "version", Kind::Str, false),
    (5, "resource", Kind::Str, false),
    (6, "subresource", Kind::Str, false),
    (7, "name", Kind::Str, false),
];

const NON_RESOURCE_ATTRIBUTES: &[Field] = &[(1, "path", Kind::Str, false), (2, "verb", Kind::Str, false)];

const ACCESS_REVIEW_SPEC: &[Field] = &[
    (1, "resourceAttributes", Kind::Message(RESOURCE_ATTRIBUTES), false),
    (2, "nonResourceAttributes", Kind::Message(NON_RESOURCE_ATTRIBUTES), false),
];

const ACCESS_REVIEW: &[Field] =
    &[(1, "metadata", Kind::Message(OBJECT_META), false), (2, "spec", Kind::Message(ACCESS_REVIEW_SPEC), false)];

const RULES_REVIEW: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "spec", Kind::Message(&[(1, "namespace", Kind::Str, false)]), false),
];

/// The message of a resource's objects, for the resources decoded here.
fn schema(group: &str, resource: &str) -> Option<&'static [Field]> {
    match (group, resource) {
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => Some(ROLE),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => Some(BINDING),
        ("authorization.k8s.io", "selfsubjectaccessreviews") => Some(ACCESS_REVIEW),
        ("authorization.k8s.io", "selfsubjectrulesreviews") => Some(RULES_REVIEW),
        _ => None,
    }
}

/// True when bodies of `resource` in `group` are decoded here.
pub fn decodes(group: &str, resource: &str) -> bool {
    schema(group, resource).is_some()
}

/// One wire field: its number and its value (varint or bytes).
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message (None: malformed).
fn fields(bytes: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let skip = |at: &mut usize, n: usize| -> Option<()> {
            *at = at.checked_add(n).filter(|end| *end <= bytes.len())?;
            Some(())
        };
        let wire = match key & 7 {
            0 => Wire::Varint(varint(bytes, &mut at)?),
            1 => {
                skip(&mut at, 8)?;
                Wire::Other
            }
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let start = at;
                skip(&mut at, len)?;
                Wire::Bytes(&bytes[start..at])
            }
            5 => {
                skip(&mut at, 4)?;
                Wire::Other
            }
            _ => return None,
        };
        out.push((key >> 3, wire));
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

fn value(kind: Kind, wire: &Wire<'_>) -> Option<Value> {
    Some(match (kind, wire) {
        (Kind::Str, Wire::Bytes(b)) => text(b),
        (Kind::Int, Wire::Varint(v)) => json!(*v as i64),
        (Kind::Bool, Wire::Varint(v)) => json!(*v != 0),
        (Kind::Time, Wire::Bytes(b)) => {
            let seconds = fields(b)?.into_iter().find_map(|(n, w)| match (n, w) {
                (1, Wire::Varint(s)) => Some(s as i64),
                _ => None,
            });
            json!(crate::clock::rfc3339(seconds.unwrap_or(0)))
        }
        (Kind::Message(schema), Wire::Bytes(b)) => message(b, schema)?,
        _ => return None,
    })
}

/// A message as its JSON object.
fn message(bytes: &[u8], schema: &[Field]) -> Option<Value> {
    let mut object = Map::new();
    for (number, wire) in fields(bytes)? {
        let Some(&(_, name, kind, repeated)) = schema.iter().find(|f| f.0 == number) else {
            continue;
        };
        if let Kind::StringMap = kind {
            let Wire::Bytes(entry) = wire else { return None };
            let (mut key, mut val) = (String::new(), String::new());
            for (n, w) in fields(entry)? {
                match (n, w) {
                    (1, Wire::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
                    (2, Wire::Bytes(b)) => val = String::from_utf8_lossy(b).into_owned(),
                    _ => {}
                }
            }
            let map = object.entry(name).or_insert_with(|| json!({}));
            map.as_object_mut()?.insert(key, Value::String(val));
            continue;
        }
        let decoded = value(kind, &wire)?;
        // Go's protobuf writes empty optional strings; their JSON form omits them.
        if !repeated && decoded.as_str() == Some("") {
            continue;
        }
        if repeated {
            object.entry(name).or_insert_with(|| json!([])).as_array_mut()?.push(decoded);
        } else {
            object.insert(name.into(), decoded);
        }
    }
    Some(Value::Object(object))
}

/// The JSON form of a protobuf body of `resource` in `group` (None: not a kube protobuf
/// envelope, or malformed).
pub fn to_json(body: &[u8], group: &str, resource: &str) -> Option<Value> {
    let schema = schema(group, resource)?;
    let unknown = body.strip_prefix(b"k8s\0")?;
    let mut type_meta = None;
    let mut raw: &[u8] = &[];
    for (number, wire) in fields(unknown)? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => {
                type_meta = Some(message(b, &[(1, "apiVersion", Kind::Str, false), (2, "kind", Kind::Str, false)])?)
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = message(raw, schema)?;
    if let (Some(Value::Object(meta)), Some(map)) = (type_meta, object.as_object_mut()) {
        for (key, value) in meta {
            map.insert(key, value);
        }
    }
    Some(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8];
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }

    fn message_of(fields: &[(u64, &[u8])]) -> Vec<u8> {
        fields.iter().flat_map(|(n, b)| bytes_field(*n, b)).collect()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = message_of(&[(1, api_version.as_bytes()), (2, kind.as_bytes())]);
        let mut body = b"k8s\0".to_vec();
        body.extend(message_of(&[(1, &type_meta), (2, raw), (3, b""), (4, b"")]));
        body
    }

    #[test]
    fn rolebindings_decode_as_kubectl_sends_them() {
        let label = message_of(&[(1, b"app"), (2, b"web")]);
        let metadata = message_of(&[(1, b"alice-reads"), (3, b"team"), (11, &label)]);
        let subject = message_of(&[(1, b"User"), (2, b"rbac.authorization.k8s.io"), (3, b"alice")]);
        let role_ref = message_of(&[(1, b"rbac.authorization.k8s.io"), (2, b"Role"), (3, b"reader")]);
        let raw = message_of(&[(1, &metadata), (2, &subject), (3, &role_ref)]);
        let body = envelope("rbac.authorization.k8s.io/v1", "RoleBinding", &raw);
        let object = to_json(&body, "rbac.authorization.k8s.io", "rolebindings").expect("decodes");
        assert_eq!(
            object,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": { "name": "alice-reads", "namespace": "team", "labels": { "app": "web" } },
                "subjects": [{ "kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice" }],
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader" },
            })
        );
    }

    #[test]
    fn roles_and_reviews_decode() {
        let rule = message_of(&[(1, b"get"), (1, b"list"), (2, b""), (3, b"secrets")]);
        let raw = message_of(&[(1, &message_of(&[(1, b"reader")])), (2, &rule)]);
        let role =
            to_json(&envelope("rbac.authorization.k8s.io/v1", "Role", &raw), "rbac.authorization.k8s.io", "roles")
                .expect("decodes");
        assert_eq!(role["rules"], json!([{ "verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"] }]));
        let attributes = message_of(&[(1, b"team"), (2, b"list"), (5, b"secrets")]);
        let raw = message_of(&[(2, &message_of(&[(1, &attributes)]))]);
        let body = envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", &raw);
        let review = to_json(&body, "authorization.k8s.io", "selfsubjectaccessreviews").expect("decodes");
        assert_eq!(
            review["spec"],
            json!({ "resourceAttributes": { "namespace": "team", "verb": "list", "resource": "secrets" } })
        );
        assert_eq!(to_json(b"k8s\0\x12\x7f", "authorization.k8s.io", "selfsubjectaccessreviews"), None, "truncated");
        assert_eq!(to_json(b"{}", "rbac.authorization.k8s.io", "roles"), None, "no envelope");
        assert_eq!(to_json(&body, "", "configmaps"), None, "not decoded here");
    }
}
