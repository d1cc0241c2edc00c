//! `durable`, the operator's tool. Commands so far:
//!
//! ```text
//! durable log verify --data DIR [--postgres URL] [--json]
//! ```
//!
//! `log verify` reads every record of the node's commit log (the local archive in
//! `DIR/log`, and the log in PostgreSQL when `--postgres` is given) and checks every object's
//! chain: no gap, no fork, no altered record. It changes nothing, so it may run beside a
//! running node. Exit status: 0 when every chain is whole, 1 when a log is damaged or broken,
//! 2 when the command cannot run (bad arguments, a folder that is not a data folder, a
//! database it cannot reach).
#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool speaks to its terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// The commit log.
    #[command(subcommand)]
    Log(LogCommand),
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
        Command::Log(LogCommand::Verify(args)) => verify(&args),
    }
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
            } = report;
            let mut text = format!(
                "local archive: {objects} objects, {records} records, {bytes} bytes in {segments} segments: every chain whole"
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
        }) => Outcome::Whole(
            json!({ "objects": objects, "records": records, "bytes": bytes }),
            format!(
                "postgres: {objects} objects, {records} records, {bytes} bytes: every chain whole"
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
