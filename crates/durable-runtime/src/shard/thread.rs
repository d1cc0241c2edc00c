//! The shard thread: a current-thread Tokio runtime with a `LocalSet`, the shard's
//! [`ObjectDirectory`], the sweeper that evicts idle objects, and the loop that delivers
//! each event the shard receives.

use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::LocalSet;

use super::ShardMsg;
use crate::directory::ObjectDirectory;
use crate::object::ClassVTable;
use crate::shared::RuntimeShared;

/// Starts shard `index` on its own thread.
pub(crate) fn spawn(
    index: usize,
    shared: Arc<RuntimeShared>,
    classes: Arc<[ClassVTable]>,
    mut rx: mpsc::UnboundedReceiver<ShardMsg>,
) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name(format!("durable-shard-{index}"))
        .spawn(move || {
            let local = LocalSet::new();
            let release = shared.router.shard(index).release_handle();
            let watch = std::sync::Arc::clone(shared.router.shard(index).watch());
            let sweep_every = sweep_interval(shared.config.idle_timeout);
            let commits = std::sync::Arc::clone(&shared.commits);
            let directory = Rc::new(ObjectDirectory::new(shared, classes, release, watch));
            local.block_on(&runtime, async {
                let sweeper = {
                    let directory = Rc::clone(&directory);
                    tokio::task::spawn_local(async move {
                        let mut tick = tokio::time::interval(sweep_every);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tick.tick().await;
                            directory.maintain();
                        }
                    })
                };
                // Objects waiting for a database slot try again whenever one closes (on any
                // shard) or an instance of this shard may have become idle.
                let slots = {
                    let directory = Rc::clone(&directory);
                    tokio::task::spawn_local(async move {
                        loop {
                            let closed = commits.database_closed.notified();
                            tokio::pin!(closed);
                            closed.as_mut().enable();
                            directory.retry_waiting();
                            tokio::select! {
                                () = closed => {}
                                () = directory.slot_wake.notified() => {}
                            }
                        }
                    })
                };
                while let Some(msg) = rx.recv().await {
                    match msg {
                        ShardMsg::Event(event) => directory.deliver(event),
                        ShardMsg::Reclaim => directory.reclaim(),
                        ShardMsg::Control(control) => directory.control(control),
                        ShardMsg::Stop => break,
                    }
                }
                sweeper.abort();
                slots.abort();
                directory.shutdown();
            });
            // Dropping the LocalSet drops every event task still alive; each tells its caller
            // that the runtime shut down.
            drop(local);
            drop(runtime);
        })
}

/// How often a shard looks for idle objects: often enough that eviction is at most a quarter
/// of the idle timeout late, but never busier than every 5 ms or lazier than every second.
fn sweep_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
}
