//! [`BatchWriter`]: a thread that takes every change waiting and applies them at once, so one
//! transaction (and one fsync) serves many objects. The alarm index and the object catalog
//! are written this way.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// Told when a change is applied, or that applying it failed.
pub(crate) type BatchAck<E> = oneshot::Sender<Result<(), E>>;

struct Queue<C, E> {
    changes: Vec<(C, Option<BatchAck<E>>)>,
    stop: bool,
}

/// The writer thread and its queue.
pub(crate) struct BatchWriter<C, E> {
    queue: Arc<(Mutex<Queue<C, E>>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
    name: &'static str,
}

impl<C, E> std::fmt::Debug for BatchWriter<C, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("name", &self.name)
            .finish()
    }
}

impl<C, E> BatchWriter<C, E>
where
    C: Send + 'static,
    E: Clone + std::fmt::Display + Send + 'static,
{
    /// Starts the thread `name`, which applies each batch with `apply`.
    pub(crate) fn start(
        name: &'static str,
        apply: impl Fn(&[C]) -> Result<(), E> + Send + 'static,
    ) -> std::io::Result<Self> {
        let queue = Arc::new((
            Mutex::new(Queue {
                changes: Vec::new(),
                stop: false,
            }),
            Condvar::new(),
        ));
        let worker = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
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
                    let (changes, acks): (Vec<C>, Vec<Option<BatchAck<E>>>) =
                        batch.into_iter().unzip();
                    let result = apply(&changes);
                    let mut waited = false;
                    for ack in acks.into_iter().flatten() {
                        waited = true;
                        let _ = ack.send(result.clone());
                    }
                    // A failure nobody waits for is logged here.
                    if let Err(err) = &result
                        && !waited
                    {
                        tracing::error!(error = %err, changes = changes.len(), writer = name, "a batch write failed");
                    }
                }
            })?;
        Ok(Self {
            queue,
            thread: Mutex::new(Some(thread)),
            name,
        })
    }

    /// Queues `change`; `ack` hears when it is applied.
    pub(crate) fn push(&self, change: C, ack: Option<BatchAck<E>>) {
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
            tracing::error!(writer = self.name, "a batch writer panicked");
        }
    }
}
