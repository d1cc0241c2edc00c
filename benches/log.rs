//! The commit log's building blocks, before they are wired to the runtime: how many records
//! per second the local archive and PostgreSQL take in appends of 1, 16 and 256 records
//! (two 4 KiB pages each, the size of a small commit), each append one durable step (an
//! fsync of the segment; a PostgreSQL transaction committed with `synchronous_commit` on).
//!
//! Run with `cargo bench -p durable-benches --bench log`. The archive lives under `target/`
//! (the repository's disk); PostgreSQL is a throwaway server from Debian's `postgresql`
//! package, on loopback, with `fsync` on.

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use durable_log::{
    AlarmChange, CommitLog, Head, LocalArchive, LogRecord, ObjectName, PageImage, PostgresLog,
    RecordKind,
};
use durable_pgtemp::TempPostgres;

/// Objects the appends spread over (each append holds the next record of `batch` of them).
const OBJECTS: usize = 1_000;

fn object(n: usize) -> ObjectName {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(n as u64).to_le_bytes());
    ObjectName {
        class: "Bench".into(),
        id,
    }
}

/// Appends of `batch` records each, continuing the heads kept in `heads`.
struct Writer {
    heads: Vec<Head>,
    next_object: usize,
}

impl Writer {
    fn new() -> Self {
        Self {
            heads: vec![Head::EMPTY; OBJECTS],
            next_object: 0,
        }
    }

    fn batch(&mut self, size: usize) -> Vec<LogRecord> {
        let mut records = Vec::with_capacity(size);
        for _ in 0..size {
            let n = self.next_object;
            self.next_object = (n + 1) % OBJECTS;
            let head = self.heads[n];
            let record = LogRecord {
                object: object(n),
                seq: head.seq + 1,
                prev: head.checksum,
                kind: RecordKind::Commit,
                time_ms: head.seq as i64,
                page_size: 4096,
                db_pages: 2,
                pages: vec![
                    PageImage {
                        page: 1,
                        data: vec![head.seq as u8; 4096],
                    },
                    PageImage {
                        page: 2,
                        data: vec![n as u8; 4096],
                    },
                ],
                alarm: AlarmChange::Unchanged,
                wal: None,
            };
            self.heads[n] = head.advance(&record).expect("the writer keeps the chain");
            records.push(record);
        }
        records
    }
}

fn bench_log(c: &mut Criterion, name: &str, log: &dyn CommitLog) {
    let mut group = c.benchmark_group(format!("log_append/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut writer = Writer::new();
    for batch in [1_usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("records_per_append", batch), |b| {
            b.iter(|| log.append(&writer.batch(batch)).expect("append"));
        });
    }
    group.finish();
}

fn archive(c: &mut Criterion) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).expect("bench data folder");
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let log = LocalArchive::open(dir.path()).expect("archive");
    bench_log(c, "local_archive", &log);
}

fn postgres(c: &mut Criterion) {
    let server = TempPostgres::start().expect("a throwaway PostgreSQL server");
    let log = PostgresLog::connect(&server.url()).expect("connect");
    bench_log(c, "postgres", &log);
}

criterion_group!(benches, archive, postgres);
criterion_main!(benches);
