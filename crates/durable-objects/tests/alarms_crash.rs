//! Alarms survive SIGKILL: a child process sets alarms on many objects and reports each one
//! acknowledged; it is killed at a random moment; after a restart every acknowledged alarm
//! fires (at least once). The child sets alarms up to 1.5 s ahead by the system clock; the
//! restarted runtime runs on a manual clock an hour later, so nothing waits for a delay.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // The child reports acks on stdout.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_objects::prelude::*;
use durable_objects::{Clock, SystemClock};
use support::crash::{random_below, run_child_and_kill};
use support::objects::{Reminder, bind_all};

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
        let acks = Arc::clone(&acked);
        run_child_and_kill(
            "alarm_crash_child",
            &[
                ("DURABLE_ALARM_CHILD", dir.path().display().to_string()),
                ("DURABLE_ALARM_CYCLE", cycle.to_string()),
            ],
            50..450,
            move |name, time| {
                acks.lock().unwrap().insert(name.to_owned(), time);
            },
        );
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 5, "the children set alarms");
    // An hour later by a manual clock: every acknowledged alarm is due at once.
    let later = durable_objects::ManualClock::new(SystemClock.now_ms() + 3_600_000);
    let runtime = bind_all(Runtime::builder().data_dir(dir.path()))
        .clock(Arc::new(later))
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
