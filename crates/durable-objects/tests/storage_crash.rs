//! Crash safety: a child process serves acknowledged writes (an SQL row and a KV entry in one
//! turn) on many objects while this test kills it with SIGKILL at random moments, restarts
//! it, and checks that every acknowledged write is present and that no turn is half applied.
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
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_objects::prelude::*;
use support::objects::{Store, bind_all};

const OBJECTS: usize = 8;
const WRITERS_PER_OBJECT: usize = 4;

fn random_below(limit: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % limit
}

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
    let runtime = bind_all(Runtime::builder().data_dir(&dir)).build().unwrap();
    let env = runtime.env();
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    driver.block_on(async move {
        let ns = env.namespace::<Store>("STORE").unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for object in 0..OBJECTS {
            for writer in 0..WRITERS_PER_OBJECT {
                let stub = ns.get_by_name(&format!("object-{object}"));
                tasks.spawn(async move {
                    // Unique across cycles and writers: the ledger's primary key.
                    let mut n = cycle * 10_000_000 + (writer as i64) * 1_000_000;
                    loop {
                        stub.record(n).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack object-{object} {n}").unwrap();
                        out.flush().unwrap();
                        n += 1;
                    }
                });
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
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("DURABLE_CRASH_CHILD", dir.path())
            .env("DURABLE_CRASH_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack_tx, first_ack_rx) = std::sync::mpsc::channel();
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                let mut count = 0;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut parts = line.split_whitespace();
                    if parts.next() != Some("ack") {
                        continue;
                    }
                    let (Some(object), Some(n)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .entry(object.to_owned())
                        .or_default()
                        .insert(n.parse().unwrap());
                    count += 1;
                    if count == 1 {
                        let _ = first_ack_tx.send(());
                    }
                }
                count
            })
        };
        // Let the child get going, then kill it at a random moment while it writes.
        first_ack_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child acknowledged a write");
        let wait = Duration::from_millis(20 + random_below(300));
        let (_never, pause) = std::sync::mpsc::channel::<()>();
        let _ = pause.recv_timeout(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        total_acks += reader.join().unwrap();

        let snapshot = acked.lock().unwrap().clone();
        let rows = check_data_dir(dir.path(), &snapshot);
        assert!(rows >= snapshot.values().map(BTreeSet::len).sum::<usize>());
    }
    println!("{cycles} crash cycles, {total_acks} acknowledged writes, none lost");
    assert!(
        total_acks >= cycles,
        "the child made progress in every cycle"
    );
}
