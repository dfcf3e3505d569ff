//! The admin endpoints of the running server (`/apistore/admin/...`) and `apistore --server`:
//! a backup streamed through the server while 8 clients write restores byte for byte at the
//! backup's revision; the endpoints are loopback-only without authentication and need an
//! authorized user with it (401/403 in kube's words).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use apistore::kv::{KvBackend, RangeRequest};
use apistore::registry::{self, BackendConfig};
use support::writers::Writers;
use support::Server;

fn apistore(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_apistore")).args(args).output().expect("running apistore");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn apistore_async(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || apistore(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("apistore task")
}

/// Runs `apistore --server URL <credentials> <args>` against `server`.
async fn remote(server: &Server, credentials: &[&str], args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--server".to_owned(), server.url.clone()];
    all.extend(credentials.iter().chain(args).map(|a| (*a).to_owned()));
    apistore_async(all).await
}

async fn sled_at(path: &Path) -> Arc<dyn KvBackend> {
    apistore_sled::register();
    registry::open(&BackendConfig::new("sled").with_option("path", path.display().to_string())).await.expect("sled")
}

/// (key, value, create revision, mod revision, version) of every key under /registry/ at `revision`.
pub async fn keys_at(backend: &dyn KvBackend, revision: u64) -> Vec<(String, Vec<u8>)> {
    let request = RangeRequest { revision, ..RangeRequest::prefix("/registry/") };
    backend.range(request).await.expect("range").kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())).collect()
}

/// The revision in a backup's header line.
fn backup_revision(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("backup");
    let header = text.lines().nth(1).expect("header line");
    let json: serde_json::Value = serde_json::from_str(header.splitn(3, ' ').nth(2).expect("json")).expect("header");
    json["revision"].as_u64().expect("revision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_through_the_server_while_eight_clients_write_restores_into_sled_byte_for_byte() {
    let server = Server::start(&[]);
    let writers = Writers::start(&server.url, 8, 20);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("backup.apistore");
    let (ok, out, err) = remote(&server, &[], &["backup", "-o", &backup.display().to_string()]).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let written = writers.stop().await;
    assert!(ok, "{err}");
    assert!(out.contains("backed up"), "{out}");
    assert!(written.failures.is_empty(), "{:?}", written.failures);
    assert!(written.latencies.len() > 16, "the clients wrote: {}", written.latencies.len());
    // Status through the server, then the server stops and its store is read directly.
    let (ok, out, err) = remote(&server, &[], &["status"]).await;
    assert!(ok && out.contains("configmaps"), "{out}{err}");
    let data_dir = server.stop();
    let revision = backup_revision(&backup);
    let source = sled_at(&data_dir.path().join("data")).await;
    let expected = keys_at(source.as_ref(), revision).await;
    assert!(
        expected.iter().any(|(k, _)| k.starts_with("/registry/configmaps/default/w7-")),
        "writes are in the backup"
    );
    // Writes went on after the backup's revision: the backup is the state at R, not later.
    assert!(source.current_revision().await.expect("revision") > revision);
    drop(source);
    let restored = dir.path().join("restored");
    let (ok, out, err) =
        apistore(&["restore", "-i", &backup.display().to_string(), "--data-dir", &restored.display().to_string()]);
    assert!(ok, "{out}{err}");
    let target = sled_at(&restored).await;
    assert_eq!(keys_at(target.as_ref(), 0).await, expected, "byte for byte at the backup's revision");
}

const TOKENS: &str = "admin-token,admin,1,system:masters\nalice-token,alice,2,developers\n";

/// The files of a test with authentication: kube's token file (an admin in system:masters,
/// alice in developers) and kubeconfigs.
struct Setup {
    dir: tempfile::TempDir,
    tokens: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("test files");
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, TOKENS).expect("token file");
        Setup { dir, tokens }
    }

    /// Starts the server with the token file and RBAC.
    fn start(&self) -> Server {
        Server::start(&["--token-auth-file", &self.tokens.display().to_string(), "--authorization-mode", "RBAC"])
    }

    /// A kubeconfig for `server` whose one user has `token`.
    fn kubeconfig(&self, server: &Server, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{token}"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
                 clusters:\n- name: k\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{token: {token}}}\n",
                server.url
            ),
        )
        .expect("kubeconfig");
        path
    }
}

#[tokio::test]
async fn admin_endpoints_need_an_authorized_user_once_authentication_is_configured() {
    let setup = Setup::new();
    let server = setup.start();
    let client = reqwest::Client::new();
    let status = format!("{}/apistore/admin/status", server.url);
    let anonymous = client.get(&status).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    let alice = client.get(&status).bearer_auth("alice-token").send().await.expect("request");
    assert_eq!(alice.status(), 403);
    let body: serde_json::Value = alice.json().await.expect("status");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["message"], "forbidden: User \"alice\" cannot get path \"/apistore/admin/status\"");
    let backup = client.get(format!("{}/apistore/admin/backup", server.url)).bearer_auth("alice-token").send().await;
    assert_eq!(backup.expect("request").status(), 403);
    let admin = client.get(&status).bearer_auth("admin-token").send().await.expect("request");
    assert_eq!(admin.status(), 200);
    let body: serde_json::Value = admin.json().await.expect("json");
    assert_eq!(body["backend"], "sled");
    assert!(body["resources"]["namespaces"]["objects"].as_u64() >= Some(1), "{body}");
    // The command with credentials, and without.
    let (ok, _, err) = remote(&server, &[], &["status"]).await;
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = remote(&server, &["--token", "alice-token"], &["status"]).await;
    assert!(!ok && err.contains("403") && err.contains("cannot get path"), "{err}");
    let (ok, out, err) = remote(&server, &["--token", "admin-token"], &["status"]).await;
    assert!(ok && out.contains("namespaces"), "{out}{err}");
    for (token, allowed) in [("admin-token", true), ("alice-token", false)] {
        let kubeconfig = setup.kubeconfig(&server, token).display().to_string();
        let (ok, out, err) = apistore_async(vec!["--kubeconfig".into(), kubeconfig, "status".into()]).await;
        assert_eq!(ok, allowed, "{token}: {out}{err}");
        assert!(if allowed { out.contains("namespaces") } else { err.contains("403") }, "{token}: {out}{err}");
    }
}

#[tokio::test]
async fn admin_endpoints_without_authentication_serve_loopback_and_refuse_bad_requests() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let status = client.get(format!("{}/apistore/admin/status", server.url)).send().await.expect("request");
    assert_eq!(status.status(), 200);
    // A restore into the server's store, which holds its namespaces: a clear refusal.
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("b.apistore");
    let backup = backup.display().to_string();
    let (ok, _, err) = remote(&server, &[], &["backup", "-o", &backup]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = remote(&server, &[], &["restore", "-i", &backup]).await;
    assert!(!ok && err.contains("not empty") && err.contains("400"), "{err}");
    // Bad migrate requests: typed 400s, nothing changes.
    let bad = client.post(format!("{}/apistore/admin/migrate", server.url)).body("{\"to\": 3}").send().await;
    assert_eq!(bad.expect("request").status(), 400);
    let unknown = client
        .post(format!("{}/apistore/admin/migrate", server.url))
        .body("{\"to\": {}, \"resource\": \"nosuch\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 400);
    let (ok, _, err) = apistore(&["migrate", "--to", "x.toml"]);
    assert!(!ok && err.contains("--server"), "{err}");
    let list = client.get(format!("{}/api/v1/namespaces", server.url)).send().await.expect("list");
    assert_eq!(list.status(), 200);
}

/// `apistore --server URL migrate` of the whole store: a resource under a key prefix of its
/// own on the default backend is refused by name, with the way out (nothing is opened or
/// written); moved alone first (`--resource`), it has a backend of its own and the
/// whole-store migration leaves it where it is, moving the rest — an override naming the
/// default backend itself included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_store_migration_refuses_a_resource_under_its_own_prefix_by_name_and_leaves_it_once_moved_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("data directory");
    // The server's sled lives in `<data>/data` (its `--data-dir`); roles name that backend.
    let main = data.path().join("data");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[storage.backend]\ntype = \"sled\"\n\n[storage.resources.\"secrets\"]\nprefix = \"/other\"\n\n\
             [storage.resources.\"roles.rbac.authorization.k8s.io\"]\nbackend = {{ type = \"sled\", path = {main:?} }}\n",
            main = main.display().to_string()
        ),
    )
    .expect("server config");
    let server = Server::start_in(data, &["--config", config.to_str().expect("utf-8")]);
    let client = reqwest::Client::new();
    let create = |path: &'static str, kind: &'static str, name: String| {
        let (client, url) = (client.clone(), server.url.clone());
        async move {
            let (collection, body) = match kind {
                "Role" => (
                    format!("/apis/rbac.authorization.k8s.io/v1/namespaces/default/{path}"),
                    serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                        "metadata": {"name": name}, "rules": []}),
                ),
                _ => (
                    format!("/api/v1/namespaces/default/{path}"),
                    serde_json::json!({"kind": kind, "metadata": {"name": name}, "data": {}}),
                ),
            };
            client.post(format!("{url}{collection}")).json(&body).send().await.expect("post").status()
        }
    };
    for i in 0..10 {
        assert_eq!(create("configmaps", "ConfigMap", format!("cm-{i}")).await, 201);
        assert_eq!(create("secrets", "Secret", format!("s-{i}")).await, 201);
        assert_eq!(create("roles", "Role", format!("r-{i}")).await, 201);
    }
    let target = |name: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        let data = dir.path().join(name).display().to_string();
        std::fs::write(&path, format!("[backend]\ntype = \"sled\"\npath = {data:?}\n")).expect("target config");
        path.display().to_string()
    };
    let (for_secrets, for_store) = (target("secrets"), target("store"));
    let (ok, out, err) = remote(&server, &[], &["migrate", "--to", &for_store]).await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("resource secrets") && err.contains("/other") && err.contains("--resource secrets"),
        "the refusal names the resource, its prefix and the way out: {err}"
    );
    assert!(!dir.path().join("store").exists(), "the refused migration opened no target");
    let (ok, out, err) = remote(&server, &[], &["migrate", "--to", &for_secrets, "--resource", "secrets"]).await;
    assert!(ok && out.contains(", 0 differences"), "{out}{err}\n{}", server.log_text());
    let (ok, out, err) = remote(&server, &[], &["migrate", "--to", &for_store]).await;
    assert!(ok && out.contains(", 0 differences"), "{out}{err}\n{}", server.log_text());
    assert!(out.contains("left where they are (each has a backend of its own): secrets"), "{out}");
    // Both keep serving, each from its own backend.
    assert_eq!(create("configmaps", "ConfigMap", "after".into()).await, 201);
    assert_eq!(create("secrets", "Secret", "after".into()).await, 201);
    assert_eq!(create("roles", "Role", "r-after".into()).await, 201);
    let listed: serde_json::Value = client
        .get(format!("{}/api/v1/namespaces/default/secrets", server.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(11), "{listed}");
    drop(server);
    let names = |kvs: Vec<(String, Vec<u8>)>, prefix: &str| -> Vec<String> {
        kvs.into_iter().filter_map(|(k, _)| k.strip_prefix(prefix).map(str::to_owned)).collect()
    };
    let all = |backend: Arc<dyn KvBackend>, prefix: &'static str| async move {
        let request = RangeRequest::prefix(prefix);
        let kvs = backend.range(request).await.expect("range").kvs;
        kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())).collect::<Vec<_>>()
    };
    let secrets = sled_at(&dir.path().join("secrets")).await;
    let on_secrets = names(all(secrets.clone(), "/other/").await, "/other/secrets/default/");
    assert_eq!(on_secrets.len(), 11, "{on_secrets:?}");
    assert!(on_secrets.contains(&"after".to_owned()));
    assert!(all(secrets, "/registry/").await.is_empty(), "only the secrets moved there");
    let store = sled_at(&dir.path().join("store")).await;
    let on_store = names(all(store.clone(), "/registry/").await, "/registry/configmaps/default/");
    assert_eq!(on_store.len(), 11, "{on_store:?}");
    assert!(on_store.contains(&"after".to_owned()));
    assert!(all(store.clone(), "/other/").await.is_empty(), "the secrets stayed where they were");
    // The override naming the default backend itself moved with it.
    let roles = names(all(store, "/registry/").await, "/registry/roles/default/");
    assert_eq!(roles.iter().filter(|n| n.starts_with("r-")).count(), 11, "{roles:?}");
}
