//! The retention thread: every so often (`RuntimeConfig::retention_interval`, an hour by
//! default) it folds each object's history older than the window into a snapshot and frees
//! what no retained record needs ([`durable_log::compact`]). It works beside the writers,
//! through a handle of its own (a connection of its own for PostgreSQL), never on a shard
//! thread: building a snapshot reads a whole database's history.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::{Clock, Error, ErrorKind};
use durable_log::{CommitLog, CompactReport};

/// Runs retention on its own thread, and on request.
#[derive(Debug)]
pub(crate) struct Retention {
    work: Arc<RetentionWork>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What one run needs.
#[derive(Debug)]
struct RetentionWork {
    log: Arc<dyn CommitLog>,
    clock: Arc<dyn Clock>,
    window: Duration,
    /// One run at a time (the thread's and a requested one).
    running: Mutex<()>,
}

impl RetentionWork {
    fn run(&self) -> Result<CompactReport, Error> {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let keep_from = self.clock.now_ms().saturating_sub(window);
        let report = durable_log::compact(&*self.log, keep_from, |_, _| {}).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("compacting the commit log failed: {e}"),
            )
            .with_retryable(true)
        })?;
        if report.compacted > 0 || report.reclaimed.files > 0 {
            tracing::info!(
                objects = report.compacted,
                records = report.records,
                bytes = report.bytes,
                files_removed = report.reclaimed.files,
                bytes_freed = report.reclaimed.bytes,
                "folded history older than the window into snapshots"
            );
        }
        Ok(report)
    }
}

impl Retention {
    /// Starts the thread: a run every `every`, keeping `window` of history.
    pub(crate) fn start(
        log: Arc<dyn CommitLog>,
        clock: Arc<dyn Clock>,
        window: Duration,
        every: Duration,
    ) -> std::io::Result<Self> {
        let work = Arc::new(RetentionWork {
            log,
            clock,
            window,
            running: Mutex::new(()),
        });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = std::thread::Builder::new()
            .name("durable-retention".to_owned())
            .spawn({
                let (work, stop) = (Arc::clone(&work), Arc::clone(&stop));
                move || {
                    let (lock, wake) = &*stop;
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
                        if let Err(error) = work.run() {
                            tracing::warn!(%error, "retention will try again at its next run");
                        }
                    }
                }
            })?;
        Ok(Self {
            work,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs retention now, on the calling thread.
    pub(crate) fn run_now(&self) -> Result<CompactReport, Error> {
        self.work.run()
    }

    /// Stops the thread (a run in progress finishes first).
    pub(crate) fn stop(&self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the retention thread panicked");
        }
    }
}
