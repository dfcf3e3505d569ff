//! A small real tmpfs for full-disk tests (`mount -t tmpfs -o size=...`): a disk that really
//! fills up, for the backends' and the API server's ENOSPC tests. Mounting needs root (CI
//! runs as root); without it [`Tmpfs::mount`] panics saying so, so the test fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a fresh directory; unmounted (lazily) on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s spelling: `32m`) at a fresh temporary directory.
    ///
    /// Panics (a test helper) when it cannot: not root, or no `mount` command.
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount (install util-linux: apt-get install -y mount)");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (this test needs root, as CI has): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with a ballast file up to the last `leave` bytes (written in
    /// 256 KiB pieces until the disk refuses, then truncated by `leave`); returns its path.
    /// Removing it is "space is back".
    ///
    /// Panics when the ballast cannot be created or truncated.
    pub fn fill_leaving(&self, leave: u64) -> PathBuf {
        let path = self.path().join("ballast");
        let mut file = std::fs::File::create(&path).expect("ballast file");
        let piece = vec![0xa5u8; 256 << 10];
        let mut written = 0u64;
        while file.write_all(&piece).is_ok() {
            written += piece.len() as u64;
        }
        let _ = file.flush();
        file.set_len(written.saturating_sub(leave)).expect("truncating the ballast");
        file.sync_all().expect("syncing the ballast");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
