//! The frames each commit's ticket carries are exactly what the commit changed: applying
//! them, commit after commit, to a copy of the database rebuilds it byte for byte, through
//! WAL restarts, rolled-back transactions that spilled frames, and a reopen after a crash.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use durable_storage::{
    CommitError, CommitTicket, DatabaseOptions, ObjectDatabase, SqlValue, WalError,
};

fn options(capture: bool) -> DatabaseOptions {
    let mut options = DatabaseOptions::default();
    options.capture = capture;
    options
}

fn open(path: &Path) -> ObjectDatabase {
    ObjectDatabase::open(path, options(true), Arc::new(|_| {})).unwrap()
}

/// A copy of the database built only from captured frames.
#[derive(Default)]
struct Replica {
    bytes: Vec<u8>,
    commits: usize,
}

impl Replica {
    fn apply(&mut self, ticket: &CommitTicket) {
        let frames = ticket.frames.as_ref().expect("capture is on");
        let page_size = frames.page_size as usize;
        let size = frames.db_pages as usize * page_size;
        if self.bytes.len() < size {
            self.bytes.resize(size, 0);
        }
        for (page, data) in frames.pages() {
            let at = (page as usize - 1) * page_size;
            self.bytes[at..at + page_size].copy_from_slice(data);
        }
        self.bytes.truncate(size);
        self.commits += 1;
    }

    fn commit(&mut self, db: &mut ObjectDatabase) -> CommitTicket {
        let ticket = db.commit().unwrap().expect("the batch had writes");
        self.apply(&ticket);
        // The replica took the commit: a due checkpoint may run now (as the runtime runs
        // it once every commit in the WAL is acknowledged).
        if db.checkpoint_due() {
            db.checkpoint();
        }
        ticket
    }

    /// Closes `db` (which checkpoints the WAL into the file) and compares the file.
    fn assert_matches(&self, db: ObjectDatabase, path: &Path) {
        db.close();
        let on_disk = std::fs::read(path).unwrap();
        assert!(self.commits > 0);
        assert_eq!(
            on_disk.len(),
            self.bytes.len(),
            "database size after {} commits",
            self.commits
        );
        assert!(
            on_disk == self.bytes,
            "the replica built from captured frames differs from the database"
        );
    }
}

fn exec(db: &mut ObjectDatabase, sql: &str, params: Vec<SqlValue>) {
    db.exec(sql, params).unwrap();
}

/// A fresh capturing database at `<dir>/o.sqlite` whose first commit creates `schema`, and
/// the replica that has taken that commit.
fn fresh(
    schema: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    ObjectDatabase,
    Replica,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut db = open(&path);
    let mut replica = Replica::default();
    exec(&mut db, schema, vec![]);
    replica.commit(&mut db);
    (dir, path, db, replica)
}

#[test]
fn applying_every_commits_frames_rebuilds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut db = open(&path);
    let mut replica = Replica::default();

    exec(
        &mut db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)",
        vec![],
    );
    let first = replica.commit(&mut db);
    assert_eq!(first.seq, 1);
    let frames = first.frames.as_ref().unwrap();
    assert_eq!(frames.position.frame_count as usize, frames.frames.len());
    assert!(frames.pages().contains_key(&1), "page 1 holds the schema");

    for i in 0..20 {
        exec(
            &mut db,
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            vec![SqlValue::Integer(i), SqlValue::Blob(vec![i as u8; 3_000])],
        );
        db.kv_put(&format!("k{i}"), &[1, 2, 3], true).unwrap();
        let ticket = replica.commit(&mut db);
        assert_eq!(ticket.seq, i as u64 + 2);
    }
    // A value spanning many overflow pages, an update, a delete, then everything dropped.
    exec(
        &mut db,
        "INSERT INTO t (id, body) VALUES (100, ?1)",
        vec![SqlValue::Blob(vec![7; 200_000])],
    );
    replica.commit(&mut db);
    exec(&mut db, "UPDATE t SET body = x'00' WHERE id < 10", vec![]);
    exec(&mut db, "DELETE FROM t WHERE id = 100", vec![]);
    replica.commit(&mut db);
    db.delete_all(true).unwrap();
    replica.commit(&mut db);
    exec(&mut db, "CREATE TABLE after (x)", vec![]);
    replica.commit(&mut db);
    replica.assert_matches(db, &path);
}

#[test]
fn capture_follows_the_wal_through_checkpoints_and_restarts() {
    let (_dir, path, mut db, mut replica) =
        fresh("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)");
    // Well past the checkpoint threshold: the WAL is checkpointed and restarted (new salts)
    // several times.
    let mut generations = std::collections::BTreeSet::new();
    for i in 0..600 {
        exec(
            &mut db,
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            vec![
                SqlValue::Integer(i),
                SqlValue::Blob(vec![(i % 251) as u8; 9_000]),
            ],
        );
        let ticket = replica.commit(&mut db);
        generations.insert(ticket.frames.unwrap().position.salts);
    }
    assert!(
        generations.len() >= 2,
        "the WAL restarted at least once ({} generations)",
        generations.len()
    );
    replica.assert_matches(db, &path);
}

#[test]
fn a_due_checkpoint_waits_for_its_caller_and_runs_beside_an_open_batch() {
    let (_dir, path, mut db, mut replica) =
        fresh("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)");
    let insert = |db: &mut ObjectDatabase, i: i64| {
        exec(
            db,
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            vec![SqlValue::Integer(i), SqlValue::Blob(vec![1; 9_000])],
        );
    };
    // Commits alone never checkpoint: the WAL keeps one generation past the threshold
    // until the caller (who knows what the log holds) runs the checkpoint.
    let mut i = 0;
    let first = loop {
        insert(&mut db, i);
        i += 1;
        let ticket = db.commit().unwrap().unwrap();
        replica.apply(&ticket);
        if db.checkpoint_due() {
            break ticket.frames.unwrap().position;
        }
    };
    insert(&mut db, i);
    i += 1;
    let ticket = db.commit().unwrap().unwrap();
    replica.apply(&ticket);
    let same = ticket.frames.unwrap().position;
    assert_eq!(same.salts, first.salts, "no checkpoint ran by itself");
    assert!(same.frame_count > first.frame_count);
    // A batch is open: the checkpoint runs on a second connection and copies only
    // committed frames; the batch commits into the same generation.
    insert(&mut db, i);
    i += 1;
    let file_before = std::fs::metadata(&path).unwrap().len();
    db.checkpoint();
    assert!(!db.checkpoint_due());
    assert!(
        std::fs::metadata(&path).unwrap().len() > file_before + 1_000_000,
        "the committed frames were copied into the database file"
    );
    let ticket = db.commit().unwrap().unwrap();
    replica.apply(&ticket);
    assert_eq!(ticket.frames.unwrap().position.salts, first.salts);
    // Once a checkpoint copied everything, the next batch starts a new generation.
    db.checkpoint();
    insert(&mut db, i);
    let ticket = db.commit().unwrap().unwrap();
    replica.apply(&ticket);
    let restarted = ticket.frames.unwrap().position;
    assert_ne!(restarted.salts, first.salts, "the WAL restarted");
    assert!(restarted.frame_count < 10);
    replica.assert_matches(db, &path);
}

#[test]
fn a_rolled_back_batch_that_spilled_frames_is_not_captured() {
    let (_dir, path, mut db, mut replica) =
        fresh("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)");
    // Larger than SQLite's page cache, so pages spill into the WAL before any commit.
    for i in 0..400 {
        exec(
            &mut db,
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            vec![SqlValue::Integer(i), SqlValue::Blob(vec![3; 20_000])],
        );
    }
    db.rollback_uncommitted();
    exec(
        &mut db,
        "INSERT INTO t (id, body) VALUES (1, x'01')",
        vec![],
    );
    let ticket = replica.commit(&mut db);
    assert!(ticket.frames.as_ref().unwrap().frames.len() < 10);
    replica.assert_matches(db, &path);
}

#[test]
fn a_reopened_database_captures_after_the_commits_its_wal_already_holds() {
    let (dir, path, mut db, mut replica) = fresh("CREATE TABLE t (id INTEGER PRIMARY KEY, v)");
    for i in 0..5 {
        exec(
            &mut db,
            "INSERT INTO t VALUES (?1, 'x')",
            vec![SqlValue::Integer(i)],
        );
        replica.commit(&mut db);
    }
    // What a crash leaves: the database and its WAL as they are, with the commits in the WAL.
    let copy = dir.path().join("copy.sqlite");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::copy(
        dir.path().join("o.sqlite-wal"),
        dir.path().join("copy.sqlite-wal"),
    )
    .unwrap();
    db.close();
    let mut db = open(&copy);
    for i in 5..10 {
        exec(
            &mut db,
            "INSERT INTO t VALUES (?1, 'y')",
            vec![SqlValue::Integer(i)],
        );
        replica.commit(&mut db);
    }
    replica.assert_matches(db, &copy);
}

#[test]
fn tickets_carry_the_alarm_when_the_batch_changed_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = ObjectDatabase::open(
        &dir.path().join("o.sqlite"),
        options(false),
        Arc::new(|_| {}),
    )
    .unwrap();
    db.kv_put("a", &[1], true).unwrap();
    let plain = db.commit().unwrap().unwrap();
    assert_eq!(plain.alarm, None);
    assert!(plain.frames.is_none(), "no frames without capture");
    db.set_alarm(Some(5_000), true).unwrap();
    assert_eq!(db.batch_alarm().unwrap(), Some(Some(5_000)));
    assert_eq!(db.commit().unwrap().unwrap().alarm, Some(Some(5_000)));
    db.set_alarm(None, true).unwrap();
    assert_eq!(db.commit().unwrap().unwrap().alarm, Some(None));
    db.set_alarm(Some(9_000), true).unwrap();
    db.commit().unwrap();
    db.delete_all(true).unwrap();
    assert_eq!(db.commit().unwrap().unwrap().alarm, Some(None));
    // A rolled-back alarm write is not reported by the next commit.
    db.set_alarm(Some(1), true).unwrap();
    db.rollback_uncommitted();
    db.kv_put("b", &[2], true).unwrap();
    assert_eq!(db.commit().unwrap().unwrap().alarm, None);
}

#[test]
fn a_wal_that_holds_another_writers_commit_stops_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut db = open(&path);
    exec(&mut db, "CREATE TABLE t (v)", vec![]);
    db.commit().unwrap();
    // Something other than this connection commits: the WAL no longer matches what the
    // capture point saw, and the next commit must not be reported as if it were whole.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    drop(other);
    exec(&mut db, "INSERT INTO t VALUES (2)", vec![]);
    let err = db.commit().unwrap_err();
    assert!(
        matches!(err, CommitError::Capture(WalError::NoCommit { .. })),
        "{err:?}"
    );
    // Broken from now on: no write is accepted and commits keep failing.
    assert!(db.kv_put("x", &[1], true).is_err());
    assert!(matches!(db.commit(), Err(CommitError::Capture(_))));
}

#[test]
fn a_commit_that_changed_nothing_has_no_frames_and_does_not_disturb_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut db = open(&path);
    let mut replica = Replica::default();
    exec(&mut db, "CREATE TABLE IF NOT EXISTS t (v)", vec![]);
    let first = replica.commit(&mut db);
    assert!(first.changed);
    // The table exists: the statement opens a batch but changes no page.
    exec(&mut db, "CREATE TABLE IF NOT EXISTS t (v)", vec![]);
    let empty = db.commit().unwrap().unwrap();
    assert!(!empty.changed);
    assert!(empty.frames.is_none());
    assert_eq!(empty.seq, first.seq + 1);
    exec(&mut db, "INSERT INTO t VALUES (1)", vec![]);
    let next = replica.commit(&mut db);
    assert!(next.changed);
    replica.assert_matches(db, &path);
}
