//! Class migrations: which classes exist in a data folder, and the steps that create, rename
//! and delete them, applied once, in order, and recorded in the folder.
//!
//! The record of applied steps is `<data>/MIGRATIONS`: one line per applied migration,
//! `<tag> <sha-256 of its content>` (see [`DataLayout`]).
//!
//! Rules (Cloudflare's, for the subset we support): tags are unique; the applied migrations
//! must stay the first entries of the list, unchanged and in the same order (an edited or
//! reordered migration is refused, naming the tag); a new class may not exist yet; a rename
//! moves the namespace key, the databases and the pending alarms, so ids and data keep working
//! under the new name; a deletion removes all of the class's data and needs its bindings gone
//! first. Each step is applied and then recorded; the file steps are written to be safe to
//! repeat, so a crash between the two leaves a folder the next start finishes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use durable_log::CommitLog;
use durable_storage::{AlarmIndex, AlarmIndexError, DataLayout};
use sha2::{Digest, Sha256};

/// One migration, as in Wrangler's `migrations` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// The unique name of the step.
    pub tag: String,
    /// Classes created with SQLite storage.
    pub new_sqlite_classes: Vec<String>,
    /// Classes created with Cloudflare's older key-value storage; here they get SQLite
    /// storage too (the KV API works the same on it).
    pub new_classes: Vec<String>,
    /// Classes renamed `(from, to)`; objects keep their ids and data.
    pub renamed_classes: Vec<(String, String)>,
    /// Classes deleted with all their objects' data.
    pub deleted_classes: Vec<String>,
}

impl Migration {
    /// An empty step called `tag`.
    pub fn new(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            ..Self::default()
        }
    }

    /// Adds SQLite-backed classes.
    pub fn new_sqlite_classes<S: Into<String>>(
        mut self,
        classes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.new_sqlite_classes
            .extend(classes.into_iter().map(Into::into));
        self
    }

    /// Adds a rename.
    pub fn rename(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.renamed_classes.push((from.into(), to.into()));
        self
    }

    /// Adds deleted classes.
    pub fn delete<S: Into<String>>(mut self, classes: impl IntoIterator<Item = S>) -> Self {
        self.deleted_classes
            .extend(classes.into_iter().map(Into::into));
        self
    }

    /// A digest of the step's content, to notice an applied step that was edited later.
    fn digest(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "tag={}", self.tag);
        for class in &self.new_sqlite_classes {
            let _ = writeln!(text, "new_sqlite={class}");
        }
        for class in &self.new_classes {
            let _ = writeln!(text, "new={class}");
        }
        for (from, to) in &self.renamed_classes {
            let _ = writeln!(text, "rename={from}->{to}");
        }
        for class in &self.deleted_classes {
            let _ = writeln!(text, "delete={class}");
        }
        let hash = Sha256::digest(text.as_bytes());
        hash.iter().fold(String::new(), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
    }
}

/// Why migrations could not be applied; the message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// A migration has no tag.
    #[error("every migration needs a non-empty \"tag\"")]
    EmptyTag,
    /// Two migrations share a tag.
    #[error("migration tag {tag:?} is used twice: tags must be unique")]
    DuplicateTag {
        /// The tag.
        tag: String,
    },
    /// An applied migration was changed.
    #[error(
        "migration {tag:?} was edited after it was applied to this data folder; applied migrations cannot change: undo the edit and add a new migration instead"
    )]
    Edited {
        /// Its tag.
        tag: String,
    },
    /// An applied migration moved in the list.
    #[error(
        "migration {tag:?} was applied as number {position} but is now listed elsewhere; applied migrations must keep their order, with new ones appended"
    )]
    Reordered {
        /// Its tag.
        tag: String,
        /// Where it was applied (1-based).
        position: usize,
    },
    /// An applied migration is no longer listed.
    #[error(
        "migration {tag:?} was applied to this data folder but is missing from the configuration; applied migrations must stay listed"
    )]
    Missing {
        /// Its tag.
        tag: String,
    },
    /// A migration creates a class that exists.
    #[error("migration {tag:?} creates class {class:?}, which already exists")]
    ClassExists {
        /// The migration.
        tag: String,
        /// The class.
        class: String,
    },
    /// A migration renames or deletes a class that does not exist.
    #[error("migration {tag:?} {action} class {class:?}, which does not exist")]
    NoSuchClass {
        /// The migration.
        tag: String,
        /// "renames" or "deletes".
        action: &'static str,
        /// The class.
        class: String,
    },
    /// A rename's new name is taken.
    #[error(
        "migration {tag:?} renames {from:?} to {to:?}, but class {to:?} already exists: the new name must not be created beforehand"
    )]
    RenameTargetExists {
        /// The migration.
        tag: String,
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A rename would overwrite data of the new name.
    #[error("cannot rename class {from:?} to {to:?}: {} already exists", path.display())]
    RenameTargetOnDisk {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
        /// The file or folder in the way.
        path: PathBuf,
    },
    /// A deletion of a class a binding still uses.
    #[error(
        "cannot apply migration {tag:?}: it deletes class {class:?}, which a binding still refers to; remove the binding too"
    )]
    DeletesBoundClass {
        /// The migration.
        tag: String,
        /// The class.
        class: String,
    },
    /// The record of applied migrations is damaged.
    #[error("{} is damaged (line {line:?}); restore it from a backup", path.display())]
    DamagedRecord {
        /// The record file.
        path: PathBuf,
        /// The line that does not parse.
        line: String,
    },
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The alarm index could not be changed.
    #[error(transparent)]
    AlarmIndex(#[from] AlarmIndexError),
    /// The commit log's keys could not be changed.
    #[error("commit log: {source}")]
    CommitLog {
        /// What the log said.
        source: durable_log::LogError,
    },
}

/// Validates `migrations` against the record in `data`, applies the new ones and returns the
/// classes that exist afterwards. `bound` are the class names bindings refer to.
pub(crate) fn apply(
    layout: &DataLayout,
    alarms: &AlarmIndex,
    log: Option<&dyn CommitLog>,
    migrations: &[Migration],
    bound: &BTreeSet<String>,
) -> Result<BTreeSet<String>, MigrationError> {
    let mut tags = BTreeSet::new();
    for migration in migrations {
        if migration.tag.trim().is_empty() {
            return Err(MigrationError::EmptyTag);
        }
        if !tags.insert(migration.tag.as_str()) {
            return Err(MigrationError::DuplicateTag {
                tag: migration.tag.clone(),
            });
        }
    }
    let record = layout.migrations_record();
    let applied = read_record(&record)?;
    for (index, (tag, digest)) in applied.iter().enumerate() {
        match migrations.get(index) {
            Some(m) if &m.tag == tag && &m.digest() == digest => {}
            Some(m) if &m.tag == tag => {
                return Err(MigrationError::Edited { tag: tag.clone() });
            }
            _ if migrations.iter().any(|m| &m.tag == tag) => {
                return Err(MigrationError::Reordered {
                    tag: tag.clone(),
                    position: index + 1,
                });
            }
            _ => return Err(MigrationError::Missing { tag: tag.clone() }),
        }
    }

    let mut classes = BTreeSet::new();
    for (index, migration) in migrations.iter().enumerate() {
        let pending = index >= applied.len();
        let disk = pending.then_some(Disk {
            layout,
            alarms,
            log,
        });
        step(migration, &mut classes, bound, disk.as_ref())?;
        if pending {
            append_record(&record, migration).map_err(|source| MigrationError::Io {
                action: "record the migration in",
                path: record.clone(),
                source,
            })?;
            tracing::info!(tag = %migration.tag, "migration applied");
        }
    }
    Ok(classes)
}

/// What a pending step changes: the data folder, the alarm index, the commit log's keys.
struct Disk<'a> {
    layout: &'a DataLayout,
    alarms: &'a AlarmIndex,
    log: Option<&'a dyn CommitLog>,
}

/// Checks one step against the classes so far, and, if it is pending (`disk`), does it.
fn step(
    m: &Migration,
    classes: &mut BTreeSet<String>,
    bound: &BTreeSet<String>,
    disk: Option<&Disk<'_>>,
) -> Result<(), MigrationError> {
    let pending = disk.is_some();
    let tag = &m.tag;
    for class in m.new_sqlite_classes.iter().chain(&m.new_classes) {
        if !classes.insert(class.clone()) {
            return Err(MigrationError::ClassExists {
                tag: tag.clone(),
                class: class.clone(),
            });
        }
    }
    for (from, to) in &m.renamed_classes {
        if !classes.remove(from) {
            return Err(MigrationError::NoSuchClass {
                tag: tag.clone(),
                action: "renames",
                class: from.clone(),
            });
        }
        if !classes.insert(to.clone()) {
            return Err(MigrationError::RenameTargetExists {
                tag: tag.clone(),
                from: from.clone(),
                to: to.clone(),
            });
        }
        if let Some(disk) = disk {
            rename_class(disk, from, to)?;
        }
    }
    for class in &m.deleted_classes {
        if !classes.remove(class) {
            return Err(MigrationError::NoSuchClass {
                tag: tag.clone(),
                action: "deletes",
                class: class.clone(),
            });
        }
        if pending && bound.contains(class) {
            return Err(MigrationError::DeletesBoundClass {
                tag: tag.clone(),
                class: class.clone(),
            });
        }
        if let Some(disk) = disk {
            delete_class(disk, class)?;
        }
    }
    Ok(())
}

fn io_fail(action: &'static str, path: &Path, source: io::Error) -> MigrationError {
    MigrationError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn rename_class(disk: &Disk<'_>, from: &str, to: &str) -> Result<(), MigrationError> {
    let Disk {
        layout,
        alarms,
        log,
    } = *disk;
    let moves: [(PathBuf, PathBuf); 2] = [
        (layout.namespace_key(from), layout.namespace_key(to)),
        (layout.class_dir(from), layout.class_dir(to)),
    ];
    for (old, new) in moves {
        if old.exists() {
            if new.exists() {
                return Err(MigrationError::RenameTargetOnDisk {
                    from: from.to_owned(),
                    to: to.to_owned(),
                    path: new,
                });
            }
            fs::rename(&old, &new).map_err(|err| io_fail("rename", &old, err))?;
        }
    }
    sync_dir(&layout.namespaces_dir())?;
    sync_dir(&layout.objects_dir())?;
    alarms.rename_class(from, to)?;
    update_catalog(layout, |catalog| catalog.rename_class(from, to));
    // The key now belongs to the new name (stored in the log when the runtime starts); the
    // objects' histories go on under it from their first records.
    forget_key(log, from)
}

/// Applies a class's rename or deletion to the object catalog, if the data folder has one
/// (it only holds names for tools: a failure is logged, not fatal).
fn update_catalog(
    layout: &DataLayout,
    change: impl FnOnce(&durable_storage::ObjectCatalog) -> Result<(), durable_storage::CatalogError>,
) {
    let path = layout.catalog();
    if !path.exists() {
        return;
    }
    if let Err(error) = durable_storage::ObjectCatalog::open(&path).and_then(|c| change(&c)) {
        tracing::warn!(%error, "the object catalog could not follow a class migration");
    }
}

/// Removes `class`'s key from the commit log: a class created again later under the name
/// gets a new key (and new ids), and never brings back the old objects' history.
fn forget_key(log: Option<&dyn CommitLog>, class: &str) -> Result<(), MigrationError> {
    match log {
        Some(log) => log
            .forget_class_key(class)
            .map_err(|source| MigrationError::CommitLog { source }),
        None => Ok(()),
    }
}

fn delete_class(disk: &Disk<'_>, class: &str) -> Result<(), MigrationError> {
    let Disk {
        layout,
        alarms,
        log,
    } = *disk;
    forget_key(log, class)?;
    alarms.remove_class(class)?;
    update_catalog(layout, |catalog| catalog.remove_class(class));
    let objects = layout.class_dir(class);
    if objects.exists() {
        fs::remove_dir_all(&objects).map_err(|err| io_fail("remove", &objects, err))?;
    }
    let key = layout.namespace_key(class);
    if key.exists() {
        fs::remove_file(&key).map_err(|err| io_fail("remove", &key, err))?;
    }
    sync_dir(&layout.namespaces_dir())?;
    sync_dir(&layout.objects_dir())
}

fn sync_dir(dir: &Path) -> Result<(), MigrationError> {
    match fs::File::open(dir) {
        Ok(file) => file.sync_all().map_err(|err| io_fail("sync", dir, err)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_fail("open", dir, err)),
    }
}

fn read_record(path: &Path) -> Result<Vec<(String, String)>, MigrationError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_fail("read", path, err)),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.rsplit_once(' ')
                .map(|(tag, digest)| (tag.to_owned(), digest.to_owned()))
                .ok_or_else(|| MigrationError::DamagedRecord {
                    path: path.to_path_buf(),
                    line: line.to_owned(),
                })
        })
        .collect()
}

fn append_record(path: &Path, migration: &Migration) -> io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{} {}", migration.tag, migration.digest())?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
