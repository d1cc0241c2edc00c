//! The data folder: its lock and the namespace keys kept in it.
//!
//! Layout (an API boundary: tools and later versions read it):
//!
//! ```text
//! <data>/LOCK                      held (flock) by the one process using the folder
//! <data>/namespaces/<Class>.key    the namespace key of class <Class>, 64 hex digits
//! ```
//!
//! The lock is what makes "one live instance per object" hold across processes on one
//! machine: a second process on the same folder refuses to start instead of running a second
//! copy of every object. A key file is written once, through a temporary file, fsync and
//! rename, so a crash leaves either no key or a whole one; ids depend on it forever.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use durable_core::NamespaceKey;

use crate::runtime::StartError;

/// An open, locked data folder.
#[derive(Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    pub(crate) fn open(root: &Path) -> Result<Self, StartError> {
        let io_err = |source: io::Error| StartError::DataDir {
            path: root.to_path_buf(),
            source,
        };
        fs::create_dir_all(root.join("namespaces")).map_err(io_err)?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StartError::Locked {
                    path: root.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(source)) => return Err(io_err(source)),
        }
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// The key of `class`, created (randomly) and persisted the first time it is asked for.
    pub(crate) fn namespace_key(&self, class: &str) -> Result<NamespaceKey, StartError> {
        let path = self.root.join("namespaces").join(format!("{class}.key"));
        match fs::read_to_string(&path) {
            Ok(text) => NamespaceKey::from_hex(&text).map_err(|err| StartError::KeyFile {
                path: path.clone(),
                reason: format!(
                    "{err}; the file is damaged: restore it from a backup, since every id of the namespace depends on it"
                ),
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|err| StartError::KeyFile {
                    path: path.clone(),
                    reason: format!("the system random source failed: {err}"),
                })?;
                let key = NamespaceKey::from_bytes(bytes);
                write_durably(&path, format!("{}\n", key.to_hex()).as_bytes()).map_err(
                    |source| StartError::DataDir {
                        path: path.clone(),
                        source,
                    },
                )?;
                Ok(key)
            }
            Err(source) => Err(StartError::DataDir { path, source }),
        }
    }
}

/// Writes `bytes` to `path` so that after a crash the file is either absent or complete.
fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        let key = first.namespace_key("Counter").unwrap();
        assert_eq!(first.namespace_key("Counter").unwrap(), key);
        assert_ne!(first.namespace_key("Other").unwrap(), key);
        assert!(matches!(
            DataDir::open(dir.path()),
            Err(StartError::Locked { .. })
        ));
        drop(first);
        let again = DataDir::open(dir.path()).unwrap();
        assert_eq!(again.namespace_key("Counter").unwrap(), key);
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("namespaces/Counter.key"), "not a key").unwrap();
        let err = data.namespace_key("Counter").unwrap_err().to_string();
        assert!(
            err.contains("Counter.key") && err.contains("backup"),
            "{err}"
        );
    }
}
