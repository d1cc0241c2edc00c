//! The hibernation API, reached through `State`: accepting sockets with tags, listing
//! them, the auto-response and the event timeout.

use std::sync::Arc;

use durable_core::{Error, ErrorKind, Result, limits};

use super::handle::WebSocket;
use super::hub::WebSocketRequestResponsePair;
use super::socket::{Mode, SocketOwner, check_unaccepted};
use crate::instance::Instance;

pub(crate) fn accept(instance: &Instance, ws: &WebSocket, tags: &[&str]) -> Result<()> {
    let mut distinct: Vec<String> = Vec::new();
    for tag in tags {
        if tag.chars().count() > limits::MAX_WEB_SOCKET_TAG_CHARS {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "a WebSocket tag cannot be longer than {} characters; one is {}",
                    limits::MAX_WEB_SOCKET_TAG_CHARS,
                    tag.chars().count()
                ),
            ));
        }
        if !distinct.iter().any(|t| t == tag) {
            distinct.push((*tag).to_owned());
        }
    }
    if distinct.len() > limits::MAX_WEB_SOCKET_TAGS {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a hibernatable WebSocket cannot have more than {} tags; got {}",
                limits::MAX_WEB_SOCKET_TAGS,
                distinct.len()
            ),
        ));
    }
    let hub = instance
        .shared
        .hubs
        .get_or_create(instance.key, &instance.id);
    let mut inner = hub.inner();
    if inner.sockets.len() >= limits::MAX_HIBERNATABLE_WEB_SOCKETS {
        return Err(Error::overloaded(format!(
            "this object already holds {} hibernatable WebSockets, the limit; close some or spread clients over more objects",
            limits::MAX_HIBERNATABLE_WEB_SOCKETS
        )));
    }
    {
        let mut state = ws.socket.state();
        check_unaccepted(&state)?;
        if state.disconnected || state.close_sent {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "cannot accept a WebSocket that is already closed",
            ));
        }
        state.mode = Mode::Hibernatable;
        state.tags = distinct;
        let owner: std::sync::Weak<dyn SocketOwner> = Arc::downgrade(&hub) as _;
        state.owner = Some(owner);
        state.metrics = Arc::downgrade(&instance.shared.metrics);
    }
    inner.sockets.insert(ws.socket.id, Arc::clone(&ws.socket));
    Ok(())
}

pub(crate) fn sockets(instance: &Instance, tag: Option<&str>) -> Vec<WebSocket> {
    let Some(hub) = instance.shared.hubs.get(&instance.key) else {
        return Vec::new();
    };
    let inner = hub.inner();
    inner
        .sockets
        .values()
        .filter(|socket| {
            let state = socket.state();
            !state.disconnected && tag.is_none_or(|tag| state.tags.iter().any(|t| t == tag))
        })
        .map(|socket| WebSocket::from_shared(Arc::clone(socket)))
        .collect()
}

pub(crate) fn tags(ws: &WebSocket) -> Result<Vec<String>> {
    let state = ws.socket.state();
    if state.mode != Mode::Hibernatable {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "get_tags is only for WebSockets accepted with State::accept_web_socket",
        ));
    }
    Ok(state.tags.clone())
}

pub(crate) fn set_auto_response(instance: &Instance, pair: Option<WebSocketRequestResponsePair>) {
    let hub = instance
        .shared
        .hubs
        .get_or_create(instance.key, &instance.id);
    hub.inner().auto_response = pair;
}

pub(crate) fn auto_response(instance: &Instance) -> Option<WebSocketRequestResponsePair> {
    instance
        .shared
        .hubs
        .get(&instance.key)
        .and_then(|hub| hub.inner().auto_response.clone())
}

pub(crate) fn auto_response_timestamp(ws: &WebSocket) -> Option<i64> {
    ws.socket.state().auto_response_at
}

pub(crate) fn set_event_timeout(instance: &Instance, ms: Option<u64>) -> Result<()> {
    if let Some(ms) = ms
        && ms > limits::MAX_WEB_SOCKET_EVENT_TIMEOUT_MS
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "event timeout should not exceed {} ms; got {ms}",
                limits::MAX_WEB_SOCKET_EVENT_TIMEOUT_MS
            ),
        ));
    }
    let hub = instance
        .shared
        .hubs
        .get_or_create(instance.key, &instance.id);
    hub.inner().event_timeout_ms = ms.filter(|ms| *ms > 0);
    Ok(())
}

pub(crate) fn event_timeout(instance: &Instance) -> Option<u64> {
    instance
        .shared
        .hubs
        .get(&instance.key)
        .and_then(|hub| hub.event_timeout_ms())
}
