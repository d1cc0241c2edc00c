//! Whole database files, outside the object's own connection: what a repair, a restore or a
//! first record of history does before an object opens (or while it is closed). Settling a
//! database (its WAL copied in and truncated), reading pages of the file as it lies on
//! disk, replacing a database by an image, and discarding a WAL whose commits never reached
//! the object's log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::dirs::{create_dir_durably, sync_dir};
use crate::error::IoFailure;
use crate::layout::DataLayout;

/// A database file could not be read, settled or replaced.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{action} {}: {reason}", path.display())]
pub struct DatabaseFileError {
    /// What was being done.
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
    /// The operating system's error, when it was one.
    pub io: Option<IoFailure>,
}

impl DatabaseFileError {
    fn io(action: &'static str, path: &Path, error: io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            reason: error.to_string(),
            io: Some(IoFailure::new(error)),
        }
    }

    fn sqlite(action: &'static str, path: &Path, error: rusqlite::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            reason: error.to_string(),
            io: None,
        }
    }
}

/// A settled database: its page size and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledDatabase {
    /// The page size in bytes.
    pub page_size: u32,
    /// The whole file.
    pub bytes: Vec<u8>,
}

/// Copies the WAL of the database at `path` into it, truncates the WAL, and reads the whole
/// file: the database as SQLite sees it. `None` if there is no database file. The object
/// must be closed (no connection of its own open).
pub fn settle_database(path: &Path) -> Result<Option<SettledDatabase>, DatabaseFileError> {
    if !path.exists() {
        return Ok(None);
    }
    let action = "settle the database";
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    conn.close()
        .map_err(|(_, e)| DatabaseFileError::sqlite(action, path, e))?;
    let bytes = fs::read(path).map_err(|e| DatabaseFileError::io(action, path, e))?;
    Ok(Some(SettledDatabase {
        page_size: u32::try_from(page_size).unwrap_or(4096),
        bytes,
    }))
}

/// Pages of a database file as it lies on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePages {
    /// The file's length in bytes (0 if there is no file).
    pub len: u64,
    /// Each page asked for, `None` for one past the file's end.
    pub pages: Vec<Option<Vec<u8>>>,
}

/// A consistent copy of the database at `path` while its object may be running and writing
/// (SQLite's `VACUUM INTO` on a read-only connection: one snapshot, never the live files
/// copied), made through a temporary file next to `scratch`. `None` if there is no database.
pub fn snapshot_database(
    path: &Path,
    scratch: &Path,
) -> Result<Option<SettledDatabase>, DatabaseFileError> {
    if !path.exists() {
        return Ok(None);
    }
    let action = "snapshot the database";
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    let copy = scratch.join(format!(
        "snapshot-{}.sqlite",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
    ));
    let _ = fs::remove_file(&copy);
    conn.execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])
        .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(|e| DatabaseFileError::sqlite(action, path, e))?;
    drop(conn);
    let bytes = fs::read(&copy).map_err(|e| DatabaseFileError::io(action, &copy, e))?;
    let _ = fs::remove_file(&copy);
    Ok(Some(SettledDatabase {
        page_size: u32::try_from(page_size).unwrap_or(4096),
        bytes,
    }))
}

/// The bytes of pages `pages` (1-based) of the database file at `path` as it lies on disk
/// (its WAL not applied).
pub fn read_file_pages(
    path: &Path,
    page_size: u32,
    pages: &[u32],
) -> Result<FilePages, DatabaseFileError> {
    let action = "read the database file";
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(FilePages {
                len: 0,
                pages: pages.iter().map(|_| None).collect(),
            });
        }
        Err(err) => return Err(DatabaseFileError::io(action, path, err)),
    };
    let len = file
        .metadata()
        .map_err(|e| DatabaseFileError::io(action, path, e))?
        .len();
    let size = u64::from(page_size);
    let mut out = Vec::with_capacity(pages.len());
    for &page in pages {
        let offset = u64::from(page.saturating_sub(1)) * size;
        if page == 0 || offset + size > len {
            out.push(None);
            continue;
        }
        let mut data = vec![0u8; page_size as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut data))
            .map_err(|e| DatabaseFileError::io(action, path, e))?;
        out.push(Some(data));
    }
    Ok(FilePages { len, pages: out })
}

/// Replaces the database at `path` by `bytes` (a whole database image), durably: written
/// to a temporary file and synced, its WAL and shared memory removed, renamed over the old
/// file, the folder synced. The object must be closed.
pub fn install_database(path: &Path, bytes: &[u8]) -> Result<(), DatabaseFileError> {
    let action = "install the database";
    let err = |e| DatabaseFileError::io(action, path, e);
    let folder = path.parent().unwrap_or(Path::new("."));
    create_dir_durably(folder).map_err(err)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".restoring");
    let temporary = PathBuf::from(temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    for stale in [DataLayout::wal_of(path), DataLayout::shm_of(path)] {
        match fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
    fs::rename(&temporary, path).map_err(err)?;
    sync_dir(folder).map_err(err)
}

/// Empties the WAL of the database at `path` (its commits are dropped: they never reached
/// the object's log) and removes the shared memory, so SQLite reads the database file
/// alone. The object must be closed.
pub fn discard_wal(path: &Path) -> Result<(), DatabaseFileError> {
    let wal = DataLayout::wal_of(path);
    let action = "discard the WAL";
    match OpenOptions::new().write(true).open(&wal) {
        Ok(file) => {
            file.set_len(0)
                .and_then(|_| file.sync_all())
                .map_err(|e| DatabaseFileError::io(action, &wal, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(DatabaseFileError::io(action, &wal, e)),
    }
    forget_shared_memory(path)
}

/// Removes the shared memory (`-shm`) of the database at `path`: after its WAL was changed
/// behind SQLite's back, the next open rebuilds it from the WAL.
pub fn forget_shared_memory(path: &Path) -> Result<(), DatabaseFileError> {
    let shm = DataLayout::shm_of(path);
    match fs::remove_file(&shm) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DatabaseFileError::io("remove the shared memory", &shm, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(path: &Path, rows: i64) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (n INTEGER);")
            .unwrap();
        for n in 0..rows {
            conn.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
        }
        // Leave the WAL behind, as a crash would.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        conn.close().unwrap();
    }

    fn count(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn settling_takes_the_wal_in_and_installing_replaces_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        assert_eq!(settle_database(&path).unwrap(), None);
        make(&path, 3);
        assert!(fs::metadata(DataLayout::wal_of(&path)).unwrap().len() > 0);
        let settled = settle_database(&path).unwrap().unwrap();
        assert_eq!(settled.page_size, 4096);
        assert_eq!(settled.bytes.len() as u64 % 4096, 0);
        let wal = fs::metadata(DataLayout::wal_of(&path));
        assert!(
            wal.is_err() || wal.unwrap().len() == 0,
            "the WAL is gone or empty"
        );
        assert_eq!(count(&path), 3);
        // The page reader sees the settled file; a page past the end is None.
        let read = read_file_pages(&path, 4096, &[1, 999]).unwrap();
        assert_eq!(read.len, settled.bytes.len() as u64);
        assert_eq!(read.pages[0].as_deref(), Some(&settled.bytes[..4096]));
        assert_eq!(read.pages[1], None);

        // More rows, then the old image installed back: the rows are gone, WAL and all.
        make(&path, 5);
        assert_eq!(count(&path), 8);
        install_database(&path, &settled.bytes).unwrap();
        assert!(!DataLayout::wal_of(&path).exists());
        assert_eq!(count(&path), 3);
        // Into a folder that does not exist yet.
        let elsewhere = dir.path().join("x/y/b.sqlite");
        install_database(&elsewhere, &settled.bytes).unwrap();
        assert_eq!(count(&elsewhere), 3);
    }

    #[test]
    fn a_snapshot_is_consistent_while_a_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        make(&path, 3);
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("BEGIN; INSERT INTO t VALUES (99);")
            .unwrap();
        let snapshot = snapshot_database(&path, dir.path()).unwrap().unwrap();
        writer.execute_batch("COMMIT").unwrap();
        let copy = dir.path().join("copy.sqlite");
        install_database(&copy, &snapshot.bytes).unwrap();
        assert_eq!(count(&copy), 3, "the uncommitted row is not in it");
        assert_eq!(count(&path), 4);
        assert_eq!(
            snapshot_database(&dir.path().join("none"), dir.path()).unwrap(),
            None
        );
    }

    #[test]
    fn a_discarded_wal_drops_its_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        make(&path, 2);
        settle_database(&path).unwrap();
        make(&path, 4);
        discard_wal(&path).unwrap();
        assert_eq!(count(&path), 2);
        discard_wal(&dir.path().join("none.sqlite")).unwrap();
    }
}
