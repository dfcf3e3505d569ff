//! What the benchmark examples share: starting the server binary, waiting for it, and the
//! statistics they print.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server a benchmark started (stopped with SIGTERM on drop; its directory removed then).
pub struct Spawned {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// The server's process id.
    #[allow(dead_code)] // not every benchmark reads it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// The server binary beside this example (`target/<profile>/apiserver`), or the one
/// `APISERVER_BINARY` names (e.g. another tree's build, to compare).
pub fn default_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("APISERVER_BINARY") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/<example> → target/<profile>/apiserver
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("no target/<profile> directory")?;
    Ok(profile_dir.join(format!("apiserver{}", std::env::consts::EXE_SUFFIX)))
}

/// Starts [`default_binary`] with `args` plus `--listen` on a free loopback port; `dir` is
/// removed when the server is stopped. Returns the base URL and the handle.
pub fn spawn_server_with(args: &[String], dir: tempfile::TempDir) -> Result<(String, Spawned), String> {
    spawn_binary(&default_binary()?, args, dir).map(|(port, spawned)| (format!("http://127.0.0.1:{port}"), spawned))
}

/// Starts `binary` with `args` plus `--listen` on a free loopback port (logging warnings and
/// errors only); `dir` is removed when the server is stopped. Returns the port and the handle.
pub fn spawn_binary(binary: &Path, args: &[String], dir: tempfile::TempDir) -> Result<(u16, Spawned), String> {
    if !binary.exists() {
        return Err(format!(
            "{} is missing: run `cargo build --release -p apistore-apiserver --bins --examples` first",
            binary.display()
        ));
    }
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = Command::new(binary)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        // Warnings and errors only: an audit line per request would be measured too.
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    Ok((port, Spawned { child, _dir: dir }))
}

/// Waits until `base` answers `/readyz` with success (at most 15 s).
pub async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), String> {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{base} did not become ready"))
}

/// The `p` quantile (0..=1) of `sorted` (nearest rank); zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `d` in milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The median of `values` (sorts them); zero when empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A benchmark's `main`: parses its options with `parse` (a bad one: `name: message`, exit 2),
/// builds a multi-thread tokio runtime (`workers` threads; None: one per core) and runs `run`
/// on it (a failure: `name: message`, exit 1).
pub fn run_main<O, F>(
    name: &str,
    workers: Option<usize>,
    parse: impl FnOnce() -> Result<O, String>,
    run: impl FnOnce(O) -> F,
) where
    F: std::future::Future<Output = Result<(), String>>,
{
    let options = parse().unwrap_or_else(|message| {
        eprintln!("{name}: {message}");
        std::process::exit(2);
    });
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build().unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    });
    if let Err(message) = runtime.block_on(run(options)) {
        eprintln!("{name}: {message}");
        std::process::exit(1);
    }
}
