//! `durable`, the operator's tool. Commands so far:
//!
//! ```text
//! durable objects list --data DIR [--namespace NS] [--prefix P] [--json]
//! durable sql --data DIR NS OBJECT "QUERY" [--write] [--limit N] [--json]
//! durable kv get|delete --data DIR NS OBJECT KEY [--json]
//! durable kv list --data DIR NS OBJECT [--prefix P] [--start-after KEY] [--limit N] [--json]
//! durable kv put --data DIR NS OBJECT KEY JSON_VALUE [--json]
//! durable alarm get|delete --data DIR NS OBJECT [--json]
//! durable alarm set --data DIR NS OBJECT RFC3339_TIME_OR_MS [--json]
//! durable export --data DIR --to PATH [--namespace NS] [--object NAME_OR_ID] [--json]
//! durable import --data DIR --from PATH [--json]
//! durable log verify --data DIR [--postgres URL] [--json]
//! durable backup --data DIR --to PATH [--json]
//! durable restore --data DIR (--from PATH | --from-postgres URL) [--namespace NS]
//!                 [--object NAME_OR_ID] [--at RFC3339_TIME_OR_BOOKMARK] [--json]
//! ```
//!
//! The inspection commands (`objects`, `sql`, `kv`, `alarm`) are in `inspect`, `export` and
//! `import` in `export`; `backup` and
//! `restore` are in their modules; each prints one line (or, with `--json`, one
//! JSON object) and exits 0, or says what is wrong on standard error and exits 2.
//!
//! `log verify` reads every record of the node's commit log (the local archive in
//! `DIR/log`, and the log in PostgreSQL when `--postgres` is given) and checks every object's
//! chain: no gap, no fork, no altered record. It changes nothing, so it may run beside a
//! running node. Exit status: 0 when every chain is whole, 1 when a log is damaged or broken,
//! 2 when the command cannot run (bad arguments, a folder that is not a data folder, a
//! database it cannot reach).
#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool speaks to its terminal.

mod admin_client;
mod backup;
mod export;
mod inspect;
mod local_node;
mod progress;
mod restore;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use durable_storage::DataLayout;

use clap::{Args, Parser, Subcommand};
use durable_log::{CommitLog, LogError, PostgresLog, ScanReport, VerifyReport};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "durable",
    version,
    about = "Operate on a durable-objects node's data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The objects of a data folder.
    #[command(subcommand)]
    Objects(inspect::ObjectsCommand),
    /// Run a read-only SQL query in one object's database.
    Sql(inspect::SqlArgs),
    /// One object's key-value entries.
    #[command(subcommand)]
    Kv(inspect::KvCommand),
    /// One object's alarm.
    #[command(subcommand)]
    Alarm(inspect::AlarmCommand),
    /// Write objects (SQL schema and rows, KV, alarm) to a JSON-lines file.
    Export(export::ExportArgs),
    /// Write an export's objects into the running node's objects.
    Import(export::ImportArgs),
    /// The commit log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Copy a node's history (and its namespace keys) into a new folder, while it runs.
    Backup(backup::BackupArgs),
    /// Bring objects back from a backup or from PostgreSQL, at their latest state or at a
    /// time or bookmark (the node must be stopped).
    Restore(restore::RestoreArgs),
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Read every record back and check every object's chain (changes nothing).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The node's data folder.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Also verify the log in this PostgreSQL database (postgres://user@host:port/db).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// How a check ended: whole, broken (exit 1), or not run (exit 2).
enum Outcome {
    Whole(Value, String),
    Broken(Value, String),
    CannotRun(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Objects(inspect::ObjectsCommand::List(args)) => match inspect::list(&args) {
            // The listing was printed as it streamed.
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => report(args.json(), Err(error)),
        },
        Command::Sql(args) => report(args.json(), inspect::sql(&args)),
        Command::Kv(command) => report(command.json(), inspect::kv(&command)),
        Command::Alarm(command) => report(command.json(), inspect::alarm(&command)),
        Command::Export(args) => report(args.json(), export::export(&args)),
        Command::Import(args) => report(args.json(), export::import(&args)),
        Command::Log(LogCommand::Verify(args)) => verify(&args),
        Command::Backup(args) => report(args.json(), backup::backup(&args)),
        Command::Restore(args) => report(args.json(), restore::restore(&args)),
    }
}

/// Prints a command's report (or its error) and picks the exit status: 0, or 2.
fn report(as_json: bool, result: anyhow::Result<(Value, String)>) -> ExitCode {
    match result {
        Ok((value, text)) => {
            if as_json {
                println!("{}", json!({"ok": true, "report": value}));
            } else {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            let text = format!("{error:#}");
            if as_json {
                println!("{}", json!({"ok": false, "error": text}));
            }
            eprintln!("durable: {text}");
            ExitCode::from(2)
        }
    }
}

/// The layout of `dir`, if it is a node's data folder.
fn data_folder(dir: &Path) -> anyhow::Result<DataLayout> {
    if !dir.join("namespaces").is_dir() {
        bail!(
            "{} is not a data folder (it has no namespaces/ folder): pass the folder a node was started with",
            dir.display()
        );
    }
    Ok(DataLayout::new(dir))
}

/// The namespace keys of a data folder, by class.
fn local_keys(layout: &DataLayout) -> anyhow::Result<Vec<(String, String)>> {
    let dir = layout.namespaces_dir();
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let (Some(class), Some("key")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let key =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        keys.push((class.to_owned(), key.trim().to_owned()));
    }
    keys.sort();
    Ok(keys)
}

/// A 64-hex-digit id's bytes.
fn parse_id(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// Takes the data folder's lock, as a node does (`None`: a running node holds it).
fn try_hold(layout: &DataLayout) -> anyhow::Result<Option<std::fs::File>> {
    let path = layout.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("lock {}", path.display()))
        }
    }
}

/// True if a running node holds the data folder.
fn node_holds(layout: &DataLayout) -> anyhow::Result<bool> {
    Ok(try_hold(layout)?.is_none())
}

/// Bytes as lowercase hex digits.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    #[allow(clippy::disallowed_methods)] // The operator's tool stamps records with real time.
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn verify(args: &VerifyArgs) -> ExitCode {
    if !args.data.join("namespaces").is_dir() {
        return finish(
            args.json,
            vec![(
                "local",
                Outcome::CannotRun(format!(
                    "{} is not a data folder (it has no namespaces/ folder): pass the folder a node was started with",
                    args.data.display()
                )),
            )],
        );
    }
    let mut outcomes = vec![("local", verify_local(&args.data.join("log")))];
    if let Some(url) = &args.postgres {
        outcomes.push(("postgres", verify_postgres(url)));
    }
    finish(args.json, outcomes)
}

fn verify_local(dir: &Path) -> Outcome {
    if !dir.join("segments").is_dir() {
        return Outcome::Whole(
            json!({ "objects": 0, "records": 0, "bytes": 0, "archive": false }),
            format!(
                "local archive: none in {} (the node has written no commit log)",
                dir.display()
            ),
        );
    }
    match durable_log::scan(dir) {
        Ok(report) => {
            let ScanReport {
                segments,
                objects,
                records,
                bytes,
                torn_tail,
                snapshots,
            } = report;
            let mut text = format!(
                "local archive: {objects} objects, {records} records, {snapshots} snapshots, {bytes} bytes in {segments} segments: every chain whole"
            );
            if let Some((segment, offset)) = torn_tail {
                text.push_str(&format!(
                    " (segment {segment} ends in a record cut short at byte {offset}: a crash during an append, never acknowledged; the node cuts it when it opens the archive)"
                ));
            }
            Outcome::Whole(
                json!({
                    "archive": true,
                    "segments": segments,
                    "objects": objects,
                    "records": records,
                    "bytes": bytes,
                    "snapshots": snapshots,
                    "torn_tail": torn_tail.map(|(segment, offset)| json!({"segment": segment, "offset": offset})),
                }),
                text,
            )
        }
        Err(
            error @ (durable_log::ArchiveError::Damaged { .. }
            | durable_log::ArchiveError::Chain { .. }),
        ) => Outcome::Broken(
            json!({ "error": error.to_string() }),
            format!("local archive: {error}"),
        ),
        Err(error) => Outcome::CannotRun(format!("local archive: {error}")),
    }
}

fn verify_postgres(url: &str) -> Outcome {
    let log = match PostgresLog::open_existing(url) {
        Ok(log) => log,
        Err(error) => return Outcome::CannotRun(format!("postgres: {error}")),
    };
    match log.verify() {
        Ok(VerifyReport {
            objects,
            records,
            bytes,
            snapshots,
        }) => Outcome::Whole(
            json!({ "objects": objects, "records": records, "snapshots": snapshots, "bytes": bytes }),
            format!(
                "postgres: {objects} objects, {records} records, {snapshots} snapshots, {bytes} bytes: every chain whole"
            ),
        ),
        Err(error @ (LogError::Chain { .. } | LogError::Damaged(_))) => Outcome::Broken(
            json!({ "error": error.to_string() }),
            format!("postgres: {error}"),
        ),
        Err(error) => Outcome::CannotRun(format!("postgres: {error}")),
    }
}

/// Prints the outcomes (as text lines or one JSON object) and picks the exit status.
fn finish(as_json: bool, outcomes: Vec<(&str, Outcome)>) -> ExitCode {
    let mut status = 0u8;
    let mut document = serde_json::Map::new();
    for (name, outcome) in outcomes {
        let (value, text, code, to_stderr) = match outcome {
            Outcome::Whole(value, text) => (json!({"ok": true, "report": value}), text, 0, false),
            Outcome::Broken(value, text) => (json!({"ok": false, "report": value}), text, 1, true),
            Outcome::CannotRun(text) => (json!({"ok": false, "error": text}), text, 2, true),
        };
        status = status.max(code);
        document.insert(name.to_owned(), value);
        if !as_json {
            if to_stderr {
                eprintln!("durable: {text}");
            } else {
                println!("{text}");
            }
        }
    }
    if as_json {
        document.insert("ok".into(), json!(status == 0));
        println!("{}", Value::Object(document));
    }
    ExitCode::from(status)
}
