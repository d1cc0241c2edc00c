//! Alarms at scale: many objects, each with an alarm, all due at the same moment.
//!
//! Measures the scheduler's memory (resident memory of a runtime that loaded N pending
//! alarms from the index, against one that loaded none) and the lateness of every alarm
//! (from the moment they all came due to the moment each handler ran), p50 and p99.
//!
//! Run with `cargo bench -p durable-benches --bench alarms`; `ALARM_BENCH_OBJECTS` sets N
//! (default 100,000). Time is a manual clock, so the alarms come due exactly when the
//! benchmark says, however long setting them took.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_benches::{ALARM_RUNS, BenchAlarmSetter, resident_bytes};
use durable_objects::ManualClock;
use durable_objects::prelude::*;

const DUE: i64 = 1_800_000_000_000;

fn runtime(dir: &Path, clock: &Arc<ManualClock>) -> Runtime {
    Runtime::builder()
        .data_dir(dir)
        .clock(Arc::clone(clock) as Arc<dyn durable_objects::Clock>)
        .idle_timeout(Duration::from_millis(200))
        .max_open_databases(
            std::env::var("ALARM_BENCH_MAX_OPEN")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2_048),
        )
        .alarm_max_wait(Duration::from_millis(5))
        .bind::<BenchAlarmSetter>("ALARMS")
        .build()
        .expect("runtime")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return; // Not a criterion bench: nothing to list or smoke-test.
    }
    let objects: usize = std::env::var("ALARM_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).expect("bench data folder");
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let clock = Arc::new(ManualClock::new(DUE - 3_600_000));
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("driver");

    // 1. Set one alarm on each of N objects.
    let started = Instant::now();
    {
        let rt = runtime(dir.path(), &clock);
        let ns = rt
            .env()
            .namespace::<BenchAlarmSetter>("ALARMS")
            .expect("binding");
        driver.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let callers = 64;
            for caller in 0..callers {
                let ns = ns.clone();
                tasks.spawn(async move {
                    for i in (caller..objects).step_by(callers) {
                        let stub = ns.get_by_name(&format!("object-{i}"));
                        stub.set_alarm(DUE).await.expect("set alarm");
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
        println!(
            "set {objects} alarms in {:.1?} ({:.0} alarms/s)",
            started.elapsed(),
            objects as f64 / started.elapsed().as_secs_f64()
        );
        assert_eq!(rt.pending_alarms(), objects);
        rt.shutdown();
    }

    // 2. Memory: a fresh runtime on an empty folder, then one that loads N alarms.
    let empty = tempfile::tempdir().expect("temp dir");
    let before = resident_bytes();
    let idle = runtime(empty.path(), &clock);
    let with_none = resident_bytes();
    drop(idle);
    let load_started = Instant::now();
    let rt = runtime(dir.path(), &clock);
    let loaded_in = load_started.elapsed();
    let with_all = resident_bytes();
    assert_eq!(rt.pending_alarms(), objects);
    let scheduler = with_all.saturating_sub(with_none);
    println!(
        "runtime alone: {} KiB; with {objects} pending alarms: {} KiB more ({} bytes per alarm); index loaded in {loaded_in:.1?}; {} objects in memory",
        with_none.saturating_sub(before) / 1024,
        scheduler / 1024,
        scheduler / objects as u64,
        rt.active_objects()
    );

    // 3. Lateness: every alarm comes due at once.
    ALARM_RUNS.lock().expect("runs").clear();
    let due_at = Instant::now();
    clock.set_ms(DUE);
    let deadline = due_at + Duration::from_secs(600);
    while ALARM_RUNS.lock().expect("runs").len() < objects {
        assert!(
            Instant::now() < deadline,
            "alarms did not all fire within 10 minutes"
        );
        driver.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
    let mut lateness: Vec<Duration> = ALARM_RUNS
        .lock()
        .expect("runs")
        .iter()
        .map(|ran| ran.saturating_duration_since(due_at))
        .collect();
    lateness.sort();
    println!("open databases at the end: {}", rt.open_databases());
    println!(
        "lateness of {objects} alarms due together: p50 {:.1?}, p99 {:.1?}, max {:.1?} ({:.0} alarms/s)",
        percentile(&lateness, 0.50),
        percentile(&lateness, 0.99),
        lateness[lateness.len() - 1],
        objects as f64 / lateness[lateness.len() - 1].as_secs_f64()
    );
    rt.shutdown();
}
