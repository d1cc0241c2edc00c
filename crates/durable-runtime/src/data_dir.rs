//! The data folder while a runtime holds it: its lock and the namespace keys kept in it.
//! Where things are is [`DataLayout`]'s business.
//!
//! The lock is what makes "one live instance per object" hold across processes on one
//! machine: a second process on the same folder refuses to start instead of running a second
//! copy of every object. A key file is written once, through a temporary file, fsync and
//! rename, so a crash leaves either no key or a whole one; ids depend on it forever.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use durable_core::NamespaceKey;
use durable_storage::DataLayout;

use crate::runtime::error::StartError;

/// Object databases whose ids are checked against their class's key at start.
const KEY_CHECKS: usize = 16;

/// An open, locked data folder.
#[derive(Debug)]
pub(crate) struct DataDir {
    layout: DataLayout,
    _lock: File,
}

/// Looks at a held lock (10 ms apart) before the folder is called taken: half a second.
const LOCK_ATTEMPTS: u32 = 50;

impl DataDir {
    pub(crate) fn open(layout: DataLayout) -> Result<Self, StartError> {
        let io_err = |path: &Path, source: io::Error| StartError::DataDir {
            path: path.to_path_buf(),
            source,
        };
        let namespaces = layout.namespaces_dir();
        durable_storage::dirs::create_dir_durably(&namespaces)
            .map_err(|err| io_err(&namespaces, err))?;
        let lock_path = layout.lock_file();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|err| io_err(&lock_path, err))?;
        // The lock is the open file's: a process that forks (to start another program) holds
        // a copy of every descriptor until its child execs, so a lock just given up by a
        // runtime of this process may look held for a moment. Look again for a short while
        // before calling the folder taken.
        let mut attempts = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if attempts < LOCK_ATTEMPTS => {
                    attempts += 1;
                    #[allow(clippy::disallowed_methods)] // Start-up, not a shard thread.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StartError::Locked {
                        path: layout.root().to_path_buf(),
                    });
                }
                Err(fs::TryLockError::Error(source)) => return Err(io_err(&lock_path, source)),
            }
        }
        Ok(Self {
            layout,
            _lock: lock,
        })
    }

    pub(crate) fn layout(&self) -> &DataLayout {
        &self.layout
    }

    /// Writes `key_hex` as the key of `class` if the folder has no key file for it (a folder
    /// rebuilt from a commit log); a key file that exists is left alone.
    pub(crate) fn adopt_namespace_key(&self, class: &str, key_hex: &str) -> Result<(), StartError> {
        let path = self.layout.namespace_key(class);
        if path.exists() {
            return Ok(());
        }
        let key = NamespaceKey::from_hex(key_hex).map_err(|source| StartError::KeyFile {
            path: path.clone(),
            source,
        })?;
        write_durably(&path, format!("{}\n", key.to_hex()).as_bytes())
            .map_err(|source| StartError::DataDir { path, source })
    }

    /// The key of `class`, created (randomly) and persisted the first time it is asked for.
    ///
    /// The ids are the key's check value: every database file is named by an id the key
    /// authenticates. So a key file that is missing while the class has databases, or one
    /// that did not make their ids (another folder's key, a regenerated one), stops the
    /// start instead of silently making every object unreachable.
    pub(crate) fn namespace_key(&self, class: &str) -> Result<NamespaceKey, StartError> {
        let path = self.layout.namespace_key(class);
        let databases = durable_storage::class_databases(&self.layout, class, KEY_CHECKS);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let key = NamespaceKey::from_hex(&text).map_err(|source| StartError::KeyFile {
                    path: path.clone(),
                    source,
                })?;
                let foreign = databases
                    .iter()
                    .filter(|db| {
                        let id = db.file_stem().and_then(|stem| stem.to_str()).unwrap_or("");
                        key.id_from_string(id).is_err()
                    })
                    .count();
                if foreign > 0 {
                    return Err(StartError::KeyMismatch {
                        class: class.to_owned(),
                        path,
                        class_dir: self.layout.class_dir(class),
                        checked: databases.len(),
                        foreign,
                    });
                }
                Ok(key)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound && !databases.is_empty() => {
                Err(StartError::KeyMissing {
                    class: class.to_owned(),
                    path,
                    class_dir: self.layout.class_dir(class),
                })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                if let Err(error) = getrandom::fill(&mut bytes) {
                    return Err(StartError::Random { path, error });
                }
                let key = NamespaceKey::from_bytes(bytes);
                write_durably(&path, format!("{}\n", key.to_hex()).as_bytes())
                    .map_err(|source| StartError::DataDir { path, source })?;
                Ok(key)
            }
            Err(source) => Err(StartError::DataDir { path, source }),
        }
    }
}

/// Writes `bytes` to `path` so that after a crash the file is either absent or complete.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
        let layout = DataLayout::new(dir.path());
        let first = DataDir::open(layout.clone()).unwrap();
        let key = first.namespace_key("Counter").unwrap();
        assert_eq!(first.namespace_key("Counter").unwrap(), key);
        assert_ne!(first.namespace_key("Other").unwrap(), key);
        assert!(matches!(
            DataDir::open(layout.clone()),
            Err(StartError::Locked { .. })
        ));
        drop(first);
        let again = DataDir::open(layout).unwrap();
        assert_eq!(again.namespace_key("Counter").unwrap(), key);
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let data = DataDir::open(layout.clone()).unwrap();
        fs::write(layout.namespace_key("Counter"), "not a key").unwrap();
        let err = data.namespace_key("Counter").unwrap_err();
        assert!(matches!(err, StartError::KeyFile { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("Counter.key") && text.contains("backup"),
            "{text}"
        );
    }
}
