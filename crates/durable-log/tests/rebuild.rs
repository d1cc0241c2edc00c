//! Records made from what a real database's commits captured rebuild that database byte for
//! byte, and stopping at record *k* rebuilds it as it was after commit *k*: the ground under
//! restores and point-in-time recovery.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use durable_log::{
    AlarmChange, Checksum, DatabaseImage, Head, LogRecord, ObjectName, PageImage, RecordKind,
    WalMark, read_segment, verify_chain,
};
use durable_storage::{CommitTicket, DatabaseOptions, ObjectDatabase, SqlValue};

fn object() -> ObjectName {
    ObjectName {
        class: "Ledger".into(),
        id: [9; 32],
    }
}

fn open(path: &Path) -> ObjectDatabase {
    let mut options = DatabaseOptions::default();
    options.capture = true;
    ObjectDatabase::open(path, options, Arc::new(|_| {})).unwrap()
}

/// The record of `ticket`, following `head`.
fn record_of(ticket: &CommitTicket, head: Head, time_ms: i64) -> LogRecord {
    let frames = ticket.frames.as_ref().expect("capture is on");
    LogRecord {
        object: object(),
        seq: head.seq + 1,
        prev: head.checksum,
        kind: RecordKind::Commit,
        time_ms,
        page_size: frames.page_size,
        db_pages: frames.db_pages,
        pages: frames
            .pages()
            .into_iter()
            .map(|(page, data)| PageImage {
                page,
                data: data.to_vec(),
            })
            .collect(),
        alarm: AlarmChange::Unchanged,
        wal: Some(WalMark {
            salts: frames.position.salts,
            frames: frames.position.frame_count,
            checksum: frames.position.checksum,
        }),
    }
}

fn count(db: &mut ObjectDatabase) -> i64 {
    let cursor = db
        .exec("SELECT count(*) AS n FROM entries", vec![])
        .unwrap();
    cursor.one().unwrap().get::<i64>("n").unwrap()
}

#[test]
fn records_rebuild_the_database_and_every_point_in_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut db = open(&path);
    let mut head = Head::EMPTY;
    let mut segment = Vec::new();
    let mut rows_after = Vec::new();
    let mut commit = |db: &mut ObjectDatabase, head: &mut Head, rows: i64| {
        let ticket = db.commit().unwrap().expect("the batch wrote");
        let record = record_of(&ticket, *head, 1_000 + head.seq as i64);
        *head = head.advance(&record).unwrap();
        segment.extend_from_slice(&record.encode());
        rows_after.push(rows);
    };
    db.exec("CREATE TABLE entries (n INTEGER, body TEXT)", vec![])
        .unwrap();
    commit(&mut db, &mut head, 0);
    for n in 0..40_i64 {
        db.exec(
            "INSERT INTO entries VALUES (?1, ?2)",
            vec![SqlValue::Integer(n), SqlValue::Text("x".repeat(300))],
        )
        .unwrap();
        commit(&mut db, &mut head, n + 1);
    }
    // A schema change and a delete that frees pages are records like any other.
    db.exec("ALTER TABLE entries ADD COLUMN extra BLOB", vec![])
        .unwrap();
    db.exec("DELETE FROM entries WHERE n >= 10", vec![])
        .unwrap();
    commit(&mut db, &mut head, 10);
    db.close();
    let on_disk = std::fs::read(&path).unwrap();

    let (records, _) = read_segment(&segment);
    assert_eq!(
        verify_chain(&object(), Head::EMPTY, &records).unwrap(),
        head
    );
    let mut image = DatabaseImage::new();
    for record in &records {
        image.apply(record).unwrap();
    }
    assert!(
        image.bytes() == on_disk,
        "the rebuilt database differs from the real one"
    );

    // Every point in the history: the records up to k make the database after commit k.
    for k in [1, 2, 17, records.len() - 1] {
        let mut image = DatabaseImage::new();
        for record in &records[..k] {
            image.apply(record).unwrap();
        }
        let restored = dir.path().join(format!("at-{k}.sqlite"));
        std::fs::write(&restored, image.bytes()).unwrap();
        let mut db = open(&restored);
        assert_eq!(count(&mut db), rows_after[k - 1], "after record {k}");
        db.close();
    }
}

#[test]
fn a_snapshot_plus_the_records_after_it_is_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut db = open(&path);
    let mut head = Head::EMPTY;
    let mut records = Vec::new();
    db.exec("CREATE TABLE entries (n INTEGER)", vec![]).unwrap();
    for n in 0..20_i64 {
        db.exec(
            "INSERT INTO entries VALUES (?1)",
            vec![SqlValue::Integer(n)],
        )
        .unwrap();
        let ticket = db.commit().unwrap().unwrap();
        let record = record_of(&ticket, head, n);
        head = head.advance(&record).unwrap();
        records.push(record);
    }
    db.close();
    let mut snapshot = DatabaseImage::new();
    for record in &records[..8] {
        snapshot.apply(record).unwrap();
    }
    let page_size = records[0].page_size;
    let mut from_snapshot = DatabaseImage::from_bytes(snapshot.into_bytes(), page_size);
    for record in &records[8..] {
        from_snapshot.apply(record).unwrap();
    }
    assert!(from_snapshot.bytes() == std::fs::read(&path).unwrap());
    assert_ne!(head.checksum, Checksum::GENESIS);
}
