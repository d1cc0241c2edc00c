//! The front over a real socket: request bodies stream to the object as they arrive,
//! response bodies stream back, runtime errors become JSON errors (503 with `Retry-After`
//! when an object is overloaded), and `/metrics` is served.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use durable_objects::prelude::*;
use durable_server::axum::Router;
use durable_server::axum::extract::{Path, Request as AxumRequest, State as AxumState};
use durable_server::axum::routing::any;
use durable_server::config::Format;
use durable_server::{Config, Server, ServerBuilder, forward};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static FIRST_CHUNK_SEEN: AtomicBool = AtomicBool::new(false);

#[durable_object]
pub struct Pipe {
    state: State,
}

impl DurableObject for Pipe {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let path = request.uri().path().to_owned();
        let mut body = request.into_body();
        if path.ends_with("/slow") {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(Response::new(Body::from("slow")));
        }
        // Read the first chunk, tell the client, then stream the rest back as counts.
        let first = body.chunk().await.transpose()?.unwrap_or_default();
        FIRST_CHUNK_SEEN.store(true, Ordering::SeqCst);
        let (sender, out) = Body::channel(4);
        self.state.spawn(async move {
            let _ = sender.send(format!("first {}\n", first.len())).await;
            let mut rest = 0;
            while let Some(Ok(chunk)) = body.chunk().await {
                rest += chunk.len();
            }
            let _ = sender.send(format!("rest {rest}\n")).await;
        })?;
        Ok(Response::new(out))
    }
}

#[rpc]
impl Pipe {}

fn config() -> Config {
    Config::parse(
        r#"{
            "durable_objects": { "bindings": [{ "name": "PIPE", "class_name": "Pipe" }] },
            "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Pipe"] }],
            "durable": { "max_queued_events": 1 }
        }"#,
        Format::Jsonc,
    )
    .unwrap()
}

/// A server for `Pipe` on 127.0.0.1:0 over `dir`, with the front still to choose.
fn builder(dir: &std::path::Path) -> ServerBuilder {
    Server::builder(config())
        .class::<Pipe>()
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(dir)
}

/// Serves `builder` until the returned sender fires; the handle ends with the server.
async fn serve(
    builder: ServerBuilder,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), durable_server::ServerError>>,
) {
    let server = builder.bind().await.unwrap();
    let addr = server.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    (addr, stop, serving)
}

/// The router front: `/pipe/{name}/...` goes to the `Pipe` called `name`.
async fn start(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let front = builder(dir).router(|env: Env| {
        Router::new()
            .route(
                "/pipe/{name}/{*rest}",
                any(
                    |AxumState(env): AxumState<Env>,
                     Path((name, _)): Path<(String, String)>,
                     request: AxumRequest| async move {
                        forward(
                            &env.namespace::<Pipe>("PIPE").unwrap().get_by_name(&name),
                            request,
                        )
                        .await
                    },
                ),
            )
            .with_state(env)
    });
    let (addr, stop, _) = serve(front).await;
    (addr, stop)
}

/// A GET with `Connection: close`; the whole raw response.
async fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    read_all(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_function_can_be_the_front() {
    let dir = tempfile::tempdir().unwrap();
    let front = builder(dir.path()).fetch(|request: AxumRequest, env: Env| async move {
        let name = request.uri().path().trim_start_matches('/').to_owned();
        forward(
            &env.namespace::<Pipe>("PIPE").unwrap().get_by_name(&name),
            request,
        )
        .await
    });
    let (addr, stop, serving) = serve(front).await;
    let answer = get(&addr, "/fn/slow").await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"),
        "{answer}"
    );
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start(dir.path()).await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /pipe/p/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .await
        .unwrap();
    // The rest is sent only once the object has read the first chunk: a front that
    // buffered whole bodies would never get there.
    tokio::time::timeout(Duration::from_secs(20), async {
        while !FIRST_CHUNK_SEEN.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the object saw the first chunk before the body was complete");
    let chunk = vec![b'x'; 100_000];
    for _ in 0..10 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let response = read_all(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{response}"
    );
    assert!(response.contains("first 5\n"), "{response}");
    assert!(response.contains("rest 1000000\n"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_object_answers_503_with_retry_after_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop) = start(dir.path()).await;
    let slow = |addr: String| async move { get(&addr, "/pipe/busy/slow").await };
    let first = tokio::spawn(slow(addr.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = slow(addr.clone()).await;
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("retry-after: 1"),
        "{second}"
    );
    assert!(
        second.contains("\"error\":\"object is overloaded"),
        "{second}"
    );
    assert!(first.await.unwrap().starts_with("HTTP/1.1 200"));

    let metrics = get(&addr, "/metrics").await;
    assert!(
        metrics.contains("durable_http_responses_total{code=\"5xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("durable_object_requests_total{kind=\"fetch\"} 1"),
        "{metrics}"
    );
    stop.send(()).unwrap();
}
