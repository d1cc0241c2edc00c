//! [`StartError`]: why a runtime could not start; each variant names what to fix.

use std::path::PathBuf;

use durable_core::IdError;
use durable_storage::AlarmIndexError;

use crate::migrations::MigrationError;

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data folder (or a file in it) could not be created, opened or written.
    #[error("cannot use data folder {}: {source}", path.display())]
    DataDir {
        /// The folder or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another process holds the data folder.
    #[error(
        "data folder {} is in use by another process: stop that process, or give this one another data folder",
        path.display()
    )]
    Locked {
        /// The folder.
        path: PathBuf,
    },
    /// A namespace key file is damaged.
    #[error(
        "namespace key file {}: {source}; the file is damaged: restore it from a backup, since every id of the namespace depends on it",
        path.display()
    )]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its content.
        source: IdError,
    },
    /// A class's key file is missing while the class has object databases: a new key would
    /// make every existing object unreachable.
    #[error(
        "namespace key file {} is missing, but {} holds object databases made with it: restore the key file from a backup (a new key would make every existing {class} object unreachable), or move the databases away to start the class empty",
        path.display(),
        class_dir.display()
    )]
    KeyMissing {
        /// The class.
        class: String,
        /// The key file that should exist.
        path: PathBuf,
        /// The folder of the class's databases.
        class_dir: PathBuf,
    },
    /// A class's key file holds a key that did not make the ids of its object databases.
    #[error(
        "namespace key file {} does not belong to the data in {}: {foreign} of the {checked} object databases checked have ids this key did not make; restore the key file from a backup of this data folder",
        path.display(),
        class_dir.display()
    )]
    KeyMismatch {
        /// The class.
        class: String,
        /// The key file.
        path: PathBuf,
        /// The folder of the class's databases.
        class_dir: PathBuf,
        /// Databases checked.
        checked: usize,
        /// Of them, those whose id the key did not make.
        foreign: usize,
    },
    /// The commit log could not be opened, or holds what contradicts the data folder (another
    /// folder's namespace keys).
    #[error("commit log: {source}")]
    CommitLog {
        /// What the log said.
        source: durable_log::LogError,
    },
    /// The system's random source failed while making a new namespace key.
    #[error("cannot make a namespace key for {}: the system random source failed: {error}", path.display())]
    Random {
        /// The key file that was to be written.
        path: PathBuf,
        /// What failed.
        error: getrandom::Error,
    },
    /// The alarm index could not be opened or read.
    #[error(transparent)]
    AlarmIndex(#[from] AlarmIndexError),
    /// Two bindings have the same name.
    #[error("binding {binding:?} is declared twice: binding names must be unique")]
    DuplicateBinding {
        /// The name.
        binding: String,
    },
    /// A setting is out of range.
    #[error("invalid runtime setting: {setting} {reason}")]
    InvalidSetting {
        /// The setting (the `RuntimeConfig` field).
        setting: &'static str,
        /// Its value and what is allowed.
        reason: String,
    },
    /// No data folder was given.
    #[error("no data folder: call RuntimeBuilder::data_dir")]
    NoDataDir,
    /// A binding names a class this program does not register.
    #[error(
        "binding {binding:?} refers to class {class:?}, which this program does not define; the classes are {known:?}"
    )]
    UnknownClass {
        /// The binding.
        binding: String,
        /// The class it names.
        class: String,
        /// The classes the program registers.
        known: Vec<String>,
    },
    /// A binding names a class that no migration creates.
    #[error(
        "binding {binding:?} refers to class {class:?}, which no migration creates: add it to \"new_sqlite_classes\" in a new migration"
    )]
    UnmigratedClass {
        /// The binding.
        binding: String,
        /// The class it names.
        class: String,
    },
    /// The migrations are invalid or could not be applied.
    #[error("migrations: {0}")]
    Migration(#[from] MigrationError),
    /// A thread or its async runtime could not be started.
    #[error("cannot start the {thread} thread: {source}")]
    Thread {
        /// Which thread.
        thread: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },
}
