//! The accept loop: every connection of the server is accepted here, counted against the
//! connection cap, given the header and keep-alive timeouts, served by hyper (with upgrades,
//! for WebSockets), and drained at shutdown.
//!
//! At the cap the server still accepts, so it can still say what is wrong: up to
//! [`OVERFLOW_CONNECTIONS`] more connections are served one request each, and only
//! `/health…` and `/metrics` reach the router; anything else gets `503` with `Retry-After`
//! and the connection closes. Past that, connections are closed at once. A connection's
//! place in the cap is held by its stream, so a WebSocket keeps it until it closes.
//!
//! Accept errors (the process out of file descriptors, most often) are logged at most once a
//! second and the loop pauses briefly instead of spinning.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::api::ApiError;
use crate::framing::GuardedStream;

/// Connections served (restricted) beyond the cap, so `/health` still answers.
pub const OVERFLOW_CONNECTIONS: usize = 32;

/// Default time a client has to send a whole request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time an idle keep-alive connection waits for its next request.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits the accept loop applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub(crate) max: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the open requests to finish (the caller bounds that wait).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let restricted = restricted(app.clone(), limits.max);
    // Told to every connection at shutdown; each holds a `live` receiver until it ends.
    let (stopping, stop) = watch::channel(false);
    let (live_tx, live) = watch::channel(());
    let mut complaints = Complaints::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                complaints.say(|| {
                    tracing::error!(error = %err, "accepting a connection failed (out of file descriptors? see ulimit -n); retrying");
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
        let stream = GuardedStream::new(stream).with_header_timeout(limits.header_timeout);
        let (stream, app, keep_alive) = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => (stream.holding(slot), app.clone(), true),
            Err(_) => match Arc::clone(&overflow).try_acquire_owned() {
                Ok(slot) => {
                    complaints.say(|| {
                        tracing::warn!(max_connections = limits.max, "at the connection limit: new connections get one request, and only /health and /metrics are served");
                    });
                    (stream.holding(slot), restricted.clone(), false)
                }
                Err(_) => {
                    complaints.say(|| {
                        tracing::warn!(max_connections = limits.max, "at the connection limit and its overflow: new connections are closed at once");
                    });
                    continue;
                }
            },
        };
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut app = app.clone();
            async move {
                let response: Result<Response, Infallible> =
                    tower_service::Service::call(&mut app, request.map(Body::new)).await;
                response
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.keep_alive_timeout)
            .keep_alive(keep_alive)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = stop.clone();
        let live = live.clone();
        tokio::spawn(async move {
            let _live = live;
            tokio::pin!(connection);
            let mut told = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(err) = ended {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    // Finish the request under way, then close (idle connections close now).
                    _ = stop.wait_for(|stop| *stop), if !told => {
                        told = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(live);
    live_tx.closed().await;
    Ok(())
}

/// The router as an overflow connection sees it: `/health…` and `/metrics` only.
fn restricted(app: Router, max: usize) -> Router {
    app.layer(axum::middleware::from_fn(
        move |request: Request, next: axum::middleware::Next| async move {
            let path = request.uri().path();
            if path.starts_with("/health") || path == "/metrics" {
                return next.run(request).await;
            }
            let mut response = ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server is at its limit of {max} connections; retry shortly (reuse connections, or raise durable.max_connections)"
                ),
            )
            .with_code("too_many_connections")
            .into_response();
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            response
        },
    ))
}

/// Rate-limits a repeated log line to once a second.
#[derive(Default)]
struct Complaints {
    last: Option<Instant>,
}

impl Complaints {
    fn say(&mut self, log: impl FnOnce()) {
        if self
            .last
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(1))
        {
            self.last = Some(Instant::now());
            log();
        }
    }
}
