//! `durable backup --data DIR --to PATH`: a consistent copy of a node's history while it
//! runs.
//!
//! The backup is an archive (`PATH/log/`, the same format as a node's own): the node's
//! local archive copied as one snapshot (its index first, then each segment up to what that
//! index holds), the namespace keys, and for every object whose database the archive has no
//! record of (it has not started since the log was turned on, or the node replicates to
//! PostgreSQL instead) a first record holding a consistent snapshot of its database (SQLite's
//! `VACUUM INTO`, never the live files copied). `durable restore --from PATH` reads it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use durable_log::{CommitLog, Head, LocalArchive, LogRecord, ObjectName, RecordKind};
use serde_json::{Value, json};

use crate::progress::Progress;

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The node's data folder (the node may be running).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// A new folder for the backup (missing or empty).
    #[arg(long, value_name = "PATH")]
    to: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl BackupArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

/// Makes the backup; its report.
pub(crate) fn backup(args: &BackupArgs) -> anyhow::Result<(Value, String)> {
    let layout = crate::data_folder(&args.data)?;
    if args.to.exists()
        && std::fs::read_dir(&args.to)
            .with_context(|| format!("read {}", args.to.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} holds files: give a new (or empty) folder for the backup",
            args.to.display()
        );
    }
    let log_to = args.to.join("log");
    let log_from = layout.log_dir();
    let mut copied = durable_log::CopyReport::default();
    if log_from.join("index.sqlite").exists() {
        let total = dir_bytes(&log_from.join("segments"));
        let progress = Progress::bytes(!args.json, "archive", total);
        copied = durable_log::copy_archive(&log_from, &log_to, |bytes| progress.add(bytes))
            .context("copy the local archive")?;
        progress.finish();
    }
    let archive = LocalArchive::open(&log_to).context("open the backup's archive")?;
    for (class, key) in crate::local_keys(&layout)? {
        archive
            .put_class_key(&class, &key)
            .with_context(|| format!("store the key of {class}"))?;
    }
    let databases = durable_storage::object_databases(&layout);
    let progress = Progress::items(!args.json, "objects", databases.len() as u64);
    let mut snapshots = 0u64;
    let now = crate::now_ms();
    for (class, db) in &databases {
        progress.add(1);
        let Some(object) = object_of(class, db) else {
            continue;
        };
        if archive.head(&object).seq > 0 {
            continue;
        }
        let Some(settled) = durable_storage::snapshot_database(db, &args.to)
            .with_context(|| format!("snapshot {}", db.display()))?
        else {
            continue;
        };
        if settled.bytes.is_empty() {
            continue;
        }
        let record = LogRecord::whole(
            &object,
            Head::EMPTY,
            now,
            RecordKind::Commit,
            settled.page_size,
            &settled.bytes,
        );
        archive
            .append(&[record])
            .with_context(|| format!("store the snapshot of {}", db.display()))?;
        snapshots += 1;
    }
    progress.finish();
    let report = archive.verify().context("check the backup")?;
    let text = format!(
        "backup in {}: {} objects, {} records, {} bytes ({} segments copied from the archive, {} databases without history snapshotted)",
        args.to.display(),
        report.objects,
        report.records,
        report.bytes,
        copied.segments,
        snapshots
    );
    Ok((
        json!({
            "to": args.to,
            "objects": report.objects,
            "records": report.records,
            "bytes": report.bytes,
            "segments_copied": copied.segments,
            "snapshots": snapshots,
        }),
        text,
    ))
}

/// The log's name of the object whose database is `db` (`<id>.sqlite` of class `class`).
fn object_of(class: &str, db: &Path) -> Option<ObjectName> {
    let stem = db.file_stem()?.to_str()?;
    Some(ObjectName {
        class: class.to_owned(),
        id: crate::parse_id(stem)?,
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_files_name_their_objects() {
        let id = "ab".repeat(32);
        let object = object_of(
            "Room",
            Path::new(&format!("/d/objects/Room/ab/{id}.sqlite")),
        );
        assert_eq!(object.unwrap().id, [0xab; 32]);
        assert_eq!(object_of("Room", Path::new("/d/x.sqlite")), None);
    }
}
