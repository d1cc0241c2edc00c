//! The admin API on a real listener: off by default, 401 without the token (and nothing
//! touched), every route against a data folder the server is using, bad input answered with
//! a clear error, and the token kept over a restart, readable by its owner only.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use durable_objects::prelude::*;
use durable_server::Server;
use durable_server::config::{Config, Format};
use durable_server::testing::{RunningServer, start_server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    pub async fn post(&self, text: String) -> Result<()> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, text TEXT)",
            (),
        )?;
        sql.exec("INSERT INTO messages (text) VALUES (?1)", (text,))?;
        Ok(())
    }

    pub async fn topic(&self) -> Result<Option<String>> {
        self.state.storage().kv().get("topic")
    }

    pub async fn alarm_at(&self) -> Result<Option<i64>> {
        self.state.storage().get_alarm().await
    }
}

const CONFIG: &str = r#"{
    "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }]
}"#;

async fn start(data: &Path, admin: bool) -> RunningServer {
    let mut builder = Server::builder(Config::parse(CONFIG, Format::Jsonc).unwrap())
        .class::<Room>()
        .data_dir(data);
    if admin {
        builder = builder.admin_listen(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    start_server(builder).await.unwrap()
}

/// One HTTP/1.1 request (Connection: close): the status and the body (de-chunked).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

async fn json_of(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = request(addr, method, path, Some(token), body).await;
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn the_admin_api_answers_its_routes_and_refuses_requests_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Off by default: no listener, no address file.
    let server = start(&data, false).await;
    assert!(server.admin_addr().is_none());
    let rooms = server.env().namespace::<Room>("ROOMS").unwrap();
    rooms
        .get_by_name("lobby")
        .post("hello".into())
        .await
        .unwrap();
    rooms
        .get_by_name("lobby")
        .post("again".into())
        .await
        .unwrap();
    server.stop().await.unwrap();
    assert!(!data.join("admin.address").exists());

    let server = start(&data, true).await;
    let admin = server.admin_addr().unwrap();
    let token_file = data.join("admin.token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    assert_eq!(
        std::fs::read_to_string(data.join("admin.address"))
            .unwrap()
            .trim(),
        admin.to_string()
    );

    // Without the token, or with another: 401, and the write did not happen.
    let put = "/api/objects/ROOMS/lobby/kv/topic";
    for bad in [None, Some("0".repeat(64).as_str()), Some("short")] {
        let (status, body) = request(admin, "PUT", put, bad, Some(json!("hijacked"))).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("Bearer"), "{body}");
    }
    let (status, _) = request(admin, "GET", "/api/namespaces", None, None).await;
    assert_eq!(status, 401);
    let lobby = rooms_of(&server).get_by_name("lobby");
    assert_eq!(lobby.topic().await.unwrap(), None);

    // Reads.
    let (status, namespaces) = json_of(admin, "GET", "/api/namespaces", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        namespaces,
        json!([{"class": "Room", "bindings": ["ROOMS"]}])
    );
    let (status, listing) = request(
        admin,
        "GET",
        "/api/objects?namespace=ROOMS",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let objects: Vec<Value> = listing
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(objects.len(), 1, "{listing}");
    assert_eq!(objects[0]["namespace"], "Room");
    let (_, info) = json_of(admin, "GET", "/api/objects/ROOMS/lobby", &token, None).await;
    assert_eq!(info["tables"], json!(["messages"]));
    assert_eq!(info["object"]["name"], "lobby");
    let query = json!({"query": "SELECT text FROM messages ORDER BY id"});
    let (status, rows) = json_of(
        admin,
        "POST",
        "/api/objects/Room/lobby/sql",
        &token,
        Some(query.clone()),
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows["rows"], json!([["hello"], ["again"]]));

    // Writes run inside the object: the object sees them.
    let (status, _) = json_of(admin, "PUT", put, &token, Some(json!("launch"))).await;
    assert_eq!(status, 200);
    assert_eq!(lobby.topic().await.unwrap().as_deref(), Some("launch"));
    let (_, got) = json_of(admin, "GET", put, &token, None).await;
    assert_eq!(got["value"], "launch");
    let (_, listed) = json_of(admin, "GET", "/api/objects/ROOMS/lobby/kv", &token, None).await;
    assert_eq!(
        listed["entries"],
        json!([{"key": "topic", "value": "launch"}])
    );
    let (_, deleted) = json_of(admin, "DELETE", put, &token, None).await;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(lobby.topic().await.unwrap(), None);
    let insert =
        json!({"query": "INSERT INTO messages (text) VALUES ('from the console')", "write": true});
    let (status, wrote) = json_of(
        admin,
        "POST",
        "/api/objects/ROOMS/lobby/sql",
        &token,
        Some(insert),
    )
    .await;
    assert_eq!(status, 200, "{wrote}");
    assert_eq!(wrote["rows_written"], 1);
    let (_, rows) = json_of(
        admin,
        "POST",
        "/api/objects/ROOMS/lobby/sql",
        &token,
        Some(query),
    )
    .await;
    assert_eq!(rows["rows"].as_array().unwrap().len(), 3);
    let alarm = "/api/objects/ROOMS/lobby/alarm";
    let when = 4_000_000_000_000i64;
    let (status, _) = json_of(admin, "PUT", alarm, &token, Some(json!({"time_ms": when}))).await;
    assert_eq!(status, 200);
    assert_eq!(lobby.alarm_at().await.unwrap(), Some(when));
    let (_, got) = json_of(admin, "GET", alarm, &token, None).await;
    assert_eq!(got["alarm_ms"], when);
    json_of(admin, "DELETE", alarm, &token, None).await;
    assert_eq!(lobby.alarm_at().await.unwrap(), None);
    let (_, metrics) = json_of(admin, "GET", "/api/metrics", &token, None).await;
    assert!(metrics["commits"].as_u64().unwrap() > 0, "{metrics}");

    // Bad input: clear errors, nothing changed.
    let write_without = json!({"query": "DELETE FROM messages"});
    let (status, error) = json_of(
        admin,
        "POST",
        "/api/objects/ROOMS/lobby/sql",
        &token,
        Some(write_without),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("\"write\": true"),
        "{error}"
    );
    let (status, error) = json_of(admin, "GET", "/api/objects/CHATS/lobby", &token, None).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown namespace"),
        "{error}"
    );
    let foreign = format!("/api/objects/ROOMS/{}", "ab".repeat(32));
    let (status, error) = json_of(admin, "GET", &foreign, &token, None).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("is not an object"),
        "{error}"
    );
    let bad_sql = json!({"query": "SELEC 1"});
    let (status, _) = json_of(
        admin,
        "POST",
        "/api/objects/ROOMS/lobby/sql",
        &token,
        Some(bad_sql),
    )
    .await;
    assert_eq!(status, 400);
    let (_, rows) = json_of(
        admin,
        "POST",
        "/api/objects/ROOMS/lobby/sql",
        &token,
        Some(json!({"query": "SELECT count(*) FROM messages"})),
    )
    .await;
    assert_eq!(rows["rows"], json!([[3]]));
    // Export and import, as the tool's files.
    let (status, exported) = request(
        admin,
        "GET",
        "/api/objects/ROOMS/lobby/export",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["durable_export"], 1);
    assert_eq!(lines[1]["object"]["name"], "lobby");
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.get("row").is_some())
            .count(),
        3
    );
    assert_eq!(lines.last().unwrap()["end"]["lines"], lines.len());
    let body = json!({
        "schema": [lines[2]["schema"]],
        "rows": [{"table": "messages", "rows": [[7, "imported"]]}],
        "kv": [{"key": "k", "raw": "a3616263"}],
    });
    let (status, imported) = json_of(
        admin,
        "POST",
        "/api/objects/ROOMS/copy/import",
        &token,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["imported"]["rows"], 1);
    let (_, got) = json_of(admin, "GET", "/api/objects/ROOMS/copy/kv/k", &token, None).await;
    assert_eq!(got["value"], "abc");
    for bad in [
        json!({"kv": [{"key": "k", "raw": "é1"}]}),
        json!({"rows": [{"table": "messages", "rows": [[[1]]]}]}),
    ] {
        let (status, error) = json_of(
            admin,
            "POST",
            "/api/objects/ROOMS/copy2/import",
            &token,
            Some(bad),
        )
        .await;
        assert_eq!(status, 400, "{error}");
    }
    server.stop().await.unwrap();

    // The token stays over a restart.
    let server = start(&data, true).await;
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let (status, _) = json_of(
        server.admin_addr().unwrap(),
        "GET",
        "/api/namespaces",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}

fn rooms_of(server: &RunningServer) -> Namespace<Room> {
    server.env().namespace::<Room>("ROOMS").unwrap()
}
