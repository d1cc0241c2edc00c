//! The monitor thread: the node's watchdog and its disk-space watch.
//!
//! A shard thread cannot report its own stall (it is the thing stuck), and a full disk must
//! be noticed to be left, so one small thread looks from outside, a few times a second:
//!
//! * each shard's [`TurnWatch`](crate::shard::TurnWatch): a turn running past the CPU limit
//!   marks the shard stalled (callers then fail fast), is logged with its object and counted
//!   in the metrics; the mark goes when the turn ends;
//! * the [`DiskSpace`](durable_storage::DiskSpace): full when space runs low, available again
//!   (with its reserve back) once there is room.
//!
//! It only reads shared atomics and calls `statvfs`; it never touches an object.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shared::RuntimeShared;

/// How often the free space is looked at.
const SPACE_EVERY: Duration = Duration::from_millis(250);

/// The running monitor thread.
#[derive(Debug)]
pub(crate) struct Monitor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts the thread.
    pub(crate) fn spawn(shared: Arc<RuntimeShared>) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("durable-monitor".to_owned())
            .spawn(move || run(&shared, &signal))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the monitor thread panicked");
        }
    }
}

/// How often the shards are looked at: a quarter of the CPU limit, between 5 and 250 ms.
fn tick(cpu_limit: Duration) -> Duration {
    (cpu_limit / 4).clamp(Duration::from_millis(5), Duration::from_millis(250))
}

fn run(shared: &RuntimeShared, stop: &(Mutex<bool>, Condvar)) {
    let every = tick(shared.config.cpu_limit);
    let mut last_space = Instant::now();
    let (lock, wake) = stop;
    loop {
        {
            let stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (stopped, _) = wake
                .wait_timeout_while(stopped, every, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *stopped {
                return;
            }
        }
        watch_shards(shared);
        if last_space.elapsed() >= SPACE_EVERY {
            last_space = Instant::now();
            shared.commits.space.poll();
        }
    }
}

fn watch_shards(shared: &RuntimeShared) {
    let limit = shared.config.cpu_limit;
    for index in 0..shared.router.len() {
        let (stall, ended) = shared.router.shard(index).watch().check(limit);
        if let Some(stall) = stall {
            shared.metrics.stalled_turns.fetch_add(1, Ordering::Relaxed);
            let object_id = stall.id.map(|id| id.to_string()).unwrap_or_default();
            tracing::error!(
                shard = index,
                namespace = stall.class,
                object_id,
                running_ms = u64::try_from(stall.running.as_millis()).unwrap_or(u64::MAX),
                limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                "a handler has run past the CPU limit without yielding: its shard is stalled and calls to objects on it fail as overloaded until it yields (move blocking work to tokio::task::spawn_blocking)"
            );
        }
        if ended {
            tracing::warn!(shard = index, "the stalled shard is running again");
        }
    }
}
