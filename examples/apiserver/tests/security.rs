//! TLS, authentication, RBAC and audit with the real kubectl and a kubeconfig written here:
//! a CA, the server's certificate and client certificates generated with rcgen, a token file
//! of kube's format, `--authorization-mode=RBAC`.
//!
//! Needs `kubectl` on PATH (or `KUBECTL=/path/to/kubectl`).

mod support;

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use support::kubectl::Kubectl;
use support::{raw_get, tls_get, Server};

const TOKENS: &str = "admin-token,admin,1,system:masters\n\
alice-token,alice,2,\"devs,readers\"\n\
bob-token,bob,3\n";

/// The files of one test: PKI, token file, kubeconfig.
struct Setup {
    dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    tokens: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("self-signed ca")
}

/// A leaf certificate and key (PEM) signed by `ca`.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    common_name: &str,
    organizations: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
    params.distinguished_name.push(DnType::CommonName, common_name);
    for organization in organizations {
        params.distinguished_name.push(DnType::OrganizationName, *organization);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("signed leaf");
    (cert.pem(), key.serialize_pem())
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("test files");
        let ca = certificate_authority("apistore test CA");
        let (cert, key) = leaf(&ca, &["127.0.0.1", "localhost"], "apiserver", &[], ExtendedKeyUsagePurpose::ServerAuth);
        let (carol, carol_key) = leaf(&ca, &[], "carol", &["devs"], ExtendedKeyUsagePurpose::ClientAuth);
        let path = dir.path();
        write(path, "carol.pem", &carol);
        write(path, "carol-key.pem", &carol_key);
        // A certificate of another CA: the handshake refuses it.
        let other = certificate_authority("some other CA");
        let (mallory, mallory_key) =
            leaf(&other, &[], "mallory", &["system:masters"], ExtendedKeyUsagePurpose::ClientAuth);
        write(path, "mallory.pem", &mallory);
        write(path, "mallory-key.pem", &mallory_key);
        Setup {
            ca: write(path, "ca.pem", &ca.pem()),
            server_cert: write(path, "server.pem", &cert),
            server_key: write(path, "server-key.pem", &key),
            tokens: write(path, "tokens.csv", TOKENS),
            dir,
        }
    }

    fn arg(flag: &str, path: &Path) -> String {
        format!("{flag}={}", path.display())
    }

    /// Starts the HTTPS server with the token file, client CA and RBAC.
    fn start(&self) -> Server {
        let args = [
            Setup::arg("--tls-cert-file", &self.server_cert),
            Setup::arg("--tls-private-key-file", &self.server_key),
            Setup::arg("--client-ca-file", &self.ca),
            Setup::arg("--token-auth-file", &self.tokens),
            "--authorization-mode=RBAC".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_tls(&args, &self.ca)
    }

    /// A kubeconfig for `server` with one context per user: admin, alice, bob, wrong
    /// (tokens), carol and mallory (client certificates), anonymous (no credentials that
    /// count).
    fn kubeconfig(&self, server: &Server) -> PathBuf {
        let d = self.dir.path().display();
        let mut text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n",
            server.url,
            self.ca.display()
        );
        for (user, token) in
            [("admin", "admin-token"), ("alice", "alice-token"), ("bob", "bob-token"), ("wrong", "nope")]
        {
            text.push_str(&format!("- name: {user}\n  user:\n    token: {token}\n"));
        }
        for user in ["carol", "mallory"] {
            text.push_str(&format!(
                "- name: {user}\n  user:\n    client-certificate: {d}/{user}.pem\n    client-key: {d}/{user}-key.pem\n"
            ));
        }
        // kubectl prompts for a password when a user has no credentials at all; a basic-auth
        // user (kube-apiserver has no basic authenticator) is its way of sending none that
        // count.
        text.push_str("- name: anonymous\n  user:\n    username: nobody\n    password: nothing\ncontexts:\n");
        for user in ["admin", "alice", "bob", "wrong", "carol", "mallory", "anonymous"] {
            text.push_str(&format!("- name: {user}\n  context:\n    cluster: test\n    user: {user}\n"));
        }
        text.push_str("current-context: admin\n");
        write(self.dir.path(), "kubeconfig", &text)
    }

    fn kubectl(&self, server: &Server, context: &str) -> Kubectl {
        Kubectl::with_kubeconfig(&self.kubeconfig(server), context)
    }
}

/// Runs `kubectl auth can-i`: (answer line, exit code).
fn can_i(k: &Kubectl, args: &[&str]) -> (String, Option<i32>) {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let out = k.run_with_stdin(&full, None);
    (String::from_utf8_lossy(&out.stdout).trim().to_owned(), out.status.code())
}

#[test]
fn rbac_denies_until_a_rolebinding_created_at_run_time_allows() {
    let setup = Setup::new();
    let server = setup.start();
    let admin = setup.kubectl(&server, "admin");
    let alice = setup.kubectl(&server, "alice");
    let bob = setup.kubectl(&server, "bob");
    admin.ok(&["create", "namespace", "team"]);
    admin.ok(&["create", "secret", "generic", "s1", "-n", "team", "--from-literal=k=v"]);

    // No binding: kube's 403.
    let denied = alice.fails(&["get", "secrets", "-n", "team"], None);
    assert!(
        denied.contains(
            "Error from server (Forbidden): secrets is forbidden: User \"alice\" cannot list resource \"secrets\" \
             in API group \"\" in the namespace \"team\""
        ),
        "{denied}"
    );
    let named = alice.fails(&["get", "secret", "s1", "-n", "team"], None);
    assert!(named.contains("secrets \"s1\" is forbidden: User \"alice\" cannot get resource \"secrets\""), "{named}");
    let cluster = bob.fails(&["get", "deployments", "-A"], None);
    assert!(
        cluster.contains(
            "deployments.apps is forbidden: User \"bob\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        ),
        "{cluster}"
    );
    assert_eq!(can_i(&alice, &["list", "secrets", "-n", "team"]), ("no".to_owned(), Some(1)));
    assert_eq!(can_i(&admin, &["delete", "secrets", "-n", "team"]), ("yes".to_owned(), Some(0)));

    // A Role and RoleBinding written now count on the next request.
    admin.ok(&["create", "role", "secret-reader", "--verb=get,list,watch", "--resource=secrets", "-n", "team"]);
    admin.ok(&["create", "rolebinding", "alice-reads", "--role=secret-reader", "--user=alice", "-n", "team"]);
    let listed = alice.ok(&["get", "secrets", "-n", "team"]);
    assert!(listed.contains("s1"), "{listed}");
    assert!(alice.ok(&["get", "secret", "s1", "-n", "team", "-o", "name"]).contains("secret/s1"));
    assert_eq!(can_i(&alice, &["list", "secrets", "-n", "team"]), ("yes".to_owned(), Some(0)));
    assert_eq!(can_i(&alice, &["delete", "secrets", "-n", "team"]), ("no".to_owned(), Some(1)));
    assert_eq!(can_i(&alice, &["list", "secrets", "-n", "default"]), ("no".to_owned(), Some(1)));
    let rules = alice.ok(&["auth", "can-i", "--list", "-n", "team"]);
    assert!(rules.lines().any(|l| l.starts_with("secrets ") && l.contains("[get list watch]")), "{rules}");
    // Impersonation: allowed to system:masters, refused with kube's 403 to others.
    assert_eq!(can_i(&admin, &["list", "secrets", "-n", "team", "--as", "alice"]), ("yes".to_owned(), Some(0)));
    assert_eq!(can_i(&admin, &["list", "secrets", "-n", "team", "--as", "bob"]), ("no".to_owned(), Some(1)));
    let impersonating = bob.fails(&["get", "secrets", "-n", "team", "--as", "alice"], None);
    assert!(
        impersonating.contains(
            "users \"alice\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{impersonating}"
    );
    let delete = alice.fails(&["delete", "secret", "s1", "-n", "team"], None);
    assert!(delete.contains("cannot delete resource \"secrets\""), "{delete}");
    let elsewhere = alice.fails(&["get", "secrets", "-n", "default"], None);
    assert!(elsewhere.contains("in the namespace \"default\""), "{elsewhere}");
    // Bob holds no binding; a Group binding through alice's token groups reaches alice only.
    admin.ok(&["create", "clusterrole", "cm-reader", "--verb=get,list", "--resource=configmaps"]);
    admin.ok(&["create", "clusterrolebinding", "readers", "--clusterrole=cm-reader", "--group=readers"]);
    alice.ok(&["get", "configmaps", "-A"]);
    assert!(bob.fails(&["get", "configmaps", "-A"], None).contains("User \"bob\" cannot list"));
    // Deleting the binding takes the access away again.
    admin.ok(&["delete", "rolebinding", "alice-reads", "-n", "team"]);
    assert!(alice.fails(&["get", "secrets", "-n", "team"], None).contains("Forbidden"));

    // The RBAC objects are served like every resource.
    let roles = admin.ok(&["get", "clusterroles"]);
    assert!(roles.contains("cluster-admin") && roles.contains("cm-reader"), "{roles}");
    let binding = admin.json(&["get", "clusterrolebinding", "readers"]);
    assert_eq!(binding["roleRef"]["name"], "cm-reader", "{binding}");
    assert_eq!(binding["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io", "{binding}");

    // One audit line per mutating request, with the user.
    let log = server.log_text();
    let audit = log
        .lines()
        .find(|l| l.contains("audit") && l.contains("user=\"admin\"") && l.contains("resource=\"rolebindings\""))
        .unwrap_or_else(|| panic!("no audit line for the rolebinding:\n{log}"));
    for field in ["verb=\"create\"", "namespace=\"team\"", "name=\"\"", "code=201"] {
        assert!(audit.contains(field), "{field} in {audit}");
    }
    assert!(
        log.lines().any(|l| l.contains("audit") && l.contains("user=\"alice\"") && l.contains("code=403")),
        "denied delete audited:\n{log}"
    );
    assert!(!log.lines().any(|l| l.contains("audit") && l.contains("verb=\"list\"")), "reads are not audited");
}

#[test]
fn client_certificates_name_the_user_and_groups() {
    let setup = Setup::new();
    let server = setup.start();
    let admin = setup.kubectl(&server, "admin");
    let carol = setup.kubectl(&server, "carol");
    let denied = carol.fails(&["get", "configmaps", "-n", "default"], None);
    assert!(denied.contains("User \"carol\" cannot list resource \"configmaps\""), "{denied}");
    admin.ok(&["create", "clusterrole", "cm-editor", "--verb=*", "--resource=configmaps"]);
    admin.ok(&["create", "rolebinding", "devs-edit", "--clusterrole=cm-editor", "--group=devs", "-n", "default"]);
    carol.ok(&["create", "configmap", "from-carol", "-n", "default", "--from-literal=a=b"]);
    assert!(carol.ok(&["get", "configmaps", "-n", "default"]).contains("from-carol"));
    assert_eq!(can_i(&carol, &["create", "configmaps", "-n", "default"]), ("yes".to_owned(), Some(0)));
    assert_eq!(can_i(&carol, &["create", "configmaps", "-n", "kube-system"]), ("no".to_owned(), Some(1)));
    // A certificate of another CA never gets through the handshake, whatever it claims.
    let mallory = setup.kubectl(&server, "mallory");
    let refused = mallory.fails(&["get", "namespaces"], None);
    assert!(!refused.contains("NAME"), "{refused}");
}

#[test]
fn requests_without_valid_credentials_get_401_except_health() {
    let setup = Setup::new();
    let server = setup.start();
    for context in ["anonymous", "wrong"] {
        let k = setup.kubectl(&server, context);
        let stderr = k.fails(&["get", "namespaces"], None);
        // kubectl's words for a 401.
        assert!(stderr.contains("error: You must be logged in to the server"), "{context}: {stderr}");
    }
    let (code, body) = tls_get(server.port, "/api/v1/namespaces", &setup.ca, &[]).expect("answer");
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!((status["reason"].as_str(), status["message"].as_str()), (Some("Unauthorized"), Some("Unauthorized")));
    // Anonymous health and version; an unknown token is 401 even there, as in kube.
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(tls_get(server.port, path, &setup.ca, &[]).map(|r| r.0), Some(200), "{path}");
    }
    let bad = tls_get(server.port, "/healthz", &setup.ca, &["Authorization: Bearer nope"]);
    assert_eq!(bad.map(|r| r.0), Some(401));
    assert_eq!(tls_get(server.port, "/metrics", &setup.ca, &[]).map(|r| r.0), Some(401));
    // Authenticated users see discovery (system:discovery) but not /metrics.
    let bob = ["Authorization: Bearer bob-token"];
    assert_eq!(tls_get(server.port, "/apis", &setup.ca, &bob).map(|r| r.0), Some(200));
    let (code, body) = tls_get(server.port, "/metrics", &setup.ca, &bob).expect("answer");
    assert_eq!(code, 403);
    assert!(body.contains("forbidden: User \\\"bob\\\" cannot get path \\\"/metrics\\\""), "{body}");
}

#[test]
fn plain_http_to_the_tls_port_fails() {
    let setup = Setup::new();
    let server = setup.start();
    let (code, body) = raw_get(server.port, "/readyz").expect("an answer");
    assert_eq!((code, body.as_str()), (400, "Client sent an HTTP request to an HTTPS server.\n"));
    let plain = Kubectl::with_kubeconfig(&setup.kubeconfig(&server), "admin");
    let url = server.url.replace("https://", "http://");
    let stderr = plain.fails(&["--server", &url, "get", "namespaces"], None);
    assert!(!stderr.is_empty());
    // The HTTPS port itself works for the same user.
    assert!(setup.kubectl(&server, "admin").ok(&["get", "namespaces"]).contains("default"));
}

#[test]
fn bad_security_files_and_settings_stop_the_start() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![Setup::arg("--token-auth-file", &write(dir, "short.csv", "a,b,c\nonly,two\n"))],
            "must have at least 3 columns (token, user name, user uid), found 2".into(),
        ),
        (
            vec![Setup::arg("--token-auth-file", &write(dir, "quote.csv", "to\"ken,u,1\n"))],
            "parse error on line 1, column 3: bare \" in non-quoted-field".into(),
        ),
        (vec!["--token-auth-file=/nonexistent/tokens.csv".into()], "/nonexistent/tokens.csv".into()),
        (
            vec![
                "--tls-cert-file=/nonexistent/cert.pem".into(),
                Setup::arg("--tls-private-key-file", &setup.server_key),
            ],
            "--tls-cert-file /nonexistent/cert.pem".into(),
        ),
        (
            vec![
                Setup::arg("--tls-cert-file", &write(dir, "garbage.pem", "not a certificate\n")),
                Setup::arg("--tls-private-key-file", &setup.server_key),
            ],
            "garbage.pem".into(),
        ),
        (
            vec![Setup::arg("--tls-cert-file", &setup.server_cert), Setup::arg("--tls-private-key-file", &setup.ca)],
            "--tls-private-key-file".into(),
        ),
        (vec!["--authorization-mode=Magic".into()], "authorization-mode \"Magic\" is not a valid mode".into()),
    ];
    for (args, words) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, log) = Server::run_to_exit(&args);
        assert!(!status.success(), "{args:?} started");
        assert!(log.contains(&words), "{args:?}: {words:?} not in\n{log}");
    }
}

#[test]
fn non_loopback_listen_needs_authentication_or_the_explicit_flag() {
    let (status, log) = Server::run_to_exit(&["--listen", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(log.contains("without authentication") && log.contains("--insecure-allow-any"), "{log}");
}
