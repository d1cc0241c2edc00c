//! The [`Server`]: a runtime built from a [`Config`], the user's axum `Router` in front of it,
//! `/metrics`, request logging, and graceful shutdown; and [`run_main`], the whole `main` of
//! a server binary (flags, configuration discovery, overrides, exit codes) in one call.
//!
//! Shutdown (SIGTERM, Ctrl-C, or the future given to [`Server::run_until`]): stop accepting
//! connections; let in-flight requests finish, up to the shutdown timeout (30 s by default);
//! close WebSockets with 1001; then stop the runtime, which commits what objects wrote and
//! closes their databases.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use durable_runtime::{DurableObject, Env, MetricsHandle, Runtime, RuntimeBuilder, StartError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::cli::{Args, usage};
use crate::config::{Config, ConfigError, Format};
use crate::connections::{self, ConnectionLimits};
use crate::front::ShutdownSignal;
use crate::{admin, metrics};

/// Where the server listens when neither the configuration nor a flag says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// The data folder when neither the configuration nor a flag says.
pub const DEFAULT_DATA_DIR: &str = ".durable";
/// How long shutdown waits for in-flight work by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The runtime refused to start (data folder, bindings, migrations).
    #[error(transparent)]
    Runtime(#[from] StartError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// The command line is not understood.
    #[error(transparent)]
    Usage(#[from] crate::cli::ArgsError),
    /// The working directory (where the configuration is looked for) cannot be read.
    #[error("cannot read the working directory: {0}")]
    WorkingDirectory(std::io::Error),
    /// The configuration could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The admin API's token (or address file) could not be read or written.
    #[error("admin API: {}: {source}", path.display())]
    AdminToken {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// What a server binary's command line asks for.
#[derive(Debug)]
#[non_exhaustive]
pub enum Launch {
    /// Serve with this builder (flags and configuration applied).
    Serve(Box<ServerBuilder>),
    /// Print this usage text and exit.
    Help(String),
}

type MakeRouter = Box<dyn FnOnce(Env) -> Router + Send>;

/// Configures a [`Server`].
pub struct ServerBuilder {
    config: Config,
    runtime: RuntimeBuilder,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    router: Option<MakeRouter>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// A builder from a server binary's command line `args` (without the program name):
    /// `--config FILE`, else `wrangler.jsonc`, `wrangler.json` or `wrangler.toml` in the
    /// working directory, else `fallback` (JSONC text built into the binary), with
    /// `--listen` and `--data` over what the configuration says. `--help` asks for the
    /// usage of the binary called `name`.
    pub fn from_args(
        name: &str,
        args: impl IntoIterator<Item = String>,
        fallback: Option<&str>,
    ) -> Result<Launch, ServerError> {
        let args = Args::parse(args)?;
        if args.help {
            return Ok(Launch::Help(usage(name)));
        }
        let config = match &args.config {
            Some(path) => Config::load(path)?,
            None => {
                let here = std::env::current_dir().map_err(ServerError::WorkingDirectory)?;
                match (Config::find(&here), fallback) {
                    (Some(path), _) => Config::load(&path)?,
                    (None, Some(text)) => Config::parse(text, Format::Jsonc)?,
                    (None, None) => Config::discover(&here)?,
                }
            }
        };
        let mut builder = ServerBuilder::new(config);
        if let Some(listen) = args.listen {
            builder = builder.listen(listen);
        }
        if let Some(data) = args.data {
            builder = builder.data_dir(data);
        }
        if let Some(admin) = args.admin_listen {
            builder = builder.admin_listen(admin);
        }
        Ok(Launch::Serve(Box::new(builder)))
    }

    /// A server for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            runtime: Runtime::builder(),
            listen: None,
            admin_listen: None,
            data_dir: None,
            router: None,
        }
    }

    /// Makes class `T` available to the configuration's bindings.
    pub fn class<T: DurableObject>(mut self) -> Self {
        self.runtime = self.runtime.class::<T>();
        self
    }

    /// Listens on `addr` (over the configuration's `durable.listen`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Serves the admin API and console on `addr` (over the configuration's
    /// `durable.admin.listen`; off when neither says).
    pub fn admin_listen(mut self, addr: SocketAddr) -> Self {
        self.admin_listen = Some(addr);
        self
    }

    /// Keeps data in `path` (over the configuration's `durable.data_dir`).
    pub fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(path.into());
        self
    }

    /// True if a data folder was given with [`data_dir`](Self::data_dir).
    #[cfg(feature = "testing")]
    pub(crate) fn has_data_dir(&self) -> bool {
        self.data_dir.is_some()
    }

    /// Adjusts runtime settings; settings the configuration gives win over these.
    pub fn runtime(mut self, configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder) -> Self {
        self.runtime = configure(self.runtime);
        self
    }

    /// The stateless front: builds the router from the `Env`. The path `/metrics` is the
    /// server's own and must not be routed.
    pub fn router(mut self, make: impl FnOnce(Env) -> Router + Send + 'static) -> Self {
        self.router = Some(Box::new(make));
        self
    }

    /// The stateless front as one function, like a Worker's `fetch(request, env)`: every
    /// request (but `/metrics`) goes to `handler`. An alternative to [`router`](Self::router).
    pub fn fetch<F, Fut>(self, handler: F) -> Self
    where
        F: Fn(Request, Env) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        self.router(move |env: Env| {
            Router::new().fallback(move |request: Request| {
                let handler = handler.clone();
                let env = env.clone();
                async move { handler(request, env).await }
            })
        })
    }

    /// Starts the runtime (applying migrations) and opens the listening socket.
    pub async fn bind(self) -> Result<Server, ServerError> {
        let config = self.config;
        let data_dir = self
            .data_dir
            .or_else(|| config.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen = self
            .listen
            .or(config.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
        let runtime = config.apply_to(self.runtime.data_dir(&data_dir));
        // The runtime raises the descriptor limit and takes its share for databases; the
        // connections get theirs.
        let runtime = runtime.build()?;
        let budget = durable_runtime::DescriptorBudget::of_process();
        let limits = ConnectionLimits {
            max: config
                .connections
                .max_connections
                .unwrap_or(budget.connections)
                .max(1),
            header_timeout: config
                .connections
                .header_timeout
                .unwrap_or(connections::DEFAULT_HEADER_TIMEOUT),
            keep_alive_timeout: config
                .connections
                .keep_alive_timeout
                .unwrap_or(connections::DEFAULT_KEEP_ALIVE_TIMEOUT),
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(ServerError::Serve)?;
        let router = match self.router {
            Some(make) => make(runtime.env()),
            None => Router::new(),
        };
        let admin = match self.admin_listen.or(config.admin_listen) {
            None => {
                // A file left by a run with the admin API on would point `durable` at nothing.
                let stale = durable_storage::DataLayout::new(&data_dir).admin_address();
                if let Err(error) = std::fs::remove_file(&stale)
                    && error.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(%error, "could not remove {}", stale.display());
                }
                None
            }
            Some(addr) => Some(bind_admin(&runtime, &data_dir, addr).await?),
        };
        tracing::info!(
            listen = %local_addr,
            data_dir = %data_dir.display(),
            bindings = config.bindings.len(),
            file_descriptors = budget.limit,
            max_connections = limits.max,
            "server ready"
        );
        Ok(Server {
            runtime,
            listener,
            router,
            local_addr,
            shutdown_timeout: config.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            limits,
            admin,
        })
    }
}

/// The admin listener: its socket, its routes, where it listens.
#[derive(Debug)]
struct AdminListener {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
}

/// Opens the admin API's socket, with its token (made at the first start) and the file that
/// tells `durable` where it listens.
async fn bind_admin(
    runtime: &Runtime,
    data_dir: &std::path::Path,
    addr: SocketAddr,
) -> Result<AdminListener, ServerError> {
    let layout = durable_storage::DataLayout::new(data_dir);
    let token = admin::token(&layout).map_err(|source| ServerError::AdminToken {
        path: layout.admin_token(),
        source,
    })?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })?;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    admin::write_private(&layout.admin_address(), &format!("{addr}\n")).map_err(|source| {
        ServerError::AdminToken {
            path: layout.admin_address(),
            source,
        }
    })?;
    let state = admin::AdminState::new(runtime.admin(), runtime.metrics_handle(), token);
    let router = admin::router(state.clone())
        .merge(crate::console::router(state.clone()))
        .with_state(state);
    tracing::info!(admin = %addr, console = %format!("http://{addr}/login"), "admin API and console ready (the token is the data folder's admin.token)");
    Ok(AdminListener {
        listener,
        router,
        addr,
    })
}

/// A runtime with an HTTP front, ready to serve.
#[derive(Debug)]
pub struct Server {
    runtime: Runtime,
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    shutdown_timeout: Duration,
    limits: ConnectionLimits,
    admin: Option<AdminListener>,
}

/// What the request middleware shares.
struct Front {
    stop: watch::Receiver<bool>,
    /// Responses by status class: 1xx..5xx.
    responses: [AtomicU64; 5],
}

impl Server {
    /// A builder for `config`.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder::new(config)
    }

    /// The address the server listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the admin API listens on, if it is on (the real port when 0 was asked
    /// for).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|admin| admin.addr)
    }

    /// The environment the router was built with.
    pub fn env(&self) -> Env {
        self.runtime.env()
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run(self) -> Result<(), ServerError> {
        self.run_until(termination()).await
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            runtime,
            listener,
            router,
            local_addr: _,
            shutdown_timeout,
            limits,
            admin,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(admin) = admin {
            let mut stopped = stop_rx.clone();
            tokio::spawn(async move {
                let serving =
                    axum::serve(admin.listener, admin.router).with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    });
                if let Err(error) = serving.await {
                    tracing::error!(%error, "the admin API stopped");
                }
            });
        }
        let front = Arc::new(Front {
            stop: stop_rx.clone(),
            responses: Default::default(),
        });
        let handle = runtime.metrics_handle();
        let metrics_front = Arc::clone(&front);
        let health = runtime.metrics_handle();
        let app = router
            .route(
                "/health/shards",
                get(move || {
                    let health = health.health();
                    async move { shard_health(&health) }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let text = render(&handle, &metrics_front);
                    async move { ([(http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text) }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&front),
                track,
            ));
        let stop_signal = stop_tx.clone();
        let serve = connections::serve(listener, app, limits, async move {
            signal.await;
            tracing::info!("shutting down: no new connections; closing WebSockets with 1001");
            let _ = stop_signal.send(true);
        });
        let mut serving = tokio::spawn(serve);
        let mut stopped = stop_rx.clone();
        let result = tokio::select! {
            result = &mut serving => Some(result),
            _ = stopped.wait_for(|stop| *stop) => None,
        };
        let outcome = match result {
            Some(result) => flatten(result),
            None => match tokio::time::timeout(shutdown_timeout, &mut serving).await {
                Ok(result) => flatten(result),
                Err(_) => {
                    tracing::warn!(
                        timeout_ms = shutdown_timeout.as_millis() as u64,
                        "in-flight requests did not finish in time; stopping anyway"
                    );
                    serving.abort();
                    Ok(())
                }
            },
        };
        // Let the WebSocket tasks send their close frames (bounded by the same timeout).
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        while runtime.metrics().web_sockets_open > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(stop_tx);
        tokio::task::spawn_blocking(move || runtime.shutdown())
            .await
            .map_err(|err| ServerError::Serve(std::io::Error::other(err)))?;
        tracing::info!("server stopped");
        outcome
    }
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServerError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(ServerError::Serve(err)),
        Err(err) => Err(ServerError::Serve(std::io::Error::other(err))),
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Logs each request in a span, counts responses, and hands WebSocket connections the
/// shutdown signal.
async fn track(State(front): State<Arc<Front>>, mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(ShutdownSignal(front.stop.clone()));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path()
    );
    let response = next.run(request).instrument(span.clone()).await;
    let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
    front.responses[class].fetch_add(1, Ordering::Relaxed);
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "response"));
    response
}

/// `GET /health/shards`: every shard's state and the disk's, as JSON; `503` while a shard is
/// stalled or the disk is full.
fn shard_health(health: &durable_runtime::NodeHealth) -> Response {
    let shards: Vec<serde_json::Value> = health
        .shards
        .iter()
        .map(|shard| {
            serde_json::json!({
                "index": shard.index,
                "stalled": shard.stalled,
                "turn_running_ms": shard.turn_running_ms,
            })
        })
        .collect();
    let body = serde_json::json!({
        "healthy": health.is_healthy(),
        "disk_full": health.disk_full,
        "shards": shards,
    });
    let status = if health.is_healthy() {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn render(handle: &MetricsHandle, front: &Front) -> String {
    let responses: Vec<u64> = front
        .responses
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    metrics::render(&handle.snapshot(), &responses)
}

/// The whole `main` of a server binary: logging, the command line
/// ([`ServerBuilder::from_args`]), `configure` (register classes, the router), bind, print
/// `listening on http://ADDR` on stdout, serve until SIGTERM or Ctrl-C. Errors go to stderr
/// as `name: message`; the exit code is 2 for a bad command line or configuration, 1 when
/// the server cannot start or fails.
///
/// ```no_run
/// use durable_objects::prelude::*;
/// use durable_server::axum::Router;
///
/// #[durable_object]
/// pub struct Counter;
/// impl DurableObject for Counter {
///     fn new(_: State, _: Env) -> Self {
///         Counter
///     }
/// }
///
/// const CONFIG: &str = r#"{
///     "durable_objects": { "bindings": [{ "name": "COUNTER", "class_name": "Counter" }] },
///     "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Counter"] }]
/// }"#;
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     durable_server::run_main("my-server", Some(CONFIG), |server| {
///         server.class::<Counter>().router(|env: Env| Router::new().with_state(env))
///     })
///     .await
/// }
/// ```
#[allow(clippy::print_stdout, clippy::print_stderr)] // A binary's main speaks to its terminal.
pub async fn run_main(
    name: &str,
    fallback_config: Option<&str>,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> ExitCode {
    crate::init_logging();
    let builder = match ServerBuilder::from_args(name, std::env::args().skip(1), fallback_config) {
        Ok(Launch::Serve(builder)) => *builder,
        Ok(Launch::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(2);
        }
    };
    let server = match configure(builder).bind().await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    match server.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: {err}");
            ExitCode::FAILURE
        }
    }
}
