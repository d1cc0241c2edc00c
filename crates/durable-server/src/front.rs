//! The bridge from axum to objects: [`forward`] sends an incoming request (streaming its
//! body) to an object's `fetch` handler and turns the answer back into an axum response,
//! completing a WebSocket upgrade when the object answers `101` with a socket. Errors become
//! JSON responses through [`crate::api`].

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response as AxumResponse;
use bytes::Bytes;
use durable_core::{Error, limits};
use durable_runtime::{Body, DurableObject, Stub, WebSocketPeer};
use http::StatusCode;
use http_body::Frame;
use tokio::sync::watch;

use crate::api::{error_response, error_to_response};
use crate::socket;

/// Chunks of a request body that may wait between the connection and the object.
const BODY_CHANNEL_CHUNKS: usize = 8;

/// Read buffer of one WebSocket connection: small, since idle hibernated sockets are the
/// common case and tungstenite's default (128 KiB) would cost that much per socket.
pub(crate) const WEB_SOCKET_READ_BUFFER: usize = 4 * 1024;

/// Shutdown signal shared with WebSocket connections, installed as a request extension by
/// the server.
#[derive(Clone, Debug)]
pub(crate) struct ShutdownSignal(pub(crate) watch::Receiver<bool>);

/// Sends `request` to the object behind `stub` and returns its answer as an axum response.
///
/// The body streams to the object as it arrives. If the request is a WebSocket upgrade and
/// the object answers `101` with the client end of a `WebSocketPair`, the connection is
/// upgraded and joined to the object's socket. Errors become JSON error responses.
pub async fn forward<T: DurableObject>(
    stub: &Stub<T>,
    request: axum::extract::Request,
) -> AxumResponse {
    let (mut parts, body) = request.into_parts();
    let upgrade = if is_upgrade(&parts.headers) {
        WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
    } else {
        None
    };
    let shutdown = parts.extensions.get::<ShutdownSignal>().cloned();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("object")
        .to_owned();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let uri: http::Uri = match format!("http://{host}{path}").parse() {
        Ok(uri) => uri,
        Err(err) => return error_response(StatusCode::BAD_REQUEST, format!("bad URL: {err}")),
    };
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(parts.version);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let body = stream_body(body);
    let request = match builder.body(body) {
        Ok(request) => request,
        Err(err) => return error_response(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let mut response = match stub.fetch(request).await {
        Ok(response) => response,
        Err(err) => return error_to_response(&err),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(peer) = WebSocketPeer::take_from(&mut response) else {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the object answered 101 without a WebSocket: return pair.client.into_response()",
            );
        };
        let Some(upgrade) = upgrade else {
            return error_response(
                StatusCode::UPGRADE_REQUIRED,
                "this route is a WebSocket: connect with a WebSocket client",
            );
        };
        let connection = match peer.connect() {
            Ok(connection) => connection,
            Err(err) => return error_to_response(&err),
        };
        let shutdown = shutdown.map(|s| s.0);
        return upgrade
            .read_buffer_size(WEB_SOCKET_READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(limits::MAX_WEB_SOCKET_MESSAGE_BYTES)
            .max_frame_size(limits::MAX_WEB_SOCKET_MESSAGE_BYTES)
            .on_upgrade(move |ws| socket::pump(ws, connection, shutdown));
    }
    into_axum(response)
}

fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// An axum body as an object body: nothing for an empty body, otherwise a stream fed by a
/// task as data arrives.
fn stream_body(body: axum::body::Body) -> Body {
    use http_body::Body as _;
    if body.is_end_stream() {
        return Body::empty();
    }
    let (sender, stream) = Body::channel(BODY_CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let mut body = body;
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            match frame {
                None => return,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && sender.send(data).await.is_err()
                    {
                        return;
                    }
                }
                Some(Err(err)) => {
                    sender
                        .abort(Error::disconnected(format!(
                            "the client's body failed: {err}"
                        )))
                        .await;
                    return;
                }
            }
        }
    });
    stream
}

/// An object response as an axum response; a streamed body stays streamed.
pub fn into_axum(response: durable_runtime::Response) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let body = match body.as_full() {
        Some(bytes) => axum::body::Body::from(bytes.clone()),
        None => axum::body::Body::new(StreamedBody { body }),
    };
    AxumResponse::from_parts(parts, body)
}

/// A streamed object body as an `http_body::Body`.
struct StreamedBody {
    body: Body,
}

impl http_body::Body for StreamedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.get_mut()
            .body
            .poll_chunk(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}
