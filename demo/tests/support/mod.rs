//! Drives the real `durable-demo` binary: start it on 127.0.0.1:0 with a data folder, talk
//! HTTP/1.1 and WebSocket to it, stop it with SIGTERM or SIGKILL.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running demo server.
pub struct Demo {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
}

/// A WebSocket client.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The demo's configuration with `extra` merged into its `durable` section, written to
/// `dir/wrangler.jsonc`.
pub fn config_with(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("wrangler.jsonc");
    let text = durable_demo::BUILT_IN_CONFIG.replace(
        "\"data_dir\": \".durable\",",
        &format!("\"data_dir\": \".durable\", {extra}"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Demo {
    /// Starts the binary with `--data data --listen 127.0.0.1:0` and `config` if given.
    pub fn start(data: &Path, config: Option<&Path>) -> Demo {
        Self::start_on(data, config, "127.0.0.1:0")
    }

    /// [`start`](Demo::start), listening on `listen` (to come back where it was).
    pub fn start_on(data: &Path, config: Option<&Path>, listen: &str) -> Demo {
        let mut command = Command::new(env!("CARGO_BIN_EXE_durable-demo"));
        command.arg("--listen").arg(listen);
        Self::spawn(command, data, config)
    }

    /// [`start`](Demo::start), in a process allowed only `files` open file descriptors (soft
    /// and hard limit, as `ulimit -n` sets them).
    pub fn start_with_fd_limit(data: &Path, config: Option<&Path>, files: u32) -> Demo {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_durable-demo"))
            .arg("--listen")
            .arg("127.0.0.1:0");
        Self::spawn(command, data, config)
    }

    fn spawn(mut command: Command, data: &Path, config: Option<&Path>) -> Demo {
        command
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn().expect("start durable-demo");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Demo {
            child,
            addr,
            data: data.to_path_buf(),
        }
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits (at most 40 s) for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..4000 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child.kill().unwrap();
        panic!("durable-demo did not stop within 40 s of SIGTERM");
    }

    /// One HTTP request; returns status and body.
    pub async fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let (status, _headers, body) = self.http_full(method, path, body).await;
        (status, body)
    }

    /// One HTTP request; returns status, header block and body.
    pub async fn http_full(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        tokio::time::timeout(
            Duration::from_secs(30),
            request(&self.addr, method, path, body),
        )
        .await
        .expect("HTTP request finished within 30 s")
    }

    /// GET returning JSON.
    pub async fn json(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.http(method, path, b"").await;
        let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: not JSON: {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, value)
    }

    /// The value of a metric line `name value`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http("GET", "/metrics", b"").await;
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing:\n{text}"))
    }

    /// A WebSocket to `path`.
    pub async fn socket(&self, path: &str) -> Client {
        let url = format!("ws://{}{path}", self.addr);
        let (client, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .expect("connected within 30 s")
        .expect("WebSocket handshake");
        client
    }

    /// A WebSocket to `path` from source address `source` (e.g. 127.0.0.2).
    pub async fn socket_from(&self, source: std::net::IpAddr, path: &str) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        let stream = socket.connect(self.addr.parse().unwrap()).await.unwrap();
        let url = format!("ws://{}{path}", self.addr);
        let (client, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("WebSocket handshake");
        client
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next text message, within 30 s.
pub async fn next_text(client: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), client.next())
            .await
            .expect("a message within 30 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame (within 30 s) and returns its code; `None` if the
/// connection ended without one.
pub async fn close_code(client: &mut Client) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the connection closed within 30 s")
}

/// Sends bytes as they are on a new connection and returns the whole answer as text.
pub async fn raw_http(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the server answered and closed within 30 s");
    String::from_utf8_lossy(&raw).into_owned()
}

/// Sends a text message.
pub async fn send_text(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

async fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading the whole body; a failed write is fine then.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// Polls `check` every 20 ms for at most 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

pub mod ledger;

#[path = "../../../crates/durable-objects/tests/support/tmpfs.rs"]
mod tmpfs;
#[allow(unused_imports)] // Not every test binary that includes this module mounts a tmpfs.
pub use tmpfs::Tmpfs;
