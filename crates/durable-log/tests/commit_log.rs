//! One suite, run against every [`CommitLog`]: the local archive and PostgreSQL (on a
//! throwaway server started from Debian's `postgresql` package). What the runtime, restores and
//! the verifier rely on holds for both.
#![allow(clippy::unwrap_used)]

use durable_log::{
    AlarmChange, Checksum, CommitLog, Compaction, Head, LocalArchive, LogError, LogRecord,
    ObjectName, PageImage, PostgresLog, RecordKind, Snapshot, compact_object, image_at,
    verify_chain,
};
use durable_pgtemp::TempPostgres;

fn object(class: &str, n: u8) -> ObjectName {
    ObjectName {
        class: class.into(),
        id: [n; 32],
    }
}

fn next(object: &ObjectName, head: Head, time_ms: i64) -> LogRecord {
    LogRecord {
        object: object.clone(),
        seq: head.seq + 1,
        prev: head.checksum,
        kind: RecordKind::Commit,
        time_ms,
        page_size: 512,
        db_pages: 2,
        pages: vec![
            PageImage {
                page: 1,
                data: vec![head.seq as u8; 512],
            },
            PageImage {
                page: 2,
                data: vec![!(head.seq as u8); 512],
            },
        ],
        alarm: if head.seq.is_multiple_of(2) {
            AlarmChange::Set(time_ms)
        } else {
            AlarmChange::Unchanged
        },
        wal: None,
    }
}

/// `n` rounds, each one append holding the next record of every object in `objects`.
fn fill(log: &dyn CommitLog, objects: &[ObjectName], n: u64, start_ms: i64) {
    for round in 0..n {
        let batch: Vec<LogRecord> = objects
            .iter()
            .map(|o| next(o, log.head(o).unwrap(), start_ms + 1_000 * round as i64))
            .collect();
        log.append(&batch).unwrap();
    }
}

/// Everything the suite checks, on `log` (empty at first); `reopen` gives the same log
/// afresh (a restart).
fn suite(log: &dyn CommitLog, reopen: &dyn Fn() -> Box<dyn CommitLog>) {
    let a = object("Room", 1);
    let b = object("Room", 2);
    let c = object("Ledger", 1);
    assert_eq!(log.head(&a).unwrap(), Head::EMPTY);
    assert!(log.objects().unwrap().is_empty());

    // Group commit: several objects in one append, round after round.
    fill(log, &[a.clone(), b.clone(), c.clone()], 6, 10_000);
    for o in [&a, &b, &c] {
        let records = log.records(o, 1, u64::MAX).unwrap();
        assert_eq!(records.len(), 6);
        assert_eq!(
            verify_chain(o, Head::EMPTY, &records).unwrap(),
            log.head(o).unwrap()
        );
        assert_eq!(
            records[2],
            log.records(o, 3, 3).unwrap()[0],
            "read back as written"
        );
    }
    assert_eq!(log.records(&a, 2, 4).unwrap().len(), 3);
    assert_eq!(log.records(&a, 7, 9).unwrap().len(), 0);
    let mut objects = log.objects().unwrap();
    objects.sort();
    assert_eq!(objects, [c.clone(), a.clone(), b.clone()]);

    // Several records of one object in one append.
    let h = log.head(&a).unwrap();
    let r7 = next(&a, h, 20_000);
    let r8 = next(
        &a,
        Head {
            seq: 7,
            checksum: r7.checksum(),
        },
        21_000,
    );
    log.append(&[r7, r8]).unwrap();
    assert_eq!(log.head(&a).unwrap().seq, 8);

    // Point in time: the last record at or before a time.
    let at = log.record_at_time(&a, 12_500).unwrap().unwrap();
    assert_eq!((at.seq, at.time_ms), (3, 12_000));
    assert_eq!(at.checksum, log.records(&a, 3, 3).unwrap()[0].checksum());
    assert_eq!(log.record_at_time(&a, 9_999).unwrap(), None);
    assert_eq!(log.record_at_time(&a, i64::MAX).unwrap().unwrap().seq, 8);

    // A broken chain refuses the whole append, the good records of it included.
    let before = [log.head(&a).unwrap(), log.head(&b).unwrap()];
    let good = next(&b, log.head(&b).unwrap(), 30_000);
    let mut fork = next(&a, log.head(&a).unwrap(), 30_000);
    fork.prev = Checksum(4242);
    assert!(matches!(
        log.append(&[good.clone(), fork]),
        Err(LogError::Chain { .. })
    ));
    let gap = next(
        &a,
        Head {
            seq: 10,
            ..log.head(&a).unwrap()
        },
        30_000,
    );
    assert!(matches!(log.append(&[gap]), Err(LogError::Chain { .. })));
    let replay = log.records(&a, 8, 8).unwrap();
    assert!(
        matches!(log.append(&replay), Err(LogError::Chain { .. })),
        "a record appended twice"
    );
    let mut bad_first = next(&object("Room", 9), Head::EMPTY, 0);
    bad_first.prev = Checksum(1);
    assert!(matches!(
        log.append(&[bad_first]),
        Err(LogError::Chain { .. })
    ));
    assert_eq!([log.head(&a).unwrap(), log.head(&b).unwrap()], before);
    assert!(log.records(&object("Room", 9), 1, 9).unwrap().is_empty());
    log.append(&[good]).unwrap();

    // The verifier reads everything back.
    let report = log.verify().unwrap();
    assert_eq!(report.objects, 3);
    assert_eq!(report.records, 8 + 7 + 6);

    // A restart finds the same heads and history, and appends go on from them.
    let again = reopen();
    for o in [&a, &b, &c] {
        assert_eq!(again.head(o).unwrap(), log.head(o).unwrap());
    }
    fill(again.as_ref(), std::slice::from_ref(&c), 1, 40_000);
    assert_eq!(again.head(&c).unwrap().seq, 7);
    assert_eq!(again.verify().unwrap().records, report.records + 1);

    // Namespace keys: a class keeps its first key, over restarts; another is refused.
    let key = "ab".repeat(32);
    assert!(again.class_keys().unwrap().is_empty());
    again.put_class_key("Room", &key).unwrap();
    again.put_class_key("Room", &key.to_uppercase()).unwrap();
    again.put_class_key("Ledger", &"cd".repeat(32)).unwrap();
    assert!(matches!(
        again.put_class_key("Room", &"ef".repeat(32)),
        Err(LogError::Conflict(_))
    ));
    let keys = reopen().class_keys().unwrap();
    assert_eq!(
        keys,
        [
            ("Ledger".to_owned(), "cd".repeat(32)),
            ("Room".to_owned(), key)
        ]
    );
    // A deleted class's key is forgotten: the name may get another one.
    again.forget_class_key("Room").unwrap();
    again.forget_class_key("Never").unwrap();
    again.put_class_key("Room", &"ef".repeat(32)).unwrap();
    assert_eq!(reopen().class_keys().unwrap()[1].1, "ef".repeat(32));

    // One writer at a time: the local archive keeps where its segment ends in memory.
    drop(again);
    retention(reopen);
}

/// Retention: old records fold into a snapshot; every point from it on stays as it was.
fn retention(reopen: &dyn Fn() -> Box<dyn CommitLog>) {
    let log = reopen();
    let log = log.as_ref();
    let r = object("Retained", 1);
    fill(log, std::slice::from_ref(&r), 10, 100_000);
    let images: Vec<(Vec<u8>, Head)> = (0..=10).map(|s| image_at(log, &r, s).unwrap()).collect();
    assert_eq!(log.history_start(&r).unwrap(), None);
    assert!(log.snapshot(&r).unwrap().is_none());

    // Keep from 104,500: the state then is record 5's (taken at 104,000).
    let outcome = compact_object(log, &r, 104_500).unwrap();
    assert!(
        matches!(
            outcome,
            Compaction::Compacted {
                start: 5,
                records: 5,
                ..
            }
        ),
        "{outcome:?}"
    );
    let start = log.history_start(&r).unwrap().unwrap();
    assert_eq!((start.seq, start.time_ms), (5, 104_000));
    assert_eq!(start.checksum, images[5].1.checksum);
    let retained = log.records(&r, 1, u64::MAX).unwrap();
    assert_eq!(
        retained.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [5, 6, 7, 8, 9, 10],
        "the snapshot's record first, then the records after it"
    );
    assert_eq!(log.records(&r, 5, 5).unwrap()[0].checksum(), start.checksum);
    assert!(log.records(&r, 1, 4).unwrap().is_empty());
    for (seq, image) in images.iter().enumerate().skip(5) {
        assert_eq!(
            &image_at(log, &r, seq as u64).unwrap(),
            image,
            "record {seq}"
        );
    }
    for seq in 0..5 {
        assert!(
            matches!(
                image_at(log, &r, seq),
                Err(LogError::BeforeHistory { start: 5, .. })
            ),
            "record {seq} is gone"
        );
    }
    assert_eq!(log.record_at_time(&r, 104_200).unwrap().unwrap().seq, 5);
    assert_eq!(log.record_at_time(&r, 103_999).unwrap(), None);
    assert_eq!(log.record_at_time(&r, 106_000).unwrap().unwrap().seq, 7);
    assert_eq!(log.head(&r).unwrap(), images[10].1);
    assert!(log.verify().unwrap().snapshots >= 1);
    // Nothing more to fold with the same window.
    assert_eq!(compact_object(log, &r, 104_500).unwrap(), Compaction::Kept);

    // A snapshot of a record the log does not hold, or one going back, is refused.
    let current = log.snapshot(&r).unwrap().unwrap();
    let mut forged = current.clone();
    forged.record.time_ms += 1;
    assert!(matches!(
        log.put_snapshot(&forged),
        Err(LogError::Conflict(_))
    ));
    let older = Snapshot {
        record: next(&r, images[3].1, 103_000),
        image: images[4].0.clone(),
    };
    assert!(matches!(
        log.put_snapshot(&older),
        Err(LogError::Conflict(_))
    ));
    assert_eq!(log.history_start(&r).unwrap().unwrap().seq, 5);

    // An object quiet for longer than the window: everything folds, its head included, and
    // it goes on from there, over a restart.
    assert!(matches!(
        compact_object(log, &r, i64::MAX).unwrap(),
        Compaction::Compacted { start: 10, .. }
    ));
    assert_eq!(log.records(&r, 10, 10).unwrap().len(), 1);
    let again = reopen();
    let log = again.as_ref();
    assert_eq!(log.head(&r).unwrap(), images[10].1);
    assert!(log.objects().unwrap().contains(&r));
    assert_eq!(image_at(log, &r, 10).unwrap(), images[10]);
    fill(log, std::slice::from_ref(&r), 1, 200_000);
    assert_eq!(log.head(&r).unwrap().seq, 11);
    assert_eq!(log.records(&r, 1, u64::MAX).unwrap().len(), 2);
    log.verify().unwrap();

    // Folding is only done when what leaves the log weighs half the image: a few small
    // records over a large database stay.
    let big = object("Retained", 2);
    let first = LogRecord {
        db_pages: 40,
        pages: (1..=40)
            .map(|page| PageImage {
                page,
                data: vec![page as u8; 512],
            })
            .collect(),
        ..next(&big, Head::EMPTY, 300_000)
    };
    log.append(std::slice::from_ref(&first)).unwrap();
    let mut head = Head {
        seq: 1,
        checksum: first.checksum(),
    };
    for n in 1..=3 {
        let small = LogRecord {
            db_pages: 40,
            pages: vec![PageImage {
                page: 3,
                data: vec![n; 512],
            }],
            ..next(&big, head, 300_000 + i64::from(n) * 1_000)
        };
        head = Head {
            seq: small.seq,
            checksum: small.checksum(),
        };
        log.append(&[small]).unwrap();
    }
    assert!(matches!(
        compact_object(log, &big, 300_000).unwrap(),
        Compaction::Compacted { start: 1, .. }
    ));
    assert_eq!(
        compact_object(log, &big, 303_000).unwrap(),
        Compaction::Kept,
        "three small records against a 20 KiB database"
    );
    assert_eq!(log.records(&big, 1, u64::MAX).unwrap().len(), 4);
}

#[test]
fn the_local_archive_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalArchive::open(dir.path()).unwrap();
    let path = dir.path().to_owned();
    suite(&log, &move || Box::new(LocalArchive::open(&path).unwrap()));
}

#[test]
fn postgresql_passes_the_suite() {
    let server = TempPostgres::start().expect("a throwaway PostgreSQL server starts");
    let url = server.url();
    let log = PostgresLog::connect(&url).unwrap();
    suite(&log, &move || Box::new(PostgresLog::connect(&url).unwrap()));
}

#[test]
fn postgresql_writes_resume_after_a_server_restart_and_nothing_is_lost() {
    let mut server = TempPostgres::start().unwrap();
    let log = PostgresLog::connect(&server.url()).unwrap();
    let a = object("Room", 1);
    fill(&log, std::slice::from_ref(&a), 3, 0);
    let record = next(&a, log.head(&a).unwrap(), 5_000);
    server.restart().unwrap();
    // The first use finds the connection gone: a store error, which may be retried.
    let mut appended = log.append(std::slice::from_ref(&record));
    if let Err(error) = &appended {
        assert!(matches!(error, LogError::Store(_)), "{error}");
        appended = log.append(std::slice::from_ref(&record));
    }
    appended.unwrap();
    assert_eq!(log.head(&a).unwrap().seq, 4);
    assert_eq!(log.verify().unwrap().records, 4);
    // A crash of the server loses nothing committed either; a read after it reconnects by
    // itself (reads may run twice), on its first try.
    server.kill().unwrap();
    server.start_again().unwrap();
    assert_eq!(log.head(&a).unwrap().seq, 4);
    server.restart().unwrap();
    assert_eq!(log.records(&a, 1, 4).unwrap().len(), 4);
}

#[test]
fn two_writers_of_one_object_cannot_both_extend_its_head() {
    let server = TempPostgres::start().unwrap();
    let first = PostgresLog::connect(&server.url()).unwrap();
    let second = PostgresLog::connect(&server.url()).unwrap();
    let a = object("Room", 1);
    fill(&first, std::slice::from_ref(&a), 2, 0);
    let head = second.head(&a).unwrap();
    // Both make record 3 on the same head: the first to commit wins, the other is refused.
    let mine = next(&a, head, 1);
    let mut theirs = next(&a, head, 2);
    theirs.pages[0].data[0] = 0xee;
    first.append(&[mine]).unwrap();
    assert!(matches!(
        second.append(&[theirs]),
        Err(LogError::Chain { .. })
    ));
    assert_eq!(first.verify().unwrap().records, 3);
}
