//! The demo server through power cuts: its data folder is on `durable-powercut`, a
//! filesystem that forgets whatever was not synced. A client increments counters, stores KV
//! values, sends chat messages and sets alarms; the server is killed, the power is cut, the
//! server restarts on what the disk kept, and every acknowledged counter value, KV value,
//! chat message and alarm is there (and every acknowledged alarm fires).
//!
//! This process only serves the filesystem and talks HTTP; the server is a child process.
//! CI runs 8 cycles; more with `DURABLE_POWER_CYCLES=100 cargo test -p durable-demo --test
//! power_loss`. Mounting needs root and `/dev/fuse`; elsewhere the test says so and passes,
//! unless `CI` is set.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_powercut::PowerCut;
use support::Demo;
use support::ledger::{self, Acked, load, random_below};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_survives_power_cuts() {
    let mount = tempfile::tempdir().unwrap();
    let Some(disk) = PowerCut::mount_for_test(mount.path()) else {
        return;
    };
    let data = disk.path().join("data");
    let cycles: usize = std::env::var("DURABLE_POWER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..cycles {
        let demo = Demo::start(&data, None);
        let load = tokio::spawn(load(demo.addr.clone(), cycle, Arc::clone(&acked)));
        // Let some writes land, then the power goes.
        let wait = 100 + random_below(300);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        demo.kill9();
        let _ = load.await;
        disk.cut_power();

        let demo = Demo::start(&data, None);
        let acked = acked.lock().unwrap().clone();
        ledger::check(&demo, &acked, &format!("cycle {cycle}")).await;
        demo.kill9();
        disk.cut_power();
    }
    let acked = acked.lock().unwrap();
    println!(
        "{cycles} power cuts: {} counters, {} KV values, {} chat messages, {} alarms acknowledged, none lost",
        acked.counters.len(),
        acked.kv.len(),
        acked.chat.len(),
        acked.alarms.len()
    );
    assert!(!acked.kv.is_empty() && !acked.chat.is_empty() && !acked.alarms.is_empty());
}
