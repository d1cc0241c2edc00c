//! Writes: [`Writer`] runs each one inside its object, through the running node's admin API
//! when a node holds the folder (`durable` finds it from the data folder: `admin.address`,
//! `admin.token`, written by the node when it starts with `durable.admin.listen` set; one JSON
//! request over HTTP/1.1), or by opening the folder itself when none does
//! ([`LocalNode`]).
//!
//! A write never goes to the files directly: it must run inside the object (its turn, its
//! commit log, its alarm index).

use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use durable_storage::DataLayout;
use serde_json::{Value, json};

use crate::local_node::LocalNode;

/// The admin API of the node running on a data folder.
#[derive(Debug)]
pub(crate) struct AdminApi {
    addr: SocketAddr,
    token: String,
}

impl AdminApi {
    /// The admin API of the node holding `layout`'s folder (one must); an error that says
    /// what to do when it runs without its admin API.
    pub(crate) fn of(layout: &DataLayout) -> anyhow::Result<Self> {
        let address = match std::fs::read_to_string(layout.admin_address()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "the node running on {} has its admin API off: set durable.admin.listen (for example \"127.0.0.1:8788\") in its configuration and restart it",
                layout.root().display()
            ),
            Err(e) => return Err(e).context("read the admin API's address"),
        };
        let addr: SocketAddr = address.trim().parse().map_err(|_| {
            anyhow!("the data folder's admin.address is not an address: {address:?}")
        })?;
        let token = std::fs::read_to_string(layout.admin_token())
            .with_context(|| format!("read {}", layout.admin_token().display()))?
            .trim()
            .to_owned();
        Ok(Self { addr, token })
    }

    /// Sends `method path` with `body` (JSON) and returns the answer's JSON; an error status
    /// becomes an error with the API's message.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .with_context(|| format!("connect to the node's admin API at {}", self.addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("the admin API's answer has no header end"))?;
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| anyhow!("the admin API's answer has no status: {head:?}"))?;
        let value: Value = serde_json::from_slice(&answer[split + 4..])
            .with_context(|| format!("the admin API answered {status} without JSON"))?;
        if !(200..300).contains(&status) {
            let message = value["error"].as_str().unwrap_or("no message");
            bail!("{message}");
        }
        Ok(value)
    }
}

/// One write an operator asks of an object.
#[derive(Debug)]
pub(crate) enum Write {
    /// A SQL statement (it may write).
    Sql(String),
    /// A KV value stored under a key.
    KvPut(String, Value),
    /// A KV key deleted.
    KvDelete(String),
    /// The alarm set, in milliseconds since the Unix epoch.
    AlarmSet(i64),
    /// The alarm deleted.
    AlarmDelete,
    /// An export's content of the object (the admin API's import body).
    Import(Value),
}

/// Where writes go: the running node, or the folder opened by the tool.
pub(crate) enum Writer {
    Node(AdminApi),
    Local(LocalNode),
}

impl Writer {
    /// The running node's admin API if a node holds the folder; the folder itself otherwise.
    pub(crate) fn of(layout: &DataLayout) -> anyhow::Result<Self> {
        if crate::node_holds(layout)? {
            Ok(Writer::Node(AdminApi::of(layout)?))
        } else {
            Ok(Writer::Local(LocalNode::open(layout)?))
        }
    }

    /// Runs `write` inside object `object` (a name or an id) of `namespace` (a binding or a
    /// class); the admin API's answer (or the same JSON, made here).
    pub(crate) fn perform(
        &self,
        namespace: &str,
        object: &str,
        write: Write,
    ) -> anyhow::Result<Value> {
        match self {
            Writer::Node(api) => {
                let base = format!("/api/objects/{}/{}", segment(namespace), segment(object));
                let (method, path, body) = match write {
                    Write::Sql(query) => (
                        "POST",
                        format!("{base}/sql"),
                        Some(json!({ "query": query, "write": true })),
                    ),
                    Write::KvPut(key, value) => {
                        ("PUT", format!("{base}/kv/{}", segment(&key)), Some(value))
                    }
                    Write::KvDelete(key) => {
                        ("DELETE", format!("{base}/kv/{}", segment(&key)), None)
                    }
                    Write::AlarmSet(ms) => (
                        "PUT",
                        format!("{base}/alarm"),
                        Some(json!({ "time_ms": ms })),
                    ),
                    Write::AlarmDelete => ("DELETE", format!("{base}/alarm"), None),
                    Write::Import(body) => ("POST", format!("{base}/import"), Some(body)),
                };
                api.call(method, &path, body.as_ref())
            }
            Writer::Local(node) => {
                let admin = node
                    .admin()
                    .ok_or_else(|| anyhow!("the folder is closed"))?;
                let failed = |e: durable_core::Error| anyhow!("{}", e.message());
                let target = admin.resolve(namespace, object).map_err(failed)?;
                node.block_on(async {
                    Ok(match write {
                        Write::Sql(query) => {
                            let rows = admin.sql(&target, query).await.map_err(failed)?;
                            json!({
                                "columns": rows.columns,
                                "rows": rows.rows.iter().map(|row| row.iter().map(durable_storage::sql_value_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
                                "rows_written": rows.rows_written,
                            })
                        }
                        Write::KvPut(key, value) => {
                            admin.kv_put(&target, key.clone(), value).await.map_err(failed)?;
                            json!({ "key": key, "stored": true })
                        }
                        Write::KvDelete(key) => {
                            let deleted = admin.kv_delete(&target, key.clone()).await.map_err(failed)?;
                            json!({ "key": key, "deleted": deleted })
                        }
                        Write::AlarmSet(ms) => {
                            admin.set_alarm(&target, ms).await.map_err(failed)?;
                            json!({ "alarm_ms": ms })
                        }
                        Write::AlarmDelete => {
                            admin.delete_alarm(&target).await.map_err(failed)?;
                            json!({ "alarm_ms": null })
                        }
                        Write::Import(body) => {
                            let content = crate::export::content_of(&body)?;
                            let report = admin.import(&target, content).await.map_err(failed)?;
                            json!({ "imported": report })
                        }
                    })
                })
            }
        }
    }
}

/// `text` as one URL path segment (everything but unreserved characters percent-encoded).
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_only_unreserved_characters() {
        assert_eq!(segment("room-1"), "room-1");
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
