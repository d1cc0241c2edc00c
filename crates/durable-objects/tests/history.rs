//! Every object's history (the commit log): each commit lands in it, a damaged local
//! database is repaired from it, commits it never took are undone, point-in-time recovery
//! restores exactly the writes before a bookmark, and a lost data folder comes back from
//! PostgreSQL.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use durable_log::{CommitLog, DatabaseImage, Head, LocalArchive, ObjectName, verify_chain};
use durable_objects::prelude::*;
use durable_objects::testing::{EvictSockets, TestEnv, evict};
use durable_objects::{CommitLogSetting, Runtime, RuntimeBuilder};

/// A journal of numbered entries in SQL.
#[durable_object]
pub struct Journal {
    state: State,
}

impl DurableObject for Journal {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn init(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS entries (n INTEGER PRIMARY KEY, text TEXT)",
            (),
        )?;
        Ok(())
    }
}

#[rpc]
impl Journal {
    pub async fn add(&self, n: i64) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO entries (n, text) VALUES (?1, ?2)",
            (n, format!("entry {n} {}", "x".repeat(200))),
        )?;
        Ok(())
    }

    pub async fn entries(&self) -> Result<Vec<i64>> {
        let cursor = self
            .state
            .storage()
            .sql()
            .exec("SELECT n FROM entries ORDER BY n", ())?;
        cursor
            .raw()
            .map(|row| match row.first() {
                Some(durable_objects::storage::SqlValue::Integer(n)) => Ok(*n),
                other => Err(Error::user(format!("not a number: {other:?}"))),
            })
            .collect()
    }

    pub async fn add_column(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "ALTER TABLE entries ADD COLUMN extra TEXT DEFAULT 'new'",
            (),
        )?;
        Ok(())
    }

    pub async fn columns(&self) -> Result<i64> {
        let row = self
            .state
            .storage()
            .sql()
            .exec("SELECT count(*) AS n FROM pragma_table_info('entries')", ())?
            .one()?;
        Ok(row.get::<i64>("n")?)
    }

    pub async fn bookmark(&self) -> Result<String> {
        self.state.storage().get_current_bookmark().await
    }

    pub async fn bookmark_at(&self, time_ms: i64) -> Result<String> {
        self.state.storage().get_bookmark_for_time(time_ms).await
    }

    pub async fn restore(&self, bookmark: String) -> Result<String> {
        self.state
            .storage()
            .on_next_session_restore_bookmark(&bookmark)
            .await
    }
}

/// A key-value object with no schema of its own: opening it commits nothing.
#[durable_object]
pub struct Plain {
    state: State,
}

impl DurableObject for Plain {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl Plain {
    pub async fn put(&self, value: i64) -> Result<()> {
        self.state.storage().kv().put("v", &value)
    }

    pub async fn get(&self) -> Result<Option<i64>> {
        self.state.storage().kv().get("v")
    }
}

fn journals(env: &Env) -> Namespace<Journal> {
    env.namespace::<Journal>("JOURNALS").unwrap()
}

fn with_log(setting: CommitLogSetting) -> impl Fn(RuntimeBuilder) -> RuntimeBuilder {
    move |b: RuntimeBuilder| {
        b.bind::<Journal>("JOURNALS")
            .bind::<Plain>("PLAIN")
            .commit_log(setting.clone())
    }
}

/// Copies the data folder as it lies on disk now (what a crash leaves: every synced byte,
/// no clean shutdown), into a new temporary folder.
fn crash_copy(data: &Path) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else if entry.file_name() != "LOCK" {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(data, dir.path());
    dir
}

fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The database file of `name` in `data`.
fn db_of(env: &Env, data: &Path, name: &str) -> PathBuf {
    let id = journals(env).id_from_name(name).to_string();
    data.join("objects/Journal")
        .join(&id[..2])
        .join(format!("{id}.sqlite"))
}

fn log_name(env: &Env, name: &str) -> ObjectName {
    ObjectName {
        class: "Journal".into(),
        id: *journals(env).id_from_name(name).as_bytes(),
    }
}

#[tokio::test]
async fn every_commit_is_in_the_log_and_rebuilds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let runtime = with_log(CommitLogSetting::Local)(Runtime::builder().data_dir(&data))
        .build()
        .unwrap();
    let env = runtime.env();
    for name in ["a", "b", "c"] {
        for n in 0..40 {
            journals(&env).get_by_name(name).add(n).await.unwrap();
        }
    }
    journals(&env).get_by_name("b").add_column().await.unwrap();
    let names: Vec<ObjectName> = ["a", "b", "c"].iter().map(|n| log_name(&env, n)).collect();
    let files: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| db_of(&env, &data, n))
        .collect();
    // A clean stop copies every WAL into its database: the files are final.
    runtime.shutdown();
    let archive = LocalArchive::open(&data.join("log")).unwrap();
    let report = archive.verify().unwrap();
    assert_eq!(report.objects, 3);
    for (name, file) in names.iter().zip(&files) {
        let records = CommitLog::records(&archive, name, 1, u64::MAX).unwrap();
        // Each add is a commit of its own (each reply waited for it).
        assert!(records.len() >= 40, "{} records", records.len());
        assert_eq!(
            verify_chain(name, Head::EMPTY, &records).unwrap(),
            CommitLog::head(&archive, name).unwrap()
        );
        let mut image = DatabaseImage::new();
        for record in &records {
            image.apply(record).unwrap();
        }
        assert_eq!(
            image.bytes(),
            std::fs::read(file).unwrap().as_slice(),
            "the log rebuilds the database byte for byte"
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The WAL loses its second half (a power cut that took a tail the log has).
    Truncate,
    /// A frame in the middle of the WAL is overwritten (bad sectors, a stray write).
    Garble,
}

fn damage_wal(wal: &Path, damage: Damage) {
    let len = std::fs::metadata(wal).unwrap().len();
    let frame = 24 + 4096;
    let frames = (len - 32) / frame;
    assert!(frames > 20, "the WAL holds the commits ({frames} frames)");
    match damage {
        Damage::Truncate => {
            let file = std::fs::OpenOptions::new().write(true).open(wal).unwrap();
            file.set_len(32 + frames / 2 * frame).unwrap();
        }
        Damage::Garble => {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(wal).unwrap();
            let at = 32 + frames / 2 * frame + 24 + 100;
            file.write_all_at(&[0x5a; 64], at).unwrap();
        }
    }
}

/// Writes 60 entries (each acknowledged), leaves the data folder as a crash would, damages
/// the journal's WAL, and starts on it with the same commit log: the entries it finds.
async fn entries_after_damage(setting: CommitLogSetting, damage: Damage) -> Vec<i64> {
    let test = TestEnv::new(with_log(setting.clone())).unwrap();
    let journal = journals(&test.env()).get_by_name("j");
    for n in 0..60 {
        journal.add(n).await.unwrap();
    }
    let copy = crash_copy(test.data_dir());
    let db = db_of(&test.env(), copy.path(), "j");
    drop(test);
    damage_wal(&wal_of(&db), damage);
    let runtime = with_log(setting)(Runtime::builder().data_dir(copy.path()))
        .build()
        .unwrap();
    let entries = journals(&runtime.env())
        .get_by_name("j")
        .entries()
        .await
        .unwrap();
    runtime.shutdown();
    entries
}

#[tokio::test]
async fn a_truncated_or_garbled_wal_is_repaired_from_the_log() {
    let all: Vec<i64> = (0..60).collect();
    for damage in [Damage::Truncate, Damage::Garble] {
        // Without a log, the damage silently rolls the object back: what the log prevents.
        let without = entries_after_damage(CommitLogSetting::Off, damage).await;
        assert!(without.len() < 60, "{damage:?}: {without:?}");
        assert_eq!(without, all[..without.len()], "{damage:?}");
        let with = entries_after_damage(CommitLogSetting::Local, damage).await;
        assert_eq!(with, all, "{damage:?}: repaired from the log");
    }
}

#[tokio::test]
async fn a_database_without_history_becomes_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let start = |setting| {
        with_log(setting)(Runtime::builder().data_dir(dir.path()))
            .build()
            .unwrap()
    };
    let runtime = start(CommitLogSetting::Off);
    for n in 0..10 {
        journals(&runtime.env())
            .get_by_name("old")
            .add(n)
            .await
            .unwrap();
    }
    runtime.shutdown();
    assert!(!dir.path().join("log").exists(), "no log while it is off");

    let runtime = start(CommitLogSetting::Local);
    let journal = journals(&runtime.env()).get_by_name("old");
    assert_eq!(
        journal.entries().await.unwrap(),
        (0..10).collect::<Vec<_>>()
    );
    journal.add(10).await.unwrap();
    let first_bookmark = journal.bookmark().await.unwrap();
    let name = log_name(&runtime.env(), "old");
    let db = db_of(&runtime.env(), dir.path(), "old");
    runtime.shutdown();

    let archive = LocalArchive::open(&dir.path().join("log")).unwrap();
    let records = CommitLog::records(&archive, &name, 1, u64::MAX).unwrap();
    assert_eq!(records.len(), 2, "the whole database, then the new commit");
    assert_eq!(records[0].wal, None);
    assert_eq!(records[0].pages.len() as u32, records[0].db_pages);
    assert!(
        first_bookmark.starts_with("0000000000000002-"),
        "{first_bookmark}"
    );
    let mut image = DatabaseImage::new();
    for record in &records {
        image.apply(record).unwrap();
    }
    assert_eq!(image.bytes(), std::fs::read(db).unwrap().as_slice());
}

#[tokio::test]
async fn bookmarks_restore_exactly_the_writes_before_them_even_past_a_schema_change() {
    let mut test = TestEnv::new(with_log(CommitLogSetting::Local)).unwrap();
    let clock = std::sync::Arc::clone(test.clock());
    let journal = journals(&test.env()).get_by_name("j");
    let empty_time = clock.now_ms();
    clock.advance_ms(1_000);
    // Each write at its own second: (bookmark after it, time after it).
    let mut points = Vec::new();
    for n in 0..5 {
        if n == 3 {
            journal.add_column().await.unwrap();
            clock.advance_ms(1_000);
        }
        journal.add(n).await.unwrap();
        points.push((journal.bookmark().await.unwrap(), clock.now_ms()));
        clock.advance_ms(1_000);
    }
    let bookmarks: Vec<&String> = points.iter().map(|(b, _)| b).collect();
    let mut sorted = bookmarks.clone();
    sorted.sort();
    assert_eq!(sorted, bookmarks, "bookmarks sort in commit order");
    // A time names the last write at or before it.
    for (n, (bookmark, time)) in points.iter().enumerate() {
        assert_eq!(&journal.bookmark_at(*time).await.unwrap(), bookmark, "{n}");
        assert_eq!(
            &journal.bookmark_at(*time + 999).await.unwrap(),
            bookmark,
            "{n}"
        );
    }

    // Back to after write 1 (before the schema change): applied when the object next starts.
    let latest = journal.bookmark().await.unwrap();
    let undo = journal.restore(points[1].0.clone()).await.unwrap();
    assert_eq!(
        undo, latest,
        "the bookmark that undoes the restore is the state before it"
    );
    assert_eq!(journal.entries().await.unwrap(), [0, 1, 2, 3, 4], "not yet");
    assert!(evict(&journal, EvictSockets::Close).await.unwrap());
    assert_eq!(journal.entries().await.unwrap(), [0, 1]);
    assert_eq!(journal.columns().await.unwrap(), 2);
    // The restore is history too: it was written forward, after the latest write.
    let restored = journal.bookmark().await.unwrap();
    assert!(restored > latest, "{restored} after {latest}");

    // Forward again past the schema change, by time; then undone with the bookmark given.
    journal
        .restore(journal.bookmark_at(points[3].1).await.unwrap())
        .await
        .unwrap();
    assert!(evict(&journal, EvictSockets::Close).await.unwrap());
    assert_eq!(journal.entries().await.unwrap(), [0, 1, 2, 3]);
    assert_eq!(journal.columns().await.unwrap(), 3);
    journal.restore(undo).await.unwrap();
    // A restart in between: the request waits in the data folder.
    test.restart().unwrap();
    let journal = journals(&test.env()).get_by_name("j");
    assert_eq!(journal.entries().await.unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(journal.columns().await.unwrap(), 3);
    // And to before the first write: the empty object.
    journal
        .restore(journal.bookmark_at(empty_time).await.unwrap())
        .await
        .unwrap();
    assert!(evict(&journal, EvictSockets::Close).await.unwrap());
    assert_eq!(journal.entries().await.unwrap(), Vec::<i64>::new());
    journal.add(7).await.unwrap();
    assert_eq!(journal.entries().await.unwrap(), [7]);

    // Bad input: clear errors, nothing changed.
    let other = journals(&test.env()).get_by_name("other");
    other.add(1).await.unwrap();
    let foreign = other.bookmark().await.unwrap();
    let now = clock.now_ms();
    for (bad, what) in [
        (journal.restore("yesterday".into()).await, "not a bookmark"),
        (
            journal.restore(foreign.clone()).await,
            "another object's bookmark",
        ),
        (
            journal
                .restore("ffffffffffffffff-0000000000000000".into())
                .await,
            "past the end of history",
        ),
        (journal.bookmark_at(now + 60_000).await, "a future time"),
        (
            journal.bookmark_at(now - 31 * 24 * 3_600_000).await,
            "older than the window",
        ),
    ] {
        let err = bad.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err:?}");
    }
    assert!(evict(&journal, EvictSockets::Close).await.unwrap());
    assert_eq!(journal.entries().await.unwrap(), [7]);
}

#[tokio::test]
async fn without_a_commit_log_bookmarks_say_so() {
    let test = TestEnv::new(with_log(CommitLogSetting::Off)).unwrap();
    let journal = journals(&test.env()).get_by_name("j");
    journal.add(1).await.unwrap();
    let err = journal.bookmark().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented, "{err:?}");
    assert!(err.message().contains("commit log"), "{err}");
}

fn postgres() -> durable_pgtemp::TempPostgres {
    durable_pgtemp::TempPostgres::start()
        .unwrap_or_else(|err| panic!("a throwaway PostgreSQL server starts: {err}"))
}

#[tokio::test]
async fn writes_wait_out_a_postgresql_restart() {
    let mut pg = postgres();
    let test = TestEnv::new(with_log(CommitLogSetting::Postgres { url: pg.url() })).unwrap();
    let journal = journals(&test.env()).get_by_name("j");
    for n in 0..10 {
        journal.add(n).await.unwrap();
    }
    pg.kill().unwrap();
    // The write waits (its reply held) while PostgreSQL is away, and lands when it is back.
    let waiting = tokio::spawn({
        let journal = journal.clone();
        async move { journal.add(10).await }
    });
    pg.start_again().unwrap();
    waiting.await.unwrap().unwrap();
    journal.add(11).await.unwrap();
    assert_eq!(
        journal.entries().await.unwrap(),
        (0..12).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn postgresql_down_past_the_storage_timeout_fails_writes_retryably_and_undoes_them() {
    let mut pg = postgres();
    let url = pg.url();
    let setting = CommitLogSetting::Postgres { url: url.clone() };
    let test = TestEnv::new(move |b| {
        with_log(setting.clone())(b).storage_timeout(Duration::from_millis(300))
    })
    .unwrap();
    let journal = journals(&test.env()).get_by_name("j");
    for n in 0..20 {
        journal.add(n).await.unwrap();
    }
    pg.kill().unwrap();
    // Reads of an open object go on while PostgreSQL is away.
    assert_eq!(
        journal.entries().await.unwrap(),
        (0..20).collect::<Vec<_>>()
    );
    let err = journal.add(20).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // A new object (opened while PostgreSQL was there) whose very first write is refused.
    let fresh = test
        .env()
        .namespace::<Plain>("PLAIN")
        .unwrap()
        .get_by_name("fresh");
    pg.start_again().unwrap();
    assert_eq!(fresh.get().await.unwrap(), None);
    pg.kill().unwrap();
    assert!(fresh.put(1).await.unwrap_err().is_retryable());
    pg.start_again().unwrap();
    // The objects start again: the writes PostgreSQL never took are undone locally (a
    // retry cannot apply them twice).
    journal.add(21).await.unwrap();
    let mut expected: Vec<i64> = (0..20).collect();
    expected.push(21);
    assert_eq!(journal.entries().await.unwrap(), expected);
    assert_eq!(fresh.get().await.unwrap(), None);
    fresh.put(2).await.unwrap();
    assert_eq!(fresh.get().await.unwrap(), Some(2));
    let log = durable_log::PostgresLog::open_existing(&url).unwrap();
    let report = log.verify().unwrap();
    assert_eq!(report.objects, 2);
    assert!(report.records >= 22, "{report:?}");
}

#[tokio::test]
async fn a_lost_data_folder_comes_back_from_postgresql() {
    let pg = postgres();
    let setting = CommitLogSetting::Postgres { url: pg.url() };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = || {
        with_log(setting.clone())(Runtime::builder().data_dir(&data))
            .build()
            .unwrap()
    };
    let runtime = start();
    for name in ["a", "b", "c"] {
        for n in 0..25 {
            journals(&runtime.env())
                .get_by_name(name)
                .add(n)
                .await
                .unwrap();
        }
    }
    // Killed without a clean stop, then the disk is gone.
    let copy = crash_copy(&data);
    runtime.shutdown();
    drop(copy);
    std::fs::remove_dir_all(&data).unwrap();

    let runtime = start();
    for name in ["a", "b", "c"] {
        assert_eq!(
            journals(&runtime.env())
                .get_by_name(name)
                .entries()
                .await
                .unwrap(),
            (0..25).collect::<Vec<_>>(),
            "{name}: rebuilt from PostgreSQL, found by name with the key kept there"
        );
    }
    journals(&runtime.env())
        .get_by_name("a")
        .add(25)
        .await
        .unwrap();
    runtime.shutdown();
}

#[tokio::test]
async fn a_class_deleted_and_created_again_starts_empty_and_never_brings_back_its_history() {
    use durable_objects::Migration;
    let dir = tempfile::tempdir().unwrap();
    let mut v1 = Migration::new("v1");
    v1.new_sqlite_classes = vec!["Journal".into()];
    let mut v2 = Migration::new("v2");
    v2.deleted_classes = vec!["Journal".into()];
    let mut v3 = Migration::new("v3");
    v3.new_sqlite_classes = vec!["Journal".into()];
    let build = |migrations: Vec<Migration>, bind: bool| {
        let builder = Runtime::builder()
            .data_dir(dir.path())
            .migrations(migrations);
        let builder = if bind {
            builder.bind::<Journal>("JOURNALS")
        } else {
            builder
        };
        builder.build().unwrap()
    };
    let runtime = build(vec![v1.clone()], true);
    let journal = journals(&runtime.env()).get_by_name("j");
    journal.add(1).await.unwrap();
    let old_id = journal.id().to_string();
    runtime.shutdown();
    build(vec![v1.clone(), v2.clone()], false).shutdown();
    let runtime = build(vec![v1, v2, v3], true);
    let journal = journals(&runtime.env()).get_by_name("j");
    assert_ne!(journal.id().to_string(), old_id, "a new key, new ids");
    assert_eq!(journal.entries().await.unwrap(), Vec::<i64>::new());
    runtime.shutdown();
}

#[tokio::test]
async fn history_older_than_the_window_folds_into_snapshots_and_every_point_inside_it_stays() {
    let test = TestEnv::new(with_log(CommitLogSetting::Local)).unwrap();
    let clock = std::sync::Arc::clone(test.clock());
    let env = test.env();
    let busy = journals(&env).get_by_name("busy");
    let quiet = journals(&env).get_by_name("quiet");
    quiet.add(100).await.unwrap();
    let mut old = Vec::new();
    for n in 0..6 {
        clock.advance_ms(1_000);
        busy.add(n).await.unwrap();
        old.push(busy.bookmark().await.unwrap());
    }
    // A month and a day later (the window is 30 days): three more writes.
    clock.advance_ms(31 * 24 * 3_600_000);
    let mut recent = Vec::new();
    for n in 6..9 {
        clock.advance_ms(1_000);
        busy.add(n).await.unwrap();
        recent.push(busy.bookmark().await.unwrap());
    }
    let window_start = clock.now_ms() - 30 * 24 * 3_600_000;
    // Nothing is older than the window yet... until retention runs.
    let report = test.runtime().compact_history().unwrap();
    assert_eq!(report.compacted, 2, "{report:?}");
    assert_eq!(report.records, 1 + 6, "{report:?}");
    // Again: nothing more to fold.
    assert_eq!(test.runtime().compact_history().unwrap().compacted, 0);

    // Every point inside the window is still there: the window's start (the last write
    // before it) and each write after it.
    let at_start = busy.bookmark_at(window_start).await.unwrap();
    assert_eq!(&at_start, old.last().unwrap());
    busy.restore(at_start).await.unwrap();
    assert!(evict(&busy, EvictSockets::Close).await.unwrap());
    assert_eq!(busy.entries().await.unwrap(), [0, 1, 2, 3, 4, 5]);
    busy.restore(recent[1].clone()).await.unwrap();
    assert!(evict(&busy, EvictSockets::Close).await.unwrap());
    assert_eq!(busy.entries().await.unwrap(), [0, 1, 2, 3, 4, 5, 6, 7]);
    // A point folded away is refused with a clear error, and nothing changes.
    let err = busy.restore(old[2].clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
    assert!(err.message().contains("older than the history"), "{err}");
    assert!(evict(&busy, EvictSockets::Close).await.unwrap());
    assert_eq!(busy.entries().await.unwrap(), [0, 1, 2, 3, 4, 5, 6, 7]);

    // The quiet object's whole history is its snapshot: it opens after a restart, and its
    // database comes back from the snapshot when it is lost.
    let copy = crash_copy(test.data_dir());
    let db = db_of(&env, copy.path(), "quiet");
    let quiet_name = log_name(&env, "quiet");
    drop((busy, quiet, test));
    for file in [db.clone(), wal_of(&db)] {
        let _ = std::fs::remove_file(file);
    }
    let runtime = with_log(CommitLogSetting::Local)(Runtime::builder().data_dir(copy.path()))
        .build()
        .unwrap();
    let env = runtime.env();
    assert_eq!(
        journals(&env).get_by_name("quiet").entries().await.unwrap(),
        [100]
    );
    journals(&env).get_by_name("quiet").add(101).await.unwrap();
    assert_eq!(
        journals(&env).get_by_name("busy").entries().await.unwrap(),
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
    runtime.shutdown();
    let archive = LocalArchive::open(&copy.path().join("log")).unwrap();
    let report = archive.verify().unwrap();
    assert_eq!(report.snapshots, 2, "{report:?}");
    assert!(archive.history_start(&quiet_name).unwrap().is_some());
    assert_eq!(
        CommitLog::records(&archive, &quiet_name, 1, u64::MAX)
            .unwrap()
            .len(),
        2,
        "the snapshot's record and the write after the restart"
    );
}

#[tokio::test]
async fn retention_settings_are_checked_and_compacting_without_a_log_says_so() {
    for bad in [
        Runtime::builder().retention_interval(Duration::ZERO),
        Runtime::builder().history_window(Duration::ZERO),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let err = bad.data_dir(dir.path()).build().unwrap_err();
        assert!(err.to_string().contains("is 0"), "{err}");
    }
    let test = TestEnv::new(with_log(CommitLogSetting::Off)).unwrap();
    let err = test.runtime().compact_history().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("no commit log"), "{err}");
}
