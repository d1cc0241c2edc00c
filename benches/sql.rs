//! The SQL path of one object's database, without the runtime around it: `exec` of a point
//! read, an upsert, and a filtered scan of 1,000 rows, each statement compiled once and run
//! from the statement cache. It isolates what the storage layer adds to SQLite's own work
//! (binding, stepping, copying rows out, the counters).
//!
//! Run with `cargo bench -p durable-benches --bench sql`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use durable_storage::{DatabaseOptions, ObjectDatabase, SqlValue};

fn sql(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut db = ObjectDatabase::open(
        &dir.path().join("bench.sqlite"),
        DatabaseOptions::default(),
        Arc::new(|_| {}),
    )
    .expect("database");
    db.exec(
        "CREATE TABLE items (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
        vec![],
    )
    .expect("schema");
    for k in 0..1_000 {
        db.exec(
            "INSERT INTO items VALUES (?1, 0)",
            vec![SqlValue::Integer(k)],
        )
        .expect("row");
    }
    db.commit().expect("commit");

    let mut group = c.benchmark_group("sql_exec");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut k = 0;
    group.bench_function("point read", |b| {
        b.iter(|| {
            k = (k + 1) % 1_000;
            db.exec(
                "SELECT v FROM items WHERE k = ?1",
                vec![SqlValue::Integer(k)],
            )
            .expect("read")
            .one()
            .expect("row")
        });
    });
    let mut n = 0;
    group.bench_function("upsert", |b| {
        b.iter(|| {
            n += 1;
            let row = db
                .exec(
                    "INSERT INTO items (k, v) VALUES (?1, 1) \
                     ON CONFLICT (k) DO UPDATE SET v = v + 1 RETURNING v",
                    vec![SqlValue::Integer(n % 1_000)],
                )
                .expect("upsert")
                .one()
                .expect("row");
            // Commit in batches, as turns do, so the WAL does not grow without bound.
            if n % 100 == 0 {
                db.commit().expect("commit");
            }
            row
        });
    });
    group.bench_function("scan of 1,000 rows", |b| {
        b.iter(|| {
            db.exec("SELECT count(*) FROM items WHERE v >= 0", vec![])
                .expect("scan")
                .one()
                .expect("row")
        });
    });
    group.finish();
    db.commit().expect("commit");
}

criterion_group!(benches, sql);
criterion_main!(benches);
