//! What a request asks for, read from its method, path and query alone, as
//! k8s.io/apiserver `pkg/endpoints/request/requestinfo.go` (`RequestInfoFactory`) reads it:
//! the attributes authorization decides on.
//!
//! Resource requests live under `/api/<version>` and `/apis/<group>/<version>`:
//! `[/watch]/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`. A GET without a name
//! is `list` (or `watch` with `watch=true`), a DELETE without one `deletecollection`; a
//! `fieldSelector=metadata.name=<n>` names the object. Every other path is a non-resource
//! request whose verb is the lowercased method.

/// The attributes of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// True under `/api` or `/apis` with a version (and a group under `/apis`).
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// (resource requests) or the lowercased method (non-resource requests).
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    /// API group ("" for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace ("" for cluster scope or all namespaces).
    pub namespace: String,
    /// Resource, e.g. `configmaps`.
    pub resource: String,
    /// Subresource, e.g. `status`, `scale`, `log`.
    pub subresource: String,
    /// Object name ("" for collections).
    pub name: String,
}

impl RequestInfo {
    /// The attributes of a request with `method`, `path` and `query` (undecoded).
    pub fn new(method: &str, path: &str, query: &str) -> RequestInfo {
        let mut info = RequestInfo { path: path.to_owned(), verb: method.to_ascii_lowercase(), ..Default::default() };
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        info.api_prefix = parts[0].to_owned();
        let mut rest = &parts[1..];
        if info.api_prefix == "apis" {
            if rest.len() < 3 {
                return info;
            }
            info.api_group = rest[0].to_owned();
            rest = &rest[1..];
        }
        info.is_resource_request = true;
        info.api_version = rest[0].to_owned();
        rest = &rest[1..];
        if matches!(rest[0], "watch" | "proxy") {
            if rest.len() < 2 {
                // kube: "unable to determine kind and namespace from url"; nothing matches it.
                info.is_resource_request = false;
                info.verb = method.to_ascii_lowercase();
                return info;
            }
            info.verb = rest[0].to_owned();
            rest = &rest[1..];
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_owned();
            // `namespaces/<ns>/status|finalize` are subresources of the namespace.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        if rest.len() >= 3 && info.verb != "proxy" {
            info.subresource = rest[2].to_owned();
        }
        if rest.len() >= 2 {
            info.name = rest[1].to_owned();
        }
        info.resource = rest[0].to_owned();
        let params = parse_query(query);
        let watch_param = params.iter().find(|(k, _)| k == "watch").map(|(_, v)| v.as_str());
        let watching = watch_param.is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"));
        if info.name.is_empty() && info.verb == "get" {
            info.verb = if watching { "watch" } else { "list" }.to_owned();
            if let Some((_, selector)) = params.iter().find(|(k, _)| k == "fieldSelector") {
                if let Some(name) = exact_name(selector) {
                    info.name = name;
                }
            }
        } else if info.verb == "get" && watching {
            // kube answers a named GET with the object whatever `watch` says; this server
            // watches it, so it asks for the watch verb.
            info.verb = "watch".to_owned();
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_owned();
        }
        info
    }

    /// `pods/log` or `pods` (the resource RBAC rules match).
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// True for verbs that change state (audited).
    pub fn is_mutating(&self) -> bool {
        if self.is_resource_request {
            matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection")
        } else {
            matches!(self.verb.as_str(), "post" | "put" | "patch" | "delete")
        }
    }
}

/// `metadata.name=<n>` (or `==`) among a field selector's requirements, when the name is a
/// valid path segment (kube's `RequiresExactMatch` and `IsValidPathSegmentName`).
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|requirement| {
        let (key, value) = requirement.split_once("==").or_else(|| requirement.split_once('='))?;
        if key.trim() != "metadata.name" {
            return None;
        }
        let value = value.trim();
        let valid = !value.is_empty() && value != "." && value != ".." && !value.contains(['/', '%']);
        valid.then(|| value.to_owned())
    })
}

/// Query pairs, percent-decoded (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, query: &str) -> RequestInfo {
        RequestInfo::new(method, path, query)
    }

    fn resource(i: &RequestInfo) -> (&str, &str, &str, &str, &str, &str) {
        (&i.verb, &i.api_group, &i.namespace, &i.resource, &i.name, &i.subresource)
    }

    #[test]
    fn resource_requests_read_like_kube() {
        let cases = [
            ("GET", "/api/v1/namespaces", "", ("list", "", "", "namespaces", "", "")),
            ("GET", "/api/v1/namespaces/other", "", ("get", "", "other", "namespaces", "other", "")),
            ("GET", "/api/v1/namespaces/other/pods", "", ("list", "", "other", "pods", "", "")),
            ("GET", "/api/v1/namespaces/other/pods/foo", "", ("get", "", "other", "pods", "foo", "")),
            ("GET", "/api/v1/namespaces/other/pods/foo/log", "", ("get", "", "other", "pods", "foo", "log")),
            ("GET", "/api/v1/pods", "", ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", "watch=true", ("watch", "", "", "pods", "", "")),
            ("GET", "/api/v1/pods", "watch=false", ("list", "", "", "pods", "", "")),
            ("GET", "/api/v1/watch/pods", "", ("watch", "", "", "pods", "", "")),
            ("GET", "/api/v1/watch/namespaces/other/pods/foo", "", ("watch", "", "other", "pods", "foo", "")),
            (
                "GET",
                "/api/v1/namespaces/other/configmaps",
                "fieldSelector=metadata.name%3Dfoo&watch=1",
                ("watch", "", "other", "configmaps", "foo", ""),
            ),
            ("POST", "/api/v1/namespaces/other/pods", "", ("create", "", "other", "pods", "", "")),
            ("PUT", "/api/v1/namespaces/other/pods/foo", "", ("update", "", "other", "pods", "foo", "")),
            ("PATCH", "/api/v1/namespaces/other/pods/foo", "", ("patch", "", "other", "pods", "foo", "")),
            ("DELETE", "/api/v1/namespaces/other/pods/foo", "", ("delete", "", "other", "pods", "foo", "")),
            ("DELETE", "/api/v1/namespaces/other/pods", "", ("deletecollection", "", "other", "pods", "", "")),
            (
                "PUT",
                "/api/v1/namespaces/other/finalize",
                "",
                ("update", "", "other", "namespaces", "other", "finalize"),
            ),
            ("GET", "/api/v1/namespaces/other/status", "", ("get", "", "other", "namespaces", "other", "status")),
            (
                "PUT",
                "/apis/apps/v1/namespaces/other/deployments/web/scale",
                "",
                ("update", "apps", "other", "deployments", "web", "scale"),
            ),
            ("GET", "/apis/apps/v1/deployments", "", ("list", "apps", "", "deployments", "", "")),
            (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "",
                ("create", "authorization.k8s.io", "", "selfsubjectaccessreviews", "", ""),
            ),
        ];
        for (method, path, query, expected) in cases {
            let i = info(method, path, query);
            assert!(i.is_resource_request, "{method} {path}");
            assert_eq!(resource(&i), expected, "{method} {path}?{query}");
        }
        assert_eq!(info("GET", "/apis/apps/v1/deployments", "").api_version, "v1");
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for (method, path, verb) in [
            ("GET", "/healthz", "get"),
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/apis/apps", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("POST", "/version", "post"),
            ("HEAD", "/readyz", "head"),
            ("GET", "/openapi/v2", "get"),
        ] {
            let i = info(method, path, "");
            assert!(!i.is_resource_request, "{path}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), (verb, path));
        }
    }

    #[test]
    fn combined_resource_and_mutation() {
        let log = info("GET", "/api/v1/namespaces/a/pods/p/log", "");
        assert_eq!(log.combined_resource(), "pods/log");
        assert!(!log.is_mutating());
        assert!(info("DELETE", "/api/v1/namespaces/a/pods", "").is_mutating());
        assert!(!info("GET", "/api/v1/pods", "watch=true").is_mutating());
        assert_eq!(exact_name("metadata.name!=x"), None);
        assert_eq!(exact_name("a=b,metadata.name==x"), Some("x".into()));
        assert_eq!(exact_name("metadata.name=a/b"), None);
    }
}
