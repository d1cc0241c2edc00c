//! The web console, driven in a real headless Chromium as a person uses it: sign in with the
//! token, namespaces and live metrics, an object's tables (a page at a time), KV entries
//! decoded, its alarm and open WebSocket (tags and attachment), the read-only SQL box; and
//! what it refuses: a page without the token, a wrong token, a statement that writes.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::net::SocketAddr;

use durable_browser::{Browser, Page};
use durable_objects::prelude::*;
use durable_server::Server;
use durable_server::axum::Router;
use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
use durable_server::axum::routing::any;
use durable_server::config::{Config, Format};
use durable_server::testing::start_server;
use serde::Serialize;

#[derive(Serialize)]
struct Topic {
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

    async fn fetch(&self, _request: Request) -> Result<Response> {
        let pair = WebSocketPair::new();
        self.state.accept_web_socket(&pair.server, &["user:ada"])?;
        pair.server.serialize_attachment(&Topic {
            title: "ada's seat".into(),
            pinned: false,
        })?;
        Ok(pair.client.into_response())
    }
}

#[rpc]
impl Room {
    pub async fn fill(&self, messages: i64) -> Result<()> {
        let storage = self.state.storage();
        storage.sql().exec(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, text TEXT)",
            (),
        )?;
        for n in 1..=messages {
            storage.sql().exec(
                "INSERT INTO messages (text) VALUES (?1)",
                (format!("message {n}"),),
            )?;
        }
        storage.kv().put(
            "topic",
            &Topic {
                title: "launch <day>".into(),
                pinned: true,
            },
        )?;
        storage.set_alarm(4_102_444_800_000).await
    }
}

const CONFIG: &str = r#"{
    "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }]
}"#;

fn router(env: Env) -> Router {
    Router::new()
        .route(
            "/ws/{name}",
            any(
                |Front(env): Front<Env>, Path(name): Path<String>, request: HttpRequest| async move {
                    let rooms = env.namespace::<Room>("ROOMS").unwrap();
                    durable_server::forward(&rooms.get_by_name(&name), request).await
                },
            ),
        )
        .with_state(env)
}

/// The number in the first cell of `selector`'s last row.
async fn cell(page: &Page, script: &str) -> String {
    page.eval(script)
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The SQL box's last result cell.
const LAST_RESULT: &str = "document.querySelector('#result tr:last-child td').textContent";

/// Types `query` into the object page's SQL box and runs it.
async fn run_sql(page: &Page, query: &str) {
    page.navigate_with(&format!(
        "document.querySelector('textarea').value = {}; document.querySelector('textarea').form.submit()",
        serde_json::json!(query)
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_looks_inside_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Server::builder(Config::parse(CONFIG, Format::Jsonc).unwrap())
        .class::<Room>()
        .router(router)
        .data_dir(dir.path())
        .admin_listen(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = start_server(builder).await.unwrap();
    let console = format!("http://{}", server.admin_addr().unwrap());
    let token = std::fs::read_to_string(dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let rooms = server.env().namespace::<Room>("ROOMS").unwrap();
    rooms.get_by_name("lobby").fill(60).await.unwrap();
    // An open hibernatable socket, from a real client.
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/lobby", server.addr()))
        .await
        .unwrap();

    let browser = Browser::launch().await.unwrap();
    let page = browser.new_page().await.unwrap();

    // Without the token: the sign-in form, nothing else.
    page.goto(&format!("{console}/ns/ROOMS/lobby"))
        .await
        .unwrap();
    assert_eq!(page.text("h1").await.unwrap().as_deref(), Some("Sign in"));
    assert!(page.text("#tables").await.unwrap().is_none());
    // A wrong token is refused.
    page.navigate_with(
        "document.querySelector('#token').value = 'not-the-token'; document.querySelector('form').submit()",
    )
    .await
    .unwrap();
    assert!(
        page.text(".problem")
            .await
            .unwrap()
            .unwrap()
            .contains("not this node's admin token")
    );
    // The right one goes on to the page asked for.
    page.navigate_with(&format!(
        "document.querySelector('#token').value = '{token}'; document.querySelector('form').submit()"
    ))
    .await
    .unwrap();
    assert_eq!(
        page.eval("location.pathname").await.unwrap(),
        "/ns/ROOMS/lobby"
    );

    // Namespaces and live metrics.
    page.navigate_with("document.querySelector('nav a').click()")
        .await
        .unwrap();
    let namespaces = page.text("#namespaces").await.unwrap().unwrap();
    assert!(
        namespaces.contains("Room") && namespaces.contains("ROOMS"),
        "{namespaces}"
    );
    page.wait_for(
        "document.body.dataset.refreshed === 'yes'",
        "the metrics to refresh",
    )
    .await
    .unwrap();
    let open = cell(
        &page,
        "document.querySelector('#metric-web_sockets_open').textContent",
    )
    .await;
    assert_eq!(open, "1");
    let commits: u64 = cell(
        &page,
        "document.querySelector('#metric-commits').textContent",
    )
    .await
    .parse()
    .unwrap();
    assert!(commits > 0);

    // Namespace → object.
    page.navigate_with("document.querySelector('#namespaces a').click()")
        .await
        .unwrap();
    let objects = page.text("#objects").await.unwrap().unwrap();
    assert!(objects.contains("lobby"), "{objects}");
    page.navigate_with("document.querySelector('#objects a').click()")
        .await
        .unwrap();
    assert_eq!(
        page.text("#object-name").await.unwrap().as_deref(),
        Some("lobby")
    );
    let object_page = page
        .eval("location.href")
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let tables = page.text("#tables").await.unwrap().unwrap();
    assert!(
        tables.contains("messages") && tables.contains("60"),
        "{tables}"
    );
    let kv = page.text("#kv").await.unwrap().unwrap();
    assert!(kv.contains("topic") && kv.contains("launch <day>"), "{kv}");
    assert_eq!(
        page.text("#alarm").await.unwrap().as_deref(),
        Some("2100-01-01T00:00:00Z")
    );
    let sockets = page.text("#sockets").await.unwrap().unwrap();
    assert!(
        sockets.contains("user:ada") && sockets.contains("ada's seat"),
        "{sockets}"
    );

    // A table, a page at a time.
    page.navigate_with("document.querySelector('#tables a').click()")
        .await
        .unwrap();
    let rows = page
        .eval("document.querySelectorAll('#rows tr').length")
        .await
        .unwrap();
    assert_eq!(rows, 51, "a header and 50 rows");
    page.navigate_with("document.querySelector('#next').click()")
        .await
        .unwrap();
    let rows = page
        .eval("document.querySelectorAll('#rows tr').length")
        .await
        .unwrap();
    assert_eq!(rows, 11, "a header and the last 10 rows");
    assert!(
        page.text("#rows")
            .await
            .unwrap()
            .unwrap()
            .contains("message 60")
    );
    assert!(page.text("#next").await.unwrap().is_none());
    page.navigate_with("document.querySelector('#previous').click()")
        .await
        .unwrap();
    assert!(
        page.text("#rows")
            .await
            .unwrap()
            .unwrap()
            .contains("message 1\n")
    );

    // The read-only SQL box.
    page.goto(&object_page).await.unwrap();
    run_sql(&page, "SELECT count(*) AS n FROM messages").await;
    assert_eq!(cell(&page, LAST_RESULT).await, "60");
    run_sql(&page, "DELETE FROM messages").await;
    let error = page.text("#error").await.unwrap().unwrap();
    assert!(error.contains("writes"), "{error}");
    run_sql(&page, "SELECT count(*) AS n FROM messages").await;
    assert_eq!(cell(&page, LAST_RESULT).await, "60", "nothing was deleted");

    drop(socket);
    drop(browser);
    server.stop().await.unwrap();
}
