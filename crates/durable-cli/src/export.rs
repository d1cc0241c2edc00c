//! `durable export` and `durable import`: objects as JSON lines, to read, keep or move.
//!
//! ```text
//! durable export --data DIR --to PATH [--namespace NS] [--object NAME_OR_ID] [--json]
//! durable import --data DIR --from PATH [--json]
//! ```
//!
//! An export is read from the files (beside a running node, like every read). Each line is
//! one JSON object:
//!
//! ```text
//! {"durable_export": 1, "exported_at_ms": ...}
//! {"object": {"namespace": "Room", "id": "<64 hex>", "name": "lobby"}}
//! {"schema": "CREATE TABLE messages (...)"}                 (each table and index, in order)
//! {"row": {"table": "messages", "values": [1, "hello"]}}    (blobs as {"blob": "<hex>"})
//! {"kv": {"key": "topic", "value": {...}, "raw": "<hex>"}}  (decoded, and as stored)
//! {"alarm_ms": 1767225600000}
//! {"end": {"objects": 1, "lines": 7}}
//! ```
//!
//! An import reads the whole file first and refuses one that is cut short or damaged (no
//! `end` line, counts that disagree, a line that is not one of these) before writing
//! anything; then each object's content is written inside the object, as one transaction
//! (through the running node's admin API, or with the folder opened by the tool when no node
//! runs: `admin_client::Writer`). An object is
//! found by its name when it has one (so an export moves between nodes), by its id
//! otherwise.

use std::io::{BufRead, BufWriter, Write as _};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use durable_storage::{ListFilter, ObjectReader};
use serde_json::{Value, json};

use crate::admin_client::{Write, Writer};
use crate::inspect;
use crate::progress::Progress;

/// The format's version, in the first line.
const VERSION: u64 = 1;

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The node's data folder.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The file to write (it must not exist).
    #[arg(long, value_name = "PATH")]
    to: PathBuf,
    /// Only this namespace (its binding or its class).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only this object (its name or id; needs --namespace).
    #[arg(long, value_name = "NAME_OR_ID")]
    object: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The node's data folder (running node or not: see `durable sql --write`).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The file `durable export` wrote.
    #[arg(long, value_name = "PATH")]
    from: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl ExportArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

impl ImportArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

/// `durable export`.
pub(crate) fn export(args: &ExportArgs) -> anyhow::Result<(Value, String)> {
    let layout = crate::data_folder(&args.data)?;
    let mut targets = Vec::new();
    match (&args.namespace, &args.object) {
        (Some(ns), Some(object)) => targets.push(inspect::resolve_in(&layout, ns, object)?),
        (None, Some(_)) => bail!(
            "--object needs --namespace: an object's name is only unique within its namespace"
        ),
        (namespace, None) => {
            let filter = ListFilter {
                class: namespace
                    .as_deref()
                    .map(|ns| inspect::resolve_namespace(&layout, ns))
                    .transpose()?,
                prefix: None,
            };
            let mut found = Vec::new();
            durable_storage::list_objects(&layout, &filter, |object| {
                found.push((object.class, object.id));
                true
            })?;
            for (class, id) in found {
                targets.push(inspect::resolve_in(&layout, &class, &id)?);
            }
        }
    }
    if args.to.exists() {
        bail!(
            "{} already exists: an export never overwrites a file",
            args.to.display()
        );
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.to)
        .with_context(|| format!("create {}", args.to.display()))?;
    let mut out = BufWriter::new(file);
    let mut lines = 0u64;
    let mut write = |out: &mut BufWriter<std::fs::File>, value: Value| -> anyhow::Result<()> {
        writeln!(out, "{value}")?;
        lines += 1;
        Ok(())
    };
    write(
        &mut out,
        json!({ "durable_export": VERSION, "exported_at_ms": crate::now_ms() }),
    )?;
    let progress = Progress::items(!args.json, "objects", targets.len() as u64);
    let (mut objects, mut rows, mut entries) = (0u64, 0u64, 0u64);
    for target in &targets {
        let Some(reader) = ObjectReader::open(&target.db)? else {
            // An object that never stored anything has nothing to export.
            progress.add(1);
            continue;
        };
        let counts = durable_storage::export_object(
            &reader,
            json!({ "namespace": target.class, "id": target.id, "name": target.name }),
            |line| writeln!(out, "{line}"),
        )?;
        lines += counts.lines;
        rows += counts.rows;
        entries += counts.kv_entries;
        objects += 1;
        progress.add(1);
    }
    progress.finish();
    let total = lines + 1;
    writeln!(
        out,
        "{}",
        json!({ "end": { "objects": objects, "lines": total } })
    )?;
    out.flush()?;
    out.get_ref().sync_all()?;
    let report = json!({
        "objects": objects,
        "rows": rows,
        "kv_entries": entries,
        "lines": total,
        "to": args.to.display().to_string(),
    });
    let text = format!(
        "exported {objects} objects ({rows} rows, {entries} KV entries) to {}",
        args.to.display()
    );
    Ok((report, text))
}

/// One object's content as the admin API takes it.
struct Imported {
    namespace: String,
    /// Its name when it has one (so it lands on the object of that name, whatever the
    /// node's keys), its id otherwise (the same node's object).
    object: String,
    body: Value,
}

/// Reads and checks a whole export: every line well formed, the end line there and its
/// counts right. Nothing is written until this has passed.
fn read_export(path: &PathBuf) -> anyhow::Result<Vec<Imported>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut objects: Vec<Imported> = Vec::new();
    let mut lines = 0u64;
    let mut end = None;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("read line {number}"))?;
        lines += 1;
        let cut = || {
            anyhow!(
                "{} is not a whole export: line {number} is damaged or cut short; nothing was imported",
                path.display()
            )
        };
        let value: Value = serde_json::from_str(&line).map_err(|_| cut())?;
        if end.is_some() {
            bail!(
                "{} has lines after its end line (line {number}); nothing was imported",
                path.display()
            );
        }
        if number == 1 {
            if value["durable_export"].as_u64() != Some(VERSION) {
                bail!(
                    "{} is not an export of this tool (its first line is not {{\"durable_export\": {VERSION}, ...}}); nothing was imported",
                    path.display()
                );
            }
            continue;
        }
        let current = objects.last_mut();
        if let Some(object) = value.get("object") {
            let namespace = object["namespace"].as_str().ok_or_else(cut)?.to_owned();
            let id = object["id"].as_str().ok_or_else(cut)?;
            let name = object["name"].as_str().unwrap_or(id).to_owned();
            objects.push(Imported {
                namespace,
                object: name,
                body: json!({ "schema": [], "rows": [], "kv": [] }),
            });
        } else if let Some(done) = value.get("end") {
            end = Some(done.clone());
        } else {
            let object = current.ok_or_else(|| {
                anyhow!(
                    "{}: line {number} comes before any object; nothing was imported",
                    path.display()
                )
            })?;
            let body = &mut object.body;
            if let Some(statement) = value.get("schema") {
                body["schema"]
                    .as_array_mut()
                    .ok_or_else(cut)?
                    .push(json!(statement.as_str().ok_or_else(cut)?));
            } else if let Some(row) = value.get("row") {
                let table = row["table"].as_str().ok_or_else(cut)?;
                let values = row["values"].clone();
                if !values.is_array() {
                    return Err(cut());
                }
                let tables = body["rows"].as_array_mut().ok_or_else(cut)?;
                match tables.last_mut() {
                    Some(last) if last["table"] == table => {
                        last["rows"].as_array_mut().ok_or_else(cut)?.push(values);
                    }
                    _ => tables.push(json!({ "table": table, "rows": [values] })),
                }
            } else if let Some(entry) = value.get("kv") {
                let key = entry["key"].as_str().ok_or_else(cut)?;
                let raw = entry["raw"].as_str().ok_or_else(cut)?;
                body["kv"]
                    .as_array_mut()
                    .ok_or_else(cut)?
                    .push(json!({ "key": key, "raw": raw }));
            } else if let Some(alarm) = value.get("alarm_ms") {
                body["alarm_ms"] = json!(alarm.as_i64().ok_or_else(cut)?);
            } else {
                return Err(cut());
            }
        }
    }
    let Some(end) = end else {
        bail!(
            "{} is cut short: it has no end line (an export that did not finish, or a partial copy); nothing was imported",
            path.display()
        );
    };
    if end["objects"].as_u64() != Some(objects.len() as u64) || end["lines"].as_u64() != Some(lines)
    {
        bail!(
            "{} is damaged: its end line counts {} objects in {} lines, the file holds {} in {lines}; nothing was imported",
            path.display(),
            end["objects"],
            end["lines"],
            objects.len()
        );
    }
    Ok(objects)
}

/// An object's content from its import body (what `read_export` gathered).
pub(crate) fn content_of(body: &Value) -> anyhow::Result<durable_runtime::ObjectContent> {
    let mut content = durable_runtime::ObjectContent {
        alarm_ms: body["alarm_ms"].as_i64(),
        ..Default::default()
    };
    for statement in body["schema"].as_array().into_iter().flatten() {
        content
            .schema
            .push(statement.as_str().unwrap_or_default().to_owned());
    }
    for table in body["rows"].as_array().into_iter().flatten() {
        let rows = table["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                row.as_array()
                    .into_iter()
                    .flatten()
                    .map(inspect::json_value)
                    .collect()
            })
            .collect();
        content
            .rows
            .push((table["table"].as_str().unwrap_or_default().to_owned(), rows));
    }
    for entry in body["kv"].as_array().into_iter().flatten() {
        let raw = entry["raw"].as_str().unwrap_or_default();
        let bytes = durable_storage::bytes_of_hex(raw)
            .ok_or_else(|| anyhow!("a KV value is not hex: {raw:?}"))?;
        content
            .kv
            .push((entry["key"].as_str().unwrap_or_default().to_owned(), bytes));
    }
    Ok(content)
}

/// `durable import`.
pub(crate) fn import(args: &ImportArgs) -> anyhow::Result<(Value, String)> {
    let layout = crate::data_folder(&args.data)?;
    let objects = read_export(&args.from)?;
    let writer = Writer::of(&layout)?;
    let progress = Progress::items(!args.json, "objects", objects.len() as u64);
    let mut imported = Vec::new();
    for object in &objects {
        let answer = writer
            .perform(
                &object.namespace,
                &object.object,
                Write::Import(object.body.clone()),
            )
            .with_context(|| {
                format!(
                    "import {} {:?} ({} of {} objects were imported before it)",
                    object.namespace,
                    object.object,
                    imported.len(),
                    objects.len()
                )
            })?;
        imported.push(answer);
        progress.add(1);
    }
    progress.finish();
    let text = format!(
        "imported {} objects from {}",
        imported.len(),
        args.from.display()
    );
    Ok((json!({ "objects": imported }), text))
}
