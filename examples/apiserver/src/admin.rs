//! The admin endpoints: apistore's day-2 operations on the store the running server holds
//! open (the embedded sled store can be opened by one process only), for the `apistore`
//! command's `--server`.
//!
//! ```text
//! GET  /apistore/admin/status              revision, compaction, objects and bytes per resource (JSON)
//! GET  /apistore/admin/backup[?resources=] the backup stream (apistore::ops::format), consistent at one revision
//! POST /apistore/admin/restore             body: a backup; only into a store without objects
//! POST /apistore/admin/migrate             body: {"to": <storage Config>, "resource": "group/resource"?};
//!                                          answers one JSON line per phase (copy, verify, cutover, done | error)
//! ```
//!
//! Access: every request passes the server's authentication and authorization first (the
//! paths are RBAC `nonResourceURLs`: `system:masters` may, others need a rule for
//! `/apistore/admin/*`, else kube's 403). A server without authentication serves them to
//! loopback clients only.
//!
//! The migration's cutover: writes wait at the server's write gate ([`App::write_gate`]:
//! in-flight writes drain, new ones wait, none fails) while the migration applies and
//! verifies the tail and raises and compacts the target; then every affected resource's
//! storage is rebuilt through the factory with the new config, the table swapped, the old
//! entries retired (their watches end: clients watch again) and the gate opened. The new
//! storage config is written to [`crate::config::MIGRATED_CONFIG_FILE`] in the data directory,
//! which a restart without an explicit storage config picks up.
//!
//! Every writer of the store passes the gate, and looks up the storage it writes after passing
//! it, so no write lands on the source after the cutover's final copy:
//!
//! | writer | how |
//! |---|---|
//! | requests (`/api`, `/apis`: create, update, patch, delete, deletecollection, subresources) | [`crate::routing::api`] holds the gate for the whole request, the resource looked up after |
//! | a namespace's contents, deleted with it | in that request, in batches: between two it lets a waiting cutover run ([`crate::server::GateHold::yield_to_cutover`]) and looks the storages up again |
//! | the CRD controller (status, a deleted CRD's objects, the CRD's removal, the served table) | [`crate::crds`]: each step holds the gate, a deleted CRD's objects go in batches |
//! | `POST /apistore/admin/restore` | never runs beside a migration (it takes the migration lock) and only into a store without keys |
//! | start-up (initial namespaces, RBAC bootstrap policy) | before the server serves, so before any migration |
//! | TTL expiry (sled's sweeper, etcd's leases, the memory plugin) | not gated: the backend's own delete. Before the final source revision the migration follows it (a copy the target expired first is no difference); after it the target's copy, which carries the time left, expires by itself no earlier |
//!
//! A whole-store migration moves the default backend; a resource the config gives another
//! backend stays where it is (left out of the copy, its override kept, its storage not
//! rebuilt); an override that names the default backend itself moves with it. A resource
//! with a key prefix of its own on the default backend is refused, by name (move it with
//! `--resource` first).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::config::{Config, ResourceOverride};
use apistore::kv::KvBackend;
use apistore::ops::{self, MigrateOptions, Migration};
use apistore::registry::{self, BackendConfig};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::backend::StorageProvider;
use crate::resources::Resource;
use crate::server::App;
use crate::status::ApiError;

/// The admin routes (behind the server's authentication filter like every route).
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/apistore/admin/status", get(status))
        .route("/apistore/admin/backup", get(backup))
        .route("/apistore/admin/restore", post(restore))
        .route("/apistore/admin/migrate", post(migrate))
}

/// Without authentication, only loopback clients.
///
/// Errors: 403 for another client (or one whose address is unknown).
fn check_access(app: &App, request: &Request) -> Result<(), ApiError> {
    if app.security.config.authenticates() {
        return Ok(());
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    match peer {
        Some(peer) if peer.ip().is_loopback() => Ok(()),
        _ => Err(ApiError::forbidden(format!(
            "forbidden: the admin endpoints of a server without authentication serve loopback clients only \
             (client {})",
            peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
        ))),
    }
}

/// The server's default backend (the one it holds open) and its key prefix.
async fn store(app: &App) -> Result<(Arc<dyn KvBackend>, BackendConfig, String), ApiError> {
    let config = app.provider.lock().await.options().config.clone();
    let backend = registry::open(&config.backend).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((backend, config.backend, config.prefix))
}

fn storage_error(e: apistore::Error) -> ApiError {
    let mut error = ApiError::internal(e.to_string());
    if let apistore::Error::BadRequest { message } = &e {
        error = ApiError::bad_request(message.clone());
    }
    error
}

async fn status(State(app): State<Arc<App>>, request: Request) -> Response {
    let access = check_access(&app, &request);
    drop(request);
    let outcome = async {
        access?;
        let (backend, config, prefix) = store(&app).await?;
        let status = ops::status(backend.as_ref(), &prefix).await.map_err(storage_error)?;
        let resources: serde_json::Map<String, Value> = status
            .resources
            .iter()
            .map(|(name, r)| (name.clone(), json!({"objects": r.objects, "bytes": r.bytes})))
            .collect();
        let total = status.total();
        Ok::<_, ApiError>(axum::Json(json!({
            "backend": config.backend,
            "prefix": prefix,
            "revision": status.revision,
            "compacted": status.compacted,
            "objects": total.objects,
            "bytes": total.bytes,
            "space": {
                "dbBytes": status.space.db_bytes,
                "inUseBytes": status.space.in_use_bytes,
                "quotaBytes": status.space.quota_bytes,
                "alarms": status.space.alarms,
            },
            "resources": resources,
        })))
    }
    .await;
    outcome.map(IntoResponse::into_response).unwrap_or_else(IntoResponse::into_response)
}

/// A `Write` that sends what is written, in chunks of 64 KiB, into the response body.
struct BodyWriter {
    sender: mpsc::UnboundedSender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl BodyWriter {
    const CHUNK: usize = 64 * 1024;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.sender
            .send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn query_param(request: &Request, name: &str) -> Option<String> {
    let params: std::collections::HashMap<String, String> =
        axum::extract::Query::try_from_uri(request.uri()).map(|q| q.0).unwrap_or_default();
    params.get(name).cloned().filter(|v| !v.is_empty())
}

async fn backup(State(app): State<Arc<App>>, request: Request) -> Response {
    let access = check_access(&app, &request);
    let resources: Option<Vec<String>> =
        query_param(&request, "resources").map(|r| r.split(',').map(str::to_owned).collect());
    drop(request);
    let outcome = async {
        access?;
        let (backend, _, prefix) = store(&app).await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = BodyWriter { sender: sender.clone(), buffer: Vec::new() };
            let done = ops::backup(backend.as_ref(), &prefix, resources.as_deref(), &mut out, &mut |_, _| {}).await;
            if let Err(e) = done {
                // The stream breaks off without a trailer: a restore refuses it.
                tracing::warn!("backup through the admin endpoint: {e}");
                let _ = sender.send(Err(std::io::Error::other(e.to_string())));
            }
        });
        let body = Body::from_stream(tokio_stream(receiver));
        Ok::<_, ApiError>(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn tokio_stream<T: Send + 'static>(mut receiver: mpsc::UnboundedReceiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

async fn restore(State(app): State<Arc<App>>, request: Request) -> Response {
    let access = check_access(&app, &request);
    let body = request.into_body();
    let outcome = async {
        access?;
        // Never beside a migration: a restore writes the store outside the write gate.
        let _running = app.migration.clone().try_lock_owned().map_err(|_| {
            ApiError::new(crate::status::Reason::CONFLICT, "a migration is running on this server; restore after it")
        })?;
        let (backend, _, _) = store(&app).await?;
        // Spooled to a file: a restore reads the backup twice (verify, then write).
        let path = std::env::temp_dir().join(format!("apistore-restore-{}.apistore", uuid::Uuid::new_v4()));
        let spool = async {
            use futures::StreamExt;
            use std::io::Write;
            let mut file = std::fs::File::create(&path).map_err(|e| ApiError::internal(e.to_string()))?;
            let mut body = body.into_data_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the backup: {e}")))?;
                file.write_all(&chunk).map_err(|e| ApiError::internal(e.to_string()))?;
            }
            file.sync_all().map_err(|e| ApiError::internal(e.to_string()))
        };
        let spooled = spool.await;
        let result = match spooled {
            Ok(()) => {
                let reopen_path = path.clone();
                let mut open = move || -> apistore::Result<Box<dyn std::io::BufRead + Send>> {
                    let file = std::fs::File::open(&reopen_path).map_err(apistore::Error::internal)?;
                    Ok(Box::new(std::io::BufReader::new(file)))
                };
                ops::restore(backend.as_ref(), &mut open, &mut |_, _| {}).await.map_err(|e| match e {
                    apistore::Error::BadRequest { message } if message.contains("not empty") => {
                        ApiError::bad_request(format!(
                            "{message}: the server's store already holds objects (the server creates its namespaces \
                             at start); restore with `apistore restore --data-dir DIR` (or into an empty etcd) before \
                             starting the server on it"
                        ))
                    }
                    other => storage_error(other),
                })
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&path);
        let summary = result?;
        Ok::<_, ApiError>(axum::Json(json!({
            "keys": summary.keys,
            "backupRevision": summary.backup_revision,
            "revision": summary.revision,
            "compacted": summary.compacted,
        })))
    }
    .await;
    outcome.map(IntoResponse::into_response).unwrap_or_else(IntoResponse::into_response)
}

/// The body of `POST /apistore/admin/migrate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrateRequest {
    /// The target storage config (the factory's format): its default backend is the target.
    to: Config,
    /// Only this resource (`configmaps`, `apps/deployments`, `deployments.apps`).
    #[serde(default)]
    resource: Option<String>,
}

/// One line of the migration's answer.
fn line(value: Value) -> Result<Bytes, std::io::Error> {
    let mut text = value.to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

/// The served entry of `name`: `resource`, `group/resource` or `resource.group`.
fn find_resource(app: &App, name: &str) -> Option<Arc<Resource>> {
    let (group, plural) = match name.split_once('/') {
        Some((group, plural)) => (group.to_owned(), plural.to_owned()),
        None => match name.split_once('.') {
            Some((plural, group)) => (group.to_owned(), plural.to_owned()),
            None => (String::new(), name.to_owned()),
        },
    };
    app.table.snapshot().iter().find(|r| r.group == group && r.plural == plural).cloned()
}

async fn migrate(State(app): State<Arc<App>>, request: Request) -> Response {
    let access = check_access(&app, &request);
    let body = request.into_body();
    let outcome = async {
        access?;
        let body = crate::routing::read_body(body).await?;
        let wanted: MigrateRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the migrate request does not decode: {e}")))?;
        wanted.to.validate().map_err(|e| ApiError::bad_request(format!("the target storage config: {e}")))?;
        let running = app.migration.clone().try_lock_owned().map_err(|_| {
            ApiError::new(crate::status::Reason::CONFLICT, "a migration is already running on this server")
        })?;
        let resource = match &wanted.resource {
            Some(name) => Some(find_resource(&app, name).ok_or_else(|| {
                ApiError::bad_request(format!("the server serves no resource {name:?} (group/resource)"))
            })?),
            None => None,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let app = app.clone();
        tokio::spawn(async move {
            let _running = running;
            let report = sender.clone();
            let outcome = run_migration(&app, wanted.to, resource, &mut |value| {
                let _ = report.send(line(value));
            })
            .await;
            let last = match outcome {
                Ok(summary) => summary,
                Err(message) => {
                    tracing::warn!("migration: {message}");
                    json!({"phase": "error", "message": message})
                }
            };
            let _ = sender.send(line(last));
        });
        Ok::<_, ApiError>(
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(tokio_stream(receiver)))
                .into_response(),
        )
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Runs a whole migration; the final line's value, or why it failed (the server then stays
/// on its current storage).
async fn run_migration(
    app: &App,
    to: Config,
    resource: Option<Arc<Resource>>,
    report: &mut (dyn FnMut(Value) + Send),
) -> Result<Value, String> {
    let options = app.provider.lock().await.options().clone();
    let config = &options.config;
    let (source_config, what, plan) = match &resource {
        Some(r) => {
            let qualified = r.target("").qualified();
            let own = config.resources.get(&qualified);
            let source = own.and_then(|o| o.backend.clone()).unwrap_or_else(|| config.backend.clone());
            let prefix = own.and_then(|o| o.prefix.clone()).unwrap_or_else(|| config.prefix.clone());
            let what = MigrateOptions { prefix, resources: Some(vec![r.storage_prefix.clone()]), exclude: Vec::new() };
            (source, what, WholeStore::default())
        }
        None => {
            let plan = whole_store(app, config)?;
            let what = MigrateOptions {
                prefix: config.prefix.clone(),
                resources: None,
                exclude: plan.left.iter().map(|(_, prefix)| prefix.clone()).collect(),
            };
            (config.backend.clone(), what, plan)
        }
    };
    let source = registry::open(&source_config).await.map_err(|e| format!("opening the source: {e}"))?;
    let target = registry::open(&to.backend).await.map_err(|e| format!("opening the target: {e}"))?;
    let mut last_report = Instant::now();
    let mut progress = |p: ops::migrate::Progress| {
        if last_report.elapsed() > Duration::from_millis(200) || p.copied == p.total {
            last_report = Instant::now();
            report(json!({"phase": "copy", "copied": p.copied, "total": p.total}));
        }
    };
    let mut migration = Migration::start(source, target, what, &mut progress).await.map_err(|e| e.to_string())?;
    let (copied, copy_time) = migration.copied();
    report(json!({"phase": "copied", "copied": copied, "copySeconds": copy_time.as_secs_f64(),
        "startRevision": migration.start_revision()}));
    let verification = migration.verify().await.map_err(|e| e.to_string())?;
    report(json!({"phase": "verify", "keys": verification.keys, "differences": verification.differences,
        "named": verification.named, "revision": verification.revision}));
    if verification.differences > 0 {
        migration.abort();
        return Err(format!("the verification found {} differences; not cutting over", verification.differences));
    }
    // The new storage config: the target for everything, or for the one resource.
    let mut new_options = options.clone();
    match &resource {
        Some(r) => {
            let entry =
                new_options.config.resources.entry(r.target("").qualified()).or_insert_with(ResourceOverride::default);
            entry.backend = Some(to.backend.clone());
        }
        None => {
            new_options.config.backend = to.backend.clone();
            for qualified in &plan.moving {
                if let Some(entry) = new_options.config.resources.get_mut(qualified) {
                    entry.backend = Some(to.backend.clone());
                }
            }
        }
    }
    let mut provider = StorageProvider::new(&new_options).await.map_err(|e| format!("the new storage config: {e}"))?;
    // The follower catches up (it waited during the verification) while writes still flow,
    // so the cutover only waits for the last few changes.
    migration.catch_up().await.map_err(|e| e.to_string())?;
    report(json!({"phase": "cutover"}));
    // Writes wait from here: in-flight ones drain, new ones queue behind the gate.
    let paused = Instant::now();
    let gate = app.write_gate.write().await;
    let drained = paused.elapsed();
    let summary = match migration.finish().await {
        Ok(summary) => summary,
        Err(e) => {
            drop(gate);
            return Err(format!("cutover: {e}"));
        }
    };
    let finished = paused.elapsed();
    let affected = |r: &Resource| match &resource {
        Some(only) => only.storage_prefix == r.storage_prefix,
        None => !plan.left.iter().any(|(_, prefix)| *prefix == r.storage_prefix),
    };
    let switched = switch(app, &mut provider, &affected).await;
    let retired = match switched {
        Ok(retired) => retired,
        Err(e) => {
            drop(gate);
            return Err(format!("cutover: switching the storage: {e}"));
        }
    };
    *app.provider.lock().await = provider;
    drop(gate);
    let pause = paused.elapsed();
    for old in &retired {
        old.retired.send_replace(true);
    }
    let written = match &app.migrated_config {
        Some(path) => match serde_json::to_vec_pretty(&new_options.config) {
            Ok(text) => std::fs::write(path, text).map(|_| path.display().to_string()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => Err("no data directory".into()),
    };
    tracing::info!(
        "migration done: {} keys copied in {:?}, {} changes followed, writes paused {:?}",
        summary.copied,
        summary.copy_time,
        summary.followed,
        pause
    );
    Ok(json!({
        "phase": "done",
        "copied": summary.copied,
        "copySeconds": summary.copy_time.as_secs_f64(),
        "followed": summary.followed,
        "startRevision": summary.start_revision,
        "sourceRevision": summary.source_revision,
        "cutoverRevision": summary.cutover_revision,
        "differences": summary.verification.differences + summary.tail_verification.differences,
        "verifiedKeys": summary.verification.keys,
        "tailVerifiedKeys": summary.tail_verification.keys,
        "digest": summary.verification.digest,
        "pauseSeconds": pause.as_secs_f64(),
        "drainSeconds": drained.as_secs_f64(),
        "finishSeconds": (finished - drained).as_secs_f64(),
        "switchSeconds": (pause - finished).as_secs_f64(),
        "left": plan.left.iter().map(|(qualified, _)| qualified.clone()).collect::<Vec<_>>(),
        "config": written.as_ref().ok(),
        "configError": written.err(),
    }))
}

/// What a migration of the whole store does with the resources the config gives a backend
/// of their own.
#[derive(Debug, Default)]
struct WholeStore {
    /// Resources on another backend than the default one (qualified name, storage prefix):
    /// they stay where they are — left out of the copy, their override kept.
    left: Vec<(String, String)>,
    /// Overrides naming the default backend itself (qualified names): they move with it.
    moving: Vec<String>,
}

/// The plan of a whole-store migration under `config`.
///
/// Errors: a resource with a key prefix of its own on the default backend (the migration
/// copies the default prefix only; the message names the resource and the way out: move it
/// with `--resource` first).
fn whole_store(app: &App, config: &Config) -> Result<WholeStore, String> {
    let default_prefix = config.prefix.trim_end_matches('/');
    let mut plan = WholeStore::default();
    for (qualified, o) in &config.resources {
        let on_default = o.backend.as_ref().is_none_or(|b| *b == config.backend);
        let own_prefix = o.prefix.as_deref().filter(|p| p.trim_end_matches('/') != default_prefix);
        match (on_default, own_prefix) {
            (true, Some(prefix)) => {
                return Err(format!(
                    "resource {qualified} keeps its keys under a prefix of its own ({prefix}, not {}), which a \
                     migration of the whole store does not copy: move it first with `apistore migrate --resource \
                     {qualified} --to <config>`, then migrate the rest",
                    config.prefix
                ))
            }
            (true, None) => {
                if o.backend.is_some() {
                    plan.moving.push(qualified.clone());
                }
            }
            (false, _) => {
                let mut prefixes: Vec<String> = app
                    .table
                    .snapshot()
                    .iter()
                    .filter(|r| r.target("").qualified() == *qualified)
                    .map(|r| r.storage_prefix.clone())
                    .collect();
                prefixes.sort();
                prefixes.dedup();
                plan.left.extend(prefixes.into_iter().map(|p| (qualified.clone(), p)));
            }
        }
    }
    Ok(plan)
}

/// Rebuilds the storage of every `affected` resource through `provider`, waits until each
/// is ready, and swaps them into the table. Returns the replaced entries (to retire once
/// writes flow again).
async fn switch(
    app: &App,
    provider: &mut StorageProvider,
    affected: &(dyn Fn(&Resource) -> bool + Send + Sync),
) -> Result<Vec<Arc<Resource>>, String> {
    let current = app.table.snapshot();
    let mut replaced = Vec::new();
    let mut next = Vec::with_capacity(current.len());
    for r in current.iter() {
        if !affected(r) {
            next.push(r.clone());
            continue;
        }
        let (storage, prefix) =
            provider.storage(&r.group, &r.plural, r.custom).await.map_err(|e| format!("{}: {e}", r.plural))?;
        next.push(Arc::new(r.with_storage(storage, prefix)));
        replaced.push(r.clone());
    }
    // A watch cache lists its storage first: serve once every new storage is ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in next.iter().filter(|r| replaced.iter().any(|old| old.storage_prefix == r.storage_prefix)) {
        while let Err(e) = r.storage.readiness_check().await {
            if Instant::now() > deadline {
                return Err(format!("the new storage of {} is not ready: {e}", r.plural));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    app.table.update(|table| *table = next);
    Ok(replaced)
}
