//! Names that survive a power cut. A file's data reaches the disk with its own `fsync`, but
//! its *name* (and a new folder's name) only with an `fsync` of the folder holding it: a
//! database created and written, its WAL synced, can still vanish with the power if its
//! folder was not synced. Everything here is what the durability argument relies on for
//! names; ARCHITECTURE.md lists where it is used.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// `fsync` of the folder `dir`: the names in it reach the disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and every missing folder above it, syncing each new folder's parent so the
/// whole path survives a power cut. Does nothing (and syncs nothing) if `dir` exists.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another thread made it meanwhile; it syncs the parent itself.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(err) => return Err(err),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_every_missing_folder_and_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durably(&deep).unwrap();
        sync_dir(&deep).unwrap();
        assert!(sync_dir(&root.path().join("missing")).is_err());
    }
}
