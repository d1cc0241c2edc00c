//! The demo's object classes: a SQL counter, a key-value store, an alarm clock that logs its
//! runs, and a chat room on hibernatable WebSockets.

use durable_objects::AlarmInfo;
use durable_objects::prelude::*;
use durable_objects::storage::ListOptions;
use durable_objects::websocket::WebSocketRequestResponsePair;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// A counter in a one-row SQL table. Replies leave once the write is durable.
#[durable_object]
#[derive(Debug)]
pub struct Counter {
    state: State,
}

impl DurableObject for Counter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    /// The schema, made before the first call; a failure fails that call, not the process.
    async fn init(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
            (),
        )?;
        Ok(())
    }
}

#[rpc]
impl Counter {
    /// Adds `by` (which may be negative) and returns the new value. An increment that would
    /// overflow a 64-bit integer is refused (409) and changes nothing: SQLite would turn the
    /// sum into a REAL and store it.
    pub async fn increment(&self, by: i64) -> Result<i64> {
        // Read, check, write with no await between: no other call interleaves.
        let current = self.value().await?;
        let Some(value) = current.checked_add(by) else {
            return Err(Error::user(format!(
                "adding {by} to the counter's {current} would overflow a 64-bit integer; nothing was changed"
            ))
            .with_code("counter_overflow")
            .with_status(409));
        };
        self.state.storage().sql().exec(
            "INSERT INTO counter (id, value) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET value = excluded.value",
            (value,),
        )?;
        Ok(value)
    }

    /// The value; 0 for a new counter.
    pub async fn value(&self) -> Result<i64> {
        let mut rows = self
            .state
            .storage()
            .sql()
            .exec("SELECT value FROM counter", ())?;
        match rows.next() {
            Some(row) => Ok(row.get("value")?),
            None => Ok(0),
        }
    }
}

/// A key-value store on the object KV API; values are raw bytes.
#[durable_object]
#[derive(Debug)]
pub struct KvStore {
    state: State,
}

impl DurableObject for KvStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl KvStore {
    /// Stores `value` under `key`.
    pub async fn put(&self, key: String, value: ByteBuf) -> Result<()> {
        self.state.storage().put(&key, &value).await
    }

    /// The value under `key`.
    pub async fn get(&self, key: String) -> Result<Option<ByteBuf>> {
        self.state.storage().get(&key).await
    }

    /// Deletes `key`; true if it existed.
    pub async fn delete(&self, key: String) -> Result<bool> {
        self.state.storage().delete(&key).await
    }

    /// Keys in order (UTF-8 byte order), filtered and limited.
    pub async fn keys(
        &self,
        prefix: Option<String>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Vec<String>> {
        let mut options = ListOptions::new().reverse(reverse);
        if let Some(prefix) = prefix {
            options = options.prefix(prefix);
        }
        if let Some(limit) = limit {
            options = options.limit(limit);
        }
        let entries: Vec<(String, ByteBuf)> = self.state.storage().list(options).await?;
        Ok(entries.into_iter().map(|(key, _)| key).collect())
    }
}

/// The alarm and the times its handler ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlarmStatus {
    /// When the alarm is due, in epoch milliseconds, if set.
    pub scheduled_at: Option<i64>,
    /// When the handler ran, in epoch milliseconds, oldest first.
    pub fired: Vec<i64>,
}

/// An object with one alarm that records each run of its handler in SQL.
#[durable_object]
#[derive(Debug)]
pub struct AlarmClock {
    state: State,
    env: Env,
}

impl DurableObject for AlarmClock {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn init(&self) -> Result<()> {
        self.state
            .storage()
            .sql()
            .exec("CREATE TABLE IF NOT EXISTS fired (at INTEGER NOT NULL)", ())?;
        Ok(())
    }

    async fn alarm(&self, _info: AlarmInfo) -> Result<()> {
        let now = self.env.clock().now_ms();
        self.state
            .storage()
            .sql()
            .exec("INSERT INTO fired (at) VALUES (?1)", (now,))?;
        Ok(())
    }
}

#[rpc]
impl AlarmClock {
    /// Sets the alarm `in_ms` milliseconds from now; returns its time.
    pub async fn schedule(&self, in_ms: i64) -> Result<i64> {
        let at = self
            .env
            .clock()
            .now_ms()
            .checked_add(in_ms)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("in_ms {in_ms} is too far in the future"),
                )
            })?;
        self.state.storage().set_alarm(at).await?;
        Ok(at)
    }

    /// The alarm and the runs so far.
    pub async fn status(&self) -> Result<AlarmStatus> {
        let storage = self.state.storage();
        let scheduled_at = storage.get_alarm().await?;
        let fired = storage
            .sql()
            .exec("SELECT at FROM fired ORDER BY rowid", ())?
            .map(|row| row.get::<i64>("at"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(AlarmStatus {
            scheduled_at,
            fired,
        })
    }
}

/// One chat message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessage {
    /// Position in the room, from 1.
    pub seq: i64,
    /// The text.
    pub text: String,
}

/// What a room reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomStats {
    /// How many times an instance of the room was built (hibernation builds a new one).
    pub constructed: i64,
    /// Sockets connected now.
    pub sockets: usize,
}

/// Messages `history` returns at most (the newest).
pub const HISTORY_LIMIT: i64 = 1_000;

/// A chat room: every text message is stored, then sent to every socket of the room.
/// Sockets are hibernatable: an idle room leaves memory while its clients stay connected.
#[durable_object]
#[derive(Debug)]
pub struct ChatRoom {
    state: State,
}

impl DurableObject for ChatRoom {
    fn new(state: State, _env: Env) -> Self {
        // Answered by the runtime without waking the room.
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            let _ = state.set_web_socket_auto_response(Some(pair));
        }
        Self { state }
    }

    async fn init(&self) -> Result<()> {
        let storage = self.state.storage();
        storage.sql().exec(
            "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)",
            (),
        )?;
        let kv = storage.kv();
        let built: i64 = kv.get("constructed")?.unwrap_or(0);
        // Counting constructions is how the demo shows hibernation at work.
        kv.put("constructed", &built.saturating_add(1))
    }

    async fn fetch(&self, _request: Request) -> Result<Response> {
        let pair = WebSocketPair::new();
        self.state.accept_web_socket(&pair.server, &[])?;
        Ok(pair.client.into_response())
    }

    async fn web_socket_message(&self, ws: WebSocket, message: WebSocketMessage) -> Result<()> {
        let WebSocketMessage::Text(text) = message else {
            return ws.send_text(r#"{"error":"send text messages"}"#);
        };
        let inserted = self.state.storage().sql().exec(
            "INSERT INTO messages (text) VALUES (?1) RETURNING seq",
            (text.as_str(),),
        );
        let seq: i64 = match inserted {
            Ok(cursor) => cursor.one()?.get("seq")?,
            // Too big to store: the sender hears it as the protocol's "message too big",
            // with the limit in the reason; the room and the other sockets are unaffected.
            Err(err) if err.exceeded_limit().is_some_and(|limit| limit.is_size()) => {
                let max = match err.detail() {
                    Some(durable_objects::ErrorDetail::Limit { max, .. }) => *max,
                    _ => 0,
                };
                return ws.close(
                    Some(1009),
                    Some(&format!("message too big to store: at most {max} bytes")),
                );
            }
            Err(err) => return Err(err),
        };
        let out = serde_json::to_string(&ChatMessage { seq, text })
            .map_err(|err| Error::user(format!("encode message: {err}")))?;
        // Each send leaves once the insert above is durable (the output gate).
        for socket in self.state.get_web_sockets(None) {
            let _ = socket.send_text(out.clone());
        }
        Ok(())
    }

    async fn web_socket_close(
        &self,
        _ws: WebSocket,
        _code: u16,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// A protocol error on a socket: the connection closes; nothing to clean up.
    async fn web_socket_error(&self, _ws: WebSocket, _error: Error) -> Result<()> {
        Ok(())
    }
}

#[rpc]
impl ChatRoom {
    /// The newest messages, oldest first.
    pub async fn history(&self) -> Result<Vec<ChatMessage>> {
        let mut messages = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT seq, text FROM messages ORDER BY seq DESC LIMIT ?1",
                (HISTORY_LIMIT,),
            )?
            .to_vec::<ChatMessage>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Constructions and open sockets.
    pub async fn stats(&self) -> Result<RoomStats> {
        Ok(RoomStats {
            constructed: self.state.storage().kv().get("constructed")?.unwrap_or(0),
            sockets: self.state.get_web_sockets(None).len(),
        })
    }
}
