//! Alarms survive SIGKILL: a child process sets alarms on many objects and reports each one
//! acknowledged; it is killed at a random moment; after a restart every acknowledged alarm
//! fires (at least once). The child sets alarms up to 1.5 s ahead by the system clock; the
//! restarted runtime runs on a manual clock an hour later, so nothing waits for a delay.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // The child reports acks on stdout.

mod support;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_objects::prelude::*;
use durable_objects::{Clock, SystemClock};
use support::objects::{Reminder, bind_all};

fn random_below(limit: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % limit
}

/// The child: sets alarms forever, printing `ack <object> <time>` after each.
#[test]
fn alarm_crash_child() {
    let Ok(dir) = std::env::var("DURABLE_ALARM_CHILD") else {
        return;
    };
    let cycle = std::env::var("DURABLE_ALARM_CYCLE").unwrap();
    let runtime = bind_all(Runtime::builder().data_dir(&dir)).build().unwrap();
    let env = runtime.env();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let ns = env.namespace::<Reminder>("REMINDER").unwrap();
            for i in 0.. {
                let name = format!("c{cycle}-o{i}");
                let time = SystemClock.now_ms() + 100 + (random_below(1_400) as i64);
                ns.get_by_name(&name).remind_at(time).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {name} {time}").unwrap();
                out.flush().unwrap();
            }
        });
}

#[test]
fn acknowledged_alarms_fire_after_sigkill_and_restart() {
    if std::env::var("DURABLE_ALARM_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    for cycle in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "alarm_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DURABLE_ALARM_CHILD", dir.path())
            .env("DURABLE_ALARM_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    if let ["ack", name, time] = parts[..] {
                        acked
                            .lock()
                            .unwrap()
                            .insert(name.to_owned(), time.parse().unwrap());
                        let _ = first_tx.send(());
                    }
                }
            })
        };
        first_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child set an alarm");
        let (_never, pause) = std::sync::mpsc::channel::<()>();
        let _ = pause.recv_timeout(Duration::from_millis(50 + random_below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 5, "the children set alarms");
    let runtime = bind_all(Runtime::builder().data_dir(dir.path()))
        .build()
        .unwrap();
    let env = runtime.env();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ns = env.namespace::<Reminder>("REMINDER").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, time) in &acked {
            let stub = ns.get_by_name(name);
            loop {
                let fired = stub.fired().await.unwrap();
                if fired.contains(time) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: the alarm acknowledged for {time} never fired (fired: {fired:?})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    println!(
        "{} acknowledged alarms all fired after SIGKILL and restart",
        acked.len()
    );
    runtime.shutdown();
}
