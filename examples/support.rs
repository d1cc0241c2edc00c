//! What the scenario examples share: where their data lives.

use std::path::PathBuf;

/// The data folder: `--data DIR` from the command line, or a temporary folder removed at
/// exit (held by the returned guard).
pub(crate) fn data_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--data"
            && let Some(dir) = args.next()
        {
            return (PathBuf::from(dir), None);
        }
    }
    let temp = tempfile::tempdir().expect("a temporary folder");
    (temp.path().to_owned(), Some(temp))
}
