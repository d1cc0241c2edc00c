//! The runtime's side of the object catalog (`durable_storage::ObjectCatalog`): the names
//! of objects made from names, when each was last active, and the node's bindings, so
//! operators' tools can show `room-42` rather than only its id.
//!
//! The shard threads only queue (an object starting or stopping is one push); a
//! [`BatchWriter`] thread writes what is queued in one transaction. The catalog is a
//! convenience: if it cannot be opened or written, the node runs on and says so in its log.

use durable_core::ObjectId;
use durable_storage::{CatalogError, DataLayout, ObjectCatalog, ObjectSeen};

use crate::batch_writer::BatchWriter;

/// The catalog writer, if the catalog could be opened.
#[derive(Debug)]
pub(crate) struct Catalog {
    writer: Option<BatchWriter<ObjectSeen, CatalogError>>,
}

impl Catalog {
    /// Opens the catalog of `layout`, records `bindings` (binding name, class) and where the
    /// history goes (`commit_log`: `local`, `postgres` or `off`), and starts its writer.
    pub(crate) fn start(
        layout: &DataLayout,
        bindings: &[(String, String)],
        commit_log: &str,
    ) -> Self {
        let opened = ObjectCatalog::open(&layout.catalog()).and_then(|catalog| {
            catalog.put_bindings(bindings)?;
            catalog.put_setting("commit_log", commit_log)?;
            Ok(catalog)
        });
        let catalog = match opened {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::warn!(%error, "the object catalog is not available: tools will show objects without their names");
                return Self { writer: None };
            }
        };
        match BatchWriter::start("durable-catalog", move |seen| catalog.record(seen)) {
            Ok(writer) => Self {
                writer: Some(writer),
            },
            Err(error) => {
                tracing::warn!(%error, "the object catalog's thread did not start");
                Self { writer: None }
            }
        }
    }

    /// Object `id` of `class` was active at `at_ms` (it started or stopped).
    pub(crate) fn seen(&self, class: &str, id: &ObjectId, at_ms: i64) {
        if let Some(writer) = &self.writer {
            writer.push(
                ObjectSeen {
                    class: class.to_owned(),
                    id: id.to_string(),
                    name: id.name().map(str::to_owned),
                    at_ms,
                },
                None,
            );
        }
    }

    /// Writes what is queued and stops the writer.
    pub(crate) fn stop(&self) {
        if let Some(writer) = &self.writer {
            writer.stop();
        }
    }
}
