//! Pattern: **real-time collaboration** — a shared document is one object; every editor's
//! WebSocket sends operations, and the object puts them in one order, applies them, logs
//! them in SQL and broadcasts each (with its sequence number) to every editor, so all
//! editors apply the same operations in the same order. An operation carries the version
//! its editor saw; one made on an older version is refused with the current text, and the
//! editor rebases.
//!
//! ```text
//! cargo run -p durable-examples --example collaboration -- --listen 127.0.0.1:8789
//! websocat 'ws://127.0.0.1:8789/docs/readme/edit?editor=ann'
//! {"base":0,"insert":{"at":0,"text":"hello"}}
//! ```

use durable_objects::prelude::*;
use durable_server::axum::Router;
use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
use durable_server::axum::routing::get;
use durable_server::{ApiError, forward};
use serde::{Deserialize, Serialize};

/// The server's configuration when no `wrangler.jsonc` is given.
pub(crate) const CONFIG: &str = r#"{
    "durable_objects": { "bindings": [{ "name": "DOCS", "class_name": "Document" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Document"] }],
    "durable": { "data_dir": ".durable-docs" }
}"#;

/// The largest document, in characters.
pub(crate) const MAX_CHARS: usize = 100_000;

/// An edit, as editors send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Edit {
    /// Inserts `text` before character `at`.
    Insert { at: usize, text: String },
    /// Deletes `len` characters from character `at`.
    Delete { at: usize, len: usize },
}

/// What an editor sends: an edit made on version `base`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Operation {
    pub(crate) base: u64,
    #[serde(flatten)]
    pub(crate) edit: Edit,
}

/// What editors receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Update {
    /// The document now (on joining, and after a refused operation).
    Snapshot { version: u64, text: String },
    /// Operation number `seq` (the new version), by `editor`.
    Applied {
        seq: u64,
        editor: String,
        edit: Edit,
    },
    /// The operation was refused; the document is unchanged.
    Refused { reason: String },
}

/// One shared document.
#[durable_object]
pub(crate) struct Document {
    state: State,
}

impl DurableObject for Document {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn init(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS ops (seq INTEGER PRIMARY KEY, editor TEXT NOT NULL, edit TEXT NOT NULL)",
            (),
        )?;
        Ok(())
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let editor = request
            .uri()
            .query()
            .and_then(|query| query.strip_prefix("editor="))
            .filter(|name| !name.is_empty() && name.len() <= 32)
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "join with ?editor=NAME"))?
            .to_owned();
        let pair = WebSocketPair::new();
        self.state.accept_web_socket(&pair.server, &[&editor])?;
        let (version, text) = self.current()?;
        send(&pair.server, &Update::Snapshot { version, text })?;
        Ok(pair.client.into_response())
    }

    async fn web_socket_message(&self, ws: WebSocket, message: WebSocketMessage) -> Result<()> {
        let WebSocketMessage::Text(text) = message else {
            return refuse(&ws, "operations are JSON text");
        };
        let operation: Operation = match serde_json::from_str(&text) {
            Ok(operation) => operation,
            Err(error) => return refuse(&ws, &format!("not an operation: {error}")),
        };
        let (version, current) = self.current()?;
        if operation.base != version {
            refuse(
                &ws,
                &format!(
                    "made on version {}, the document is at {version}",
                    operation.base
                ),
            )?;
            return send(
                &ws,
                &Update::Snapshot {
                    version,
                    text: current,
                },
            );
        }
        let next = match apply(&current, &operation.edit) {
            Ok(next) => next,
            Err(reason) => return refuse(&ws, &reason),
        };
        let editor = self
            .state
            .get_tags(&ws)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let seq = version + 1;
        // The log, the text and the version change together (one turn, one commit); the
        // broadcast leaves once they are durable.
        let edit_json = serde_json::to_string(&operation.edit).user_err()?;
        self.state.storage().sql().exec(
            "INSERT INTO ops (seq, editor, edit) VALUES (?1, ?2, ?3)",
            (seq as i64, editor.as_str(), edit_json.as_str()),
        )?;
        let kv = self.state.storage().kv();
        kv.put("text", &next)?;
        kv.put("version", &seq)?;
        let update = Update::Applied {
            seq,
            editor,
            edit: operation.edit,
        };
        for socket in self.state.get_web_sockets(None) {
            let _ = send(&socket, &update);
        }
        Ok(())
    }

    async fn web_socket_close(&self, ws: WebSocket, _: u16, _: String, _: bool) -> Result<()> {
        let _ = ws.close(Some(1000), Some("bye"));
        Ok(())
    }
}

impl Document {
    fn current(&self) -> Result<(u64, String)> {
        let kv = self.state.storage().kv();
        Ok((
            kv.get("version")?.unwrap_or(0),
            kv.get("text")?.unwrap_or_default(),
        ))
    }
}

#[rpc]
impl Document {
    /// The version and text.
    pub(crate) async fn snapshot(&self) -> Result<(u64, String)> {
        self.current()
    }

    /// How many operations the log holds.
    pub(crate) async fn log_len(&self) -> Result<i64> {
        self.state
            .storage()
            .sql()
            .exec("SELECT count(*) AS n FROM ops", ())?
            .one()?
            .get("n")
            .map_err(Error::from)
    }
}

/// `text` with `edit` applied, or why it cannot be.
pub(crate) fn apply(text: &str, edit: &Edit) -> std::result::Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let result: String = match edit {
        Edit::Insert { at, text: inserted } => {
            if *at > chars.len() {
                return Err(format!("insert at {at}, past the end ({})", chars.len()));
            }
            chars[..*at]
                .iter()
                .copied()
                .chain(inserted.chars())
                .chain(chars[*at..].iter().copied())
                .collect()
        }
        Edit::Delete { at, len } => {
            let end = at.checked_add(*len).filter(|end| *end <= chars.len());
            let Some(end) = end else {
                return Err(format!(
                    "delete {len} at {at}, past the end ({})",
                    chars.len()
                ));
            };
            chars[..*at].iter().chain(&chars[end..]).collect()
        }
    };
    if result.chars().count() > MAX_CHARS {
        return Err(format!("a document holds at most {MAX_CHARS} characters"));
    }
    Ok(result)
}

fn send(ws: &WebSocket, update: &Update) -> Result<()> {
    ws.send_text(serde_json::to_string(update).user_err()?)
}

fn refuse(ws: &WebSocket, reason: &str) -> Result<()> {
    send(
        ws,
        &Update::Refused {
            reason: reason.to_owned(),
        },
    )
}

/// The front: `/docs/{name}/edit` forwards the upgrade; `/docs/{name}` returns the text.
pub(crate) fn router(env: Env) -> Router {
    Router::new()
        .route(
            "/docs/{name}/edit",
            get(
                |Front(env): Front<Env>, Path(name): Path<String>, request: HttpRequest| async move {
                    let docs = env.namespace::<Document>("DOCS")?;
                    Ok::<_, ApiError>(forward(&docs.get_by_name(&name), request).await)
                },
            ),
        )
        .route(
            "/docs/{name}",
            get(|Front(env): Front<Env>, Path(name): Path<String>| async move {
                let (_, text) = env.namespace::<Document>("DOCS")?.get_by_name(&name).snapshot().await?;
                Ok::<_, ApiError>(text)
            }),
        )
        .with_state(env)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    durable_server::run_main("collaboration", Some(CONFIG), configure).await
}

/// The example's server: its class and its front (what `main` serves).
fn configure(server: durable_server::ServerBuilder) -> durable_server::ServerBuilder {
    server.class::<Document>().router(router)
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::TestEnv;
    use durable_server::config::{Config, Format};
    use durable_server::testing::{TestClient, TestWebSocket, test_env};

    fn setup() -> (TestEnv, TestClient) {
        let config = Config::parse(CONFIG, Format::Jsonc).unwrap();
        let test = test_env(&config, |runtime| runtime.class::<Document>()).unwrap();
        let client = TestClient::new(router(test.env()));
        (test, client)
    }

    async fn next(socket: &mut TestWebSocket) -> Update {
        serde_json::from_str(&socket.recv_text().await.unwrap()).unwrap()
    }

    fn insert(base: u64, at: usize, text: &str) -> String {
        serde_json::to_string(&Operation {
            base,
            edit: Edit::Insert {
                at,
                text: text.into(),
            },
        })
        .unwrap()
    }

    #[tokio::test]
    async fn every_editor_sees_the_same_operations_in_the_same_order() {
        let (_test, client) = setup();
        let mut ann = client.websocket("/docs/d/edit?editor=ann").await.unwrap();
        let mut bob = client.websocket("/docs/d/edit?editor=bob").await.unwrap();
        for socket in [&mut ann, &mut bob] {
            assert_eq!(
                next(socket).await,
                Update::Snapshot {
                    version: 0,
                    text: String::new()
                }
            );
        }
        ann.send_text(insert(0, 0, "hello")).await.unwrap();
        let first = next(&mut bob).await;
        bob.send_text(insert(1, 5, " world")).await.unwrap();
        let mut seen_by_ann = vec![next(&mut ann).await, next(&mut ann).await];
        let mut seen_by_bob = vec![first, next(&mut bob).await];
        assert_eq!(seen_by_ann, seen_by_bob);
        seen_by_ann.retain(|u| matches!(u, Update::Applied { .. }));
        seen_by_bob.retain(|u| matches!(u, Update::Applied { .. }));
        assert_eq!(seen_by_ann.len(), 2);
        assert_eq!(client.get("/docs/d").await.unwrap().text(), "hello world");
    }

    #[tokio::test]
    async fn an_operation_on_an_old_version_is_refused_with_the_current_text() {
        let (test, client) = setup();
        let mut ann = client.websocket("/docs/d/edit?editor=ann").await.unwrap();
        let mut bob = client.websocket("/docs/d/edit?editor=bob").await.unwrap();
        next(&mut ann).await;
        next(&mut bob).await;
        // Both edit version 0 at once: the first to reach the document wins; both editors
        // see its operation as version 1, and the other is refused and sent the text.
        ann.send_text(insert(0, 0, "A")).await.unwrap();
        bob.send_text(insert(0, 0, "B")).await.unwrap();
        let (ann_first, bob_first) = (next(&mut ann).await, next(&mut bob).await);
        assert_eq!(ann_first, bob_first);
        let Update::Applied { seq: 1, editor, .. } = ann_first else {
            panic!("expected version 1 first, got {ann_first:?}");
        };
        let docs = test.env().namespace::<Document>("DOCS").unwrap();
        let (version, text) = docs.get_by_name("d").snapshot().await.unwrap();
        assert_eq!(version, 1);
        let loser = if editor == "ann" {
            assert_eq!(text, "A");
            &mut bob
        } else {
            assert_eq!(text, "B");
            &mut ann
        };
        assert!(matches!(next(loser).await, Update::Refused { .. }));
        assert_eq!(next(loser).await, Update::Snapshot { version: 1, text });
    }

    #[tokio::test]
    async fn bad_operations_change_nothing() {
        let (test, client) = setup();
        let mut ann = client.websocket("/docs/d/edit?editor=ann").await.unwrap();
        next(&mut ann).await;
        for bad in [
            "not json".to_owned(),
            insert(0, 3, "past the end"),
            r#"{"base":0,"delete":{"at":0,"len":1}}"#.to_owned(),
        ] {
            ann.send_text(bad.clone()).await.unwrap();
            assert!(
                matches!(next(&mut ann).await, Update::Refused { .. }),
                "{bad}"
            );
        }
        let docs = test.env().namespace::<Document>("DOCS").unwrap();
        assert_eq!(docs.get_by_name("d").log_len().await.unwrap(), 0);
        assert!(
            client.websocket("/docs/d/edit").await.is_err(),
            "no editor name"
        );
    }

    #[tokio::test]
    async fn the_document_and_its_log_survive_a_restart() {
        let (mut test, client) = setup();
        let mut ann = client.websocket("/docs/d/edit?editor=ann").await.unwrap();
        next(&mut ann).await;
        ann.send_text(insert(0, 0, "kept")).await.unwrap();
        next(&mut ann).await;
        drop(ann);
        test.restart().unwrap();
        let client = TestClient::new(router(test.env()));
        let mut bob = client.websocket("/docs/d/edit?editor=bob").await.unwrap();
        assert_eq!(
            next(&mut bob).await,
            Update::Snapshot {
                version: 1,
                text: "kept".into()
            }
        );
    }

    #[test]
    fn edits_count_characters_not_bytes() {
        assert_eq!(
            apply("héllo", &Edit::Delete { at: 1, len: 1 }).unwrap(),
            "hllo"
        );
        assert_eq!(
            apply(
                "hé",
                &Edit::Insert {
                    at: 2,
                    text: "!".into()
                }
            )
            .unwrap(),
            "hé!"
        );
        assert!(
            apply(
                "",
                &Edit::Delete {
                    at: 0,
                    len: usize::MAX
                }
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn the_example_serves_on_a_real_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = Config::parse(CONFIG, Format::Jsonc).unwrap();
        let server = durable_server::testing::start_server(configure(
            durable_server::Server::builder(config),
        ))
        .await
        .unwrap();
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream
            .write_all(b"GET /docs/readme HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n"), "an empty document: {answer}");
        server.stop().await.unwrap();
    }
}
