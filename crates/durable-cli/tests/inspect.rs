//! `durable objects list`, `durable sql`, `durable kv` and `durable alarm`, run as an
//! operator runs them, on a data folder a real runtime is using: what they show, and the
//! mistakes they refuse with a clear error.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

mod support;

use std::path::Path;
use std::sync::Arc;

use durable_objects::prelude::*;
use durable_objects::{ManualClock, Runtime};
use serde::{Deserialize, Serialize};
use support::{durable, ok, refused, text};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Topic {
    title: String,
    pinned: bool,
}

#[durable_object]
pub struct Room {
    state: State,
}

impl DurableObject for Room {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn alarm(&self, _info: AlarmInfo) -> Result<()> {
        Ok(())
    }
}

#[rpc]
impl Room {
    pub async fn post(&self, author: String, text: String) -> Result<()> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, author TEXT, text TEXT)",
            (),
        )?;
        sql.exec(
            "INSERT INTO messages (author, text) VALUES (?1, ?2)",
            (author, text),
        )?;
        Ok(())
    }

    pub async fn set_topic(&self, title: String) -> Result<()> {
        let kv = self.state.storage().kv();
        kv.put(
            "topic",
            &Topic {
                title,
                pinned: true,
            },
        )?;
        kv.put("visits", &3)
    }

    pub async fn remind_at(&self, ms: i64) -> Result<()> {
        self.state.storage().set_alarm(ms).await
    }
}

const START: i64 = 1_800_000_000_000;

fn start(data: &Path) -> Runtime {
    Runtime::builder()
        .data_dir(data)
        .bind::<Room>("ROOMS")
        .clock(Arc::new(ManualClock::new(START)) as Arc<dyn durable_objects::Clock>)
        .build()
        .unwrap()
}

fn rooms(runtime: &Runtime) -> Namespace<Room> {
    runtime.env().namespace::<Room>("ROOMS").unwrap()
}

/// `objects list ... --json`: one JSON object per line.
fn listed(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["objects", "list"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = durable(&all);
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `objects list ARGS`, once `named` of the objects listed show their names.
fn until_named(args: &[&str], named: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let all = listed(args);
        if all.iter().filter(|o| o["name"].is_string()).count() >= named {
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "names never reached the catalog: {all:?}"
        );
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn every_command_reads_a_folder_a_node_is_using() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let runtime = start(&data);
    let ns = rooms(&runtime);
    let one = ns.get_by_name("room-1");
    one.post("ada".into(), "hello".into()).await.unwrap();
    one.post("bob".into(), "hi ada".into()).await.unwrap();
    one.set_topic("launch".into()).await.unwrap();
    one.remind_at(START + 60_000).await.unwrap();
    ns.get_by_name("room-2")
        .post("cy".into(), "anyone?".into())
        .await
        .unwrap();
    // An object made from a random id has no name.
    let unique = ns.new_unique_id();
    ns.get(&unique)
        .post("dee".into(), "first".into())
        .await
        .unwrap();
    let id1 = ns.id_from_name("room-1").to_string();

    // Listing: every object, with its name where it has one, while the node runs (the
    // catalog takes names a moment after the objects start: wait for them).
    let all = until_named(&["--data", d], 2);
    assert_eq!(all.len(), 3, "{all:?}");
    let room1 = all.iter().find(|o| o["id"] == id1.as_str()).unwrap();
    assert_eq!(room1["namespace"], "Room");
    assert_eq!(room1["name"], "room-1");
    assert!(room1["bytes"].as_u64().unwrap() > 4096, "{room1}");
    assert_eq!(room1["alarm_ms"], START + 60_000);
    assert!(room1["last_active_ms"].as_i64().is_some(), "{room1}");
    let nameless = all
        .iter()
        .find(|o| o["id"] == unique.to_string().as_str())
        .unwrap();
    assert!(nameless["name"].is_null(), "{nameless}");
    // Filters: by binding or class, by name or id prefix.
    assert_eq!(listed(&["--data", d, "--namespace", "ROOMS"]).len(), 3);
    assert_eq!(listed(&["--data", d, "--namespace", "Room"]).len(), 3);
    let by_name = listed(&["--data", d, "--prefix", "room-"]);
    assert_eq!(by_name.len(), 2);
    assert_eq!(listed(&["--data", d, "--prefix", &id1[..10]]).len(), 1);
    // As text: a header, a line per object, a count.
    let output = durable(&["objects", "list", "--data", d]);
    let shown = text(&output);
    assert!(shown.starts_with("NAMESPACE"), "{shown}");
    assert!(shown.contains("room-2"), "{shown}");
    assert!(shown.trim_end().ends_with("(3 objects)"), "{shown}");

    // SQL, by name or by id; as JSON or as a table.
    let query = "SELECT author, text FROM messages ORDER BY id";
    let report = ok(&["sql", "--data", d, "ROOMS", "room-1", query]);
    assert_eq!(report["columns"], serde_json::json!(["author", "text"]));
    assert_eq!(
        report["rows"],
        serde_json::json!([["ada", "hello"], ["bob", "hi ada"]])
    );
    assert_eq!(report["object"]["name"], "room-1");
    let by_id = ok(&["sql", "--data", d, "Room", &id1, query]);
    assert_eq!(by_id["rows"], report["rows"]);
    assert_eq!(by_id["object"]["name"], "room-1", "the catalog names it");
    let table = text(&durable(&["sql", "--data", d, "Room", "room-1", query]));
    assert!(table.contains("author | text"), "{table}");
    assert!(table.contains("bob    | hi ada"), "{table}");
    assert!(table.contains("(2 rows)"), "{table}");
    let limited = ok(&["sql", "--data", d, "Room", "room-1", query, "--limit", "1"]);
    assert_eq!(limited["rows"].as_array().unwrap().len(), 1);

    // KV, decoded; the alarm.
    let topic = ok(&["kv", "get", "--data", d, "ROOMS", "room-1", "topic"]);
    assert_eq!(
        topic["value"],
        serde_json::json!({"title": "launch", "pinned": true})
    );
    let missing = ok(&["kv", "get", "--data", d, "ROOMS", "room-1", "nope"]);
    assert!(missing["value"].is_null());
    let entries = ok(&["kv", "list", "--data", d, "ROOMS", "room-1"]);
    let keys: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["topic", "visits"]);
    let after = ok(&[
        "kv",
        "list",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "--start-after",
        "topic",
    ]);
    assert_eq!(after["entries"][0]["value"], 3);
    let prefixed = ok(&[
        "kv", "list", "--data", d, "ROOMS", "room-1", "--prefix", "vi",
    ]);
    assert_eq!(prefixed["entries"].as_array().unwrap().len(), 1);
    let alarm = ok(&["alarm", "get", "--data", d, "ROOMS", "room-1"]);
    assert_eq!(alarm["alarm_ms"], START + 60_000);
    assert!(ok(&["alarm", "get", "--data", d, "ROOMS", "room-2"])["alarm"].is_null());

    // Mistakes: clear errors, nothing changed.
    refused(
        &[
            "sql",
            "--data",
            d,
            "ROOMS",
            "room-1",
            "DELETE FROM messages",
        ],
        "the statement writes: add --write",
    );
    refused(
        &["sql", "--data", d, "CHATS", "room-1", query],
        "unknown namespace \"CHATS\": the data folder has Room (binding ROOMS)",
    );
    refused(
        &["sql", "--data", d, "ROOMS", "room-1", "SELEC 1"],
        "syntax error",
    );
    let foreign = "ab".repeat(32);
    refused(
        &["sql", "--data", d, "ROOMS", &foreign, query],
        "is not an object of namespace Room",
    );
    refused(
        &["sql", "--data", d, "ROOMS", "room-9", query],
        "has no data: it has never stored anything",
    );
    refused(
        &["objects", "list", "--data", dir.path().to_str().unwrap()],
        "is not a data folder",
    );
    refused(
        &["objects", "list", "--data", d, "--namespace", "Nope"],
        "unknown namespace",
    );
    let report = ok(&[
        "sql",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "SELECT count(*) AS n FROM messages",
    ]);
    assert_eq!(report["rows"], serde_json::json!([[2]]));
    runtime.shutdown();

    // After a restart the names are still known.
    let runtime = start(&data);
    let listed_again = listed(&["--data", d, "--prefix", "room-2"]);
    assert_eq!(listed_again.len(), 1);
    assert_eq!(listed_again[0]["name"], "room-2");
    runtime.shutdown();
}

const CONFIG: &str = r#"{
    "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }]
}"#;

async fn serve(data: &Path, admin: bool) -> durable_server::testing::RunningServer {
    let config =
        durable_server::config::Config::parse(CONFIG, durable_server::config::Format::Jsonc)
            .unwrap();
    let mut builder = durable_server::Server::builder(config)
        .class::<Room>()
        .data_dir(data);
    if admin {
        builder = builder.admin_listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    durable_server::testing::start_server(builder)
        .await
        .unwrap()
}

/// `durable ARGS` run off the test's async threads (the server answers on them).
async fn durable_off_thread(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        durable(&args)
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_run_inside_the_objects_through_the_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();

    // No node running: writes say what to do, and change nothing.
    let server = serve(&data, false).await;
    let rooms = server.env().namespace::<Room>("ROOMS").unwrap();
    rooms
        .get_by_name("room-1")
        .post("ada".into(), "hello".into())
        .await
        .unwrap();
    // A node without its admin API.
    let output = durable_off_thread(strings(&[
        "kv", "put", "--data", d, "ROOMS", "room-1", "topic", "\"x\"",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("admin API off"), "{}", text(&output));
    server.stop().await.unwrap();

    // No node running: the tool opens the folder itself, and the write still runs inside the
    // object (its commit log, its alarm index); the node finds it when it starts again.
    let output = durable_off_thread(strings(&[
        "kv",
        "put",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "note",
        "\"written offline\"",
    ]))
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let output = durable_off_thread(strings(&[
        "alarm",
        "set",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "2030-01-01T00:00:00Z",
    ]))
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        ok(&["kv", "get", "--data", d, "ROOMS", "room-1", "note"])["value"],
        "written offline"
    );
    // A node that replicates to PostgreSQL is written only through the node.
    {
        let catalog = durable_storage::ObjectCatalog::open(&data.join("catalog.sqlite")).unwrap();
        catalog.put_setting("commit_log", "postgres").unwrap();
    }
    let output = durable_off_thread(strings(&[
        "kv", "put", "--data", d, "ROOMS", "room-1", "note", "\"x\"",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("PostgreSQL"), "{}", text(&output));

    let server = serve(&data, true).await;
    // What was written offline is there, alarm included.
    assert_eq!(
        ok(&["kv", "get", "--data", d, "ROOMS", "room-1", "note"])["value"],
        "written offline"
    );
    assert_eq!(
        ok(&["alarm", "get", "--data", d, "ROOMS", "room-1"])["alarm"],
        "2030-01-01T00:00:00Z"
    );
    let run = |args: &[&str]| {
        let mut all = strings(args);
        all.push("--json".into());
        durable_off_thread(all)
    };
    let output = run(&[
        "kv",
        "put",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "topic",
        r#"{"title": "launch", "pinned": true}"#,
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let got = ok(&["kv", "get", "--data", d, "ROOMS", "room-1", "topic"]);
    assert_eq!(got["value"]["title"], "launch");
    let output = run(&["kv", "delete", "--data", d, "ROOMS", "room-1", "topic"]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(ok(&["kv", "get", "--data", d, "ROOMS", "room-1", "topic"])["value"].is_null());
    let output = run(&[
        "alarm",
        "set",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "2027-01-01T00:00:00Z",
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        ok(&["alarm", "get", "--data", d, "ROOMS", "room-1"])["alarm"],
        "2027-01-01T00:00:00Z"
    );
    let output = run(&["alarm", "delete", "--data", d, "ROOMS", "room-1"]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(ok(&["alarm", "get", "--data", d, "ROOMS", "room-1"])["alarm"].is_null());
    let output = run(&[
        "sql",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "INSERT INTO messages (author, text) VALUES ('ops', 'maintenance at noon')",
        "--write",
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["report"]["rows_written"], 1);
    let rows = ok(&[
        "sql",
        "--data",
        d,
        "ROOMS",
        "room-1",
        "SELECT author FROM messages ORDER BY id",
    ]);
    assert_eq!(rows["rows"], serde_json::json!([["ada"], ["ops"]]));

    // Mistakes: clear errors.
    for (args, expected) in [
        (
            vec![
                "kv", "put", "--data", d, "ROOMS", "room-1", "topic", "not json",
            ],
            "is not JSON",
        ),
        (
            vec!["alarm", "set", "--data", d, "ROOMS", "room-1", "tomorrow"],
            "is not a time",
        ),
        (
            vec!["kv", "put", "--data", d, "CHATS", "room-1", "k", "1"],
            "unknown namespace",
        ),
        (
            vec!["sql", "--data", d, "ROOMS", "room-1", "SELEC 1", "--write"],
            "syntax error",
        ),
    ] {
        let output = durable_off_thread(strings(&args)).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_moves_objects_to_another_node_and_a_cut_short_file_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("from");
    let to = dir.path().join("to");
    let (f, t) = (from.to_str().unwrap(), to.to_str().unwrap());
    let file = dir.path().join("rooms.jsonl");
    let file_text = file.to_str().unwrap();

    let source = serve(&from, false).await;
    let rooms = source.env().namespace::<Room>("ROOMS").unwrap();
    let one = rooms.get_by_name("room-1");
    one.post("ada".into(), "hello".into()).await.unwrap();
    one.post("bob".into(), "a blob? no, text".into())
        .await
        .unwrap();
    one.set_topic("launch".into()).await.unwrap();
    one.remind_at(4_102_444_800_000).await.unwrap();
    rooms
        .get_by_name("room-2")
        .post("cy".into(), "anyone?".into())
        .await
        .unwrap();
    // Exported while the node runs (a read).
    let report = ok(&[
        "export",
        "--data",
        f,
        "--to",
        file_text,
        "--namespace",
        "ROOMS",
    ]);
    assert_eq!(report["objects"], 2, "{report}");
    assert_eq!(report["rows"], 3);
    assert_eq!(report["kv_entries"], 2);
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(
        exported
            .lines()
            .any(|l| l.contains("\"schema\"") && l.contains("CREATE TABLE"))
    );
    assert!(
        exported.lines().any(|l| l.contains("\"launch\"")),
        "KV decoded for people"
    );
    source.stop().await.unwrap();

    // Mistakes of export.
    refused(
        &[
            "export",
            "--data",
            f,
            "--to",
            file_text,
            "--namespace",
            "ROOMS",
        ],
        "never overwrites",
    );
    refused(
        &[
            "export",
            "--data",
            f,
            "--to",
            "/tmp/x.jsonl",
            "--object",
            "room-1",
        ],
        "--object needs --namespace",
    );

    // Into another node (its own keys: objects are found by name).
    let target = serve(&to, true).await;
    let t_rooms = target.env().namespace::<Room>("ROOMS").unwrap();
    t_rooms
        .get_by_name("room-3")
        .post("dee".into(), "already here".into())
        .await
        .unwrap();
    let import_args = |path: &str| strings(&["import", "--data", t, "--from", path, "--json"]);
    let output = durable_off_thread(import_args(file_text)).await;
    assert!(output.status.success(), "{}", text(&output));
    let rows = ok(&[
        "sql",
        "--data",
        t,
        "ROOMS",
        "room-1",
        "SELECT author, text FROM messages ORDER BY id",
    ]);
    assert_eq!(
        rows["rows"],
        serde_json::json!([["ada", "hello"], ["bob", "a blob? no, text"]])
    );
    let topic = ok(&["kv", "get", "--data", t, "ROOMS", "room-1", "topic"]);
    assert_eq!(
        topic["value"],
        serde_json::json!({"title": "launch", "pinned": true})
    );
    let alarm = ok(&["alarm", "get", "--data", t, "ROOMS", "room-1"]);
    assert_eq!(alarm["alarm_ms"], 4_102_444_800_000i64);
    assert_eq!(
        ok(&[
            "sql",
            "--data",
            t,
            "ROOMS",
            "room-2",
            "SELECT count(*) FROM messages"
        ])["rows"],
        serde_json::json!([[1]])
    );

    // A file cut short (a partial copy) or damaged: refused whole, nothing written.
    let count = |name: &str| {
        ok(&[
            "sql",
            "--data",
            t,
            "ROOMS",
            name,
            "SELECT count(*) FROM messages",
        ])["rows"][0][0]
            .as_i64()
            .unwrap()
    };
    let before = (count("room-1"), count("room-2"));
    let lines: Vec<&str> = exported.lines().collect();
    let cases = [
        (
            "cut.jsonl",
            lines[..lines.len() - 1].join("\n"),
            "cut short",
        ),
        (
            "torn.jsonl",
            format!(
                "{}\n{}",
                lines[..lines.len() - 1].join("\n"),
                &lines[lines.len() - 1][..5]
            ),
            "damaged or cut short",
        ),
        (
            "foreign.jsonl",
            "{\"hello\": 1}\n".to_owned(),
            "not an export",
        ),
        (
            "miscounted.jsonl",
            exported.replace("\"objects\":2", "\"objects\":3"),
            "is damaged",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let output = durable_off_thread(strings(&[
            "import",
            "--data",
            t,
            "--from",
            path.to_str().unwrap(),
        ]))
        .await;
        assert_eq!(output.status.code(), Some(2), "{name}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{name}: {}",
            text(&output)
        );
        assert!(text(&output).contains("nothing was imported"), "{name}");
    }
    assert_eq!((count("room-1"), count("room-2")), before);
    // Imported twice: the rows are there already; the object's import is undone whole.
    let output = durable_off_thread(import_args(file_text)).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("UNIQUE"), "{}", text(&output));
    assert_eq!((count("room-1"), count("room-2")), before);
    target.stop().await.unwrap();

    // Without a running node, the tool opens the folder and imports itself.
    let third = dir.path().join("third");
    serve(&third, false).await.stop().await.unwrap();
    let one_file = dir.path().join("one.jsonl");
    let (o, th) = (one_file.to_str().unwrap(), third.to_str().unwrap());
    ok(&[
        "export",
        "--data",
        f,
        "--to",
        o,
        "--namespace",
        "Room",
        "--object",
        "room-2",
    ]);
    let output = durable_off_thread(strings(&["import", "--data", th, "--from", o])).await;
    assert!(output.status.success(), "{}", text(&output));
    let rows = ok(&[
        "sql",
        "--data",
        th,
        "ROOMS",
        "room-2",
        "SELECT text FROM messages",
    ]);
    assert_eq!(rows["rows"], serde_json::json!([["anyone?"]]));
}
