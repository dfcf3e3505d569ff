//! `apistore`: day-2 operations on a store — backup, restore, status — on any registered
//! backend, chosen as the API server chooses it: an apistore storage config file
//! (`--storage-config`, the factory's TOML/YAML/JSON), `--etcd-servers`, or the embedded sled
//! store in `--data-dir` (default `./apistore-data`, the server's default).
//!
//! ```text
//! apistore backup -o backup.apistore [--resources configmaps,stable.example.com/crontabs]
//! apistore restore -i backup.apistore --data-dir ./restored
//! apistore status
//! ```
//!
//! The embedded store is opened by one process at a time: stop the API server first (its
//! data directory is locked while it runs).
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

/// Backup, restore and status of an apistore store.
#[derive(Debug, Parser)]
#[command(name = "apistore", version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
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
    let (backend_config, prefix) = store_config(&cli.store)?;
    match cli.command {
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
