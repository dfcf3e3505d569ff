//! Test support: real `etcd` processes on free loopback ports, in temporary directories.
//!
//! ```text
//!   EtcdCluster::single()  ──►  1 member  ┐  each member: etcd process (pid), data dir in a
//!   EtcdCluster::start(3)  ──►  3 members ┘  temp dir (/dev/shm when present), client URL,
//!                                            peer URL and a plain-http metrics URL (/health)
//! ```
//!
//! * `etcd` is found through `APISTORE_ETCD_BIN` or on `PATH`; when it is missing every
//!   constructor fails with a message naming the Debian package (`apt-get install etcd-server`).
//! * [`EtcdCluster::start`] returns once the cluster serves linearizable reads (`/health`).
//! * Members are killed by pid when the cluster is dropped; single members can be killed
//!   (SIGKILL), stopped (SIGTERM) and started again on the same ports and data directory.
//! * TLS: [`ClusterConfig::tls`] serves the client URLs over https with client-certificate
//!   authentication; the metrics URL stays plain http so readiness can still be probed.
//!
//! Nothing here mocks etcd: tests talk to the real server.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environment variable naming the etcd binary to run (default: `etcd` on `PATH`).
pub const ETCD_BIN_ENV: &str = "APISTORE_ETCD_BIN";

/// How long a member may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the harness could not provide an etcd.
#[derive(Debug)]
pub struct HarnessError(String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn err(message: impl Into<String>) -> HarnessError {
    HarnessError(message.into())
}

/// Result alias of the harness.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// The etcd binary: `APISTORE_ETCD_BIN`, else `etcd` found on `PATH`.
///
/// Errors: the binary is missing (the message says how to install it).
pub fn etcd_binary() -> Result<PathBuf> {
    find_etcd(std::env::var_os(ETCD_BIN_ENV), std::env::var_os("PATH"))
}

/// [`etcd_binary`] over explicit values of `APISTORE_ETCD_BIN` and `PATH`.
fn find_etcd(bin_env: Option<std::ffi::OsString>, path_var: Option<std::ffi::OsString>) -> Result<PathBuf> {
    if let Some(path) = bin_env {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(err(format!(
            "{ETCD_BIN_ENV}={} does not name an etcd binary; install etcd (Debian: `apt-get install etcd-server`) \
             or point {ETCD_BIN_ENV} at it",
            path.display()
        )));
    }
    for dir in std::env::split_paths(&path_var.unwrap_or_default()) {
        let candidate = dir.join("etcd");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(err(format!(
        "etcd not found on PATH: the etcd backend tests need a real etcd server. Install it with \
         `apt-get install etcd-server` (Debian/Ubuntu) or set {ETCD_BIN_ENV} to an etcd binary"
    )))
}

/// A free TCP port on 127.0.0.1 (bound and released; etcd binds it right after), never one
/// this process handed out before: members started in parallel (a suite starts one etcd per
/// test) would otherwise be given a port the kernel just released to another of them.
fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("cannot bind a loopback port: {e}")))?;
        let port = listener.local_addr().map_err(|e| err(format!("cannot read the bound port: {e}")))?.port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// Whether process `pid` holds the listening sockets of every port in `ports` on 127.0.0.1,
/// read from `/proc/net/tcp` and `/proc/<pid>/fd`; `None` where `/proc` cannot tell (not
/// Linux). A health probe answered on a member's port proves nothing on its own: another
/// process (say a test's server that picked the same free port) may be answering while the
/// member itself is about to exit because it could not bind.
fn holds_listeners(pid: u32, ports: &[u16]) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let sockets: BTreeSet<String> = fds
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    Some(ports.iter().all(|port| {
        // Columns: sl local_address rem_address st ... inode; 0100007F is 127.0.0.1, 0A LISTEN.
        let local = format!("0100007F:{port:04X}");
        table.lines().skip(1).any(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.len() > 9 && columns[1] == local && columns[3] == "0A" && sockets.contains(columns[9])
        })
    }))
}

/// A temporary directory on tmpfs (`/dev/shm`) when available, else the system temp dir.
fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix(prefix);
        b
    };
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return Ok(dir);
        }
    }
    builder.tempdir().map_err(|e| err(format!("cannot create a temp dir: {e}")))
}

/// TLS material for the members' client URLs (PEM files).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signed the server and client certificates.
    pub ca_file: PathBuf,
    /// The server certificate (must cover 127.0.0.1).
    pub cert_file: PathBuf,
    /// The server key.
    pub key_file: PathBuf,
}

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Number of members (1 or 3 usually).
    pub members: usize,
    /// Serve client URLs over https with `--client-cert-auth`.
    pub tls: Option<TlsFiles>,
    /// `--experimental-watch-progress-notify-interval` (etcd's default is 10 minutes).
    pub progress_notify_interval: Duration,
    /// Extra command-line arguments for every member.
    pub extra_args: Vec<String>,
    /// Where the members' data directories live (a new temporary directory inside it); `None`:
    /// tmpfs (`/dev/shm`) when present. A benchmark sets it to compare with another store on
    /// the same disk.
    pub base_dir: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            members: 1,
            tls: None,
            progress_notify_interval: Duration::from_secs(1),
            extra_args: Vec::new(),
            base_dir: None,
        }
    }
}

/// One member: its ports, data dir and (while running) process.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    data_dir: PathBuf,
    log_file: PathBuf,
    process: Option<Child>,
}

impl Member {
    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }
}

/// A running etcd cluster (one or more members). Dropping it kills every member.
pub struct EtcdCluster {
    binary: PathBuf,
    config: ClusterConfig,
    token: String,
    members: Vec<Member>,
    // Declared last so the processes are gone before the directory is removed.
    dir: tempfile::TempDir,
}

impl fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCluster")
            .field("endpoints", &self.endpoints())
            .field("pids", &self.members.iter().map(Member::pid).collect::<Vec<_>>())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl EtcdCluster {
    /// Starts one member and waits until it is healthy.
    ///
    /// Errors: etcd missing (with the install instruction), it did not become healthy.
    pub fn single() -> Result<Self> {
        Self::start(ClusterConfig::default())
    }

    /// Starts three members and waits until the cluster is healthy.
    pub fn three() -> Result<Self> {
        Self::start(ClusterConfig { members: 3, ..ClusterConfig::default() })
    }

    /// Starts a cluster as configured and waits until every member is healthy. Port clashes
    /// (another process took a probed port) are retried with new ports.
    pub fn start(config: ClusterConfig) -> Result<Self> {
        let binary = etcd_binary()?;
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_start(&binary, &config) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| err("etcd did not start")))
    }

    fn try_start(binary: &Path, config: &ClusterConfig) -> Result<Self> {
        if config.members == 0 {
            return Err(err("a cluster needs at least one member"));
        }
        let dir = match &config.base_dir {
            Some(base) => tempfile::Builder::new()
                .prefix("apistore-etcd-")
                .tempdir_in(base)
                .map_err(|e| err(format!("cannot create a temp dir in {}: {e}", base.display())))?,
            None => temp_dir("apistore-etcd-")?,
        };
        let token = format!(
            "apistore-{}-{}",
            std::process::id(),
            dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        );
        let mut members = Vec::with_capacity(config.members);
        for i in 0..config.members {
            let name = format!("m{i}");
            members.push(Member {
                data_dir: dir.path().join(&name),
                log_file: dir.path().join(format!("{name}.log")),
                name,
                client_port: free_port()?,
                peer_port: free_port()?,
                metrics_port: free_port()?,
                process: None,
            });
        }
        let mut cluster = EtcdCluster { binary: binary.to_owned(), config: config.clone(), token, members, dir };
        for i in 0..cluster.members.len() {
            cluster.spawn(i, "new")?;
        }
        for i in 0..cluster.members.len() {
            cluster.wait_healthy(i)?;
        }
        Ok(cluster)
    }

    fn scheme(&self) -> &'static str {
        if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, index: usize, state: &str) -> Result<()> {
        let initial_cluster = self.initial_cluster();
        let scheme = self.scheme();
        let member = &self.members[index];
        let client_url = format!("{scheme}://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let metrics_url = format!("http://127.0.0.1:{}", member.metrics_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log_file)
            .map_err(|e| err(format!("cannot open {}: {e}", member.log_file.display())))?;
        let log_err = log.try_clone().map_err(|e| err(format!("cannot clone the log file handle: {e}")))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--listen-metrics-urls")
            .arg(&metrics_url)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--experimental-watch-progress-notify-interval")
            .arg(format!("{}ms", self.config.progress_notify_interval.as_millis().max(1)))
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("warn");
        if let Some(tls) = &self.config.tls {
            command
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&tls.ca_file)
                .arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file);
        }
        command.args(&self.config.extra_args);
        command.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
        let child = command.spawn().map_err(|e| err(format!("cannot start {}: {e}", self.binary.display())))?;
        self.members[index].process = Some(child);
        Ok(())
    }

    /// Waits until member `index` reports healthy on its metrics URL.
    fn wait_healthy(&mut self, index: usize) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.members[index].process.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.members[index].process = None;
                    return Err(err(format!(
                        "etcd member {} exited during start-up ({status}); log:\n{}",
                        self.members[index].name,
                        self.log_tail(index)
                    )));
                }
            } else {
                return Err(err(format!("etcd member {} is not running", self.members[index].name)));
            }
            if self.member_healthy(index) && self.member_holds_its_ports(index) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "etcd member {} not healthy after {START_TIMEOUT:?}; log:\n{}",
                    self.members[index].name,
                    self.log_tail(index)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether member `index`'s own process listens on its client, peer and metrics ports
    /// (true where `/proc` cannot tell).
    fn member_holds_its_ports(&self, index: usize) -> bool {
        let member = &self.members[index];
        let Some(pid) = member.pid() else {
            return false;
        };
        holds_listeners(pid, &[member.client_port, member.peer_port, member.metrics_port]).unwrap_or(true)
    }

    /// True when member `index` answers `/health` with `"health":"true"` (it has a leader
    /// and can serve a linearizable read).
    pub fn member_healthy(&self, index: usize) -> bool {
        match self.members.get(index) {
            Some(m) => http_get(m.metrics_port, "/health")
                .is_some_and(|body| body.replace(' ', "").contains("\"health\":\"true\"")),
            None => false,
        }
    }

    /// True when member `index` is running and is the raft leader (from its metrics).
    pub fn is_leader(&self, index: usize) -> bool {
        match self.members.get(index) {
            Some(m) if m.process.is_some() => http_get(m.metrics_port, "/metrics")
                .is_some_and(|body| body.lines().any(|line| line.trim() == "etcd_server_is_leader 1")),
            _ => false,
        }
    }

    /// The index of the current leader, waiting up to `timeout` for one to be elected.
    pub fn leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = (0..self.members.len()).find(|&i| self.is_leader(i)) {
                return Some(i);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Client URLs of every member (`http://127.0.0.1:<port>` or `https://...`).
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Client URL of member `index`. Panics if `index` is out of range (test code).
    pub fn endpoint(&self, index: usize) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.members[index].client_port)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Process id of member `index` while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members.get(index).and_then(Member::pid)
    }

    /// The cluster's temporary directory (data dirs and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs member `index` (by pid) and reaps it. A no-op when it is not running.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members.get_mut(index).and_then(|m| m.process.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `index` gracefully (SIGTERM by pid, SIGKILL after 10 s).
    pub fn stop(&mut self, index: usize) {
        let Some(mut child) = self.members.get_mut(index).and_then(|m| m.process.take()) else {
            return;
        };
        let terminated =
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while terminated && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts member `index` again (same name, ports and data directory) without waiting
    /// for it to become healthy (with a majority down, it cannot be until others return).
    pub fn start_member(&mut self, index: usize) -> Result<()> {
        if index >= self.members.len() {
            return Err(err(format!("no member {index}")));
        }
        if self.members[index].process.is_some() {
            return Ok(());
        }
        self.spawn(index, "existing")
    }

    /// Starts member `index` again and waits until it is healthy.
    pub fn restart(&mut self, index: usize) -> Result<()> {
        self.start_member(index)?;
        self.wait_healthy(index)
    }

    /// Waits until every running member is healthy.
    pub fn wait_all_healthy(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].process.is_some() {
                self.wait_healthy(i)?;
            }
        }
        Ok(())
    }

    /// The last lines of member `index`'s log.
    pub fn log_tail(&self, index: usize) -> String {
        let Some(member) = self.members.get(index) else {
            return String::new();
        };
        let text = std::fs::read_to_string(&member.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A tiny HTTP/1.0 GET against 127.0.0.1:`port` with short timeouts; the body on 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.lines().next()?.contains(" 200").then(|| body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_package() {
        let empty = tempfile::tempdir().expect("temp dir");
        let message =
            find_etcd(None, Some(empty.path().as_os_str().to_owned())).expect_err("no etcd there").to_string();
        assert!(message.contains("apt-get install etcd-server"), "{message}");
        let bogus = empty.path().join("no-etcd");
        let message = find_etcd(Some(bogus.into_os_string()), None).expect_err("bogus binary").to_string();
        assert!(message.contains("apt-get install etcd-server") && message.contains(ETCD_BIN_ENV), "{message}");
    }

    #[test]
    fn binary_found_on_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("etcd"), b"").expect("fake file");
        let found = find_etcd(None, Some(dir.path().as_os_str().to_owned())).expect("found");
        assert_eq!(found, dir.path().join("etcd"));
    }

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().expect("free port")).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }

    #[test]
    fn listeners_are_attributed_to_the_process_holding_them() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let held = listener.local_addr().expect("addr").port();
        let released = free_port().expect("free port");
        let me = std::process::id();
        assert_eq!(holds_listeners(me, &[held]), Some(true));
        assert_eq!(holds_listeners(me, &[held, released]), Some(false));
        // Another process does not hold this process's listener.
        let mut child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
        assert_eq!(holds_listeners(child.id(), &[held]), Some(false));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn single_member_starts_and_stops() {
        let mut cluster = EtcdCluster::single().expect("start etcd");
        assert!(cluster.member_healthy(0));
        assert!(cluster.member_holds_its_ports(0));
        assert_eq!(cluster.leader(Duration::from_secs(5)), Some(0));
        let pid = cluster.pid(0).expect("running");
        cluster.kill(0);
        assert!(cluster.pid(0).is_none());
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} still exists after kill");
        assert!(!cluster.member_healthy(0));
        cluster.restart(0).expect("restart");
        assert!(cluster.member_healthy(0));
    }
}
