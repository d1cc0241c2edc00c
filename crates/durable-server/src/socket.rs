//! One task per WebSocket connection: frames from the client go to the object's socket
//! (through [`WebSocketConnection`]), frames the object sends go to the client, and shutdown
//! closes the connection with 1001.
//!
//! The task holds only the connection and the small buffers of tungstenite, so an idle
//! socket whose object hibernates costs a few KiB (see `BENCHMARKS.md`).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use durable_runtime::{OutgoingFrame, WebSocketConnection, WebSocketMessage};
use tokio::sync::watch;

/// How long a closing connection waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

pub(crate) async fn pump(
    mut ws: WebSocket,
    mut conn: WebSocketConnection,
    shutdown: Option<watch::Receiver<bool>>,
) {
    let mut shutdown = shutdown;
    loop {
        let stopping = async {
            match shutdown.as_mut() {
                Some(rx) => {
                    while !*rx.borrow_and_update() {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            frame = conn.next_frame() => match frame {
                Some(OutgoingFrame::Text(text)) => {
                    if ws.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(OutgoingFrame::Binary(bytes)) => {
                    if ws.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(OutgoingFrame::Close { code, reason }) => {
                    close_and_wait(&mut ws, &conn, code, reason).await;
                    return;
                }
                // Frames are not a closed type; nothing else is sent.
                Some(_) => {}
                None => break,
            },
            message = ws.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    conn.received(WebSocketMessage::Text(text.as_str().to_owned()));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    conn.received(WebSocketMessage::Binary(bytes.to_vec()));
                }
                // Pings are answered by the protocol layer without waking anyone.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (f.code, f.reason.as_str().to_owned()))
                        .unwrap_or((1005, String::new()));
                    conn.closed(code, reason);
                    return;
                }
                Some(Err(err)) => {
                    let (code, reason) = close_for(err);
                    conn.failed(reason.to_owned());
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    // Dropping the connection reports the abnormal close.
                    break;
                }
                None => break,
            },
            () = stopping => {
                close_and_wait(&mut ws, &conn, 1001, "server shutting down".to_owned()).await;
                return;
            }
        }
    }
    drop(conn);
}

/// The close code and reason for a failed read, by the protocol error's type: 1009 for a
/// message over the size limit, 1007 for a text message that is not UTF-8, 1002 for other
/// protocol violations (RFC 6455, section 7.4.1).
fn close_for(error: axum::Error) -> (u16, &'static str) {
    use tungstenite::error::{CapacityError, Error as WsError};
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            (1009, "message too big: the limit is 32 MiB")
        }
        Some(WsError::Capacity(_)) => (1009, "frame too big"),
        Some(WsError::Utf8(_)) => (1007, "text message is not valid UTF-8"),
        _ => (1002, "protocol error"),
    }
}

/// Sends a close frame, then waits (bounded) for the client's answer and reports it.
async fn close_and_wait(ws: &mut WebSocket, conn: &WebSocketConnection, code: u16, reason: String) {
    let frame = CloseFrame {
        code,
        reason: reason.clone().into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let answer = tokio::time::timeout(CLOSE_WAIT, async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (f.code, f.reason.as_str().to_owned()));
                }
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    match answer {
        Ok(Some((code, reason))) => conn.closed(code, reason),
        Ok(None) => conn.closed(code, reason),
        // No answer: dropping the connection reports an abnormal close.
        Err(_) => {}
    }
}
