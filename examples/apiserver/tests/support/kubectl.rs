//! The real kubectl against a test server: only `--server`, an empty kubeconfig and a
//! private cache directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The kubectl binary (`KUBECTL` or `kubectl` on PATH); panics with how to get one.
pub fn kubectl_binary() -> PathBuf {
    let binary = std::env::var("KUBECTL").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("kubectl"));
    match Command::new(&binary).args(["version", "--client"]).output() {
        Ok(out) if out.status.success() => binary,
        Ok(out) => {
            panic!("kubectl at {binary:?} does not work ({}): {}", out.status, String::from_utf8_lossy(&out.stderr))
        }
        Err(e) => panic!(
            "these tests need kubectl: {binary:?} could not be run ({e}). Install kubectl (e.g. Debian's \
             kubernetes-client or a release binary) or point KUBECTL at one."
        ),
    }
}

/// kubectl with only `--server`, an empty kubeconfig and a private cache directory.
pub struct Kubectl {
    binary: PathBuf,
    server: String,
    home: tempfile::TempDir,
    /// A kubeconfig and the context to use (instead of `--server`).
    kubeconfig: Option<(PathBuf, String)>,
}

impl Kubectl {
    pub fn new(server: &super::Server) -> Self {
        Kubectl {
            binary: kubectl_binary(),
            server: server.url.clone(),
            home: tempfile::tempdir().expect("kubectl home"),
            kubeconfig: None,
        }
    }

    /// kubectl with the kubeconfig `path` and its context `context` (the server, CA and
    /// credentials all come from the kubeconfig).
    pub fn with_kubeconfig(path: &std::path::Path, context: &str) -> Self {
        Kubectl {
            binary: kubectl_binary(),
            server: String::new(),
            home: tempfile::tempdir().expect("kubectl home"),
            kubeconfig: Some((path.to_path_buf(), context.to_owned())),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        match &self.kubeconfig {
            None => {
                command.arg("--server").arg(&self.server).env("KUBECONFIG", self.home.path().join("no-kubeconfig"));
            }
            Some((path, context)) => {
                command.arg("--context").arg(context).env("KUBECONFIG", path);
            }
        }
        command.args(args).env("HOME", self.home.path()).env_remove("KUBERNETES_SERVICE_HOST");
        command
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writing kubectl stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run_with_stdin(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run_with_stdin(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full)).expect("kubectl -o json output is JSON")
    }
}

pub fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("writing manifest");
    path.to_string_lossy().into_owned()
}
