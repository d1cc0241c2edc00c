//! Object classes and drivers shared by the benchmarks.

use std::cell::Cell;
use std::time::{Duration, Instant};

use durable_objects::prelude::*;

/// The smallest useful object: an in-memory counter.
#[durable_object]
pub struct BenchCounter {
    value: Cell<u64>,
}

impl std::fmt::Debug for BenchCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchCounter").finish()
    }
}

impl DurableObject for BenchCounter {
    fn new(_state: State, _env: Env) -> Self {
        Self {
            value: Cell::new(0),
        }
    }
}

#[rpc]
impl BenchCounter {
    /// Adds one and returns the new value.
    pub async fn bump(&self) -> u64 {
        self.value.set(self.value.get() + 1);
        self.value.get()
    }
}

/// Makes `calls` RPC round trips from `callers` concurrent tasks, each caller awaiting one
/// call before making the next, spread round-robin over `stubs`. Returns the wall time.
pub async fn round_trips(stubs: &[Stub<BenchCounter>], callers: usize, calls: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let callers_u64 = callers as u64;
    for caller in 0..callers {
        let share = calls / callers_u64 + u64::from((caller as u64) < calls % callers_u64);
        let mine: Vec<Stub<BenchCounter>> = (0..stubs.len().min(64))
            .map(|k| stubs[(caller * 64 + k) % stubs.len()].clone())
            .collect();
        tasks.spawn(async move {
            for call in 0..share {
                let stub = &mine[(call as usize) % mine.len()];
                stub.bump().await.expect("bench call succeeds");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("bench caller finished");
    }
    started.elapsed()
}
