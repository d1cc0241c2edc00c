//! The server of durable-objects: the stateless front in front of a runtime.
//!
//! * [`config`]: `wrangler.jsonc` / `wrangler.json` / `wrangler.toml` (the subset that applies,
//!   plus our own `durable` keys).
//! * [`server`]: [`Server`] builds the runtime from the configuration, serves the user's axum
//!   `Router` (which holds the `Env`), `/metrics`, and shuts down gracefully.
//! * [`front`]: [`forward`] sends an HTTP request or WebSocket upgrade to an object's `fetch`.
//! * `socket`: the task joining one WebSocket connection to an object's socket.
//! * [`metrics`]: Prometheus text. [`cli`]: the flags of server binaries.
//!
//! Dependency direction: this crate uses `durable-runtime`; nothing below it knows of HTTP
//! servers or configuration files.

pub mod cli;
pub mod config;
pub mod front;
pub mod metrics;
pub mod server;
mod socket;

pub use axum;
pub use config::{Config, ConfigError};
pub use front::{error_response, error_to_response, forward, into_axum, status_for};
pub use server::{Server, ServerBuilder, ServerError, termination};

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
