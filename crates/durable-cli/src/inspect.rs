//! Looking inside a data folder: `durable objects list`, `durable sql`, `durable kv get|list`
//! and `durable alarm get`.
//!
//! Reads come straight from the files (`durable_storage::inspect`), so they work whether or
//! not a node is running on the folder: SQLite's WAL mode lets them read beside the node's
//! writes, each command seeing one consistent state of each object. A statement that writes
//! is refused without `--write` (the database is opened read-only). Writes (`sql --write`,
//! `kv put|delete`, `alarm set|delete`) run inside the object, through the admin API of the
//! node running on the folder (`admin_client`), so they reach its commit log and alarm
//! index like the object's own writes.
//!
//! A namespace is named by its binding (`COUNTER`, as the node's catalog records it) or its
//! class (`Counter`); an object by its name or its 64-hex-digit id (checked against the
//! namespace's key). `--json` prints JSON: one object per line for `objects list` (it
//! streams), one document otherwise.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use durable_core::NamespaceKey;

use crate::admin_client::{Write, Writer};
use durable_storage::{
    DataLayout, ListFilter, ObjectCatalog, ObjectListing, ObjectReader, QueryResult, SqlValue,
};
use serde_json::{Value, json};

/// `durable objects ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ObjectsCommand {
    /// List the objects of the data folder: namespace, id, name, size, last activity and
    /// pending alarm (streamed: any number of objects in constant memory).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The node's data folder.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Only this namespace (its binding or its class).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only objects whose name or id starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Which object a command is about.
#[derive(Debug, Args)]
pub(crate) struct ObjectArgs {
    /// The node's data folder.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The namespace: its binding (`COUNTER`) or its class (`Counter`).
    namespace: String,
    /// The object: its name, or its 64-hex-digit id.
    object: String,
}

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    #[command(flatten)]
    target: ObjectArgs,
    /// The query (it may only read).
    query: String,
    /// Rows shown at most.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Let the statement write: it runs inside the object, through the running node's admin
    /// API.
    #[arg(long)]
    write: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `durable kv ...`
#[derive(Debug, Subcommand)]
pub(crate) enum KvCommand {
    /// One entry's value, decoded.
    Get(KvGetArgs),
    /// Entries in key order, decoded.
    List(KvListArgs),
    /// Store a value (JSON) under a key, inside the object (through the running node).
    Put(KvPutArgs),
    /// Delete a key, inside the object (through the running node).
    Delete(KvGetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KvPutArgs {
    #[command(flatten)]
    target: ObjectArgs,
    /// The key.
    key: String,
    /// The value, as JSON (`42`, `"text"`, `{"a": 1}`).
    value: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KvGetArgs {
    #[command(flatten)]
    target: ObjectArgs,
    /// The key.
    key: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KvListArgs {
    #[command(flatten)]
    target: ObjectArgs,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only keys after this one.
    #[arg(long, value_name = "KEY")]
    start_after: Option<String>,
    /// Entries shown at most.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `durable alarm ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AlarmCommand {
    /// The object's alarm, if it has one.
    Get(AlarmGetArgs),
    /// Set the object's alarm (through the running node).
    Set(AlarmSetArgs),
    /// Delete the object's alarm (through the running node).
    Delete(AlarmGetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AlarmSetArgs {
    #[command(flatten)]
    target: ObjectArgs,
    /// When: an RFC 3339 time (`2026-12-03T10:00:00Z`) or milliseconds since the Unix epoch.
    at: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AlarmGetArgs {
    #[command(flatten)]
    target: ObjectArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

impl SqlArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

impl KvCommand {
    pub(crate) fn json(&self) -> bool {
        match self {
            KvCommand::Get(args) | KvCommand::Delete(args) => args.json,
            KvCommand::List(args) => args.json,
            KvCommand::Put(args) => args.json,
        }
    }
}

impl AlarmCommand {
    pub(crate) fn json(&self) -> bool {
        match self {
            AlarmCommand::Get(args) | AlarmCommand::Delete(args) => args.json,
            AlarmCommand::Set(args) => args.json,
        }
    }
}

/// One object, found.
pub(crate) struct Target {
    pub(crate) class: String,
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) db: PathBuf,
}

impl Target {
    fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("{} {name:?} ({})", self.class, self.id),
            None => format!("{} {}", self.class, self.id),
        }
    }

    fn reader(&self) -> anyhow::Result<ObjectReader> {
        ObjectReader::open(&self.db)?.ok_or_else(|| {
            anyhow!(
                "{} has no data: it has never stored anything",
                self.describe()
            )
        })
    }
}

/// The class a namespace argument names: a binding the catalog records, or a class with a
/// key in the data folder.
pub(crate) fn resolve_namespace(layout: &DataLayout, namespace: &str) -> anyhow::Result<String> {
    let classes: Vec<String> = crate::local_keys(layout)?
        .into_iter()
        .map(|(class, _)| class)
        .collect();
    if classes.iter().any(|class| class == namespace) {
        return Ok(namespace.to_owned());
    }
    let bindings = match ObjectCatalog::open_read_only(&layout.catalog())? {
        Some(catalog) => catalog.bindings()?,
        None => Vec::new(),
    };
    if let Some((_, class)) = bindings.iter().find(|(binding, _)| binding == namespace) {
        return Ok(class.clone());
    }
    let known: Vec<String> = classes
        .iter()
        .map(|class| {
            let names: Vec<&str> = bindings
                .iter()
                .filter(|(_, c)| c == class)
                .map(|(b, _)| b.as_str())
                .collect();
            if names.is_empty() {
                class.clone()
            } else {
                format!("{class} (binding {})", names.join(", "))
            }
        })
        .collect();
    if known.is_empty() {
        bail!("unknown namespace {namespace:?}: the data folder has no namespaces yet");
    }
    bail!(
        "unknown namespace {namespace:?}: the data folder has {}",
        known.join(", ")
    )
}

/// The object `args` names.
fn resolve(args: &ObjectArgs) -> anyhow::Result<Target> {
    let layout = crate::data_folder(&args.data)?;
    resolve_in(&layout, &args.namespace, &args.object)
}

/// The object `object` (a name or an id) of `namespace` (a binding or a class) in `layout`.
pub(crate) fn resolve_in(
    layout: &DataLayout,
    namespace: &str,
    object: &str,
) -> anyhow::Result<Target> {
    let class = resolve_namespace(layout, namespace)?;
    let key_hex = std::fs::read_to_string(layout.namespace_key(&class))
        .with_context(|| format!("read the key of namespace {class}"))?;
    let key = NamespaceKey::from_hex(key_hex.trim())
        .map_err(|e| anyhow!("the key of namespace {class} is damaged: {e}"))?;
    let (id, name) = if crate::parse_id(object).is_some() {
        let id = key
            .id_from_string(object)
            .map_err(|e| anyhow!("{object} is not an object of namespace {class}: {e}"))?;
        let name = ObjectCatalog::open_read_only(&layout.catalog())?
            .map(|catalog| catalog.entry(&class, &id.to_string()))
            .transpose()?
            .flatten()
            .and_then(|entry| entry.name);
        (id.to_string(), name)
    } else if object.is_empty() {
        bail!("give an object's name or its 64-hex-digit id");
    } else {
        (
            key.id_from_name(object).to_string(),
            Some(object.to_owned()),
        )
    };
    let db = layout.object_db(&class, &id);
    Ok(Target {
        class,
        id,
        name,
        db,
    })
}

/// `durable objects list`: streams one line (or JSON line) per object.
pub(crate) fn list(args: &ListArgs) -> anyhow::Result<(Value, String)> {
    let layout = crate::data_folder(&args.data)?;
    let filter = ListFilter {
        class: args
            .namespace
            .as_deref()
            .map(|ns| resolve_namespace(&layout, ns))
            .transpose()?,
        prefix: args.prefix.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !args.json {
        writeln!(
            out,
            "{:<16} {:<64} {:<24} {:>10} {:<20} ALARM",
            "NAMESPACE", "ID", "NAME", "BYTES", "LAST ACTIVE"
        )?;
    }
    let mut failed = None;
    let listed = durable_storage::list_objects(&layout, &filter, |object| {
        let written = if args.json {
            writeln!(out, "{}", listing_json(&object))
        } else {
            writeln!(out, "{}", listing_line(&object))
        };
        match written {
            Ok(()) => true,
            Err(error) => {
                failed = Some(error);
                false
            }
        }
    })?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    if !args.json {
        writeln!(out, "({listed} objects)")?;
    }
    out.flush()?;
    Ok((json!({ "objects": listed }), format!("{listed} objects")))
}

fn listing_json(object: &ObjectListing) -> Value {
    json!({
        "namespace": object.class,
        "id": object.id,
        "name": object.name,
        "bytes": object.bytes,
        "last_active": object.last_active_ms.map(time_text),
        "last_active_ms": object.last_active_ms,
        "alarm": object.alarm_ms.map(time_text),
        "alarm_ms": object.alarm_ms,
    })
}

fn listing_line(object: &ObjectListing) -> String {
    format!(
        "{:<16} {:<64} {:<24} {:>10} {:<20} {}",
        object.class,
        object.id,
        object.name.as_deref().unwrap_or("-"),
        object.bytes,
        object.last_active_ms.map_or("-".into(), time_text),
        object.alarm_ms.map_or("-".into(), time_text),
    )
}

/// A time in milliseconds since the Unix epoch, as RFC 3339 (UTC, seconds).
pub(crate) fn time_text(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `durable sql`.
pub(crate) fn sql(args: &SqlArgs) -> anyhow::Result<(Value, String)> {
    if args.write {
        let answer = perform(&args.target, Write::Sql(args.query.clone()))?;
        let result = QueryResult {
            columns: answer["columns"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| c.as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            rows: answer["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| {
                            row.as_array()
                                .map(|row| row.iter().map(json_value).collect())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let written = answer["rows_written"].as_u64().unwrap_or(0);
        let written = format!(
            "({written} row{} written)",
            if written == 1 { "" } else { "s" }
        );
        let text = if result.columns.is_empty() {
            written
        } else {
            format!("{}\n{written}", table(&result))
        };
        return Ok((answer, text));
    }
    let target = resolve(&args.target)?;
    let reader = target.reader()?;
    let result = reader.query(&args.query, args.limit).map_err(|error| {
        let text = error.to_string();
        if text.contains("readonly") || text.contains("read-only") {
            anyhow!(
                "the statement writes: add --write to run it inside the object (through the running node's admin API)"
            )
        } else {
            anyhow!("{text}")
        }
    })?;
    let document = json!({
        "object": target_json(&target),
        "columns": result.columns,
        "rows": result
            .rows
            .iter()
            .map(|row| row.iter().map(durable_storage::sql_value_json).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    });
    Ok((document, table(&result)))
}

fn target_json(target: &Target) -> Value {
    json!({ "namespace": target.class, "id": target.id, "name": target.name })
}

fn value_text(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(n) => n.to_string(),
        SqlValue::Real(x) => x.to_string(),
        SqlValue::Text(text) => text.clone(),
        SqlValue::Blob(bytes) => format!("x'{}'", crate::hex(bytes)),
    }
}

/// Rows as an aligned text table, with a count below.
fn table(result: &QueryResult) -> String {
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| row.iter().map(value_text).collect())
        .collect();
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        row.iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut out = Vec::new();
    out.push(line(&result.columns));
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for row in &cells {
        out.push(line(row));
    }
    let rows = cells.len();
    out.push(format!("({rows} row{})", if rows == 1 { "" } else { "s" }));
    out.join("\n")
}

/// A SQL value from its JSON form (blobs as `{"blob": "<hex>"}`), as exports and the
/// admin API write it; anything else as its JSON text.
pub(crate) fn json_value(value: &Value) -> SqlValue {
    durable_storage::sql_value_from_json(value).unwrap_or_else(|| SqlValue::Text(value.to_string()))
}

/// Runs `write` inside the object `target` names (through the running node, or by opening
/// the folder when none runs).
fn perform(target: &ObjectArgs, write: Write) -> anyhow::Result<Value> {
    let layout = crate::data_folder(&target.data)?;
    Writer::of(&layout)?.perform(&target.namespace, &target.object, write)
}

/// `durable kv get|list|put|delete`.
pub(crate) fn kv(command: &KvCommand) -> anyhow::Result<(Value, String)> {
    match command {
        KvCommand::Put(args) => {
            let value: Value = serde_json::from_str(&args.value).map_err(|e| {
                anyhow!("the value is not JSON ({e}): quote text as JSON, for example '\"hello\"'")
            })?;
            let answer = perform(&args.target, Write::KvPut(args.key.clone(), value))?;
            Ok((answer, format!("stored {:?}", args.key)))
        }
        KvCommand::Delete(args) => {
            let answer = perform(&args.target, Write::KvDelete(args.key.clone()))?;
            let text = if answer["deleted"] == true {
                format!("deleted {:?}", args.key)
            } else {
                format!("no entry {:?}", args.key)
            };
            Ok((answer, text))
        }
        KvCommand::Get(args) => {
            let target = resolve(&args.target)?;
            let value = target
                .reader()?
                .kv_get(&args.key)?
                .map(|v| durable_storage::display_value(&v));
            let text = match &value {
                Some(value) => value.to_string(),
                None => format!("no entry {:?} in {}", args.key, target.describe()),
            };
            Ok((
                json!({ "object": target_json(&target), "key": args.key, "value": value }),
                text,
            ))
        }
        KvCommand::List(args) => {
            let target = resolve(&args.target)?;
            let entries =
                target
                    .reader()?
                    .kv_list(&args.prefix, args.start_after.as_deref(), args.limit)?;
            let decoded: Vec<(String, Value)> = entries
                .into_iter()
                .map(|(key, bytes)| (key, durable_storage::display_value(&bytes)))
                .collect();
            let mut text: Vec<String> = decoded
                .iter()
                .map(|(key, value)| format!("{key}\t{value}"))
                .collect();
            text.push(format!("({} entries)", decoded.len()));
            Ok((
                json!({
                    "object": target_json(&target),
                    "entries": decoded
                        .iter()
                        .map(|(key, value)| json!({ "key": key, "value": value }))
                        .collect::<Vec<_>>(),
                }),
                text.join("\n"),
            ))
        }
    }
}

/// An alarm time given as RFC 3339 text or milliseconds since the Unix epoch.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        anyhow!("{text:?} is not a time: give RFC 3339 (2026-12-03T10:00:00Z) or milliseconds since the Unix epoch")
    })?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("{text:?} is before 1970"))?
        .as_millis();
    Ok(i64::try_from(ms)?)
}

/// `durable alarm get|set|delete`.
pub(crate) fn alarm(command: &AlarmCommand) -> anyhow::Result<(Value, String)> {
    match command {
        AlarmCommand::Set(args) => {
            let ms = parse_time(&args.at)?;
            let answer = perform(&args.target, Write::AlarmSet(ms))?;
            Ok((answer, format!("alarm set for {} ({ms})", time_text(ms))))
        }
        AlarmCommand::Delete(args) => {
            let answer = perform(&args.target, Write::AlarmDelete)?;
            Ok((answer, "alarm deleted".to_owned()))
        }
        AlarmCommand::Get(args) => {
            let target = resolve(&args.target)?;
            let alarm = match ObjectReader::open(&target.db)? {
                Some(reader) => reader.alarm()?,
                None => None,
            };
            let text = match alarm {
                Some(ms) => format!("{} ({ms})", time_text(ms)),
                None => format!("{} has no alarm", target.describe()),
            };
            Ok((
                json!({
                    "object": target_json(&target),
                    "alarm": alarm.map(time_text),
                    "alarm_ms": alarm,
                }),
                text,
            ))
        }
    }
}
