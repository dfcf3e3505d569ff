//! The HTTP server: routes, shared state, health and metrics endpoints, and graceful
//! shutdown (stop accepting, finish in-flight requests, end watches, then drop every
//! storage so the backends flush).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tower::Layer;

use crate::backend::StorageProvider;
use crate::config::ServerConfig;
use crate::crds;
use crate::discovery;
use apistore::layers::StorageMetrics;

use crate::metrics::Metrics;
use crate::namespaces;
use crate::resources::ResourceTable;
use crate::routing;
use crate::status::ApiError;

/// Shared state of every request.
pub struct App {
    /// The served resources and their storages.
    pub table: ResourceTable,
    /// HTTP request metrics, and the registry `/metrics` renders (the storage metrics too).
    pub metrics: Metrics,
    /// Storage call metrics (apistore's `MetricsLayer` over every storage).
    pub storage_metrics: StorageMetrics,
    /// Flips to true when the server shuts down (ends open watches).
    pub shutdown: signal::Receiver<bool>,
    /// The address clients reach the server at (for `/api`).
    pub server_address: String,
    /// Opens storages at run time (for CustomResourceDefinitions).
    pub provider: tokio::sync::Mutex<StorageProvider>,
    /// Authentication and authorization of every request.
    pub security: crate::auth::Security,
    /// Every write (POST, PUT, PATCH, DELETE of `/api`, `/apis`) holds it shared while it
    /// runs; a migration's cutover holds it exclusively: in-flight writes drain, new ones
    /// wait (none fails).
    pub write_gate: Arc<tokio::sync::RwLock<()>>,
    /// Held while a migration runs (one at a time).
    pub migration: Arc<tokio::sync::Mutex<()>>,
    /// Where a migration writes the new storage config (a restart picks it up).
    pub migrated_config: Option<std::path::PathBuf>,
}

/// A request's hold of [`App::write_gate`] (shared), which a long write lets go of between
/// its steps ([`GateHold::yield_to_cutover`]) so that a cutover waits for one step, not the
/// whole request. A request that only reads holds nothing.
pub struct GateHold {
    gate: Arc<tokio::sync::RwLock<()>>,
    held: tokio::sync::Mutex<Option<tokio::sync::OwnedRwLockReadGuard<()>>>,
}

impl GateHold {
    /// Takes the gate (waiting while a cutover holds it) when `writes`, else nothing.
    pub async fn take(gate: &Arc<tokio::sync::RwLock<()>>, writes: bool) -> GateHold {
        let held = if writes { Some(gate.clone().read_owned().await) } else { None };
        GateHold { gate: gate.clone(), held: tokio::sync::Mutex::new(held) }
    }

    /// Lets a waiting cutover run, then takes the gate again. Whatever storage the caller
    /// writes next it must look up again (the cutover may have replaced it). Nothing when
    /// the gate is not held.
    pub async fn yield_to_cutover(&self) {
        let mut held = self.held.lock().await;
        if held.take().is_some() {
            *held = Some(self.gate.clone().read_owned().await);
        }
    }
}

fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.into()).into_response()
}

async fn version() -> Response {
    axum::Json(discovery::version()).into_response()
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok")
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if *app.shutdown.borrow() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "[-]shutdown failed: server is shutting down\nreadyz check failed",
        );
    }
    match readiness(&app).await {
        None => text(StatusCode::OK, "ok"),
        Some(problem) => {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("[-]storage failed: {problem}\nreadyz check failed"))
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], app.metrics.render()).into_response()
}

async fn openapi_v2(request: Request) -> Response {
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("protobuf") {
        // An empty protobuf message is the empty OpenAPI v2 Document.
        let media = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
        return (StatusCode::OK, [(header::CONTENT_TYPE, media)], Vec::<u8>::new()).into_response();
    }
    axum::Json(discovery::openapi_v2_json()).into_response()
}

async fn not_found() -> Response {
    ApiError::not_found_path().into_response()
}

/// The router of the whole server.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi/v2", get(openapi_v2))
        .route("/api", axum::routing::any(routing::api))
        .route("/apis", axum::routing::any(routing::api))
        .route("/api/{*rest}", axum::routing::any(routing::api))
        .route("/apis/{*rest}", axum::routing::any(routing::api))
        .merge(crate::admin::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::auth::filter))
        .with_state(app)
}

/// Health of every storage (`/readyz`): None when all are ready, else the first failure.
pub async fn readiness(app: &App) -> Option<String> {
    for resource in app.table.distinct_storages() {
        if let Err(e) = resource.storage.readiness_check().await {
            return Some(format!("storage of {}: {e}", resource.plural));
        }
    }
    None
}

/// Waits for Ctrl-C or SIGTERM.
async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Opens the storages, serves until Ctrl-C/SIGTERM, then shuts down gracefully.
///
/// Errors: a message when a backend cannot be opened or the address cannot be bound.
pub async fn run(config: ServerConfig) -> Result<(), String> {
    // The security files first: a bad one stops the start before anything is opened.
    let security = crate::auth::Security::load(config.security.clone())?;
    let tls = match (&config.security.tls_cert_file, &config.security.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            Some(crate::auth::tls::server_config(cert, key, config.security.client_ca_file.as_deref())?)
        }
        _ => None,
    };
    let mut provider = StorageProvider::new(&config.storage).await.map_err(|e| format!("storage: {e}"))?;
    let table = ResourceTable::open(&mut provider, &config.custom_resources, config.event_ttl_seconds).await?;
    let storage_metrics = provider.metrics();
    let listener = TcpListener::bind(config.listen).await.map_err(|e| format!("binding {}: {e}", config.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, shutdown) = signal::channel(false);
    let app = Arc::new(App {
        table,
        metrics: Metrics::with_storage(&storage_metrics),
        storage_metrics: storage_metrics.clone(),
        shutdown,
        server_address: local.to_string(),
        provider: tokio::sync::Mutex::new(provider),
        security,
        write_gate: Arc::new(tokio::sync::RwLock::new(())),
        migration: Arc::new(tokio::sync::Mutex::new(())),
        migrated_config: config.migrated_config.clone(),
    });
    // Object counts for `apiserver_storage_objects`, as kube-apiserver polls them.
    let storages =
        app.table.distinct_storages().into_iter().map(|r| (r.target("").qualified(), r.storage.clone())).collect();
    let poller = app.storage_metrics.poll_object_counts(storages, std::time::Duration::from_secs(10));
    // Bytes on disk, in use, quota and alarms of every backend.
    let backends = app.provider.lock().await.backends().await.map_err(|e| format!("storage: {e}"))?;
    let space_poller = app.metrics.space().poll(backends, std::time::Duration::from_secs(5));
    for namespace in namespaces::INITIAL {
        namespaces::ensure_exists(&app, namespace).await.map_err(|e| format!("creating namespace {namespace}: {e}"))?;
    }
    if config.security.authorization_modes.contains(&crate::auth::Mode::Rbac) {
        crate::auth::rbac::ensure_bootstrap_policy(&app).await.map_err(|e| format!("RBAC bootstrap policy: {e}"))?;
    }
    let crd_controller = crds::start(app.clone()).await;
    eprintln!(
        "apiserver: serving on {}://{local} (storage: {}; backends registered: {})",
        if tls.is_some() { "https" } else { "http" },
        config.storage.config.backend.backend,
        apistore::registry::names().join(", ")
    );
    eprintln!("apiserver: {}", config.security.describe());
    if !local.ip().is_loopback() && !config.security.authenticates() {
        eprintln!(
            "apiserver: WARNING: --insecure-allow-any: serving {local} without authentication; anyone who \
             can reach it can read and write everything"
        );
    }
    let service = tower::util::MapRequestLayer::new(routing::trim_trailing_slash).layer(router(app.clone()));
    let shutdown = async move {
        termination().await;
        eprintln!("apiserver: shutting down: no new connections, finishing in-flight requests");
        let _ = stop.send(true);
    };
    let served = match tls {
        Some(tls) => crate::auth::tls::serve(listener, tls, service, shutdown).await,
        None => axum::serve(
            axum::serve::ListenerExt::tap_io(listener, |stream| no_delay(stream)),
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(service),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("serving: {e}")),
    };
    poller.abort();
    let _ = poller.await;
    space_poller.abort();
    let _ = space_poller.await;
    crd_controller.abort();
    let _ = crd_controller.await;
    served?;
    // Every connection is closed; connection tasks release their handles of the state
    // right after. Dropping the last handle of each storage closes its backend (sled
    // flushes on drop).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Arc::strong_count(&app) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let released = Arc::strong_count(&app) == 1;
    drop(app);
    if released {
        eprintln!("apiserver: stopped; storages closed and flushed");
    } else {
        eprintln!("apiserver: stopped; storages close when the runtime ends");
    }
    Ok(())
}

/// Sets TCP_NODELAY on an accepted connection. A streamed response (a list written in chunks,
/// a watch) ends with small writes; with Nagle's algorithm they wait for the client's delayed
/// ACK (40 ms on Linux) behind the previous segment. kube-apiserver (Go) sets it on every
/// connection too.
pub fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("setting TCP_NODELAY: {e}");
    }
}
