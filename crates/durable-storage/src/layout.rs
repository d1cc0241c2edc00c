//! Where an object's database lives in the data folder (an API boundary: tools read it).
//!
//! ```text
//! <data>/objects/<Class>/<first two hex digits of the id>/<id>.sqlite   (+ -wal, -shm)
//! ```
//!
//! The two-digit fan-out keeps directories small: 100,000 objects make about 390 databases
//! (1,200 files with WAL and shared memory) per directory.

use std::path::{Path, PathBuf};

/// The database file of object `id_hex` of class `class`.
///
/// ```
/// use std::path::Path;
///
/// let path = durable_storage::layout::object_db_path(Path::new("/data"), "Counter", "ab12");
/// assert_eq!(path, Path::new("/data/objects/Counter/ab/ab12.sqlite"));
/// ```
pub fn object_db_path(data_dir: &Path, class: &str, id_hex: &str) -> PathBuf {
    let fan = id_hex.get(..2).unwrap_or("00");
    data_dir
        .join("objects")
        .join(class)
        .join(fan)
        .join(format!("{id_hex}.sqlite"))
}
