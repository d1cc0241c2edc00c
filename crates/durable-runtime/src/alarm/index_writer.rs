//! The thread that writes the alarm index: it takes every change waiting and applies them
//! in one transaction, so one fsync serves many objects' alarms.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use durable_storage::{AlarmIndex, AlarmIndexError, IndexChange};
use tokio::sync::oneshot;

/// Told when a change is durable in the index, or that writing it failed.
pub(crate) type IndexAck = oneshot::Sender<Result<(), AlarmIndexError>>;

#[derive(Debug, Default)]
struct Queue {
    changes: Vec<(IndexChange, Option<IndexAck>)>,
    stop: bool,
}

/// The index writer thread and its queue.
#[derive(Debug)]
pub(crate) struct IndexWriter {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl IndexWriter {
    pub(crate) fn start(index: Arc<AlarmIndex>) -> std::io::Result<Self> {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let worker = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("durable-alarm-index".to_owned())
            .spawn(move || {
                let (lock, ready) = &*worker;
                loop {
                    let batch = {
                        let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
                        while queue.changes.is_empty() && !queue.stop {
                            queue = ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                        }
                        if queue.changes.is_empty() {
                            return;
                        }
                        std::mem::take(&mut queue.changes)
                    };
                    let changes: Vec<IndexChange> =
                        batch.iter().map(|(change, _)| change.clone()).collect();
                    let result = index.apply(&changes);
                    let mut waited = false;
                    for (_, ack) in batch {
                        if let Some(ack) = ack {
                            waited = true;
                            let _ = ack.send(result.clone());
                        }
                    }
                    // A failure nobody waits for is handled here: the entries stay as they
                    // were, ahead of storage at worst (a spurious wake-up later).
                    if let Err(err) = &result
                        && !waited
                    {
                        tracing::error!(error = %err, changes = changes.len(), "alarm index write failed");
                    }
                }
            })?;
        Ok(Self {
            queue,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `change`; `ack` hears when it is durable.
    pub(crate) fn push(&self, change: IndexChange, ack: Option<IndexAck>) {
        let (lock, ready) = &*self.queue;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .changes
            .push((change, ack));
        ready.notify_one();
    }

    /// Stops the thread after it has written what it holds.
    pub(crate) fn stop(&self) {
        let (lock, ready) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        ready.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the alarm index writer panicked");
        }
    }
}
