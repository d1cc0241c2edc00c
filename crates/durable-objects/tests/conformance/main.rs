//! The conformance suite: one test (or a few) per item of the behavioural checklist our
//! users know from Cloudflare (`docs/conformance.md` maps every item to its tests, or says
//! why it deviates or does not apply). Test names start with the item's id:
//! `spec_4_3_...` checks item 4.3. WebSocket and configuration items are in
//! `durable-server`'s `conformance_*` tests.
#![allow(clippy::unwrap_used, missing_debug_implementations, unreachable_pub)]

mod alarms;
mod classes;
mod ids_and_stubs;
mod lifecycle;
mod sql;
mod state;
mod storage;
mod testing;

use durable_objects::prelude::*;
use durable_objects::testing::{TestEnv, run_in_durable_object};

pub use classes::{NoAlarm, Spec};

/// A test environment with the suite's classes bound, configured further by `configure`.
pub fn spec_env_with(
    configure: impl Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync + 'static,
) -> TestEnv {
    TestEnv::new(move |runtime| {
        configure(
            runtime
                .bind::<Spec>("SPEC")
                .bind::<Spec>("OTHER")
                .bind::<NoAlarm>("NO_ALARM"),
        )
    })
    .unwrap()
}

/// A test environment with the suite's classes bound.
pub fn spec_env() -> TestEnv {
    spec_env_with(|runtime| runtime)
}

/// The `Spec` object called `name`.
pub fn spec(test: &TestEnv, name: &str) -> Stub<Spec> {
    test.env()
        .namespace::<Spec>("SPEC")
        .unwrap()
        .get_by_name(name)
}

/// Runs `f` with the storage of `stub`'s object, as a turn of it, and returns its value.
pub async fn with_storage<R: Send + 'static>(
    stub: &Stub<Spec>,
    f: impl FnOnce(durable_objects::storage::Storage) -> R + Send + 'static,
) -> R {
    run_in_durable_object(stub, move |_, state| async move { f(state.storage()) })
        .await
        .unwrap()
}
