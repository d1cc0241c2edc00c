//! Writes through a running node: `durable` finds the node's admin API from the data folder
//! (`admin.address`, `admin.token`, written by the node when it starts with
//! `durable.admin.listen` set) and sends it one JSON request over HTTP/1.1.
//!
//! A write never goes to the files directly: it must run inside the object (its turn, its
//! commit log, its alarm index), which only the node that holds the folder can do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use durable_storage::DataLayout;
use serde_json::Value;

/// The admin API of the node running on a data folder.
#[derive(Debug)]
pub(crate) struct AdminApi {
    addr: SocketAddr,
    token: String,
}

impl AdminApi {
    /// The admin API of the node holding `layout`'s folder; an error that says what to do
    /// when no node runs there, or it runs without its admin API.
    pub(crate) fn of(layout: &DataLayout) -> anyhow::Result<Self> {
        if !crate::node_holds(layout)? {
            bail!(
                "no node is running on {}: writes run inside the objects, through a running node's admin API (start the node with durable.admin.listen set, then run this again)",
                layout.root().display()
            );
        }
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
