//! The demo server replicating to PostgreSQL loses its disk: under write load (counter
//! increments, KV values, chat messages, alarms) it is killed with SIGKILL, its data folder
//! is deleted, `durable restore --from-postgres` rebuilds the folder, and the server starts
//! on it: every acknowledged write is there, and every acknowledged alarm fires. In every
//! third cycle PostgreSQL itself is killed and started again under the load first: writes
//! fail while it is down, resume when it is back, and nothing acknowledged is lost.
//!
//! CI runs 20 cycles; more with `DURABLE_LOST_DISK_CYCLES=100 cargo test -p durable-demo
//! --test lost_disk`. PostgreSQL is Debian's `postgresql` package, started by the test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_pgtemp::TempPostgres;
use support::ledger::{self, Acked, load, random_below};
use support::{Demo, config_with};

/// The `durable` binary, next to the demo's (built if this test runs alone).
fn durable_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_durable-demo")).with_file_name("durable");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "durable-cli", "--bin", "durable"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building the durable binary failed");
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_disk_comes_back_from_postgresql_with_every_acknowledged_write() {
    let mut pg = TempPostgres::start()
        .unwrap_or_else(|err| panic!("a throwaway PostgreSQL server starts: {err}"));
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_with(
        dir.path(),
        &format!(r#""replication": {{"postgres": "{url}"}}, "storage_timeout_ms": 5000,"#),
    );
    let durable = durable_binary();
    let cycles: usize = std::env::var("DURABLE_LOST_DISK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut restarts = 0;
    for cycle in 0..cycles {
        let demo = Demo::start(&data, Some(&config));
        let load = tokio::spawn(load(demo.addr.clone(), cycle, Arc::clone(&acked)));
        tokio::time::sleep(Duration::from_millis(100 + random_below(300))).await;
        if cycle % 3 == 1 {
            // PostgreSQL goes away under the load, and comes back.
            let before = total(&acked);
            pg.kill().unwrap();
            tokio::time::sleep(Duration::from_millis(random_below(200))).await;
            pg.start_again().unwrap();
            restarts += 1;
            support::eventually("writes resume after PostgreSQL restarted", || {
                let acked = Arc::clone(&acked);
                async move { total(&acked) > before + 10 }
            })
            .await;
        }
        demo.kill9();
        let _ = load.await;
        // The disk is gone.
        std::fs::remove_dir_all(&data).unwrap();
        let output = Command::new(&durable)
            .args([
                "restore",
                "--data",
                data.to_str().unwrap(),
                "--from-postgres",
                &url,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cycle {cycle}: restore failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let demo = Demo::start(&data, Some(&config));
        let acked = acked.lock().unwrap().clone();
        ledger::check(&demo, &acked, &format!("cycle {cycle}")).await;
        demo.kill9();
    }
    let acked = acked.lock().unwrap();
    println!(
        "{cycles} lost disks restored from PostgreSQL ({restarts} PostgreSQL restarts under load): {} counters, {} KV values, {} chat messages, {} alarms acknowledged, none lost",
        acked.counters.len(),
        acked.kv.len(),
        acked.chat.len(),
        acked.alarms.len()
    );
    assert!(!acked.kv.is_empty() && !acked.chat.is_empty() && !acked.alarms.is_empty());
    let verify = Command::new(&durable)
        .args([
            "log",
            "verify",
            "--data",
            data.to_str().unwrap(),
            "--postgres",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Writes acknowledged so far.
fn total(acked: &Mutex<Acked>) -> usize {
    let acked = acked.lock().unwrap();
    acked.kv.len()
        + acked.chat.len()
        + acked.alarms.len()
        + acked.counters.values().sum::<u64>() as usize
}
