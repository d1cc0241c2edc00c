//! RPC round trips per second: many callers on one object, and calls spread over 1,000
//! objects, on the in-process path and the envelope-encoded path.
//!
//! Run with `cargo bench -p durable-benches --bench rpc`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use durable_benches::{BenchCounter, round_trips};
use durable_objects::prelude::*;

fn rpc(c: &mut Criterion) {
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("driver runtime");
    let mut group = c.benchmark_group("rpc");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for (path, encode) in [("direct", false), ("encoded", true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = Runtime::builder()
            .data_dir(dir.path())
            .encode_rpc(encode)
            .bind::<BenchCounter>("COUNTER")
            .build()
            .expect("runtime");
        let ns = runtime
            .env()
            .namespace::<BenchCounter>("COUNTER")
            .expect("binding");
        let one = vec![ns.get_by_name("hot")];
        let thousand: Vec<_> = (0..1_000)
            .map(|i| ns.get_by_name(&format!("object-{i}")))
            .collect();
        for (shape, stubs, callers) in [
            ("one_object", &one, 1),
            ("one_object", &one, 64),
            ("1000_objects", &thousand, 64),
        ] {
            let id = BenchmarkId::new(format!("{shape}/{path}"), format!("{callers}_callers"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| driver.block_on(round_trips(stubs, callers, iters)));
            });
        }
        runtime.shutdown();
    }
    group.finish();
}

criterion_group!(benches, rpc);
criterion_main!(benches);
