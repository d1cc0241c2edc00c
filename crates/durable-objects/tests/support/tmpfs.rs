//! A tmpfs mounted for a test: a small disk that really fills up. Shared by the facade's
//! fault tests and the demo's end-to-end tests (which include this file by path).

use std::path::Path;
use std::process::Command;

/// A tmpfs of a few megabytes mounted on a temporary folder, unmounted on drop. Mounting
/// needs root (as `.ci/run` has); elsewhere [`Tmpfs::mount`] says so and gives `None`, unless
/// `CI` is set, which makes it a failure.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            return Some(Self { dir });
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "mounting a tmpfs failed; CI runs as root and must be able to"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
