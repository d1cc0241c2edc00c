//! WebSocket benchmarks against the real `durable-demo` binary on loopback:
//!
//! 1. Memory: resident bytes per idle hibernated socket, with `WS_BENCH_SOCKETS` (default
//!    10,000) sockets on one chat room, opened from several 127.0.0.x source addresses.
//! 2. Broadcast: one client sends messages to a room of 100 clients (`WS_BENCH_MESSAGES`,
//!    default 2,000) and of 1,000 clients (a tenth as many); every message is stored, then
//!    sent to every client. Reports messages stored per second and deliveries per second.
//!
//! ```text
//! cargo bench -p durable-demo --bench websockets
//! ```

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(data: &Path) -> Server {
    let config = data.with_extension("jsonc");
    let text = durable_demo::BUILT_IN_CONFIG.replace(
        "\"data_dir\": \".durable\",",
        "\"data_dir\": \".durable\", \"hibernation_timeout_ms\": 1000,",
    );
    std::fs::write(&config, text).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_durable-demo"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start durable-demo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the address");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .expect("address line")
        .to_owned();
    Server { child, addr }
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS")
        * 1024
}

async fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}

async fn metric(addr: &str, name: &str) -> f64 {
    let text = http_get(addr, "/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1.0)
}

async fn wait_metric(addr: &str, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(addr, name).await != value {
        assert!(Instant::now() < deadline, "{name} never reached {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(addr: &str, source: IpAddr, path: &str) -> Client {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind((source, 0).into())
        .expect("bind source address");
    let stream = socket
        .connect(addr.parse().expect("address"))
        .await
        .expect("connect");
    let url = format!("ws://{addr}{path}");
    tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake")
        .0
}

/// The i-th of several loopback source addresses, so 10,000+ sockets never run out of ports.
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8))
}

async fn memory(server: &Server, sockets: usize) {
    // A room that exists, with one socket, hibernated: the baseline.
    let mut first = connect(&server.addr, source(0), "/chat/memory").await;
    first.send(Message::text("hello")).await.expect("send");
    first.next().await;
    wait_metric(&server.addr, "durable_objects_active", 0.0).await;
    let before = rss_bytes(server.child.id());
    let mut clients = Vec::with_capacity(sockets);
    let started = Instant::now();
    for i in 0..sockets {
        clients.push(connect(&server.addr, source(i + 1), "/chat/memory").await);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    wait_metric(
        &server.addr,
        "durable_websockets_open",
        (sockets + 1) as f64,
    )
    .await;
    wait_metric(&server.addr, "durable_objects_active", 0.0).await;
    // Let allocator caches settle before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes(server.child.id());
    let per_socket = after.saturating_sub(before) as f64 / sockets as f64;
    println!(
        "memory: {sockets} idle hibernated sockets on one object: RSS {:.1} MiB -> {:.1} MiB, {:.0} bytes per socket ({:.1} KiB); connected in {connect_secs:.1} s ({:.0} sockets/s)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per_socket,
        per_socket / 1024.0,
        sockets as f64 / connect_secs
    );
    for mut client in clients {
        let _ = client.close(None).await;
    }
    let _ = first.close(None).await;
}

async fn broadcast(server: &Server, room: &str, clients: usize, messages: usize) {
    let path = format!("/chat/{room}");
    let mut readers = Vec::new();
    let mut sender = connect(&server.addr, source(0), &path).await;
    for i in 0..clients - 1 {
        readers.push(connect(&server.addr, source(i + 1), &path).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut reader in readers {
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < messages {
                match reader.next().await {
                    Some(Ok(Message::Text(_))) => got += 1,
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            got
        }));
    }
    let mut own = 0;
    for i in 0..messages {
        sender
            .send(Message::text(format!("message {i}")))
            .await
            .expect("send");
    }
    while own < messages {
        match sender.next().await {
            Some(Ok(Message::Text(_))) => own += 1,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let mut delivered = own;
    for task in tasks {
        delivered += task.await.expect("reader");
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        delivered,
        clients * messages,
        "every client got every message"
    );
    println!(
        "broadcast: {clients} clients, {messages} messages: {:.0} messages/s stored and broadcast, {:.0} deliveries/s ({secs:.2} s)",
        messages as f64 / secs,
        delivered as f64 / secs
    );
}

fn main() {
    let sockets = env_usize("WS_BENCH_SOCKETS", 10_000);
    let messages = env_usize("WS_BENCH_MESSAGES", 2_000);
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).expect("bench data folder");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let server = start(&dir.path().join("memory"));
        memory(&server, sockets).await;
        drop(server);
        let server = start(&dir.path().join("broadcast"));
        broadcast(&server, "hundred", 100, messages).await;
        broadcast(&server, "thousand", 1_000, (messages / 10).max(1)).await;
    });
}
