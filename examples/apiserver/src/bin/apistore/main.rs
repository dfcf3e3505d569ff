//! `apistore`: day-2 operations on a store — backup, restore, status, migrate — on any
//! registered backend, chosen as the API server chooses it: an apistore storage config file
//! (`--storage-config`, the factory's TOML/YAML/JSON), `--etcd-servers`, or the embedded sled
//! store in `--data-dir` (default `./apistore-data`, the server's default); or, with
//! `--server URL`, the store a running API server holds open, through its admin endpoints.
//!
//! ```text
//! apistore backup -o backup.apistore [--resources configmaps,stable.example.com/crontabs]
//! apistore restore -i backup.apistore --data-dir ./restored
//! apistore status
//! apistore --server http://127.0.0.1:8080 backup -o backup.apistore
//! apistore --server http://127.0.0.1:8080 migrate --to etcd.toml [--resource apps/deployments]
//! ```
//!
//! The embedded store is opened by one process at a time: while the API server runs, use
//! `--server` (credentials: `--token`, `--client-cert`/`--client-key`,
//! `--certificate-authority`, or `--kubeconfig`).
#![forbid(unsafe_code)]

#[cfg(feature = "etcd")]
use apistore_etcd as _;
use apistore_memory as _;
use apistore_sled as _;

use std::io::{BufRead, BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use apistore::config::Config;
use apistore::kv::KvBackend;
use apistore::ops;
use apistore::registry::{self, BackendConfig};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

mod remote;

use axum::body::Body;
use axum::http::Method;

use remote::{Remote, ServerArgs};

/// Backup, restore and status of an apistore store.
#[derive(Debug, Parser)]
#[command(name = "apistore", version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which store.
#[derive(Debug, Args)]
struct StoreArgs {
    /// apistore storage config (TOML, YAML or JSON): its default backend and key prefix.
    #[arg(long, global = true, value_name = "FILE")]
    storage_config: Option<PathBuf>,
    /// etcd endpoints (comma-separated), as kube-apiserver's --etcd-servers.
    #[arg(long, global = true, value_name = "URLS", value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The embedded sled store's directory (when neither of the above is given).
    #[arg(long, global = true, value_name = "DIR", default_value = "./apistore-data")]
    data_dir: PathBuf,
    /// Key prefix (kube's --etcd-prefix); default: the config's, else /registry.
    #[arg(long, global = true, value_name = "PREFIX")]
    etcd_prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a backup consistent at one revision while the store keeps serving writes.
    Backup {
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Only these resources, by storage prefix (configmaps, stable.example.com/crontabs).
        #[arg(long, value_delimiter = ',')]
        resources: Vec<String>,
    },
    /// Restores a backup into an empty store: revisions continue above the backup's and
    /// everything older is compacted, so old resourceVersions get 410 Gone.
    Restore {
        /// Backup file.
        #[arg(short, long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Revision, compaction revision, objects and bytes per resource.
    Status,
    /// Moves the running server's store (or one resource) to another backend while it keeps
    /// serving: copy at one revision, follow the changes, verify key by key, then a cutover
    /// in which writes wait a moment. Needs --server.
    Migrate {
        /// The target storage config (TOML, YAML or JSON): its default backend is the target.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Only this resource (group/resource: configmaps, apps/deployments).
        #[arg(long, value_name = "GROUP/RESOURCE")]
        resource: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    apistore_sled::register();
    #[cfg(feature = "etcd")]
    apistore_etcd::register();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => fail(&format!("starting the async runtime: {e}")),
    };
    if let Err(message) = runtime.block_on(run(cli)) {
        fail(&message);
    }
}

fn fail(message: &str) -> ! {
    eprintln!("apistore: {message}");
    std::process::exit(1);
}

/// The backend and key prefix the arguments name.
fn store_config(args: &StoreArgs) -> Result<(BackendConfig, String), String> {
    let (backend, prefix) = if let Some(path) = &args.storage_config {
        let config = Config::load(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        (config.backend, config.prefix)
    } else if !args.etcd_servers.is_empty() {
        (BackendConfig::new("etcd3").with_option("endpoints", args.etcd_servers.clone()), "/registry".to_owned())
    } else {
        let path = args.data_dir.display().to_string();
        (BackendConfig::new("sled").with_option("path", path), "/registry".to_owned())
    };
    Ok((backend, args.etcd_prefix.clone().unwrap_or(prefix)))
}

async fn open(backend: &BackendConfig) -> Result<Arc<dyn KvBackend>, String> {
    registry::open(backend).await.map_err(|e| {
        let text = e.to_string();
        if backend.backend == "sled" && text.contains("lock") {
            format!("opening the sled store: {text} (is the API server running on it? stop it first)")
        } else if backend.backend == "etcd3" && !cfg!(feature = "etcd") {
            format!("{text} (this build has no etcd backend: build with --features etcd)")
        } else {
            text
        }
    })
}

fn bar(verb: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} keys ({eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(verb.to_owned());
    bar
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Some(remote) = Remote::from_args(&cli.server)? {
        return run_remote(&remote, cli.command).await;
    }
    let (backend_config, prefix) = store_config(&cli.store)?;
    match cli.command {
        Command::Migrate { .. } => {
            return Err("migrate runs inside the API server that holds the store: give --server URL".into())
        }
        Command::Backup { output, resources } => {
            let backend = open(&backend_config).await?;
            let file = std::fs::File::create(&output).map_err(|e| format!("creating {}: {e}", output.display()))?;
            let mut out = BufWriter::new(file);
            let progress = bar("backup");
            let mut report = |done: u64, total: u64| {
                progress.set_length(total);
                progress.set_position(done);
            };
            let subset = (!resources.is_empty()).then_some(resources.as_slice());
            let summary = ops::backup(backend.as_ref(), &prefix, subset, &mut out, &mut report)
                .await
                .map_err(|e| format!("backup: {e}"))?;
            progress.finish_and_clear();
            println!(
                "backed up {} keys ({} bytes) at revision {} (compacted {}) to {}",
                summary.trailer.keys,
                summary.trailer.bytes,
                summary.revision,
                summary.compact_revision,
                output.display()
            );
        }
        Command::Restore { input } => {
            let backend = open(&backend_config).await?;
            let path = input.clone();
            let mut reopen = move || -> apistore::Result<Box<dyn BufRead + Send>> {
                let file = std::fs::File::open(&path)
                    .map_err(|e| apistore::Error::BadRequest { message: format!("opening {}: {e}", path.display()) })?;
                Ok(Box::new(BufReader::new(file)))
            };
            let progress = bar("restore");
            let mut report = |done: u64, total: u64| {
                progress.set_length(total);
                progress.set_position(done);
            };
            let summary =
                ops::restore(backend.as_ref(), &mut reopen, &mut report).await.map_err(|e| format!("restore: {e}"))?;
            progress.finish_and_clear();
            println!(
                "restored {} keys from {}: backup revision {}, now at revision {} (history before it compacted)",
                summary.keys,
                input.display(),
                summary.backup_revision,
                summary.revision
            );
        }
        Command::Status => {
            let backend = open(&backend_config).await?;
            let status = ops::status(backend.as_ref(), &prefix).await.map_err(|e| format!("status: {e}"))?;
            println!("backend:     {}", backend_config.backend);
            println!("revision:    {}", status.revision);
            println!("compacted:   {}", status.compacted);
            let total = status.total();
            println!("in use:      {} objects, {} bytes", total.objects, total.bytes);
            let space = &status.space;
            println!("on disk:     {} bytes ({} bytes in use by the backend)", space.db_bytes, space.in_use_bytes);
            if space.quota_bytes > 0 {
                println!("quota:       {} bytes", space.quota_bytes);
            }
            println!(
                "alarms:      {}",
                if space.alarms.is_empty() { "none".to_owned() } else { space.alarms.join(", ") }
            );
            println!("{:<40} {:>10} {:>12}", "RESOURCE", "OBJECTS", "BYTES");
            for (resource, r) in &status.resources {
                println!("{resource:<40} {:>10} {:>12}", r.objects, r.bytes);
            }
        }
    }
    Ok(())
}

/// The subcommands through a running server's admin endpoints.
async fn run_remote(remote: &Remote, command: Command) -> Result<(), String> {
    use futures::StreamExt;
    use std::io::Write;
    match command {
        Command::Backup { output, resources } => {
            let path = if resources.is_empty() {
                "backup".to_owned()
            } else {
                format!("backup?resources={}", resources.join(","))
            };
            let response = remote.send(Method::GET, &path, Body::empty()).await?;
            let file = std::fs::File::create(&output).map_err(|e| format!("creating {}: {e}", output.display()))?;
            let mut out = BufWriter::new(file);
            let progress = ProgressBar::new_spinner();
            progress.set_message("backup");
            let mut stream = response.into_body().into_data_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| format!("backup: the stream broke off: {e}"))?;
                out.write_all(&chunk).map_err(|e| format!("writing {}: {e}", output.display()))?;
                bytes += chunk.len() as u64;
                progress.set_message(format!("backup: {bytes} bytes"));
            }
            out.flush().map_err(|e| format!("writing {}: {e}", output.display()))?;
            progress.finish_and_clear();
            // Verified like a restore would: every checksum and the trailer's counts.
            let file = std::fs::File::open(&output).map_err(|e| format!("reading {}: {e}", output.display()))?;
            let (header, trailer) = apistore::ops::restore::verify(&mut BufReader::new(file))
                .map_err(|e| format!("backup: the stream is incomplete: {e}"))?;
            println!(
                "backed up {} keys ({} bytes) at revision {} (compacted {}) to {}",
                trailer.keys,
                trailer.bytes,
                header.revision,
                header.compact_revision,
                output.display()
            );
        }
        Command::Restore { input } => {
            let file = tokio::fs::File::open(&input).await.map_err(|e| format!("opening {}: {e}", input.display()))?;
            let body = Body::from_stream(tokio_util_stream(file));
            let response = remote.send(Method::POST, "restore", body).await?;
            let summary = json_body(response).await.map_err(|e| format!("restore: {e}"))?;
            println!(
                "restored {} keys from {}: backup revision {}, now at revision {} (history before it compacted)",
                summary["keys"],
                input.display(),
                summary["backupRevision"],
                summary["revision"]
            );
        }
        Command::Status => {
            let response = remote.send(Method::GET, "status", Body::empty()).await?;
            let status = json_body(response).await.map_err(|e| format!("status: {e}"))?;
            println!("backend:     {}", status["backend"].as_str().unwrap_or_default());
            println!("revision:    {}", status["revision"]);
            println!("compacted:   {}", status["compacted"]);
            println!("in use:      {} objects, {} bytes", status["objects"], status["bytes"]);
            let space = &status["space"];
            println!("on disk:     {} bytes ({} bytes in use by the backend)", space["dbBytes"], space["inUseBytes"]);
            if space["quotaBytes"].as_u64().unwrap_or(0) > 0 {
                println!("quota:       {} bytes", space["quotaBytes"]);
            }
            let alarms: Vec<&str> =
                space["alarms"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
            println!("alarms:      {}", if alarms.is_empty() { "none".to_owned() } else { alarms.join(", ") });
            println!("{:<40} {:>10} {:>12}", "RESOURCE", "OBJECTS", "BYTES");
            if let Some(resources) = status["resources"].as_object() {
                for (resource, r) in resources {
                    println!("{resource:<40} {:>10} {:>12}", r["objects"], r["bytes"]);
                }
            }
        }
        Command::Migrate { to, resource } => {
            let config = Config::load(&to).map_err(|e| format!("reading {}: {e}", to.display()))?;
            let body = serde_json::json!({ "to": config, "resource": resource });
            let response = remote.send(Method::POST, "migrate", Body::from(body.to_string())).await?;
            let progress = bar("migrate");
            let mut stream = response.into_body().into_data_stream();
            let mut pending = Vec::new();
            let mut last = serde_json::Value::Null;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| format!("migrate: the server's answer broke off: {e}"))?;
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
                    match event["phase"].as_str().unwrap_or_default() {
                        "copy" => {
                            progress.set_length(event["total"].as_u64().unwrap_or(0));
                            progress.set_position(event["copied"].as_u64().unwrap_or(0));
                        }
                        "verify" => progress.set_message(format!(
                            "verified {} keys, {} differences",
                            event["keys"], event["differences"]
                        )),
                        "cutover" => progress.set_message("cutover: writes wait".to_owned()),
                        _ => {}
                    }
                    last = event;
                }
            }
            progress.finish_and_clear();
            match last["phase"].as_str() {
                Some("done") => {
                    println!(
                        "migrated {} keys (copied in {:.3} s), followed {} changes, {} differences; writes paused {:.3} s \
                         (drain {:.3} s, tail and verify {:.3} s, storage switch {:.3} s); \
                         source revision {}, target continues at {} (older revisions compacted)",
                        last["copied"],
                        last["copySeconds"].as_f64().unwrap_or(0.0),
                        last["followed"],
                        last["differences"],
                        last["pauseSeconds"].as_f64().unwrap_or(0.0),
                        last["drainSeconds"].as_f64().unwrap_or(0.0),
                        last["finishSeconds"].as_f64().unwrap_or(0.0),
                        last["switchSeconds"].as_f64().unwrap_or(0.0),
                        last["sourceRevision"],
                        last["cutoverRevision"]
                    );
                    let left: Vec<&str> = last["left"]
                        .as_array()
                        .map(|l| l.iter().filter_map(|r| r.as_str()).collect())
                        .unwrap_or_default();
                    if !left.is_empty() {
                        println!("left where they are (each has a backend of its own): {}", left.join(", "));
                    }
                    match last["config"].as_str() {
                        Some(path) => println!("the server now runs on the target; its storage config is in {path} (a restart on the same data directory uses it)"),
                        None => println!("the server now runs on the target; writing its storage config failed: {}", last["configError"]),
                    }
                }
                Some("error") => return Err(format!("migrate: {}", last["message"].as_str().unwrap_or_default())),
                _ => return Err("migrate: the server's answer ended early (is the server still running?)".into()),
            }
        }
    }
    Ok(())
}

/// A JSON response body.
async fn json_body(response: remote::Response) -> Result<serde_json::Value, String> {
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The bytes of `file` as a stream (for a streamed request body).
fn tokio_util_stream(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}
