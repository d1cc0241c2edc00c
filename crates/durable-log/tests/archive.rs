//! The local archive on a real folder: appends are chained and durable, reads come back
//! checked, a reopen finds every head, a torn tail is cut, a lost index is rebuilt from the
//! segments, and damage is reported, never skipped.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use durable_log::{
    AlarmChange, ArchiveError, Checksum, CommitLog, Head, LocalArchive, LogError, LogRecord,
    ObjectName, PageImage, RecordKind, verify_chain,
};

fn object(n: u8) -> ObjectName {
    ObjectName {
        class: "Ledger".into(),
        id: [n; 32],
    }
}

/// The next record of `object` after `head`, taken at `time_ms`.
fn next(object: &ObjectName, head: Head, time_ms: i64) -> LogRecord {
    LogRecord {
        object: object.clone(),
        seq: head.seq + 1,
        prev: head.checksum,
        kind: RecordKind::Commit,
        time_ms,
        page_size: 512,
        db_pages: 1,
        pages: vec![PageImage {
            page: 1,
            data: vec![head.seq as u8; 512],
        }],
        alarm: AlarmChange::Unchanged,
        wal: None,
    }
}

/// Appends `n` records to each of `objects`, interleaved, one append per round.
fn fill(archive: &LocalArchive, objects: &[ObjectName], n: u64) {
    for round in 0..n {
        let batch: Vec<LogRecord> = objects
            .iter()
            .map(|o| next(o, archive.head(o), 1_000 * round as i64))
            .collect();
        archive.append(&batch).unwrap();
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[test]
fn appended_records_come_back_in_order_and_chained() {
    let dir = tempfile::tempdir().unwrap();
    let archive = LocalArchive::open(dir.path()).unwrap();
    let objects = [object(1), object(2)];
    fill(&archive, &objects, 10);
    for o in &objects {
        let records = archive.records(o, 1, u64::MAX).unwrap();
        assert_eq!(records.len(), 10);
        let head = verify_chain(o, Head::EMPTY, &records).unwrap();
        assert_eq!(head, archive.head(o));
        assert_eq!(archive.records(o, 4, 6).unwrap().len(), 3);
    }
    assert_eq!(archive.objects(), objects.to_vec());
    // The last record at or before a time.
    let at = archive.place_at_time(&objects[0], 4_500).unwrap().unwrap();
    assert_eq!((at.seq, at.time_ms), (5, 4_000));
    assert!(archive.place_at_time(&objects[0], -1).unwrap().is_none());
}

#[test]
fn an_append_that_breaks_a_chain_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let archive = LocalArchive::open(dir.path()).unwrap();
    fill(&archive, &[object(1)], 2);
    let before = std::fs::metadata(&segment_files(dir.path())[0])
        .unwrap()
        .len();
    let good = next(&object(2), Head::EMPTY, 0);
    let mut forked = next(&object(1), archive.head(&object(1)), 0);
    forked.prev = Checksum(12345);
    let error = archive.append(&[good, forked]).unwrap_err();
    assert!(
        matches!(error, ArchiveError::Chain { seq: 3, .. }),
        "{error}"
    );
    assert_eq!(
        std::fs::metadata(&segment_files(dir.path())[0])
            .unwrap()
            .len(),
        before
    );
    assert_eq!(archive.head(&object(2)), Head::EMPTY);
    let gap = next(
        &object(1),
        Head {
            seq: 5,
            ..archive.head(&object(1))
        },
        0,
    );
    assert!(archive.append(&[gap]).is_err());
}

#[test]
fn a_reopened_archive_knows_every_head() {
    let dir = tempfile::tempdir().unwrap();
    let heads = {
        let archive = LocalArchive::open(dir.path()).unwrap();
        fill(&archive, &[object(1), object(2), object(3)], 5);
        [1, 2, 3].map(|n| archive.head(&object(n)))
    };
    let archive = LocalArchive::open(dir.path()).unwrap();
    assert_eq!([1, 2, 3].map(|n| archive.head(&object(n))), heads);
    fill(&archive, &[object(2)], 1);
    assert_eq!(archive.head(&object(2)).seq, 6);
}

#[test]
fn a_torn_tail_is_cut_and_a_lost_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let archive = LocalArchive::open(dir.path()).unwrap();
        fill(&archive, &[object(1)], 4);
    }
    // A fifth record whose write was cut short: half of it reached the file.
    let segment = segment_files(dir.path())[0].clone();
    let archive = LocalArchive::open(dir.path()).unwrap();
    let fifth = next(&object(1), archive.head(&object(1)), 0).encode();
    drop(archive);
    let mut bytes = std::fs::read(&segment).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&fifth[..fifth.len() / 2]);
    std::fs::write(&segment, &bytes).unwrap();
    // And the index is gone.
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    let archive = LocalArchive::open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, whole);
    assert_eq!(archive.head(&object(1)).seq, 4);
    assert_eq!(archive.records(&object(1), 1, 4).unwrap().len(), 4);
    fill(&archive, &[object(1)], 1);
    assert_eq!(archive.head(&object(1)).seq, 5);
}

#[test]
fn damage_before_the_end_is_an_error_not_a_skipped_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let archive = LocalArchive::open(dir.path()).unwrap();
        fill(&archive, &[object(1)], 4);
    }
    let segment = segment_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[700] ^= 0xff; // inside the second record
    std::fs::write(&segment, &bytes).unwrap();
    // The index still points at the damaged record: reading it says so.
    let archive = LocalArchive::open(dir.path()).unwrap();
    assert!(matches!(
        archive.records(&object(1), 1, 4),
        Err(ArchiveError::Damaged { .. })
    ));
    drop(archive);
    // Without the index, opening must scan the segment and refuses it.
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    assert!(matches!(
        LocalArchive::open(dir.path()),
        Err(ArchiveError::Damaged { .. })
    ));
}

#[test]
fn records_spread_over_many_segments_read_back_and_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let heads = {
        let archive = LocalArchive::open_with_segment_bytes(dir.path(), 2_000).unwrap();
        fill(&archive, &[object(1), object(2)], 12);
        assert!(
            segment_files(dir.path()).len() >= 6,
            "{:?}",
            segment_files(dir.path())
        );
        [1, 2].map(|n| archive.head(&object(n)))
    };
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    let archive = LocalArchive::open_with_segment_bytes(dir.path(), 2_000).unwrap();
    assert_eq!([1, 2].map(|n| archive.head(&object(n))), heads);
    for n in [1, 2] {
        let records = archive.records(&object(n), 1, u64::MAX).unwrap();
        assert_eq!(
            verify_chain(&object(n), Head::EMPTY, &records).unwrap(),
            heads[n as usize - 1]
        );
    }
}

#[test]
fn verify_reads_everything_back_and_finds_a_fork_written_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let archive = LocalArchive::open(dir.path()).unwrap();
        fill(&archive, &[object(1), object(2)], 5);
        let report = archive.verify().unwrap();
        assert_eq!((report.objects, report.records), (2, 10));
        assert!(report.bytes > 10 * 512);
    }
    // A second record 5 of object 1, on another history, appended to the segment directly
    // (as a second writer that ignored the chain would).
    let archive = LocalArchive::open(dir.path()).unwrap();
    let mut forked = next(&object(1), archive.head(&object(1)), 0);
    forked.seq = 5;
    forked.prev = Checksum(777);
    drop(archive);
    let segment = segment_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&forked.encode());
    std::fs::write(&segment, &bytes).unwrap();
    let archive = LocalArchive::open(dir.path()).unwrap();
    assert!(matches!(archive.verify(), Err(LogError::Chain { .. })));
}

#[test]
fn a_copy_taken_while_appends_go_on_holds_a_whole_prefix() {
    let source = tempfile::tempdir().unwrap();
    let archive = LocalArchive::open_with_segment_bytes(source.path(), 4_096).unwrap();
    let objects = [object(1), object(2)];
    fill(&archive, &objects, 10);
    archive.put_class_key("Ledger", &"ab".repeat(32)).unwrap();
    let copy = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let report =
        durable_log::copy_archive(source.path(), copy.path(), |bytes| seen += bytes).unwrap();
    assert!(report.segments > 1, "{report:?}");
    assert_eq!(seen, report.bytes);
    // The node goes on appending; the copy is the archive as it was.
    fill(&archive, &objects, 5);
    let copied = LocalArchive::open(copy.path()).unwrap();
    for o in &objects {
        assert_eq!(copied.head(o).seq, 10);
        let records = CommitLog::records(&copied, o, 1, u64::MAX).unwrap();
        assert_eq!(records, CommitLog::records(&archive, o, 1, 10).unwrap());
    }
    assert_eq!(copied.verify().unwrap().records, 20);
    assert_eq!(
        copied.class_keys().unwrap(),
        [("Ledger".to_owned(), "ab".repeat(32))]
    );
    // Not over an archive that is there.
    assert!(durable_log::copy_archive(source.path(), copy.path(), |_| {}).is_err());
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// Every image of `object` from record `from` to its head.
fn images(log: &dyn CommitLog, object: &ObjectName, from: u64) -> Vec<(Vec<u8>, Head)> {
    let head = log.head(object).unwrap().seq;
    (from..=head)
        .map(|seq| durable_log::image_at(log, object, seq).unwrap())
        .collect()
}

#[test]
fn compaction_frees_whole_segments_and_its_snapshots_survive_a_lost_index() {
    let dir = tempfile::tempdir().unwrap();
    let objects = [object(1), object(2)];
    let archive = LocalArchive::open_with_segment_bytes(dir.path(), 4_096).unwrap();
    // Records at 0, 1,000, ..., 29,000.
    fill(&archive, &objects, 30);
    let segments_before = segment_files(dir.path()).len();
    assert!(segments_before >= 8, "{segments_before} segments");
    let kept: Vec<_> = objects.iter().map(|o| images(&archive, o, 21)).collect();

    let report = durable_log::compact(&archive, 20_500, |_, _| {}).unwrap();
    assert_eq!((report.objects, report.compacted), (2, 2));
    assert_eq!(report.records, 2 * 21);
    assert!(report.reclaimed.files >= 4, "{report:?}");
    assert_eq!(
        segment_files(dir.path()).len(),
        segments_before - report.reclaimed.files
    );
    assert_eq!(snapshot_files(dir.path()).len(), 2);
    let check = |log: &dyn CommitLog| {
        for (o, kept) in objects.iter().zip(&kept) {
            assert_eq!(log.history_start(o).unwrap().unwrap().seq, 21);
            assert_eq!(&images(log, o, 21), kept);
            assert!(matches!(
                durable_log::image_at(log, o, 20),
                Err(LogError::BeforeHistory { .. })
            ));
        }
        let report = log.verify().unwrap();
        assert_eq!((report.snapshots, report.records), (2, 2 * 9));
    };
    check(&archive);
    let scanned = durable_log::scan(dir.path()).unwrap();
    assert_eq!((scanned.snapshots, scanned.objects), (2, 2));

    // Again later: the first snapshot is replaced, its file removed.
    assert!(matches!(
        durable_log::compact_object(&archive, &objects[0], 25_000).unwrap(),
        durable_log::Compaction::Compacted { start: 26, .. }
    ));
    assert_eq!(snapshot_files(dir.path()).len(), 2);
    drop(archive);

    // The index is lost: the snapshots are adopted again and the segments re-indexed
    // around them.
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    let archive = LocalArchive::open_with_segment_bytes(dir.path(), 4_096).unwrap();
    assert_eq!(archive.history_start(&objects[0]).unwrap().unwrap().seq, 26);
    assert_eq!(images(&archive, &objects[0], 26), kept[0][5..]);
    assert_eq!(archive.history_start(&objects[1]).unwrap().unwrap().seq, 21);
    assert_eq!(images(&archive, &objects[1], 21), kept[1]);
    archive.verify().unwrap();
    // And appends go on.
    fill(&archive, &objects, 1);
    assert_eq!(archive.head(&objects[0]).seq, 31);
}

#[test]
fn a_compaction_cut_short_is_finished_on_open_and_leftovers_go() {
    let dir = tempfile::tempdir().unwrap();
    let o = object(1);
    let newer = {
        let archive = LocalArchive::open(dir.path()).unwrap();
        fill(&archive, std::slice::from_ref(&o), 10);
        durable_log::compact_object(&archive, &o, 3_000).unwrap();
        assert_eq!(archive.history_start(&o).unwrap().unwrap().seq, 4);
        // A later snapshot whose file was written, but not its index transaction.
        let (image, _) = durable_log::image_at(&archive, &o, 7).unwrap();
        let record = archive.records(&o, 7, 7).unwrap().remove(0);
        durable_log::Snapshot { record, image }
    };
    let snapshots = dir.path().join("snapshots");
    std::fs::write(snapshots.join("cut-short.snap"), newer.encode()).unwrap();
    std::fs::write(snapshots.join("half-written.snap.tmp"), b"DOSN").unwrap();
    let archive = LocalArchive::open(dir.path()).unwrap();
    assert_eq!(archive.history_start(&o).unwrap().unwrap().seq, 7);
    assert_eq!(snapshot_files(dir.path()), ["cut-short.snap"]);
    assert_eq!(archive.records(&o, 1, u64::MAX).unwrap().len(), 4);
    archive.verify().unwrap();
    drop(archive);

    // A snapshot file that is damaged is an error, never skipped or removed.
    let path = snapshots.join("cut-short.snap");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(durable_log::scan(dir.path()).is_err());
    let archive = LocalArchive::open(dir.path()).unwrap();
    assert!(matches!(archive.snapshot(&o), Err(LogError::Damaged(_))));
    assert!(matches!(archive.verify(), Err(LogError::Damaged(_))));
}

#[test]
fn a_copy_of_a_compacted_archive_holds_its_snapshots() {
    let source = tempfile::tempdir().unwrap();
    let archive = LocalArchive::open_with_segment_bytes(source.path(), 4_096).unwrap();
    let objects = [object(1), object(2)];
    fill(&archive, &objects, 20);
    durable_log::compact(&archive, 9_000, |_, _| {}).unwrap();
    let copy = tempfile::tempdir().unwrap();
    let report = durable_log::copy_archive(source.path(), copy.path(), |_| {}).unwrap();
    assert_eq!(report.snapshots, 2);
    let copied = LocalArchive::open(copy.path()).unwrap();
    for o in &objects {
        assert_eq!(images(&copied, o, 10), images(&archive, o, 10));
    }
    assert_eq!(copied.verify().unwrap().snapshots, 2);
}

#[test]
fn appends_the_index_has_not_taken_yet_are_in_a_copy_and_survive_a_crash() {
    let source = tempfile::tempdir().unwrap();
    let archive = LocalArchive::open_with_segment_bytes(source.path(), 4_096).unwrap();
    let objects = [object(1), object(2)];
    // Few enough records that the index takes none of them until something reads it.
    fill(&archive, &objects, 12);
    // A record being written right now: half of it is in the last segment.
    let half = next(&objects[0], archive.head(&objects[0]), 99_000).encode();
    let last = segment_files(source.path()).pop().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut file, &half[..half.len() / 2]).unwrap();

    let copy = tempfile::tempdir().unwrap();
    durable_log::copy_archive(source.path(), copy.path(), |_| {}).unwrap();
    let copied = LocalArchive::open(copy.path()).unwrap();
    for o in &objects {
        assert_eq!(copied.head(o), archive.head(o));
        assert_eq!(copied.records(o, 1, u64::MAX).unwrap().len(), 12);
    }
    copied.verify().unwrap();

    // A crash (no clean close: the index never took them): the next open indexes them from
    // the segments and cuts the half record.
    let heads = objects.clone().map(|o| archive.head(&o));
    std::mem::forget(archive);
    let archive = LocalArchive::open_with_segment_bytes(source.path(), 4_096).unwrap();
    assert_eq!(objects.clone().map(|o| archive.head(&o)), heads);
    assert_eq!(archive.verify().unwrap().records, 24);
    fill(&archive, &objects, 1);
    assert_eq!(archive.verify().unwrap().records, 26);
}
