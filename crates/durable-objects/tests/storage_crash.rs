//! Crash safety: a child process serves acknowledged writes (an SQL row and a KV entry in one
//! turn) on many objects while this test kills it with SIGKILL at random moments, restarts
//! it, and checks that every acknowledged write is present, that no turn is half applied, and
//! that the objects' history (the commit log in the data folder) has no gap and no fork.
//!
//! The child is this same test binary, re-run with `DURABLE_CRASH_CHILD` set. CI runs 20
//! cycles; run 1,000 by hand with:
//!
//! ```text
//! DURABLE_CRASH_CYCLES=1000 cargo test --release -p durable-objects --test storage_crash -- --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)] // The child reports acks on stdout.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use durable_objects::prelude::*;
use support::crash::{child_runtime, record_forever, run_child_and_kill};
use support::objects::{Store, bind_all};

const OBJECTS: usize = 8;
const WRITERS_PER_OBJECT: usize = 4;

/// The child: writes forever, printing `ack <object> <n>` after each acknowledged write.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("DURABLE_CRASH_CHILD") else {
        return;
    };
    let cycle: i64 = std::env::var("DURABLE_CRASH_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    let (runtime, driver) = child_runtime(&dir);
    let env = runtime.env();
    driver.block_on(async move {
        let ns = env.namespace::<Store>("STORE").unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for object in 0..OBJECTS {
            for writer in 0..WRITERS_PER_OBJECT {
                let name = format!("object-{object}");
                let stub = ns.get_by_name(&name);
                // Unique across cycles and writers: the ledger's primary key.
                let start = cycle * 10_000_000 + (writer as i64) * 1_000_000;
                tasks.spawn(record_forever(stub, name, start));
            }
        }
        while tasks.join_next().await.is_some() {}
    });
}

fn check_data_dir(dir: &std::path::Path, acked: &BTreeMap<String, BTreeSet<i64>>) -> usize {
    let runtime = bind_all(Runtime::builder().data_dir(dir)).build().unwrap();
    let env = runtime.env();
    let driver = tokio::runtime::Runtime::new().unwrap();
    let mut rows = 0;
    driver.block_on(async {
        let ns = env.namespace::<Store>("STORE").unwrap();
        for object in 0..OBJECTS {
            let name = format!("object-{object}");
            let stub = ns.get_by_name(&name);
            let ledger: BTreeSet<i64> = stub.ledger().await.unwrap().into_iter().collect();
            let kv: BTreeSet<i64> = stub.kv_numbers().await.unwrap().into_iter().collect();
            assert_eq!(
                ledger, kv,
                "{name}: a turn was half applied (SQL and KV differ)"
            );
            if let Some(acks) = acked.get(&name) {
                let lost: Vec<_> = acks.difference(&ledger).collect();
                assert!(
                    lost.is_empty(),
                    "{name}: acknowledged writes lost: {lost:?}"
                );
            }
            rows += ledger.len();
        }
    });
    runtime.shutdown();
    rows
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var("DURABLE_CRASH_CHILD").is_ok() {
        return;
    }
    let cycles: usize = std::env::var("DURABLE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeMap<String, BTreeSet<i64>>>> = Arc::default();
    let mut total_acks = 0;
    for cycle in 0..cycles {
        let acks = Arc::clone(&acked);
        total_acks += run_child_and_kill(
            "crash_child",
            &[
                ("DURABLE_CRASH_CHILD", dir.path().display().to_string()),
                ("DURABLE_CRASH_CYCLE", cycle.to_string()),
            ],
            20..320,
            move |object, n| {
                acks.lock()
                    .unwrap()
                    .entry(object.to_owned())
                    .or_default()
                    .insert(n);
            },
        );

        let snapshot = acked.lock().unwrap().clone();
        let rows = check_data_dir(dir.path(), &snapshot);
        assert!(rows >= snapshot.values().map(BTreeSet::len).sum::<usize>());
        // The objects' history has no gap and no fork after the crash either.
        let archive = durable_log::LocalArchive::open(&dir.path().join("log")).unwrap();
        let report = durable_log::CommitLog::verify(&archive).unwrap();
        assert!(report.records > 0, "cycle {cycle}: {report:?}");
    }
    println!("{cycles} crash cycles, {total_acks} acknowledged writes, none lost");
    assert!(
        total_acks >= cycles,
        "the child made progress in every cycle"
    );
}
