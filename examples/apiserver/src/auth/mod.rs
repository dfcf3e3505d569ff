//! Authentication, authorization and audit: the first stages of every request, as
//! k8s.io/apiserver's filters chain them (`WithAuthentication`, `WithAuthorization`,
//! `WithAudit`), and TLS serving.
//!
//! - [`request_info`]: the verb, resource, namespace, name and subresource a request asks
//!   for, read from its path like kube's `RequestInfoFactory`.
//! - Authentication: a verified client certificate ([`x509`], `--client-ca-file`), else a
//!   bearer token of the static token file ([`tokenfile`], `--token-auth-file`); an unknown
//!   token is 401. Authenticated users gain `system:authenticated`. Without credentials a
//!   request is anonymous (`system:anonymous`, `system:unauthenticated`) on the health
//!   endpoints (`/healthz`, `/livez`, `/readyz`, `/version`) and 401 elsewhere. With no
//!   authenticator configured every request is `system:unsecured` in `system:masters`
//!   (what kube's old insecure port did): the server's behaviour without these flags.
//! - Authorization (`--authorization-mode`, a comma list tried in order): `system:masters`
//!   first, then `AlwaysAllow`, `AlwaysDeny`, [`rbac`]. Denied requests get kube's 403
//!   (`... is forbidden: User "x" cannot list resource "secrets" ...`).
//!   [`access_review`] answers SelfSubjectAccessReviews and SelfSubjectRulesReviews
//!   (`kubectl auth can-i`).
//! - Audit: one `tracing` line (target `audit`) per mutating request.

pub mod access_review;
pub mod protobuf;
pub mod rbac;
pub mod request_info;
pub mod tls;
pub mod tokenfile;
pub mod x509;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::App;
use crate::status::{ApiError, Reason};
use request_info::RequestInfo;
use tokenfile::TokenAuthenticator;

/// Who a request is from (kube's `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The uid ("" when the authenticator has none).
    pub uid: String,
    /// The groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> UserInfo {
        UserInfo { name: "system:anonymous".into(), uid: String::new(), groups: vec![UNAUTHENTICATED.into()] }
    }

    /// `system:unsecured` in `system:masters`: every request when no authenticator is
    /// configured.
    pub fn unsecured() -> UserInfo {
        UserInfo {
            name: "system:unsecured".into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// This user with `system:authenticated` added (kube's `AuthenticatedGroupAdder`).
    fn authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED) {
            self.groups.push(AUTHENTICATED.into());
        }
        self
    }
}

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group allowed everything.
pub const MASTERS: &str = "system:masters";

/// Paths anonymous requests may reach (kube's anonymous-auth endpoints and
/// `system:public-info-viewer`).
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// An authorization mode of `--authorization-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Allows everything.
    AlwaysAllow,
    /// Allows nothing (`Everything is forbidden.`).
    AlwaysDeny,
    /// Role-based access control over the `rbac.authorization.k8s.io` objects.
    Rbac,
}

/// Parses `--authorization-mode` values (comma lists, repeated flags); empty means
/// `AlwaysAllow`, kube's default.
///
/// Errors: an unknown or unsupported mode, or one given twice, in kube's words.
pub fn parse_modes(values: &[String]) -> Result<Vec<Mode>, String> {
    let mut modes = Vec::new();
    for value in values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()) {
        let mode = match value {
            "AlwaysAllow" => Mode::AlwaysAllow,
            "AlwaysDeny" => Mode::AlwaysDeny,
            "RBAC" => Mode::Rbac,
            "ABAC" | "Webhook" | "Node" => {
                return Err(format!(
                    "authorization-mode {value:?} is not supported by this server (supported: AlwaysAllow, AlwaysDeny, RBAC)"
                ))
            }
            other => return Err(format!("authorization-mode {other:?} is not a valid mode")),
        };
        if modes.contains(&mode) {
            return Err(format!("authorization-mode {value:?} has mode specified more than once"));
        }
        modes.push(mode);
    }
    if modes.is_empty() {
        modes.push(Mode::AlwaysAllow);
    }
    Ok(modes)
}

/// The security flags, resolved.
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`.
    pub tls_private_key_file: Option<PathBuf>,
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// `--token-auth-file`.
    pub token_auth_file: Option<PathBuf>,
    /// `--authorization-mode`, in order.
    pub authorization_modes: Vec<Mode>,
    /// `--anonymous-auth` (default true): anonymous requests reach the health endpoints.
    pub anonymous_auth: bool,
    /// `--insecure-allow-any`: serve a non-loopback address without authentication.
    pub insecure_allow_any: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            token_auth_file: None,
            authorization_modes: vec![Mode::AlwaysAllow],
            anonymous_auth: true,
            insecure_allow_any: false,
        }
    }
}

impl SecurityConfig {
    /// True when some authenticator is configured.
    pub fn authenticates(&self) -> bool {
        self.client_ca_file.is_some() || self.token_auth_file.is_some()
    }

    /// True when the server serves HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// Checks the flags fit together and with `listen`.
    ///
    /// Errors: a certificate without its key (or the reverse), a client CA without TLS, a
    /// non-loopback address without authentication and without `--insecure-allow-any`.
    pub fn validate(&self, listen: SocketAddr) -> Result<(), String> {
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(_), None) => return Err("--tls-cert-file needs --tls-private-key-file".into()),
            (None, Some(_)) => return Err("--tls-private-key-file needs --tls-cert-file".into()),
            _ => {}
        }
        if self.client_ca_file.is_some() && !self.tls() {
            return Err("--client-ca-file needs --tls-cert-file and --tls-private-key-file (HTTPS)".into());
        }
        if !listen.ip().is_loopback() && !self.authenticates() && !self.insecure_allow_any {
            return Err(format!(
                "refusing to serve {listen} without authentication: anyone who reaches it could read and write \
                 everything. Set --token-auth-file or --client-ca-file (with --tls-cert-file and \
                 --tls-private-key-file), listen on a loopback address, or pass --insecure-allow-any"
            ));
        }
        Ok(())
    }

    /// One line on how requests are authenticated and authorized (printed at start).
    pub fn describe(&self) -> String {
        let mut authn = Vec::new();
        if self.client_ca_file.is_some() {
            authn.push("client certificates");
        }
        if self.token_auth_file.is_some() {
            authn.push("token file");
        }
        let modes: Vec<&str> = self
            .authorization_modes
            .iter()
            .map(|m| match m {
                Mode::AlwaysAllow => "AlwaysAllow",
                Mode::AlwaysDeny => "AlwaysDeny",
                Mode::Rbac => "RBAC",
            })
            .collect();
        if authn.is_empty() {
            format!("authentication: none, every request acts as system:masters; authorization: {}", modes.join(","))
        } else {
            format!("authentication: {}; authorization: {}", authn.join(", "), modes.join(","))
        }
    }
}

/// The security state requests are checked with.
#[derive(Debug, Default)]
pub struct Security {
    /// The flags.
    pub config: SecurityConfig,
    tokens: Option<TokenAuthenticator>,
}

impl Security {
    /// Reads the files the flags name (the token file; TLS files are read by
    /// [`tls::server_config`]).
    ///
    /// Errors: an unreadable or invalid token file, naming it.
    pub fn load(config: SecurityConfig) -> Result<Security, String> {
        let tokens = match &config.token_auth_file {
            Some(path) => {
                let tokens = TokenAuthenticator::load(path).map_err(|e| format!("--token-auth-file: {e}"))?;
                tracing::info!("--token-auth-file {}: {} tokens", path.display(), tokens.len());
                Some(tokens)
            }
            None => None,
        };
        Ok(Security { config, tokens })
    }

    /// Who `request` is from.
    ///
    /// Errors: 401 for an unknown bearer token, or no credentials outside the public paths.
    fn authenticate(&self, request: &mut Request, info: &RequestInfo) -> Result<UserInfo, ApiError> {
        if !self.config.authenticates() {
            return Ok(UserInfo::unsecured());
        }
        if let Some(user) = request.extensions().get::<tls::PeerIdentity>().and_then(|p| p.user.clone()) {
            return Ok(user.authenticated());
        }
        if let Some(tokens) = &self.tokens {
            if let Some(token) = bearer_token(request) {
                let user = tokens.authenticate(&token).cloned().ok_or_else(unauthorized)?;
                // As kube: the credential goes no further than authentication.
                request.headers_mut().remove(header::AUTHORIZATION);
                return Ok(user.authenticated());
            }
        }
        if self.config.anonymous_auth && !info.is_resource_request && PUBLIC_PATHS.contains(&info.path.as_str()) {
            return Ok(UserInfo::anonymous());
        }
        Err(unauthorized())
    }
}

/// The token of `Authorization: Bearer <token>` (kube's `bearertoken` rules: scheme case
/// insensitive, empty tokens ignored).
fn bearer_token(request: &Request) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// kube's 401 `Status` (`NewUnauthorized("Unauthorized")`).
pub fn unauthorized() -> ApiError {
    ApiError::new(Reason::Unauthorized, "Unauthorized")
}

/// An authorization decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// An authorizer allowed the request.
    pub allowed: bool,
    /// An authorizer denied it outright.
    pub denied: bool,
    /// Why (the authorizers' reasons, newline-joined as kube's union authorizer does).
    pub reason: String,
    /// An authorizer that could not decide (a storage failure).
    pub evaluation_error: Option<String>,
}

/// Decides `info` for `user`: `system:masters` first, then each mode in order until one
/// allows or denies.
pub async fn authorize(app: &App, user: &UserInfo, info: &RequestInfo) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision { allowed: true, ..Default::default() };
    }
    let mut reasons = Vec::new();
    let mut errors = Vec::new();
    for mode in &app.security.config.authorization_modes {
        match mode {
            Mode::AlwaysAllow => return Decision { allowed: true, ..Default::default() },
            Mode::AlwaysDeny => reasons.push("Everything is forbidden.".to_owned()),
            Mode::Rbac => match rbac::load_policy(app, &info.namespace).await {
                Ok(policy) => {
                    let outcome = policy.authorize(user, info);
                    if outcome.allowed {
                        return Decision { allowed: true, reason: outcome.reason, ..Default::default() };
                    }
                    if !outcome.reason.is_empty() {
                        reasons.push(outcome.reason);
                    }
                }
                Err(e) => errors.push(e),
            },
        }
    }
    Decision {
        allowed: false,
        denied: false,
        reason: reasons.join("\n"),
        evaluation_error: (!errors.is_empty()).then(|| rbac::aggregate(&errors)),
    }
}

/// kube's 403 for a request `user` may not make (responsewriters `forbiddenMessage` and
/// `NewForbidden`), `reason` appended after `: `.
pub fn forbidden(user: &UserInfo, info: &RequestInfo, reason: &str) -> ApiError {
    let mut why = if !info.is_resource_request {
        format!("User {:?} cannot {} path {:?}", user.name, info.verb, info.path)
    } else if !info.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            user.name,
            info.verb,
            info.combined_resource(),
            info.api_group,
            info.namespace
        )
    } else {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            user.name,
            info.verb,
            info.combined_resource(),
            info.api_group
        )
    };
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let qualified = match (info.resource.as_str(), info.api_group.as_str()) {
        ("", _) => String::new(),
        (resource, "") => resource.to_owned(),
        (resource, group) => format!("{resource}.{group}"),
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {why}")
    } else if info.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {:?} is forbidden: {why}", info.name)
    };
    let mut details = serde_json::Map::new();
    for (key, value) in [("name", &info.name), ("group", &info.api_group), ("kind", &info.resource)] {
        if !value.is_empty() {
            details.insert(key.into(), json!(value));
        }
    }
    let mut error = ApiError::forbidden(message);
    error.details = Some(serde_json::Value::Object(details));
    error
}

/// kube's impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`
/// headers, as `kubectl --as`/`--as-group` send them): each needs the `impersonate` verb on
/// `users`, `serviceaccounts` (for `system:serviceaccount:<ns>:<name>`), `groups` or
/// `authentication.k8s.io` `uids` of that name; the request then acts as the impersonated
/// user (plus `system:authenticated`). Requests without the headers pass unchanged.
///
/// Errors: kube's 403 for an impersonation not allowed, 400 for groups without a user; the
/// acting user comes back with the error (for the audit line).
async fn impersonate(app: &App, user: UserInfo, request: &mut Request) -> Result<UserInfo, (UserInfo, ApiError)> {
    let (name, groups, uid) = {
        let headers = request.headers();
        let values = |name: &str| -> Vec<String> {
            headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
        };
        let first = |name: &str| values(name).into_iter().next();
        (first("impersonate-user"), values("impersonate-group"), first("impersonate-uid"))
    };
    if name.is_none() && groups.is_empty() && uid.is_none() {
        return Ok(user);
    }
    let Some(name) = name else {
        return Err((
            user,
            ApiError::bad_request("requested impersonation of groups or a uid without impersonating a user"),
        ));
    };
    let mut checks = Vec::new();
    let as_resource = |group: &str, resource: &str, namespace: &str, target: &str| RequestInfo {
        is_resource_request: true,
        verb: "impersonate".into(),
        api_group: group.into(),
        namespace: namespace.into(),
        resource: resource.into(),
        name: target.into(),
        ..Default::default()
    };
    let service_account = name.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((namespace, account)) => checks.push(as_resource("", "serviceaccounts", namespace, account)),
        None => checks.push(as_resource("", "users", "", &name)),
    }
    for group in &groups {
        checks.push(as_resource("", "groups", "", group));
    }
    if let Some(uid) = &uid {
        checks.push(as_resource("authentication.k8s.io", "uids", "", uid));
    }
    for check in &checks {
        let decision = authorize(app, &user, check).await;
        if !decision.allowed {
            let error = forbidden(&user, check, &decision.reason);
            return Err((user, error));
        }
    }
    let mut groups = groups;
    if let Some((namespace, _)) = service_account {
        if groups.is_empty() {
            groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}")];
        }
    }
    if name == "system:anonymous" {
        if !groups.iter().any(|g| g == UNAUTHENTICATED) {
            groups.push(UNAUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    for header in ["impersonate-user", "impersonate-group", "impersonate-uid"] {
        request.headers_mut().remove(header);
    }
    Ok(UserInfo { name, uid: uid.unwrap_or_default(), groups })
}

/// A protobuf body of a kind [`protobuf`] decodes, as JSON (client-go's typed clients send
/// the RBAC kinds in protobuf); other requests pass unchanged.
///
/// Errors: 400 for a body that is not kube's protobuf of the kind.
async fn protobuf_to_json(request: Request, info: &RequestInfo) -> Result<Request, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if crate::negotiation::media_type(content_type) != "application/vnd.kubernetes.protobuf"
        || !info.is_resource_request
        || !protobuf::decodes(&info.api_group, &info.resource)
    {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let body = crate::routing::read_body(body).await?;
    let value = protobuf::to_json(&body, &info.api_group, &info.resource).ok_or_else(|| {
        ApiError::bad_request(format!("the {} protobuf body of the request could not be decoded", info.resource))
    })?;
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let json = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Request::from_parts(parts, axum::body::Body::from(json)))
}

/// One audit line for a mutating request.
fn audit(user: Option<&UserInfo>, info: &RequestInfo, code: u16) {
    if !info.is_mutating() {
        return;
    }
    tracing::info!(
        target: "audit",
        user = user.map(|u| u.name.as_str()).unwrap_or(""),
        verb = info.verb.as_str(),
        group = info.api_group.as_str(),
        resource = info.combined_resource().as_str(),
        namespace = info.namespace.as_str(),
        name = info.name.as_str(),
        code,
        "request"
    );
}

/// The authentication, authorization and audit stage in front of every route.
pub async fn filter(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let info = RequestInfo::new(request.method().as_str(), request.uri().path(), request.uri().query().unwrap_or(""));
    let user = match app.security.authenticate(&mut request, &info) {
        Ok(user) => user,
        Err(e) => {
            audit(None, &info, e.code());
            return e.into_response();
        }
    };
    let user = match impersonate(&app, user, &mut request).await {
        Ok(user) => user,
        Err((user, e)) => {
            audit(Some(&user), &info, e.code());
            return e.into_response();
        }
    };
    request.extensions_mut().insert(user.clone());
    let decision = authorize(&app, &user, &info).await;
    let response = if decision.allowed {
        if access_review::is_review(&info) {
            access_review::serve(&app, &user, &info, request).await
        } else {
            match protobuf_to_json(request, &info).await {
                Ok(request) => next.run(request).await,
                Err(e) => e.into_response(),
            }
        }
    } else if let Some(error) = decision.evaluation_error {
        ApiError::internal(format!("Internal error occurred: {error}")).into_response()
    } else {
        forbidden(&user, &info, &decision.reason).into_response()
    };
    audit(Some(&user), &info, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserInfo {
        UserInfo { name: name.into(), ..Default::default() }
    }

    #[test]
    fn forbidden_messages_read_like_kube() {
        let e = forbidden(&user("x"), &RequestInfo::new("GET", "/api/v1/namespaces/y/secrets", ""), "");
        assert_eq!(
            e.message,
            "secrets is forbidden: User \"x\" cannot list resource \"secrets\" in API group \"\" in the namespace \"y\""
        );
        assert_eq!(e.code(), 403);
        assert_eq!(e.to_status()["reason"], "Forbidden");
        assert_eq!(e.to_status()["details"], json!({ "kind": "secrets" }));
        let e = forbidden(&user("x"), &RequestInfo::new("GET", "/api/v1/namespaces/y/pods/p/log", ""), "");
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: User \"x\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"y\""
        );
        let e = forbidden(&user("x"), &RequestInfo::new("GET", "/apis/apps/v1/deployments", ""), "RBAC: why");
        assert_eq!(
            e.message,
            "deployments.apps is forbidden: User \"x\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope: RBAC: why"
        );
        let e = forbidden(&UserInfo::anonymous(), &RequestInfo::new("GET", "/apis", ""), "");
        assert_eq!(e.message, "forbidden: User \"system:anonymous\" cannot get path \"/apis\"");
    }

    #[test]
    fn modes_parse_as_kube_lists() {
        assert_eq!(parse_modes(&[]), Ok(vec![Mode::AlwaysAllow]));
        assert_eq!(parse_modes(&["RBAC,AlwaysDeny".into()]), Ok(vec![Mode::Rbac, Mode::AlwaysDeny]));
        assert_eq!(parse_modes(&["RBAC".into(), "AlwaysAllow".into()]), Ok(vec![Mode::Rbac, Mode::AlwaysAllow]));
        assert!(parse_modes(&["RBAC,RBAC".into()]).unwrap_err().contains("more than once"));
        assert!(parse_modes(&["rbac".into()]).unwrap_err().contains("is not a valid mode"));
        assert!(parse_modes(&["Webhook".into()]).unwrap_err().contains("not supported"));
    }

    #[test]
    fn non_loopback_needs_authentication_or_the_explicit_flag() {
        let open: SocketAddr = "0.0.0.0:6443".parse().expect("addr");
        let loopback: SocketAddr = "127.0.0.1:6443".parse().expect("addr");
        let none = SecurityConfig::default();
        assert!(none.validate(loopback).is_ok());
        assert!(none.validate(open).unwrap_err().contains("--insecure-allow-any"));
        assert!(SecurityConfig { insecure_allow_any: true, ..Default::default() }.validate(open).is_ok());
        let tokens = SecurityConfig { token_auth_file: Some("t.csv".into()), ..Default::default() };
        assert!(tokens.validate(open).is_ok());
        let ca_only = SecurityConfig { client_ca_file: Some("ca.pem".into()), ..Default::default() };
        assert!(ca_only.validate(loopback).unwrap_err().contains("--tls-cert-file"));
        let half = SecurityConfig { tls_cert_file: Some("c.pem".into()), ..Default::default() };
        assert!(half.validate(loopback).is_err());
    }

    #[test]
    fn users_gain_the_authenticated_group_once() {
        let u = UserInfo { name: "a".into(), uid: String::new(), groups: vec!["g".into()] }.authenticated();
        assert_eq!(u.groups, ["g", AUTHENTICATED]);
        assert_eq!(u.clone().authenticated(), u);
    }
}
