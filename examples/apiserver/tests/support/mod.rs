//! Shared harness of the API server tests: starts the example server binary
//! (`examples/apiserver`) on a free loopback port with a temporary data directory, and
//! stops it (SIGTERM, then SIGKILL) when dropped.
#![allow(dead_code)]

pub mod clients;
pub mod kubectl;
pub mod writers;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The backend the tests run the server on (`APISERVER_TEST_BACKEND`, default: the server's
/// default, sled when it is registered, else memory).
pub fn test_backend() -> Option<String> {
    std::env::var("APISERVER_TEST_BACKEND").ok().filter(|b| !b.is_empty())
}

/// The server binary cargo built for this test (`CARGO_BIN_EXE_apiserver`: same profile and
/// features as the test).
pub fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_apiserver"))
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
    /// The data directory (kept until the server is dropped).
    pub data_dir: tempfile::TempDir,
    /// The server's stderr, in a directory of its own (not the data directory, which a test
    /// may fill up).
    log: PathBuf,
    _log_dir: tempfile::TempDir,
    /// The CA the HTTPS server's certificate chains to (None: plain HTTP).
    tls_ca: Option<PathBuf>,
}

impl Server {
    /// Starts a server with a fresh data directory.
    pub fn start(extra_args: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        Server::start_in(data_dir, extra_args)
    }

    /// Starts a server on `data_dir` (to test restarts).
    pub fn start_in(data_dir: tempfile::TempDir, extra_args: &[&str]) -> Server {
        let mut server = Server::spawn(data_dir, extra_args, None);
        server.wait_ready();
        server
    }

    /// Starts an HTTPS server (`extra_args` carry the TLS flags) whose certificate chains to
    /// the PEM CA `ca`; waits on `/readyz` over TLS.
    pub fn start_tls(extra_args: &[&str], ca: &std::path::Path) -> Server {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let mut server = Server::spawn(data_dir, extra_args, Some(ca.to_path_buf()));
        server.wait_ready();
        server
    }

    /// Runs the server binary with `extra_args` and waits for it to exit (at most 30 s): its
    /// exit status and stderr (for flags that must stop the start).
    pub fn run_to_exit(extra_args: &[&str]) -> (ExitStatus, String) {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let mut server = Server::spawn(data_dir, extra_args, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    server.child = None;
                    return (status, server.log_text());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the apiserver kept running; log:\n{}", server.log_text());
    }

    fn spawn(data_dir: tempfile::TempDir, extra_args: &[&str], tls_ca: Option<PathBuf>) -> Server {
        let port = free_port();
        let log_dir = tempfile::tempdir().expect("temporary log directory");
        let log = log_dir.path().join(format!("server-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let mut command = Command::new(server_binary());
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir.path().join("data"))
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(backend) = test_backend() {
            if !extra_args.contains(&"--backend") && !extra_args.contains(&"--config") {
                command.arg("--backend").arg(backend);
            }
        }
        let child = command.spawn().expect("starting the apiserver example");
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        Server {
            child: Some(child),
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            data_dir,
            log,
            _log_dir: log_dir,
            tls_ca,
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the apiserver exited early ({status}); log:\n{}", self.log_text());
                }
            }
            let ready = match &self.tls_ca {
                None => raw_get(self.port, "/readyz"),
                Some(ca) => tls_get(self.port, "/readyz", ca, &[]),
            };
            if matches!(ready, Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the apiserver did not become ready in 30 s; log:\n{}", self.log_text());
    }

    /// The server's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (at most `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Stops the server and hands back its data directory (for a restart).
    pub fn stop(mut self) -> tempfile::TempDir {
        let status = self.terminate(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "the apiserver did not exit cleanly on SIGTERM: {status:?}; log:\n{}",
            self.log_text()
        );
        let dir = tempfile::tempdir().expect("placeholder dir");
        std::mem::replace(&mut self.data_dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

/// A minimal HTTP/1.1 GET over a plain socket: (status code, body).
pub fn raw_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}

/// A minimal HTTP/1.1 GET over TLS (trusting only the PEM CA `ca`, server name 127.0.0.1)
/// with extra header lines (`Authorization: Bearer x`): (status code, body).
pub fn tls_get(port: u16, path: &str, ca: &std::path::Path, headers: &[&str]) -> Option<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).ok()? {
        roots.add(certificate.ok()?).ok()?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").ok()?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let socket = TcpStream::connect(("127.0.0.1", port)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n").ok()?;
    let mut response = Vec::new();
    // A peer closing without close_notify still leaves a full response behind.
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}
