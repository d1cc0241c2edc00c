//! A node's bad day, reproduced for real: a full disk (a small tmpfs), a database at its size
//! limit, a disk that stops answering (an injected fsync stall), a handler that never yields,
//! and more objects than the node may hold databases for. Each test fails without the
//! behaviour it checks: nothing acknowledged is lost, errors say what happened, and the node
//! recovers by itself once the fault is gone.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::{Limit, Runtime};
use support::objects::{self, Probe, Store, raise};
use support::tmpfs::Tmpfs;
use support::{TestRuntime, bounded, probe, store, wait_until};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn wal_bytes(data: &Path) -> u64 {
    let mut files = Vec::new();
    files_under(&data.join("objects"), &mut files);
    files
        .iter()
        .filter(|path| path.to_string_lossy().ends_with("-wal"))
        .map(|path| std::fs::metadata(path).map_or(0, |meta| meta.len()))
        .sum()
}

fn store_on(runtime: &Runtime, name: &str) -> Stub<Store> {
    runtime
        .env()
        .namespace::<Store>("STORE")
        .unwrap()
        .get_by_name(name)
}

fn start_on(data: &Path) -> Runtime {
    objects::bind_all(Runtime::builder().data_dir(data))
        .disk_reserve_bytes(1024 * 1024)
        .idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_deletes_and_recovers() {
    let Some(disk) = Tmpfs::mount(24) else {
        return;
    };
    let data = disk.path().join("data");
    // Space an operator can free later.
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![1u8; 8 * 1024 * 1024]).unwrap();
    let runtime = start_on(&data);
    assert!(data.join("RESERVE").exists(), "the reserve is allocated");

    // Fill the disk through the API, round-robin over objects, until a write is refused.
    let mut acknowledged = Vec::new();
    let refused = 'fill: {
        for round in 0..200 {
            for object in 0..4 {
                let name = format!("filler-{object}");
                let key = format!("k{round}");
                match bounded(store_on(&runtime, &name).put_bytes(key.clone(), 100_000)).await {
                    Ok(()) => acknowledged.push((name, key)),
                    Err(err) => break 'fill err,
                }
            }
        }
        panic!("24 MB never filled up");
    };
    assert_eq!(refused.kind(), ErrorKind::DiskFull, "{refused:?}");
    assert!(
        refused.is_disk_full() && !refused.is_retryable(),
        "{refused:?}"
    );
    assert!(acknowledged.len() > 20, "{}", acknowledged.len());
    assert!(runtime.metrics().disk_full);
    assert!(runtime.health().disk_full);
    assert!(!data.join("RESERVE").exists(), "the reserve was given up");

    // Every acknowledged write is there.
    for (name, key) in &acknowledged {
        let len = bounded(store_on(&runtime, name).byte_len(key.clone()))
            .await
            .unwrap();
        assert_eq!(len, Some(100_000), "{name}/{key}");
    }
    // Growing writes are refused with the same error, on old objects and new ones alike,
    // and a refused new object leaves no empty file behind.
    for name in ["filler-0", "filler-3"] {
        let err = bounded(store_on(&runtime, name).put("small".into(), "x".into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DiskFull, "{name}: {err:?}");
    }
    // A new object whose `init` creates its schema and first row.
    let err = bounded(
        runtime
            .env()
            .namespace::<objects::Migrating>("MIGRATING")
            .unwrap()
            .get_by_name("brand-new")
            .add("first".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DiskFull, "{err:?}");
    let mut files = Vec::new();
    files_under(&data.join("objects"), &mut files);
    for file in &files {
        if file.extension().is_some_and(|ext| ext == "sqlite") {
            assert!(
                std::fs::metadata(file).unwrap().len() > 0,
                "{file:?} is empty"
            );
        }
    }
    // Deletes work on a full disk: one key, several, and everything of an object.
    let (name, key) = acknowledged[0].clone();
    assert!(
        bounded(store_on(&runtime, &name).delete(key))
            .await
            .unwrap()
    );
    let keys: Vec<String> = acknowledged
        .iter()
        .filter(|(owner, _)| *owner == "filler-1")
        .take(3)
        .map(|(_, key)| key.clone())
        .collect();
    assert_eq!(
        bounded(store_on(&runtime, "filler-1").delete_many(keys))
            .await
            .unwrap(),
        3
    );
    bounded(store_on(&runtime, "filler-2").delete_all())
        .await
        .unwrap();
    let wal_when_full = wal_bytes(&data);
    // The operator frees space: writes resume by themselves, with the reserve back.
    std::fs::remove_file(&filler).unwrap();
    wait_until("the disk counts as available again", || {
        !runtime.metrics().disk_full
    })
    .await;
    assert!(
        data.join("RESERVE").exists(),
        "the reserve is allocated again"
    );
    bounded(store_on(&runtime, "filler-0").put("after".into(), "yes".into()))
        .await
        .unwrap();
    // With room again, the quiet objects' WALs are copied into their databases and
    // truncated (not while the disk was full: that needs room for the databases to grow).
    // (The commit log in the data folder holds a copy of every page written, so the WALs
    // hold about a third of the disk when it fills.)
    assert!(wal_when_full > 4 * 1024 * 1024, "{wal_when_full}");
    wait_until("the WALs are truncated", || wal_bytes(&data) < 256 * 1024).await;

    // And after a restart, everything acknowledged and not deleted is still there.
    drop(runtime);
    let runtime = start_on(&data);
    let deleted = |name: &str, key: &str| {
        name == "filler-2"
            || (name, key) == (acknowledged[0].0.as_str(), acknowledged[0].1.as_str())
    };
    let mut kept = 0;
    for (name, key) in &acknowledged {
        let len = bounded(store_on(&runtime, name).byte_len(key.clone()))
            .await
            .unwrap();
        if deleted(name, key) {
            assert_eq!(len, None, "{name}/{key} was deleted");
        } else if len.is_some() {
            kept += 1;
        }
    }
    // Only the three keys deleted together are missing among the others.
    let others = acknowledged
        .iter()
        .filter(|(name, key)| !deleted(name, key))
        .count();
    assert_eq!(kept, others - 3);
    assert_eq!(
        bounded(store_on(&runtime, "filler-0").get("after".into()))
            .await
            .unwrap()
            .as_deref(),
        Some("yes")
    );
}

#[tokio::test]
async fn a_database_at_its_size_limit_is_a_limit_not_a_full_disk() {
    let test = TestRuntime::start(|b| b.max_database_bytes(256 * 1024));
    let s = store(&test, "capped");
    let mut written = 0;
    let err = loop {
        match bounded(s.put_bytes(format!("k{written}"), 50_000)).await {
            Ok(()) => written += 1,
            Err(err) => break err,
        }
        assert!(written < 100, "the size limit never applied");
    };
    assert_eq!(err.exceeded_limit(), Some(Limit::DatabaseBytes), "{err:?}");
    assert!(!err.is_disk_full(), "{err:?}");
    assert!(!test.runtime().metrics().disk_full);
    // Deleting makes room again.
    assert!(bounded(s.delete("k0".into())).await.unwrap());
    bounded(s.put_bytes("again".into(), 10_000)).await.unwrap();
}

#[tokio::test]
async fn outputs_waiting_on_a_hung_disk_fail_with_an_unknown_outcome() {
    let test = TestRuntime::start(|b| b.storage_timeout(Duration::from_millis(200)));
    let s = store(&test, "hung");
    s.record(1).await.unwrap();
    test.runtime().stall_syncs();
    // The write is in the WAL, but its fsync never returns: the reply cannot be sent, and
    // after the storage timeout the caller learns that the outcome is unknown.
    let err = bounded(s.record(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    assert!(err.is_reset() && !err.is_retryable(), "{err:?}");
    assert!(err.message().contains("200 ms"), "{err}");
    // Once the disk answers again, the object works (a fresh instance).
    test.runtime().release_sync_stall();
    s.record(3).await.unwrap();
    let ledger = s.ledger().await.unwrap();
    assert!(ledger.contains(&1) && ledger.contains(&3), "{ledger:?}");
}

/// Names of `Probe` objects on shard `shard` of `shards`.
fn names_on_shard(test: &TestRuntime, shard: u64, shards: u64, count: usize) -> Vec<String> {
    (0..)
        .map(|n| format!("p{n}"))
        .filter(|name| {
            let id = test
                .env()
                .namespace::<Probe>("PROBE")
                .unwrap()
                .id_from_name(name);
            id.routing_hash() % shards == shard
        })
        .take(count)
        .collect()
}

#[tokio::test]
async fn a_handler_that_never_yields_stalls_only_its_shard() {
    let test = TestRuntime::start(|b| b.shards(2).cpu_limit(Duration::from_millis(100)));
    let busy_shard = names_on_shard(&test, 0, 2, 3);
    let free_shard = names_on_shard(&test, 1, 2, 2);
    // The hog holds shard 0's thread until the signal.
    let hog = probe(&test, &busy_shard[0]).hog_thread("faults-hog".into());
    let hog = tokio::spawn(hog);
    wait_until("the watchdog marks the shard stalled", || {
        test.runtime().health().shards[0].stalled
    })
    .await;
    let health = test.runtime().health();
    assert!(
        !health.is_healthy() && !health.shards[1].stalled,
        "{health:?}"
    );
    assert!(
        health.shards[0].turn_running_ms.unwrap() >= 100,
        "{health:?}"
    );
    assert_eq!(test.runtime().metrics().stalled_turns, 1);
    assert_eq!(test.runtime().metrics().stalled_shards, 1);
    // Calls to the stalled shard fail fast as overloaded; the other shard answers.
    let err = bounded(probe(&test, &busy_shard[1]).add(1))
        .await
        .unwrap_err();
    assert!(err.is_overloaded(), "{err:?}");
    assert!(err.message().contains("stalled"), "{err}");
    for name in &free_shard {
        assert_eq!(bounded(probe(&test, name).add(1)).await.unwrap(), 1);
    }
    // Once the handler yields, the shard is healthy again.
    raise("faults-hog");
    bounded(hog).await.unwrap().unwrap();
    wait_until("the stall ends", || test.runtime().health().is_healthy()).await;
    assert_eq!(
        bounded(probe(&test, &busy_shard[2]).add(2)).await.unwrap(),
        2
    );
    assert_eq!(test.runtime().metrics().stalled_turns, 1);
}

#[tokio::test]
async fn activations_wait_for_a_database_slot_instead_of_failing() {
    let test = TestRuntime::start(|b| b.shards(1).max_open_databases(1));
    // A holds the node's only database slot while its call waits for a signal.
    let a = store(&test, "slot-a");
    let holder = a.clone();
    let hold = tokio::spawn(async move { holder.write_then_wait("faults-slot".into()).await });
    bounded(async {
        while a.get("held".into()).await.unwrap().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(test.runtime().open_databases(), 1);
    // B needs activating while the slot is taken by a busy object: its calls wait, not fail,
    // and keep their order (each is sent when it is made).
    let b = store(&test, "slot-b");
    let calls: Vec<_> = (7..10).map(|n| b.record(n)).collect();
    let waiting = tokio::spawn(async move {
        for call in calls {
            call.await.unwrap();
        }
    });
    wait_until("B's calls wait for a slot", || {
        test.runtime().metrics().activations_waiting == 3
    })
    .await;
    assert_eq!(test.runtime().open_databases(), 1);
    raise("faults-slot");
    bounded(hold).await.unwrap().unwrap();
    bounded(waiting).await.unwrap();
    assert_eq!(store(&test, "slot-b").ledger().await.unwrap(), [7, 8, 9]);
    assert_eq!(test.runtime().metrics().activations_waiting, 0);
    assert!(test.runtime().open_databases() <= 1);
    // Many objects through one slot: every call succeeds.
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let s = store(&test, &format!("many-{n}"));
            tokio::spawn(async move { s.record(n).await })
        })
        .collect();
    for call in calls {
        bounded(call).await.unwrap().unwrap();
    }
    assert_eq!(store(&test, "many-7").ledger().await.unwrap(), [7]);
    assert!(test.runtime().open_databases() <= 1);
}
