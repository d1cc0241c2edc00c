//! `durable log verify`, run as a user runs it: on a data folder with a local archive, on
//! PostgreSQL, on damage, and on mistakes.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{durable, text};

use durable_log::{
    AlarmChange, CommitLog, Head, LocalArchive, LogRecord, ObjectName, PageImage, PostgresLog,
    RecordKind,
};
use durable_pgtemp::TempPostgres;

/// Appends three records to each of two objects.
fn fill(log: &dyn CommitLog) {
    for n in 1..=2u8 {
        let object = ObjectName {
            class: "Room".into(),
            id: [n; 32],
        };
        let mut head = Head::EMPTY;
        for _ in 0..3 {
            let record = LogRecord {
                object: object.clone(),
                seq: head.seq + 1,
                prev: head.checksum,
                kind: RecordKind::Commit,
                time_ms: 0,
                page_size: 512,
                db_pages: 1,
                pages: vec![PageImage {
                    page: 1,
                    data: vec![head.seq as u8; 512],
                }],
                alarm: AlarmChange::Unchanged,
                wal: None,
            };
            head = head.advance(&record).unwrap();
            log.append(&[record]).unwrap();
        }
    }
}

/// A data folder (it has `namespaces/`) with a local archive holding six records.
fn data_folder() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("namespaces")).unwrap();
    fill(&LocalArchive::open(&data.path().join("log")).unwrap());
    data
}

fn data_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn a_whole_archive_verifies_in_text_and_json() {
    let data = data_folder();
    let output = durable(&["log", "verify", "--data", &data_arg(data.path())]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("2 objects, 6 records"),
        "{}",
        text(&output)
    );
    let output = durable(&["log", "verify", "--data", &data_arg(data.path()), "--json"]);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["local"]["report"]["records"], 6);
}

#[test]
fn damage_exits_1_and_says_where() {
    let data = data_folder();
    let segments = data.path().join("log/segments");
    let segment = std::fs::read_dir(&segments)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let output = durable(&["log", "verify", "--data", &data_arg(data.path())]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("damaged at byte 0"),
        "{}",
        text(&output)
    );
}

#[test]
fn mistakes_exit_2_with_what_to_do() {
    let nowhere = tempfile::tempdir().unwrap();
    let output = durable(&["log", "verify", "--data", &data_arg(nowhere.path())]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("not a data folder"),
        "{}",
        text(&output)
    );
    let output = durable(&["log", "verify"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--data"), "{}", text(&output));
    // A data folder without a log yet: nothing to verify, and that is fine.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir(fresh.path().join("namespaces")).unwrap();
    let output = durable(&["log", "verify", "--data", &data_arg(fresh.path())]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("none in"), "{}", text(&output));
}

#[test]
fn the_postgresql_log_verifies_and_a_database_without_one_is_named() {
    let server = TempPostgres::start().expect("a throwaway PostgreSQL server starts");
    let data = data_folder();
    // Before any log exists there: the command says so, and creates nothing.
    let output = durable(&[
        "log",
        "verify",
        "--data",
        &data_arg(data.path()),
        "--postgres",
        &server.url(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("no commit log in this database"),
        "{}",
        text(&output)
    );
    fill(&PostgresLog::connect(&server.url()).unwrap());
    let output = durable(&[
        "log",
        "verify",
        "--data",
        &data_arg(data.path()),
        "--postgres",
        &server.url(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["postgres"]["report"]["records"], 6);
    assert_eq!(report["local"]["report"]["records"], 6);
}
