//! Durable writes and reads per second: one hot object under many concurrent callers, writes
//! spread over 1,000 objects, group commit against one fsync per write, and KV/SQL point
//! reads and lists.
//!
//! Run with `cargo bench -p durable-benches --bench storage`. Databases live in a temporary
//! folder under `target/`, on the same disk as the repository, so fsyncs are real.

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use durable_benches::{BenchStore, drive};
use durable_objects::prelude::*;
use durable_objects::storage::DurabilityMode;

fn runtime(dir: &Path, mode: DurabilityMode) -> Runtime {
    Runtime::builder()
        .data_dir(dir)
        .durability(mode)
        .bind::<BenchStore>("STORE")
        .build()
        .expect("runtime")
}

fn bench_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).expect("bench data folder");
    tempfile::tempdir_in(base).expect("temp dir")
}

fn writes(c: &mut Criterion) {
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("driver runtime");
    let mut group = c.benchmark_group("durable_writes");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for (label, mode) in [
        ("group_commit", DurabilityMode::GroupCommit),
        ("fsync_each_commit", DurabilityMode::FsyncEachCommit),
    ] {
        let dir = bench_dir();
        let rt = runtime(dir.path(), mode);
        let ns = rt.env().namespace::<BenchStore>("STORE").expect("binding");
        let one = vec![ns.get_by_name("hot")];
        let thousand: Vec<_> = (0..1_000)
            .map(|i| ns.get_by_name(&format!("o{i}")))
            .collect();
        for (shape, stubs, callers) in [
            ("one_object", &one, 1),
            ("one_object", &one, 64),
            ("1000_objects", &thousand, 64),
        ] {
            let id = BenchmarkId::new(format!("{shape}/{label}"), format!("{callers}_callers"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    driver.block_on(drive(
                        stubs,
                        callers,
                        iters,
                        |stub: Stub<BenchStore>, _| async move {
                            stub.increment().await.expect("durable write");
                        },
                    ))
                });
            });
        }
        rt.shutdown();
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("driver runtime");
    let dir = bench_dir();
    let rt = runtime(dir.path(), DurabilityMode::GroupCommit);
    let ns = rt.env().namespace::<BenchStore>("STORE").expect("binding");
    let hot = vec![ns.get_by_name("read")];
    driver.block_on(hot[0].fill(10_000)).expect("fill");
    let mut group = c.benchmark_group("reads");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    // Which read a call makes, by name; the key index is spread over the 10,000 entries.
    #[derive(Clone, Copy)]
    enum Read {
        KvGet,
        SqlGet,
        KvList,
    }
    for (name, read) in [
        ("kv_get/64_callers", Read::KvGet),
        ("sql_get/64_callers", Read::SqlGet),
        ("kv_list_100/64_callers", Read::KvList),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                driver.block_on(drive(
                    &hot,
                    64,
                    iters,
                    move |stub: Stub<BenchStore>, n| async move {
                        let key = (n * 7919 % 9_900) as u32;
                        match read {
                            Read::KvGet => drop(stub.kv_get(key).await.expect("read")),
                            Read::SqlGet => drop(stub.sql_get(key).await.expect("read")),
                            Read::KvList => drop(stub.kv_list(key, 100).await.expect("list")),
                        }
                    },
                ))
            });
        });
    }
    group.finish();
    rt.shutdown();
}

criterion_group!(benches, writes, reads);
criterion_main!(benches);
