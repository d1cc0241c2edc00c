//! Listing the objects of a large data folder (`durable objects list`'s engine,
//! `durable_storage::list_objects`): 10,000 and then 100,000 objects, each line formatted as
//! the tool prints it, into a sink. Reports the time and how much the process's peak memory
//! grew, to show the listing streams.
//!
//! The objects' databases are hard links to small files (the listing reads folders,
//! file sizes, the catalog and the alarm index; never the databases), so the folder takes
//! little disk. Run with `cargo bench -p durable-benches --bench listing`.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use durable_core::NamespaceKey;
use durable_storage::{
    AlarmIndex, DataLayout, IndexChange, ListFilter, ObjectCatalog, ObjectSeen, list_objects,
};

/// The process's peak resident memory so far, in KiB (Linux).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A data folder of `count` objects of class `Room` named `room-<n>`, every tenth with an
/// alarm.
fn make_folder(root: &Path, count: usize) -> DataLayout {
    let layout = DataLayout::new(root);
    std::fs::create_dir_all(layout.namespaces_dir()).unwrap();
    let key = NamespaceKey::from_bytes([7; 32]);
    std::fs::write(layout.namespace_key("Room"), key.to_hex()).unwrap();
    // One file per fan-out folder: a file takes at most 65,000 links.
    let templates = root.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let catalog = ObjectCatalog::open(&layout.catalog()).unwrap();
    let alarms = AlarmIndex::open(&layout.alarm_index()).unwrap();
    let mut seen = Vec::new();
    let mut changes = Vec::new();
    for n in 0..count {
        let name = format!("room-{n}");
        let id = key.id_from_name(&name).to_string();
        let db = layout.object_db("Room", &id);
        if let Some(dir) = db.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let template = templates.join(&id[..2]);
        if !template.exists() {
            write_database_header(&template);
        }
        std::fs::hard_link(&template, &db).unwrap();
        seen.push(ObjectSeen {
            class: "Room".into(),
            id: id.clone(),
            name: Some(name),
            at_ms: 1_800_000_000_000 + n as i64,
        });
        if n % 10 == 0 {
            changes.push(IndexChange::Upsert("Room".into(), id, 1_900_000_000_000));
        }
        if seen.len() == 10_000 {
            catalog.record(&seen).unwrap();
            seen.clear();
        }
    }
    catalog.record(&seen).unwrap();
    alarms.apply(&changes).unwrap();
    layout
}

/// A one-page file at `path` that starts like a SQLite database (the listing never opens
/// the databases, only looks at their files).
fn write_database_header(path: &Path) {
    let mut header = vec![0u8; 4096];
    header[..16].copy_from_slice(b"SQLite format 3\0");
    std::fs::write(path, header).unwrap();
}

fn list(layout: &DataLayout) -> (u64, f64) {
    let mut sink = std::io::sink();
    let started = Instant::now();
    let listed = list_objects(layout, &ListFilter::default(), |object| {
        writeln!(
            sink,
            "{{\"namespace\":{:?},\"id\":{:?},\"name\":{:?},\"bytes\":{},\"last_active_ms\":{:?},\"alarm_ms\":{:?}}}",
            object.class, object.id, object.name, object.bytes, object.last_active_ms, object.alarm_ms
        )
        .is_ok()
    })
    .unwrap();
    (listed, started.elapsed().as_secs_f64())
}

fn main() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).unwrap();
    println!("| objects | listing time | objects/s | peak memory growth |");
    println!("|---|---|---|---|");
    for count in [10_000usize, 100_000] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let layout = make_folder(dir.path(), count);
        let before = peak_kib();
        let (listed, seconds) = list(&layout);
        let grown = peak_kib().saturating_sub(before);
        assert_eq!(listed, count as u64);
        println!(
            "| {count} | {seconds:.2} s | {:.0} | {grown} KiB |",
            listed as f64 / seconds
        );
    }
}
