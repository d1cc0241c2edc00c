//! The server's testing toolkit (feature `testing`): a [`TestClient`] that sends HTTP
//! requests and opens WebSockets to an axum `Router` in memory (real HTTP/1.1 framing and
//! upgrades over an in-process pipe, no port), [`start_server`] for the real server on a
//! free loopback port, and [`test_env`], a `durable_objects::testing::TestEnv` built from the
//! same configuration the server reads. The object-side helpers are in
//! `durable_objects::testing`; the testing guide (`docs/testing.md`) shows both together.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use durable_runtime::testing::{PATIENCE, TestEnv};
use durable_runtime::{Env, RuntimeBuilder, StartError};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self as ws, Message};

use crate::config::Config;
use crate::server::{Server, ServerBuilder, ServerError};

/// What can go wrong talking to a router or a server in a test.
///
/// ```
/// # use durable_server::axum::{Router, routing::get};
/// use durable_server::testing::{TestClient, TestClientError};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let client = TestClient::new(Router::new().route("/", get(|| async { "not a socket" })));
/// match client.websocket("/").await {
///     Err(TestClientError::NotUpgraded { status, .. }) => assert_eq!(status, 200),
///     other => panic!("expected a refused upgrade, got {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestClientError {
    /// The HTTP exchange failed.
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad path or header).
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    /// A WebSocket upgrade was answered with something other than `101`.
    #[error("the WebSocket upgrade was refused with {status}: {body}")]
    NotUpgraded {
        /// The status of the answer.
        status: StatusCode,
        /// Its body, as text.
        body: String,
    },
    /// The WebSocket failed.
    #[error("WebSocket failed: {0}")]
    WebSocket(#[from] ws::Error),
    /// Nothing arrived within [`PATIENCE`].
    #[error("waited {seconds} s for {0}", seconds = PATIENCE.as_secs())]
    TimedOut(&'static str),
    /// A frame of another kind arrived than the one asked for.
    #[error("expected {expected}, got {got:?}")]
    Unexpected {
        /// What was asked for.
        expected: &'static str,
        /// What came.
        got: TestFrame,
    },
}

/// An HTTP response, read in full.
///
/// ```
/// # use durable_server::axum::{Router, routing::get};
/// # use durable_server::testing::TestClient;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let router = Router::new().route("/", get(|| async { ([("x-kind", "demo")], "body") }));
/// let response = TestClient::new(router).get("/").await?;
/// assert_eq!(response.status, 200);
/// assert_eq!(response.headers["x-kind"], "demo");
/// assert_eq!(&response.body[..], b"body");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text (invalid UTF-8 replaced).
    ///
    /// ```
    /// # use durable_server::axum::{Router, routing::get};
    /// # use durable_server::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let client = TestClient::new(Router::new().route("/", get(|| async { "home" })));
    /// assert_eq!(client.get("/").await?.text(), "home");
    /// # Ok(()) }
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// ```
    /// # use durable_server::axum::{Json, Router, routing::get};
    /// # use durable_server::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let router = Router::new().route("/n", get(|| async { Json(serde_json::json!({"n": 3})) }));
    /// let body: serde_json::Value = TestClient::new(router).get("/n").await?.json()?;
    /// assert_eq!(body["n"], 3);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// If the body is not JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Sends requests and opens WebSockets to a `Router` without a network: each exchange runs
/// the real HTTP/1.1 protocol (and WebSocket upgrade) over an in-memory pipe, so extractors,
/// [`forward`](crate::forward) and upgrades behave as they do behind a socket.
///
/// ```
/// use durable_server::axum::{Router, routing::get};
/// use durable_server::testing::TestClient;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let router = Router::new().route("/hello", get(|| async { "hi" }));
/// let client = TestClient::new(router);
/// let response = client.get("/hello").await?;
/// assert_eq!(response.status, 200);
/// assert_eq!(response.text(), "hi");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestClient {
    router: Router,
}

impl TestClient {
    /// A client for `router` (as [`ServerBuilder::router`](crate::ServerBuilder::router)
    /// would serve it, without the server's own `/metrics` and `/health` routes).
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Opens a connection to the router: the server half runs on a task.
    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Body>, TestClientError> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut app = router.clone();
            async move {
                let response: Result<axum::response::Response, Infallible> =
                    tower_service::Service::call(&mut app, request.map(Body::new)).await;
                response
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service)
                .with_upgrades(),
        );
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await?;
        tokio::spawn(connection.with_upgrades());
        Ok(sender)
    }

    /// Sends `request` (its URI a path such as `/rooms/a?x=1`; a `Host` is added if it has
    /// none) and reads the whole response.
    ///
    /// ```
    /// # use durable_server::axum::{Router, routing::post};
    /// # use durable_server::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let client = TestClient::new(Router::new().route("/echo", post(|body: String| async move { body })));
    /// let request = http::Request::post("/echo").body("ping".into())?;
    /// assert_eq!(client.request(request).await?.text(), "ping");
    /// # Ok(()) }
    /// ```
    pub async fn request(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<TestResponse, TestClientError> {
        if !request.headers().contains_key(header::HOST) {
            request
                .headers_mut()
                .insert(header::HOST, header::HeaderValue::from_static("test.local"));
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .map_err(|_| TestClientError::TimedOut("the response body"))?;
        Ok(TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// A `GET` of `path`.
    ///
    /// See [`TestClient`] for an example.
    pub async fn get(&self, path: &str) -> Result<TestResponse, TestClientError> {
        self.request(http::Request::get(path).body(Body::empty())?)
            .await
    }

    /// A `POST` of `body` to `path`.
    ///
    /// ```
    /// # use durable_server::axum::{Router, routing::post};
    /// # use durable_server::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let client = TestClient::new(Router::new().route("/len", post(|body: String| async move { body.len().to_string() })));
    /// assert_eq!(client.post("/len", "four").await?.text(), "4");
    /// # Ok(()) }
    /// ```
    pub async fn post(
        &self,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<TestResponse, TestClientError> {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .body(Body::from(body.into()))?;
        self.request(request).await
    }

    /// Opens a WebSocket to `path` (the router must answer the upgrade with `101`, as
    /// [`forward`](crate::forward) does for an object that accepts a socket).
    ///
    /// ```
    /// use durable_server::axum::{Router, routing::any, extract::ws::{WebSocketUpgrade, Message}};
    /// use durable_server::testing::{TestClient, TestFrame};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let router = Router::new().route("/echo", any(|upgrade: WebSocketUpgrade| async move {
    ///     upgrade.on_upgrade(|mut socket| async move {
    ///         while let Some(Ok(Message::Text(text))) = socket.recv().await {
    ///             let _ = socket.send(Message::Text(text)).await;
    ///         }
    ///     })
    /// }));
    /// let mut socket = TestClient::new(router).websocket("/echo").await?;
    /// socket.send_text("hello").await?;
    /// assert_eq!(socket.recv().await?, TestFrame::Text("hello".into()));
    /// socket.close(1000, "done").await?;
    /// # Ok(()) }
    /// ```
    pub async fn websocket(&self, path: &str) -> Result<TestWebSocket, TestClientError> {
        let request = http::Request::get(path)
            .header(header::HOST, "test.local")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(
                header::SEC_WEBSOCKET_KEY,
                ws::handshake::client::generate_key(),
            )
            .body(Body::empty())?;
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let body = axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
                .await
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            return Err(TestClientError::NotUpgraded { status, body });
        }
        let upgraded = hyper::upgrade::on(response).await?;
        let stream =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        Ok(TestWebSocket { stream })
    }
}

/// A frame a [`TestWebSocket`] received (pings and pongs are answered and skipped).
///
/// ```
/// use durable_server::axum::{Router, routing::any, extract::ws::{CloseFrame, Message, WebSocketUpgrade}};
/// use durable_server::testing::{TestClient, TestFrame};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let router = Router::new().route("/bye", any(|upgrade: WebSocketUpgrade| async move {
///     upgrade.on_upgrade(|mut socket| async move {
///         let close = CloseFrame { code: 4000, reason: "done".into() };
///         let _ = socket.send(Message::Close(Some(close))).await;
///     })
/// }));
/// let mut socket = TestClient::new(router).websocket("/bye").await?;
/// assert_eq!(socket.recv().await?, TestFrame::Close { code: 4000, reason: "done".into() });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestFrame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The peer's Close frame (code 1005 if it sent none).
    Close {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

/// The client end of a WebSocket opened by [`TestClient::websocket`]. Every wait is bounded
/// by [`PATIENCE`]: a test fails instead of hanging.
///
/// ```
/// use durable_server::axum::{Router, routing::any, extract::ws::WebSocketUpgrade};
/// use durable_server::testing::{TestClient, TestClientError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// // A server that accepts and then ends the connection without a Close frame.
/// let router = Router::new().route("/drop", any(|upgrade: WebSocketUpgrade| async move {
///     upgrade.on_upgrade(|socket| async move { drop(socket) })
/// }));
/// let mut socket = TestClient::new(router).websocket("/drop").await?;
/// assert!(socket.recv().await.is_err(), "an error, not a hang");
/// # Ok(()) }
/// ```
pub struct TestWebSocket {
    stream: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
}

impl std::fmt::Debug for TestWebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestWebSocket").finish_non_exhaustive()
    }
}

impl TestWebSocket {
    /// Sends a text message.
    ///
    /// See [`TestClient::websocket`] for an example.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), TestClientError> {
        self.send(Message::text(text.into())).await
    }

    /// Sends a binary message.
    ///
    /// ```
    /// use durable_server::axum::{Router, routing::any, extract::ws::{WebSocketUpgrade, Message}};
    /// use durable_server::testing::{TestClient, TestFrame};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let router = Router::new().route("/len", any(|upgrade: WebSocketUpgrade| async move {
    ///     upgrade.on_upgrade(|mut socket| async move {
    ///         while let Some(Ok(Message::Binary(bytes))) = socket.recv().await {
    ///             let _ = socket.send(Message::Text(bytes.len().to_string().into())).await;
    ///         }
    ///     })
    /// }));
    /// let mut socket = TestClient::new(router).websocket("/len").await?;
    /// socket.send_binary(vec![1, 2, 3]).await?;
    /// assert_eq!(socket.recv_text().await?, "3");
    /// # Ok(()) }
    /// ```
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) -> Result<(), TestClientError> {
        self.send(Message::binary(bytes.into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), TestClientError> {
        tokio::time::timeout(PATIENCE, self.stream.send(message))
            .await
            .map_err(|_| TestClientError::TimedOut("the socket to take a message"))??;
        Ok(())
    }

    /// The next message or Close frame; an error if the connection ended without a Close
    /// frame or nothing came within [`PATIENCE`].
    ///
    /// See [`TestClient::websocket`] for an example.
    pub async fn recv(&mut self) -> Result<TestFrame, TestClientError> {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .map_err(|_| TestClientError::TimedOut("a WebSocket frame"))?;
            let message = match next {
                Some(message) => message?,
                None => return Err(TestClientError::WebSocket(ws::Error::ConnectionClosed)),
            };
            return Ok(match message {
                Message::Text(text) => TestFrame::Text(text.as_str().to_owned()),
                Message::Binary(bytes) => TestFrame::Binary(bytes.to_vec()),
                Message::Close(frame) => match frame {
                    Some(frame) => TestFrame::Close {
                        code: frame.code.into(),
                        reason: frame.reason.as_str().to_owned(),
                    },
                    None => TestFrame::Close {
                        code: 1005,
                        reason: String::new(),
                    },
                },
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            });
        }
    }

    /// The next frame, which must be a text message (see [`send_binary`](Self::send_binary)
    /// for an example); anything else is [`TestClientError::Unexpected`].
    pub async fn recv_text(&mut self) -> Result<String, TestClientError> {
        match self.recv().await? {
            TestFrame::Text(text) => Ok(text),
            got => Err(TestClientError::Unexpected {
                expected: "a text message",
                got,
            }),
        }
    }

    /// Sends a Close frame with `code` and `reason`, and waits for the peer's Close (see
    /// [`TestClient::websocket`] for an example).
    pub async fn close(mut self, code: u16, reason: &str) -> Result<(), TestClientError> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        tokio::time::timeout(PATIENCE, self.stream.close(Some(frame)))
            .await
            .map_err(|_| TestClientError::TimedOut("the Close frame to be sent"))??;
        // Drain until the peer's Close (or the end).
        loop {
            match tokio::time::timeout(PATIENCE, self.stream.next()).await {
                Err(_) => return Err(TestClientError::TimedOut("the peer's Close frame")),
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Ok(()),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// The real server, started by [`start_server`] on a free port of 127.0.0.1; dropping it
/// stops it too (without waiting).
///
/// ```
/// # use durable_server::{Server, axum::{Router, routing::get}, config::{Config, Format}};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let builder = Server::builder(Config::parse("{}", Format::Jsonc)?)
///     .router(|_| Router::new().route("/", get(|| async { "up" })));
/// let server: durable_server::testing::RunningServer =
///     durable_server::testing::start_server(builder).await?;
/// let addr = server.addr();
/// server.stop().await?;
/// assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    env: Env,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<Result<(), ServerError>>,
    _data: Option<tempfile::TempDir>,
}

/// Binds `builder` to 127.0.0.1 on a free port (a data folder of its own, removed when the
/// server is dropped, unless the builder names one) and serves it on a task until
/// [`RunningServer::stop`].
///
/// ```
/// use durable_server::{Server, axum::{Router, routing::get}, config::{Config, Format}};
/// use durable_server::testing::start_server;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let builder = Server::builder(Config::parse("{}", Format::Jsonc)?)
///     .router(|_env| Router::new().route("/", get(|| async { "up" })));
/// let server = start_server(builder).await?;
/// assert!(server.url("/").starts_with("http://127.0.0.1:"));
/// server.stop().await?;
/// # Ok(()) }
/// ```
pub async fn start_server(builder: ServerBuilder) -> Result<RunningServer, ServerError> {
    let mut builder = builder.listen(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut data = None;
    if !builder.has_data_dir() {
        let dir = tempfile::Builder::new()
            .prefix("durable-test-server-")
            .tempdir()
            .map_err(ServerError::Serve)?;
        builder = builder.data_dir(dir.path());
        data = Some(dir);
    }
    let server: Server = builder.bind().await?;
    let addr = server.local_addr();
    let admin = server.admin_addr();
    let env = server.env();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(RunningServer {
        addr,
        admin,
        env,
        stop: Some(stop),
        serving,
        _data: data,
    })
}

impl RunningServer {
    /// The address it listens on.
    ///
    /// ```
    /// # use durable_server::{Server, axum::Router, config::{Config, Format}};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let builder = Server::builder(Config::parse("{}", Format::Jsonc)?).router(|_| Router::new());
    /// let server = durable_server::testing::start_server(builder).await?;
    /// assert!(server.addr().ip().is_loopback());
    /// assert_eq!(server.url("/x"), format!("http://{}/x", server.addr()));
    /// assert_eq!(server.env().vars().count(), 0);
    /// server.stop().await?;
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the admin API listens on, when the builder turned it on
    /// ([`ServerBuilder::admin_listen`](crate::server::ServerBuilder::admin_listen)).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// `http://127.0.0.1:<port><path>` (see [`addr`](Self::addr) for an example).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's environment, to reach objects directly (see [`addr`](Self::addr) for an
    /// example).
    pub fn env(&self) -> Env {
        self.env.clone()
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    ///
    /// See [`start_server`] for an example.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.serving).await {
            Ok(result) => result,
            Err(join) => Err(ServerError::Serve(std::io::Error::other(join))),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A [`TestEnv`] whose runtime is configured by `config`, as the server's would be (its
/// bindings, variables, migrations and `durable` settings), with the classes `classes`
/// registers, over the test's own data folder.
///
/// ```
/// use durable_objects::prelude::*;
/// use durable_server::config::{Config, Format};
///
/// #[durable_object]
/// pub struct Room;
/// impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
///
/// # fn main() -> anyhow::Result<()> {
/// // In a real test: Config::load("wrangler.jsonc")?
/// let config = Config::parse(r#"{
///     "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
///     "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }]
/// }"#, Format::Jsonc)?;
/// let test = durable_server::testing::test_env(&config, |runtime| runtime.class::<Room>())?;
/// test.env().namespace::<Room>("ROOMS")?;
/// # Ok(()) }
/// ```
pub fn test_env(
    config: &Config,
    classes: impl Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync + 'static,
) -> Result<TestEnv, StartError> {
    let config = config.clone();
    TestEnv::new(move |runtime| classes(config.apply_to(runtime)))
}
