//! The data folder's layout: every path the platform keeps state at. It is an API boundary
//! (tools and later versions read it), so no other module builds these paths by hand.
//!
//! ```text
//! <data>/LOCK                                  held (flock) by the one process using the folder
//! <data>/MIGRATIONS                            one line per applied migration: "<tag> <sha-256>"
//! <data>/namespaces/<Class>.key                the namespace key of class <Class>, 64 hex digits
//! <data>/alarms.sqlite                         the node's alarm index (+ -wal, -shm)
//! <data>/catalog.sqlite                        objects' names and last activity, bindings
//! <data>/admin.token                           the admin API's bearer token (owner-only)
//! <data>/admin.address                         where the running node's admin API listens
//! <data>/RESERVE                               allocated space given up when the disk is full
//! <data>/log/                                  the local archive of every object's history
//!                                              (segments/<n>.seg, index.sqlite)
//! <data>/objects/<Class>/<id[0..2]>/<id>.restore  a restore asked for, applied at next start
//! <data>/objects/<Class>/<id[0..2]>/<id>.sqlite  one object's database (+ -wal, -shm)
//! ```
//!
//! The two-digit fan-out keeps directories small: 100,000 objects make about 390 databases
//! (1,200 files with WAL and shared memory) per directory.

use std::path::{Path, PathBuf};

/// The paths of one data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLayout {
    root: PathBuf,
}

impl DataLayout {
    /// The layout of the data folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The data folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lock file that keeps a second process off the folder.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("LOCK")
    }

    /// The record of applied class migrations.
    pub fn migrations_record(&self) -> PathBuf {
        self.root.join("MIGRATIONS")
    }

    /// The node's alarm index database.
    pub fn alarm_index(&self) -> PathBuf {
        self.root.join("alarms.sqlite")
    }

    /// The admin API's bearer token (owner-only), made at the first start with the API on.
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// Where the running node's admin API listens (written at each start with it on).
    pub fn admin_address(&self) -> PathBuf {
        self.root.join("admin.address")
    }

    /// The node's object catalog (names, last activity, bindings).
    pub fn catalog(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }

    /// The disk reserve: space set aside so deletes can run when the disk is full.
    pub fn reserve_file(&self) -> PathBuf {
        self.root.join("RESERVE")
    }

    /// The folder of the namespace key files.
    pub fn namespaces_dir(&self) -> PathBuf {
        self.root.join("namespaces")
    }

    /// The key file of class `class`.
    pub fn namespace_key(&self, class: &str) -> PathBuf {
        self.namespaces_dir().join(format!("{class}.key"))
    }

    /// The local archive of every object's history (the commit log in the data folder).
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The file naming the bookmark an object is restored to when it next starts, next to
    /// its database `db`.
    pub fn restore_request_of(db: &Path) -> PathBuf {
        db.with_extension("restore")
    }

    /// The folder of every class's object databases.
    pub fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    /// The folder of class `class`'s object databases.
    pub fn class_dir(&self, class: &str) -> PathBuf {
        self.objects_dir().join(class)
    }

    /// The database file of object `id_hex` of class `class`.
    pub fn object_db(&self, class: &str, id_hex: &str) -> PathBuf {
        let fan = id_hex.get(..2).unwrap_or("00");
        self.class_dir(class)
            .join(fan)
            .join(format!("{id_hex}.sqlite"))
    }

    /// The shared-memory index file that belongs to the database file `db`.
    pub fn shm_of(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        PathBuf::from(name)
    }

    /// The WAL file that belongs to the database file `db`.
    pub fn wal_of(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_root_where_the_layout_says() {
        let layout = DataLayout::new("/data");
        let cases: [(PathBuf, &str); 9] = [
            (layout.reserve_file(), "/data/RESERVE"),
            (layout.lock_file(), "/data/LOCK"),
            (layout.migrations_record(), "/data/MIGRATIONS"),
            (layout.alarm_index(), "/data/alarms.sqlite"),
            (
                layout.namespace_key("Counter"),
                "/data/namespaces/Counter.key",
            ),
            (layout.class_dir("Counter"), "/data/objects/Counter"),
            (
                layout.object_db("Counter", "ab12"),
                "/data/objects/Counter/ab/ab12.sqlite",
            ),
            (
                layout.object_db("Counter", "a"),
                "/data/objects/Counter/00/a.sqlite",
            ),
            (
                DataLayout::wal_of(Path::new("/data/objects/C/ab/ab12.sqlite")),
                "/data/objects/C/ab/ab12.sqlite-wal",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(path, Path::new(expected));
        }
    }
}
