//! The thread that writes the alarm index: it takes every change waiting and applies them
//! in one transaction, so one fsync serves many objects' alarms.

use std::sync::Arc;

use durable_storage::{AlarmIndex, AlarmIndexError, IndexChange};

use crate::batch_writer::BatchWriter;

/// The index writer thread and its queue. A failure nobody waits for leaves the entries as
/// they were, ahead of storage at worst (a spurious wake-up later).
pub(crate) type IndexWriter = BatchWriter<IndexChange, AlarmIndexError>;

/// Starts the thread writing `index`.
pub(crate) fn start_index_writer(index: Arc<AlarmIndex>) -> std::io::Result<IndexWriter> {
    BatchWriter::start("durable-alarm-index", move |changes| index.apply(changes))
}
