//! The server of durable-objects: the stateless front in front of a runtime.
//!
//! A server binary is one call: [`run_main`] reads the flags (`--listen`, `--data`,
//! `--config`), finds the configuration (`wrangler.jsonc` / `.json` / `.toml`), lets you
//! register your classes and your axum `Router` (which holds the [`Env`](durable_runtime::Env)
//! and forwards requests to objects with [`forward`]), and serves until SIGTERM or Ctrl-C:
//!
//! ```no_run
//! use durable_objects::prelude::*;
//! use durable_server::axum::Router;
//! use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
//! use durable_server::axum::routing::any;
//!
//! #[durable_object]
//! pub struct Room {
//!     state: State,
//! }
//!
//! impl DurableObject for Room {
//!     fn new(state: State, _: Env) -> Self {
//!         Self { state }
//!     }
//!
//!     async fn fetch(&self, _request: Request) -> Result<Response> {
//!         let visits: u64 = self.state.storage().kv().get("visits")?.unwrap_or(0) + 1;
//!         self.state.storage().kv().put("visits", &visits)?;
//!         Ok(Response::new(Body::from(visits.to_string())))
//!     }
//! }
//!
//! const CONFIG: &str = r#"{
//!     "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
//!     "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }]
//! }"#;
//!
//! fn router(env: Env) -> Router {
//!     Router::new()
//!         .route(
//!             "/rooms/{name}",
//!             any(|Front(env): Front<Env>, Path(name): Path<String>, request: HttpRequest| async move {
//!                 match env.namespace::<Room>("ROOMS") {
//!                     Ok(rooms) => durable_server::forward(&rooms.get_by_name(&name), request).await,
//!                     Err(err) => durable_server::error_to_response(&err),
//!                 }
//!             }),
//!         )
//!         .with_state(env)
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     // `my-server --listen 127.0.0.1:8787 --data ./.durable`; the configuration comes from
//!     // --config, else ./wrangler.jsonc (or .json, .toml), else CONFIG.
//!     durable_server::run_main("my-server", Some(CONFIG), |server| {
//!         server.class::<Room>().router(router)
//!     })
//!     .await
//! }
//! ```
//!
//! The parts:
//!
//! * [`config`]: `wrangler.jsonc` / `wrangler.json` / `wrangler.toml` (the subset that applies,
//!   plus our own `durable` keys), parsed into typed structs.
//! * [`server`]: [`Server`] builds the runtime from the configuration, serves the user's axum
//!   `Router` (which holds the `Env`), `/metrics`, and shuts down gracefully; [`run_main`].
//! * [`front`]: [`forward`] sends an HTTP request or WebSocket upgrade to an object's `fetch`.
//! * [`api`]: [`ApiError`], what route handlers return, and how runtime errors map to HTTP
//!   statuses and JSON bodies (no server-side detail leaks to clients).
//! * `socket`: the task joining one WebSocket connection to an object's socket.
//! * [`connections`]: the accept loop: the connection cap (with room for `/health` past
//!   it), the header and keep-alive timeouts, graceful draining.
//! * `framing`: refuses requests with both `Content-Length` and `Transfer-Encoding`
//!   before hyper reads them.
//! * [`metrics`]: the Prometheus / OpenMetrics text. [`cli`]: the flags of server binaries.
//!
//! Dependency direction: this crate uses `durable-runtime`; nothing below it knows of HTTP
//! servers or configuration files.

pub mod admin;
pub mod api;
pub mod cli;
pub mod config;
pub mod connections;
mod console;
mod framing;
pub mod front;
pub mod metrics;
pub mod server;
mod socket;
#[cfg(feature = "testing")]
pub mod testing;

pub use api::{ApiError, error_response, error_to_response, status_for};
pub use axum;
pub use config::{Config, ConfigError};
pub use front::{forward, into_axum};
pub use server::{Launch, Server, ServerBuilder, ServerError, run_main, termination};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Call once at the start of `main`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
