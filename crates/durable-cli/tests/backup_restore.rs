//! `durable backup` and `durable restore`, run as an operator runs them, on data folders a
//! real runtime wrote: a backup while the node runs, restores of everything, one namespace,
//! one object, at a time or a bookmark, from a backup or from PostgreSQL alone, and the
//! mistakes they refuse.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

mod support;

use std::path::Path;

use std::sync::Arc;
use support::{durable, ok, refused, text};

use durable_objects::prelude::*;
use durable_objects::{CommitLogSetting, ManualClock, Runtime};

#[durable_object]
pub struct Journal {
    state: State,
}

impl DurableObject for Journal {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl Journal {
    pub async fn add(&self, n: i64) -> Result<()> {
        let kv = self.state.storage().kv();
        let mut all: Vec<i64> = kv.get("all")?.unwrap_or_default();
        all.push(n);
        kv.put("all", &all)
    }

    pub async fn all(&self) -> Result<Vec<i64>> {
        Ok(self.state.storage().kv().get("all")?.unwrap_or_default())
    }

    pub async fn bookmark(&self) -> Result<String> {
        self.state.storage().get_current_bookmark().await
    }
}

/// A second class, to restore one namespace without the other.
#[durable_object]
pub struct Tally {
    state: State,
}

impl DurableObject for Tally {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl Tally {
    pub async fn bump(&self) -> Result<i64> {
        let kv = self.state.storage().kv();
        let n: i64 = kv.get("n")?.unwrap_or(0) + 1;
        kv.put("n", &n)?;
        Ok(n)
    }

    pub async fn get(&self) -> Result<i64> {
        Ok(self.state.storage().kv().get("n")?.unwrap_or(0))
    }
}

const START: i64 = 1_800_000_000_000;

fn start(data: &Path, log: CommitLogSetting, clock: &Arc<ManualClock>) -> Runtime {
    Runtime::builder()
        .data_dir(data)
        .bind::<Journal>("JOURNALS")
        .bind::<Tally>("TALLIES")
        .commit_log(log)
        .clock(Arc::clone(clock) as Arc<dyn durable_objects::Clock>)
        .build()
        .unwrap()
}

fn journal(runtime: &Runtime, name: &str) -> Stub<Journal> {
    runtime
        .env()
        .namespace::<Journal>("JOURNALS")
        .unwrap()
        .get_by_name(name)
}

fn tally(runtime: &Runtime, name: &str) -> Stub<Tally> {
    runtime
        .env()
        .namespace::<Tally>("TALLIES")
        .unwrap()
        .get_by_name(name)
}

/// Restores the journal `j` of `data` from `from` as it was at `at`.
fn restore_journal(data: &str, from: &str, at: &str) -> serde_json::Value {
    ok(&[
        "restore",
        "--data",
        data,
        "--from",
        from,
        "--namespace",
        "Journal",
        "--object",
        "j",
        "--at",
        at,
    ])
}

/// RFC 3339 text of `ms` (whole seconds, UTC).
fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[tokio::test]
async fn a_backup_taken_while_the_node_runs_restores_everything_or_a_part_at_any_point() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let runtime = start(&data, CommitLogSetting::Local, &clock);
    // Entries one second apart; (time after, bookmark after) each.
    let mut points = Vec::new();
    for n in 0..6 {
        clock.advance_ms(1_000);
        journal(&runtime, "j").add(n).await.unwrap();
        points.push((
            clock.now_ms(),
            journal(&runtime, "j").bookmark().await.unwrap(),
        ));
    }
    journal(&runtime, "other").add(100).await.unwrap();
    for _ in 0..3 {
        tally(&runtime, "t").bump().await.unwrap();
    }

    // The backup, while the node runs.
    let backup = dir.path().join("backup");
    let b = backup.to_str().unwrap();
    let report = ok(&["backup", "--data", d, "--to", b]);
    assert_eq!(report["objects"], 3, "{report}");
    refused(&["backup", "--data", d, "--to", b], "holds files");
    refused(
        &[
            "backup",
            "--data",
            dir.path().to_str().unwrap(),
            "--to",
            "/tmp/x",
        ],
        "not a data folder",
    );
    // Restoring into the running node's folder is refused.
    refused(
        &["restore", "--data", d, "--from", b],
        "in use by a running node",
    );
    // Written after the backup: not in it.
    journal(&runtime, "j").add(6).await.unwrap();
    runtime.shutdown();

    // Everything, into a new folder: the latest state the backup holds.
    let fresh = dir.path().join("fresh");
    let f = fresh.to_str().unwrap();
    let report = ok(&["restore", "--data", f, "--from", b]);
    assert_eq!(report["objects"], 3, "{report}");
    let runtime = start(&fresh, CommitLogSetting::Local, &clock);
    assert_eq!(
        journal(&runtime, "j").all().await.unwrap(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(journal(&runtime, "other").all().await.unwrap(), [100]);
    assert_eq!(tally(&runtime, "t").get().await.unwrap(), 3);
    // The history came along: the bookmarks of the original node are valid here.
    assert_eq!(
        journal(&runtime, "j").bookmark().await.unwrap(),
        points[5].1
    );
    runtime.shutdown();

    // One object at a time (by name), in the original folder: the rest is untouched.
    let at = rfc3339(points[2].0);
    restore_journal(d, b, &at);
    let runtime = start(&data, CommitLogSetting::Local, &clock);
    assert_eq!(journal(&runtime, "j").all().await.unwrap(), [0, 1, 2]);
    assert_eq!(journal(&runtime, "other").all().await.unwrap(), [100]);
    assert_eq!(tally(&runtime, "t").get().await.unwrap(), 3);
    tally(&runtime, "t").bump().await.unwrap();
    runtime.shutdown();
    // The restore went into the node's log forward: the log verifies.
    let verify = durable(&["log", "verify", "--data", d]);
    assert!(verify.status.success(), "{}", text(&verify));

    // One namespace, at a bookmark that is not of its objects: refused; at the latest: ok.
    refused(
        &[
            "restore",
            "--data",
            d,
            "--from",
            b,
            "--namespace",
            "Tally",
            "--at",
            &points[1].1,
        ],
        "not a point of the history",
    );
    ok(&["restore", "--data", d, "--from", b, "--namespace", "Tally"]);
    // A bookmark of j.
    restore_journal(d, b, &points[4].1);
    let runtime = start(&data, CommitLogSetting::Local, &clock);
    assert_eq!(
        tally(&runtime, "t").get().await.unwrap(),
        3,
        "back to the backup's"
    );
    assert_eq!(journal(&runtime, "j").all().await.unwrap(), [0, 1, 2, 3, 4]);
    runtime.shutdown();

    // Mistakes.
    refused(
        &["restore", "--data", d, "--from", b, "--at", "yesterday"],
        "RFC 3339",
    );
    refused(
        &["restore", "--data", d, "--from", b, "--object", "j"],
        "--namespace",
    );
    refused(
        &[
            "restore",
            "--data",
            d,
            "--from",
            dir.path().to_str().unwrap(),
        ],
        "not a backup",
    );

    // The node's own archive is a source too: back in time in place, without a backup.
    restore_journal(d, d, &points[0].1);
    let runtime = start(&data, CommitLogSetting::Local, &clock);
    assert_eq!(journal(&runtime, "j").all().await.unwrap(), [0]);
    runtime.shutdown();
    refused(
        &["restore", "--data", d, "--from", b, "--namespace", "Nope"],
        "no namespace",
    );
    refused(
        &[
            "restore",
            "--data",
            d,
            "--from",
            b,
            "--namespace",
            "Journal",
            "--object",
            "zz",
        ],
        "no object",
    );
    let output = durable(&["restore", "--data", d]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[tokio::test]
async fn a_lost_data_folder_is_rebuilt_from_postgresql_alone() {
    let pg = durable_pgtemp::TempPostgres::start()
        .unwrap_or_else(|err| panic!("a throwaway PostgreSQL server starts: {err}"));
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let replicated = CommitLogSetting::Postgres { url: url.clone() };
    let runtime = start(&data, replicated.clone(), &clock);
    let mut times = Vec::new();
    for n in 0..5 {
        clock.advance_ms(1_000);
        journal(&runtime, "j").add(n).await.unwrap();
        tally(&runtime, "t").bump().await.unwrap();
        times.push(clock.now_ms());
    }
    runtime.shutdown();
    std::fs::remove_dir_all(&data).unwrap();

    let report = ok(&["restore", "--data", d, "--from-postgres", &url]);
    assert_eq!(report["objects"], 2, "{report}");
    assert!(data.join("namespaces/Journal.key").exists());
    let runtime = start(&data, replicated.clone(), &clock);
    assert_eq!(journal(&runtime, "j").all().await.unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(tally(&runtime, "t").get().await.unwrap(), 5);
    runtime.shutdown();

    // To a time: written forward into PostgreSQL, so the node starts in step with it.
    ok(&[
        "restore",
        "--data",
        d,
        "--from-postgres",
        &url,
        "--at",
        &rfc3339(times[1]),
    ]);
    let runtime = start(&data, replicated, &clock);
    assert_eq!(journal(&runtime, "j").all().await.unwrap(), [0, 1]);
    assert_eq!(tally(&runtime, "t").get().await.unwrap(), 2);
    tally(&runtime, "t").bump().await.unwrap();
    assert_eq!(tally(&runtime, "t").get().await.unwrap(), 3);
    runtime.shutdown();
    let verify = durable(&["log", "verify", "--data", d, "--postgres", &url]);
    assert!(verify.status.success(), "{}", text(&verify));
    refused(
        &[
            "restore",
            "--data",
            d,
            "--from-postgres",
            "postgres://nobody@127.0.0.1:1/none",
        ],
        "PostgreSQL",
    );
}
