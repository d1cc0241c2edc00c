//! Writes while no node runs: `durable` opens the data folder with a runtime of its own
//! (`durable_runtime`), as the node would, so a write still runs inside the object, commits
//! through its pipeline, reaches the commit log and the alarm index, and holds the folder's
//! lock while it runs.
//!
//! The tool has no user types: each class is bound as a stand-in
//! (`RuntimeBuilder::bind_stand_in`: its objects take no calls, only operators' operations),
//! under the bindings the node recorded, and no alarm is delivered (they fire when the node
//! runs again). The commit log is the one the node recorded (`commit_log` in its catalog): the
//! local archive, or none. A node that replicates to PostgreSQL is refused: its history must
//! go there, through the node.

use anyhow::{Context, bail};
use durable_runtime::{Admin, CommitLogSetting, Runtime};
use durable_storage::{DataLayout, ObjectCatalog};

/// The data folder, opened by the tool.
pub(crate) struct LocalNode {
    runtime: Option<Runtime>,
    driver: tokio::runtime::Runtime,
}

impl LocalNode {
    /// Opens the folder at `layout` (no node may be running on it).
    pub(crate) fn open(layout: &DataLayout) -> anyhow::Result<Self> {
        let catalog = ObjectCatalog::open_read_only(&layout.catalog())?;
        let recorded = match &catalog {
            Some(catalog) => catalog.setting("commit_log")?,
            None => None,
        };
        let commit_log = match recorded.as_deref() {
            Some("local") => CommitLogSetting::Local,
            Some("off") => CommitLogSetting::Off,
            Some("postgres") => bail!(
                "the node of {} replicates its history to PostgreSQL: start it (with durable.admin.listen set) and run this again, so the write reaches PostgreSQL",
                layout.root().display()
            ),
            _ => bail!(
                "the node of {} has not recorded where it keeps its history (a node older than this tool): start it once, or with durable.admin.listen set to write through it",
                layout.root().display()
            ),
        };
        let bindings = match &catalog {
            Some(catalog) => catalog.bindings()?,
            None => Vec::new(),
        };
        let mut builder = Runtime::builder()
            .data_dir(layout.root())
            .commit_log(commit_log)
            .without_alarm_delivery();
        for (class, _) in crate::local_keys(layout)? {
            let mut named = bindings.iter().filter(|(_, c)| *c == class).peekable();
            if named.peek().is_none() {
                builder = builder.bind_stand_in(class.clone(), &class);
            }
            for (binding, _) in named {
                builder = builder.bind_stand_in(binding.clone(), &class);
            }
        }
        let runtime = builder
            .build()
            .with_context(|| format!("open {}", layout.root().display()))?;
        let driver = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the tool's async runtime")?;
        Ok(Self {
            runtime: Some(runtime),
            driver,
        })
    }

    /// Operator access to the folder's objects.
    pub(crate) fn admin(&self) -> Option<Admin> {
        self.runtime.as_ref().map(Runtime::admin)
    }

    /// Runs `future` to completion.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.driver.block_on(future)
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        // The runtime stops first: its last commits are durable when this returns.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
    }
}
