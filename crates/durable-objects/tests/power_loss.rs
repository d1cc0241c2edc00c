//! Power loss: a child process serves acknowledged writes (an SQL row and a KV entry in one
//! turn) and acknowledged alarms with its data folder on `durable-powercut`, a filesystem
//! that keeps what was not synced in memory. This test kills the child, cuts the power
//! (everything not synced is forgotten, as a disk forgets it), restarts on what is left, and
//! checks that every acknowledged write is there, that no turn is half applied, and that
//! every acknowledged alarm is scheduled and fires. A missing fsync of a WAL,
//! of a new database's folder, of a key file or of the alarm index makes it fail.
//!
//! The writer and the checker are this same test binary, re-run as children with
//! `DURABLE_POWER_CHILD` or `DURABLE_POWER_CHECK` set: the process that serves the FUSE
//! filesystem never touches it itself (a process that waits on its own FUSE mount cannot
//! exit cleanly). After each cut the checker looks at the objects that cycle wrote and a
//! rotating sample of older ones; after the last cut, at every object. CI runs 50 cycles;
//! run 1,000 by hand with:
//!
//! ```text
//! DURABLE_POWER_CYCLES=1000 cargo test --release -p durable-objects --test power_loss -- --nocapture
//! ```
//!
//! `DURABLE_POWER_OBJECTS` (default 6), `DURABLE_POWER_WRITERS` (concurrent writers per
//! object, default 3), `DURABLE_POWER_ALARMS` (0: no alarms) and `DURABLE_POWER_KILL_MS` (the
//! latest kill after the first acknowledgement, default 200) shape the load; the test prints the WAL syncs the filesystem counted per
//! acknowledged write (`BENCHMARKS.md` has them for a hot object and for 1,000 objects).
//!
//! Mounting needs root and `/dev/fuse` (as `.ci/run` has); elsewhere the test says so and
//! passes, unless `CI` is set.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // The child reports acks on stdout.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use durable_objects::prelude::*;
use durable_powercut::PowerCut;
use support::crash::{child_runtime, record_forever, run_child_and_kill};
use support::objects::{Reminder, Store, bind_all};

/// Alarms are set this far ahead (2096), so they fire only when the checker says.
const FAR: i64 = 4_000_000_000_000;

/// Acknowledgements of alarms carry this prefix before the object's name.
const ALARM: &str = "alarm:";

/// A count from the environment variable `name`, or `default`.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The child: writes forever, printing `ack <object> <n>` after each acknowledged write. New
/// objects appear every cycle, so database creation is under test too.
#[test]
fn power_child() {
    let Ok(dir) = std::env::var("DURABLE_POWER_CHILD") else {
        return;
    };
    let cycle: i64 = std::env::var("DURABLE_POWER_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    let (runtime, driver) = child_runtime(&dir);
    let env = runtime.env();
    let (objects, writers) = (
        knob("DURABLE_POWER_OBJECTS", 6),
        knob("DURABLE_POWER_WRITERS", 3),
    );
    driver.block_on(async move {
        let ns = env.namespace::<Store>("STORE").unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for object in 0..objects {
            // Half the objects are new in this cycle.
            let name = if object % 2 == 0 {
                format!("object-{object}")
            } else {
                format!("object-{object}-cycle-{cycle}")
            };
            for writer in 0..writers {
                let stub = ns.get_by_name(&name);
                let start = cycle * 10_000_000 + (writer as i64) * 1_000_000;
                tasks.spawn(record_forever(stub, name.clone(), start));
            }
        }
        // One more task sets alarms, each on a new object, and acknowledges them (unless
        // `DURABLE_POWER_ALARMS=0`, for measuring the writes alone).
        let reminders = env.namespace::<Reminder>("REMINDER").unwrap();
        let alarms = knob("DURABLE_POWER_ALARMS", 1) > 0;
        tasks.spawn(async move {
            if !alarms {
                return;
            }
            for k in 0.. {
                let name = format!("reminder-{cycle}-{k}");
                let time = FAR + cycle * 1_000 + k;
                reminders.get_by_name(&name).remind_at(time).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {ALARM}{name} {time}").unwrap();
                out.flush().unwrap();
            }
        });
        while tasks.join_next().await.is_some() {}
    });
}

/// The checker: reads the acknowledged writes from the file `DURABLE_POWER_ACKS`, checks
/// them against the data folder `DURABLE_POWER_CHECK`, and prints `rows <n>`.
#[test]
fn power_check() {
    let Ok(dir) = std::env::var("DURABLE_POWER_CHECK") else {
        return;
    };
    let acks = std::fs::read_to_string(std::env::var("DURABLE_POWER_ACKS").unwrap()).unwrap();
    let mut acked: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for line in acks.lines() {
        let (object, n) = line.split_once(' ').unwrap();
        acked
            .entry(object.to_owned())
            .or_default()
            .insert(n.parse().unwrap());
    }
    let rows = check_data_dir(std::path::Path::new(&dir), &acked);
    println!("rows {rows}");
}

/// Checks every object that acknowledged a write or an alarm; returns the rows found.
fn check_data_dir(dir: &std::path::Path, acked: &BTreeMap<String, BTreeSet<i64>>) -> usize {
    let clock = Arc::new(ManualClock::new(FAR - 1_000_000_000));
    let runtime = bind_all(Runtime::builder().data_dir(dir))
        .clock(Arc::clone(&clock) as Arc<dyn durable_objects::Clock>)
        .alarm_max_wait(std::time::Duration::from_millis(2))
        .build()
        .unwrap();
    let env = runtime.env();
    let driver = tokio::runtime::Runtime::new().unwrap();
    let mut rows = 0;
    driver.block_on(async {
        let ns = env.namespace::<Store>("STORE").unwrap();
        let reminders = env.namespace::<Reminder>("REMINDER").unwrap();
        let mut to_fire = Vec::new();
        for (name, acks) in acked {
            if let Some(reminder) = name.strip_prefix(ALARM) {
                // Each reminder object got one alarm: scheduled, or fired at an earlier check.
                let time = *acks.first().unwrap();
                let stub = reminders.get_by_name(reminder);
                let fired = stub.fired().await.unwrap();
                if !fired.contains(&time) {
                    let scheduled = runtime.scheduled_alarm::<Reminder>(stub.id());
                    assert_eq!(
                        scheduled.map(|alarm| alarm.time_ms),
                        Some(time),
                        "{reminder}: an acknowledged alarm was lost in a power cut"
                    );
                    to_fire.push((stub, time));
                }
                continue;
            }
            let stub = ns.get_by_name(name);
            let ledger: BTreeSet<i64> = stub.ledger().await.unwrap().into_iter().collect();
            let kv: BTreeSet<i64> = stub.kv_numbers().await.unwrap().into_iter().collect();
            assert_eq!(
                ledger, kv,
                "{name}: a turn was half applied (SQL and KV differ)"
            );
            let lost: Vec<_> = acks.difference(&ledger).collect();
            assert!(
                lost.is_empty(),
                "{name}: acknowledged writes lost in a power cut: {} of {} (first {:?})",
                lost.len(),
                acks.len(),
                lost.first()
            );
            rows += ledger.len();
        }
        // Every pending acknowledged alarm fires.
        clock.set_ms(FAR + 1_000_000_000);
        for (stub, time) in to_fire {
            tokio::time::timeout(std::time::Duration::from_secs(30), async {
                while !stub.fired().await.unwrap().contains(&time) {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            })
            .await
            .expect("an acknowledged alarm fires after the power cut");
        }
    });
    runtime.shutdown();
    rows
}

/// How many objects not written in a cycle are checked after its power cut, besides the
/// ones it wrote.
const OLDER_SAMPLE: usize = 24;

/// The objects checked after power cut `cycle`: every object written (or alarm set) in this
/// cycle, with all its acknowledgements from every cycle, plus a rotating sample of the
/// older ones, so a later cycle that damages an older object is caught too; the last cycle
/// checks everything. Checking everything after every cut would cost time quadratic in the
/// cycles (each check opens every database ever created).
fn objects_to_check(
    acked: &BTreeMap<String, BTreeSet<i64>>,
    this_cycle: &BTreeSet<String>,
    cycle: usize,
    last: bool,
) -> BTreeSet<String> {
    if last {
        return acked.keys().cloned().collect();
    }
    let older: Vec<&String> = acked.keys().filter(|k| !this_cycle.contains(*k)).collect();
    let mut chosen = this_cycle.clone();
    if !older.is_empty() {
        for i in 0..OLDER_SAMPLE.min(older.len()) {
            chosen.insert(older[(cycle * OLDER_SAMPLE + i) % older.len()].clone());
        }
    }
    chosen
}

#[test]
fn acknowledged_writes_survive_power_loss() {
    if std::env::var("DURABLE_POWER_CHILD").is_ok() || std::env::var("DURABLE_POWER_CHECK").is_ok()
    {
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let Some(disk) = PowerCut::mount_for_test(mount.path()) else {
        return;
    };
    let data = disk.path().join("data");
    let cycles = knob("DURABLE_POWER_CYCLES", 50);
    let acked: Arc<Mutex<BTreeMap<String, BTreeSet<i64>>>> = Arc::default();
    let touched: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let scratch = tempfile::tempdir().unwrap();
    let acks_file = scratch.path().join("acks");
    let mut total_acks = 0;
    for cycle in 0..cycles {
        let (acks, cycle_touched) = (Arc::clone(&acked), Arc::clone(&touched));
        total_acks += run_child_and_kill(
            "power_child",
            &[
                ("DURABLE_POWER_CHILD", data.display().to_string()),
                ("DURABLE_POWER_CYCLE", cycle.to_string()),
            ],
            20..knob("DURABLE_POWER_KILL_MS", 200) as u64,
            move |object, n| {
                acks.lock()
                    .unwrap()
                    .entry(object.to_owned())
                    .or_default()
                    .insert(n);
                cycle_touched.lock().unwrap().insert(object.to_owned());
            },
        );
        disk.cut_power();
        let snapshot = acked.lock().unwrap().clone();
        let this_cycle = std::mem::take(&mut *touched.lock().unwrap());
        let to_check = objects_to_check(&snapshot, &this_cycle, cycle, cycle + 1 == cycles);
        let mut lines = String::new();
        for (object, values) in &snapshot {
            if !to_check.contains(object) {
                continue;
            }
            for n in values {
                lines.push_str(&format!("{object} {n}\n"));
            }
        }
        std::fs::write(&acks_file, lines).unwrap();
        let check = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "power_check", "--nocapture", "--test-threads=1"])
            .env("DURABLE_POWER_CHECK", &data)
            .env("DURABLE_POWER_ACKS", &acks_file)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "after power cut {cycle}: {out}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let rows: usize = out
            .lines()
            // libtest may print the test's name on the same line first.
            .find_map(|line| line.rsplit_once("rows ")?.1.trim().parse().ok())
            .unwrap();
        let written: usize = snapshot
            .iter()
            .filter(|(name, _)| !name.starts_with(ALARM) && to_check.contains(*name))
            .map(|(_, acks)| acks.len())
            .sum();
        assert!(rows >= written);
    }
    let wal_syncs = disk.file_syncs_ending("-wal");
    println!(
        "{cycles} power cuts, {total_acks} acknowledged writes, none lost; {wal_syncs} WAL syncs ({:.3} per acknowledged write)",
        wal_syncs as f64 / total_acks.max(1) as f64
    );
    assert!(
        total_acks >= cycles,
        "the child made progress in every cycle"
    );
}
