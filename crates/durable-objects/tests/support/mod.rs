//! Shared helpers of the facade's integration tests: a runtime in a temporary data folder,
//! a bounded wait, and the test object classes in [`objects`].
#![allow(
    dead_code,
    missing_debug_implementations,
    unreachable_pub,
    clippy::unwrap_used
)]

pub mod crash;
pub mod objects;
pub mod tmpfs;

use std::future::Future;
use std::time::Duration;

use durable_objects::{Runtime, RuntimeBuilder};

/// A runtime whose data folder lives as long as it does.
pub struct TestRuntime {
    pub runtime: Option<Runtime>,
    pub dir: tempfile::TempDir,
}

impl TestRuntime {
    /// A runtime with every test class bound, configured further by `configure`.
    pub fn start(configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = configure(objects::bind_all(Runtime::builder().data_dir(dir.path())))
            .build()
            .expect("runtime starts");
        Self {
            runtime: Some(runtime),
            dir,
        }
    }

    pub fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("runtime running")
    }

    pub fn env(&self) -> durable_objects::Env {
        self.runtime().env()
    }

    /// Stops the runtime and starts a new one on the same data folder.
    pub fn restart(&mut self, configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder) {
        drop(self.runtime.take());
        let runtime = configure(objects::bind_all(
            Runtime::builder().data_dir(self.dir.path()),
        ))
        .build()
        .expect("runtime restarts");
        self.runtime = Some(runtime);
    }
}

/// A stub for the `Probe` object called `name`.
pub fn probe(test: &TestRuntime, name: &str) -> durable_objects::Stub<objects::Probe> {
    test.env()
        .namespace::<objects::Probe>("PROBE")
        .unwrap()
        .get_by_name(name)
}

/// A stub for the `Store` object called `name`.
pub fn store(test: &TestRuntime, name: &str) -> durable_objects::Stub<objects::Store> {
    test.env()
        .namespace::<objects::Store>("STORE")
        .unwrap()
        .get_by_name(name)
}

/// Awaits `future`, failing the test instead of hanging if it takes longer than 20 s.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the operation finished within 20 s")
}

/// Waits until `condition` holds, checking every 5 ms, for at most 20 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}
