//! Cutting a WAL after a commit: what reopening an object does when later commits never
//! reached its log. Checked on real WALs left as a crash leaves them (the files copied while
//! the database is open), then opened by SQLite.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use durable_storage::{
    DatabaseOptions, ObjectDatabase, SqlValue, WalCut, WalPosition, cut_wal_after,
};

fn open(path: &Path) -> ObjectDatabase {
    let mut options = DatabaseOptions::default();
    options.capture = true;
    ObjectDatabase::open(path, options, Arc::new(|_| {})).unwrap()
}

fn count(path: &Path) -> i64 {
    let mut db = open(path);
    let n = db
        .exec("SELECT count(*) AS n FROM t", vec![])
        .unwrap()
        .one()
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    db.close();
    n
}

/// A database with a table and three commits of one row each, copied (database and WAL)
/// while it is open, as a crash would leave it; and the position after each commit.
fn crashed_copy(dir: &Path) -> (PathBuf, Vec<WalPosition>) {
    let live = dir.join("live.sqlite");
    let mut db = open(&live);
    db.exec("CREATE TABLE t (x)", vec![]).unwrap();
    let mut positions = vec![db.commit().unwrap().unwrap().frames.unwrap().position];
    for x in 0..3 {
        db.exec("INSERT INTO t VALUES (?1)", vec![SqlValue::Integer(x)])
            .unwrap();
        positions.push(db.commit().unwrap().unwrap().frames.unwrap().position);
    }
    let copy = dir.join("copy.sqlite");
    std::fs::copy(&live, &copy).unwrap();
    std::fs::copy(
        live.with_extension("sqlite-wal"),
        copy.with_extension("sqlite-wal"),
    )
    .unwrap();
    db.close();
    (copy, positions)
}

fn wal(db: &Path) -> PathBuf {
    db.with_extension("sqlite-wal")
}

#[test]
fn cutting_after_a_commit_drops_the_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (copy, positions) = crashed_copy(dir.path());
    // After the second insert: the third is dropped.
    let cut = cut_wal_after(&wal(&copy), &positions[2]).unwrap();
    assert!(
        matches!(cut, WalCut::Cut { dropped } if dropped > 0),
        "{cut:?}"
    );
    assert_eq!(count(&copy), 2);
}

#[test]
fn a_wal_that_ends_at_the_mark_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (copy, positions) = crashed_copy(dir.path());
    let before = std::fs::read(wal(&copy)).unwrap();
    assert_eq!(
        cut_wal_after(&wal(&copy), &positions[3]).unwrap(),
        WalCut::Nothing
    );
    assert_eq!(std::fs::read(wal(&copy)).unwrap(), before);
    assert_eq!(count(&copy), 3);
}

#[test]
fn a_wal_behind_another_generation_or_another_history_is_reported_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (copy, positions) = crashed_copy(dir.path());
    let before = std::fs::read(wal(&copy)).unwrap();
    let mut ahead = positions[3];
    ahead.frame_count += 4;
    assert!(matches!(
        cut_wal_after(&wal(&copy), &ahead).unwrap(),
        WalCut::Behind { .. }
    ));
    let mut other = positions[2];
    other.salts[1] ^= 1;
    assert!(matches!(
        cut_wal_after(&wal(&copy), &other).unwrap(),
        WalCut::OtherGeneration { .. }
    ));
    let mut forked = positions[2];
    forked.checksum[0] ^= 1;
    assert_eq!(
        cut_wal_after(&wal(&copy), &forked).unwrap(),
        WalCut::Diverged
    );
    assert_eq!(
        std::fs::read(wal(&copy)).unwrap(),
        before,
        "nothing was changed"
    );
    // No WAL at all: nothing to cut.
    assert_eq!(
        cut_wal_after(&dir.path().join("none-wal"), &positions[0]).unwrap(),
        WalCut::Nothing
    );
}
