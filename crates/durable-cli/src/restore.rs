//! `durable restore --data DIR (--from PATH | --from-postgres URL) [--namespace NS]
//! [--object NAME_OR_ID] [--at RFC3339_TIME_OR_BOOKMARK]`: objects back from their history.
//!
//! From a backup (`--from`, what `durable backup` made) or from PostgreSQL alone
//! (`--from-postgres`: the node replicated to it; the data folder may be gone). Each object
//! chosen is rebuilt as it was at its latest record, or at the time or bookmark `--at`
//! names, and installed in the data folder; the namespace keys come along, so objects are
//! found by name again. History is never rewritten: where the node's own log (its local
//! archive, or the PostgreSQL it replicates to) does not already end in that state, the
//! restore is written into it forward as a new record, so the node starts in step with its
//! log. A backup restored into a folder without an archive seeds the archive with the
//! backup's (its history comes along). The alarm index is removed, and the node rebuilds it
//! from the restored objects' stored alarms when it starts. A folder a running node holds is
//! refused.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use durable_core::NamespaceKey;
use durable_log::{
    Bookmark, Checksum, CommitLog, Head, LocalArchive, LogRecord, ObjectName, PostgresLog,
    RecordKind,
};
use durable_storage::DataLayout;
use serde_json::{Value, json};

use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from", "from_postgres"])))]
pub(crate) struct RestoreArgs {
    /// The node's data folder (created if missing; the node must be stopped).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// A backup folder made by `durable backup`.
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
    /// The PostgreSQL database the node replicated to (postgres://user@host:port/db).
    #[arg(long, value_name = "URL")]
    from_postgres: Option<String>,
    /// Only the objects of this namespace (class).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only this object: its name (with --namespace) or its 64-hex-digit id.
    #[arg(long, value_name = "NAME_OR_ID")]
    object: Option<String>,
    /// The state to restore: an RFC 3339 time (2026-12-01T10:00:00Z) or a bookmark; the
    /// latest acknowledged state without it.
    #[arg(long, value_name = "RFC3339_TIME_OR_BOOKMARK")]
    at: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl RestoreArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

/// What `--at` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    Latest,
    Time(i64),
    Bookmark(Bookmark),
}

fn parse_point(at: Option<&str>) -> anyhow::Result<Point> {
    let Some(text) = at else {
        return Ok(Point::Latest);
    };
    if let Ok(bookmark) = text.parse::<Bookmark>() {
        return Ok(Point::Bookmark(bookmark));
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        anyhow!(
            "--at {text:?} is neither an RFC 3339 time (2026-12-01T10:00:00Z) nor a bookmark (16 hex digits, '-', 16 hex digits)"
        )
    })?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("--at {text:?} is before 1970"))?
        .as_millis();
    Ok(Point::Time(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// Restores; its report.
pub(crate) fn restore(args: &RestoreArgs) -> anyhow::Result<(Value, String)> {
    let point = parse_point(args.at.as_deref())?;
    if args.object.is_some()
        && args.namespace.is_none()
        && crate::parse_id(args.object.as_deref().unwrap_or("")).is_none()
    {
        bail!("--object names an object by name: give its --namespace too (or give its id)");
    }
    let layout = DataLayout::new(&args.data);
    durable_storage::dirs::create_dir_durably(&args.data)
        .with_context(|| format!("create {}", args.data.display()))?;
    let _lock = hold(&layout)?;
    // The history to read, and the log the node will run with.
    let (source, node): (Arc<dyn CommitLog>, Arc<dyn CommitLog>) = match (
        &args.from,
        &args.from_postgres,
    ) {
        (Some(path), _) => {
            let backup = path.join("log");
            if !backup.join("index.sqlite").exists() {
                bail!(
                    "{} is not a backup: it has no log/ folder (make one with `durable backup`)",
                    path.display()
                );
            }
            let own = layout.log_dir();
            if !own.join("index.sqlite").exists() {
                let progress = Progress::bytes(!args.json, "history", 0);
                durable_log::copy_archive(&backup, &own, |bytes| progress.add(bytes))
                    .context("copy the backup's history into the data folder")?;
                progress.finish();
            }
            let source = Arc::new(LocalArchive::open(&backup).context("open the backup")?);
            let node = Arc::new(LocalArchive::open(&own).context("open the node's archive")?);
            (source, node)
        }
        (None, Some(url)) => {
            let log: Arc<dyn CommitLog> =
                Arc::new(PostgresLog::open_existing(url).context("open the log in PostgreSQL")?);
            (Arc::clone(&log), log)
        }
        (None, None) => bail!("give --from PATH or --from-postgres URL"),
    };
    let keys = take_keys(&layout, source.as_ref(), node.as_ref())?;
    let objects = choose(args, source.as_ref(), &keys)?;
    let progress = Progress::items(!args.json, "objects", objects.len() as u64);
    let (mut written, mut bytes) = (0u64, 0u64);
    let now = crate::now_ms();
    for object in &objects {
        let (image, at) = state_at(source.as_ref(), object, point)?;
        let node_head = node.head(object)?;
        if node_head != at {
            let page_size = page_size(&image);
            let record = LogRecord::whole(
                object,
                node_head,
                now,
                RecordKind::Restore,
                page_size,
                &image,
            );
            node.append(&[record]).with_context(|| {
                format!("write the restore of {} into the node's log", name(object))
            })?;
            written += 1;
        }
        let db = layout.object_db(&object.class, &crate::hex(&object.id));
        durable_storage::install_database(&db, &image)?;
        let request = DataLayout::restore_request_of(&db);
        if request.exists() {
            std::fs::remove_file(&request)
                .with_context(|| format!("remove {}", request.display()))?;
        }
        bytes += image.len() as u64;
        progress.add(1);
    }
    progress.finish();
    // The node rebuilds the index from the objects' stored alarms when it starts.
    let index = layout.alarm_index();
    for file in [
        index.clone(),
        DataLayout::wal_of(&index),
        DataLayout::shm_of(&index),
    ] {
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("remove {}", file.display()))?;
        }
    }
    let text = format!(
        "restored {} objects ({bytes} bytes) into {}{}; {written} restore records written forward into the node's log",
        objects.len(),
        args.data.display(),
        match point {
            Point::Latest => " at their latest state".to_owned(),
            Point::Time(ms) => format!(" as they were at {ms} ms"),
            Point::Bookmark(b) => format!(" at bookmark {b}"),
        }
    );
    Ok((
        json!({
            "data": args.data,
            "objects": objects.len(),
            "bytes": bytes,
            "records_written": written,
            "objects_restored": objects.iter().map(|o| json!({"namespace": o.class, "id": crate::hex(&o.id)})).collect::<Vec<_>>(),
        }),
        text,
    ))
}

/// Holds the data folder's lock, as a node does: refused while one runs there.
fn hold(layout: &DataLayout) -> anyhow::Result<File> {
    crate::try_hold(layout)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} is in use by a running node: stop it before restoring into its data folder",
            layout.root().display()
        )
    })
}

/// Brings the namespace keys of the history into the data folder (and into the node's
/// log); a folder with another key for a class is refused. The keys, by class.
fn take_keys(
    layout: &DataLayout,
    source: &dyn CommitLog,
    node: &dyn CommitLog,
) -> anyhow::Result<Vec<(String, NamespaceKey)>> {
    let mut keys = Vec::new();
    for (class, key_hex) in source.class_keys()? {
        let key = NamespaceKey::from_hex(&key_hex)
            .map_err(|err| anyhow!("the history's key of {class} is damaged: {err}"))?;
        let path = layout.namespace_key(&class);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().eq_ignore_ascii_case(&key.to_hex()) => {}
            Ok(_) => bail!(
                "{} holds another key for {class} than the history: this data folder belongs to another node (restore into a new folder)",
                path.display()
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                durable_storage::dirs::create_dir_durably(&layout.namespaces_dir())?;
                let temporary = path.with_extension("key.restoring");
                std::fs::write(&temporary, format!("{}\n", key.to_hex()))?;
                File::open(&temporary)?.sync_all()?;
                std::fs::rename(&temporary, &path)?;
                durable_storage::dirs::sync_dir(&layout.namespaces_dir())?;
            }
            Err(err) => return Err(err).with_context(|| format!("read {}", path.display())),
        }
        node.put_class_key(&class, &key.to_hex())?;
        keys.push((class, key));
    }
    Ok(keys)
}

/// The objects `--namespace` and `--object` choose.
fn choose(
    args: &RestoreArgs,
    source: &dyn CommitLog,
    keys: &[(String, NamespaceKey)],
) -> anyhow::Result<Vec<ObjectName>> {
    // Objects of a class without a key were deleted (or renamed) by a migration: their
    // history stays in the log, but they are not restored.
    let mut objects: Vec<ObjectName> = source
        .objects()?
        .into_iter()
        .filter(|o| keys.iter().any(|(class, _)| class == &o.class))
        .filter(|o| args.namespace.as_ref().is_none_or(|ns| &o.class == ns))
        .collect();
    if let Some(ns) = &args.namespace
        && objects.is_empty()
        && !keys.iter().any(|(class, _)| class == ns)
    {
        bail!("the history has no namespace {ns:?}");
    }
    if let Some(wanted) = &args.object {
        let id = match crate::parse_id(wanted) {
            Some(id) => id,
            None => {
                let ns = args.namespace.as_deref().unwrap_or_default();
                let (_, key) = keys
                    .iter()
                    .find(|(class, _)| class == ns)
                    .ok_or_else(|| anyhow!("the history holds no key for namespace {ns:?}"))?;
                *key.id_from_name(wanted).as_bytes()
            }
        };
        objects.retain(|o| o.id == id);
        if objects.is_empty() {
            bail!("the history holds no object {wanted:?}");
        }
    }
    Ok(objects)
}

/// The object's database at `point`, and the head of history it is.
fn state_at(
    source: &dyn CommitLog,
    object: &ObjectName,
    point: Point,
) -> anyhow::Result<(Vec<u8>, Head)> {
    let (seq, checksum) = match point {
        Point::Latest => {
            let head = source.head(object)?;
            (head.seq, Some(head.checksum))
        }
        Point::Time(ms) => match source.record_at_time(object, ms)? {
            Some(at) => (at.seq, Some(at.checksum)),
            None => (0, Some(Checksum::GENESIS)),
        },
        Point::Bookmark(bookmark) => (bookmark.seq, Some(bookmark.checksum)),
    };
    let (image, head) = durable_log::image_at(source, object, seq)
        .with_context(|| format!("rebuild {}", name(object)))?;
    if checksum.is_some_and(|sum| sum != head.checksum) {
        bail!(
            "the bookmark {} is not a point of the history of {}",
            Bookmark::new(seq, checksum.unwrap_or(head.checksum)),
            name(object)
        );
    }
    Ok((image, head))
}

/// The page size a database file's header states (bytes 16 and 17, big-endian; 1 means
/// 65,536), or SQLite's default for an empty file.
fn page_size(image: &[u8]) -> u32 {
    match image.get(16..18) {
        Some(&[high, low]) => match u16::from_be_bytes([high, low]) {
            1 => 65_536,
            0 => 4096,
            size => u32::from(size),
        },
        _ => 4096,
    }
}

fn name(object: &ObjectName) -> String {
    format!("{} {}", object.class, crate::hex(&object.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_times_and_bookmarks() {
        assert_eq!(parse_point(None).unwrap(), Point::Latest);
        assert_eq!(
            parse_point(Some("1970-01-01T00:00:01Z")).unwrap(),
            Point::Time(1_000)
        );
        assert_eq!(
            parse_point(Some("0000000000000003-00000000000000ff")).unwrap(),
            Point::Bookmark(Bookmark::new(3, Checksum(255)))
        );
        let err = parse_point(Some("yesterday")).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
