//! The demo's HTTP contract (fixed: outside checks use it). Errors are JSON
//! `{"error": "..."}`: 4xx for bad input, 503 with `Retry-After` when an object is overloaded.
//!
//! ```text
//! GET    /health                          200 "ok"
//! GET    /                                the chat page
//! POST   /counter/{name}/increment?by=N   200 {"value": n}   (N defaults to 1)
//! GET    /counter/{name}                  200 {"value": n}
//! GET    /counter/{name}/id               200 {"id": "<64 hex>"}
//! GET    /counter/by-id/{id}              200 {"value": n} | 400
//! PUT    /kv/{name}/{key}                 204 | 413 over the size limit
//! GET    /kv/{name}/{key}                 200 body | 404
//! DELETE /kv/{name}/{key}                 204
//! GET    /kv/{name}?prefix=P&limit=L&reverse=true   200 {"keys": [...]}
//! POST   /alarm/{name}?in_ms=N            200 {"scheduled_at": ms}
//! GET    /alarm/{name}                    200 {"scheduled_at": ms | null, "fired": [ms, ...]}
//! GET    /chat/{room}                     WebSocket (hibernatable)
//! GET    /chat/{room}/history             200 {"messages": [{"seq": n, "text": "..."}]}
//! GET    /chat/{room}/stats               200 {"constructed": n, "sockets": n}
//! GET    /metrics                         Prometheus text (the server's own route)
//! ```

use std::collections::HashMap;

use durable_objects::http::StatusCode;
use durable_objects::prelude::*;
use durable_server::axum::extract::{Path, Query, Request, State as AxumState};
use durable_server::axum::response::{IntoResponse, Response as AxumResponse};
use durable_server::axum::routing::{get, post};
use durable_server::axum::{Json, Router};
use durable_server::{error_response, error_to_response, forward};
use serde_bytes::ByteBuf;
use serde_json::json;

use crate::objects::{AlarmClock, ChatRoom, Counter, KvStore};

const PAGE: &str = include_str!("page.html");

/// The namespaces the routes use.
#[derive(Clone)]
struct Front {
    counters: Namespace<Counter>,
    kv: Namespace<KvStore>,
    alarms: Namespace<AlarmClock>,
    rooms: Namespace<ChatRoom>,
}

type Query_ = Query<HashMap<String, String>>;

/// The demo's router, built from the `Env` of the server.
pub fn router(env: Env) -> Router {
    let front = match bindings(&env) {
        Ok(front) => front,
        // The server checked the bindings against the config; a mismatch is a build error
        // of the demo itself, reported on every request rather than by a panic.
        Err(err) => {
            let message = format!("the demo's bindings are wrong: {err}");
            return Router::new().fallback(move || {
                let message = message.clone();
                async move { error_response(StatusCode::INTERNAL_SERVER_ERROR, message) }
            });
        }
    };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/",
            get(|| async { ([("content-type", "text/html; charset=utf-8")], PAGE) }),
        )
        .route("/counter/{name}", get(counter_value))
        .route("/counter/{name}/increment", post(counter_increment))
        .route("/counter/{name}/id", get(counter_id))
        .route("/counter/by-id/{id}", get(counter_by_id))
        .route("/kv/{name}", get(kv_list))
        .route(
            "/kv/{name}/{*key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route("/alarm/{name}", get(alarm_status).post(alarm_schedule))
        .route("/chat/{room}", get(chat_socket))
        .route("/chat/{room}/history", get(chat_history))
        .route("/chat/{room}/stats", get(chat_stats))
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "no such route; see GET / and the README",
            )
        })
        .layer(durable_server::axum::middleware::map_response(json_errors))
        .with_state(front)
}

/// Makes every error response JSON, including axum's own rejections (a path segment that is
/// not UTF-8, a wrong method), which are plain text.
async fn json_errors(response: AxumResponse) -> AxumResponse {
    let status = response.status();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = durable_server::axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    error_response(status, message)
}

fn bindings(env: &Env) -> Result<Front> {
    Ok(Front {
        counters: env.namespace("COUNTER")?,
        kv: env.namespace("KV")?,
        alarms: env.namespace("ALARM")?,
        rooms: env.namespace("CHAT")?,
    })
}

/// Turns a handler's result into a response: JSON on success, a JSON error otherwise.
fn reply<T: serde::Serialize>(result: Result<T>) -> AxumResponse {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(err) => error_to_response(&err),
    }
}

fn bad_request(message: impl Into<String>) -> AxumResponse {
    error_response(StatusCode::BAD_REQUEST, message)
}

fn int_param(
    query: &HashMap<String, String>,
    name: &str,
) -> std::result::Result<Option<i64>, Box<AxumResponse>> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Box::new(bad_request(format!(
                "query parameter {name:?} must be an integer, got {text:?}"
            )))
        }),
    }
}

async fn counter_value(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
) -> AxumResponse {
    reply(
        front
            .counters
            .get_by_name(&name)
            .value()
            .await
            .map(|value| json!({ "value": value })),
    )
}

async fn counter_increment(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
    Query(query): Query_,
) -> AxumResponse {
    let by = match int_param(&query, "by") {
        Ok(by) => by.unwrap_or(1),
        Err(response) => return *response,
    };
    reply(
        front
            .counters
            .get_by_name(&name)
            .increment(by)
            .await
            .map(|value| json!({ "value": value })),
    )
}

async fn counter_id(AxumState(front): AxumState<Front>, Path(name): Path<String>) -> AxumResponse {
    Json(json!({ "id": front.counters.id_from_name(&name).to_string() })).into_response()
}

async fn counter_by_id(AxumState(front): AxumState<Front>, Path(id): Path<String>) -> AxumResponse {
    let id = match front.counters.id_from_string(&id) {
        Ok(id) => id,
        Err(err) => return bad_request(err.to_string()),
    };
    reply(
        front
            .counters
            .get(&id)
            .value()
            .await
            .map(|value| json!({ "value": value })),
    )
}

async fn kv_put(
    AxumState(front): AxumState<Front>,
    Path((name, key)): Path<(String, String)>,
    request: Request,
) -> AxumResponse {
    let limit = durable_objects::limits::MAX_KV_ENTRY_BYTES;
    if key.len() > durable_objects::limits::MAX_KV_KEY_BYTES {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "key of {} bytes is over the limit of {} bytes",
                key.len(),
                durable_objects::limits::MAX_KV_KEY_BYTES
            ),
        );
    }
    let Ok(body) = durable_server::axum::body::to_bytes(request.into_body(), limit).await else {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the value is over the limit of {limit} bytes (key and value together)"),
        );
    };
    if key.len() + body.len() > limit {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("key and value together are over the limit of {limit} bytes"),
        );
    }
    match front
        .kv
        .get_by_name(&name)
        .put(key, ByteBuf::from(body.to_vec()))
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        // The limit applies to the encoded entry, a few bytes more than the body.
        Err(err) if err.kind() == ErrorKind::InvalidInput && err.message().contains("limit") => {
            error_response(StatusCode::PAYLOAD_TOO_LARGE, err.to_string())
        }
        Err(err) => error_to_response(&err),
    }
}

async fn kv_get(
    AxumState(front): AxumState<Front>,
    Path((name, key)): Path<(String, String)>,
) -> AxumResponse {
    match front.kv.get_by_name(&name).get(key.clone()).await {
        Ok(Some(value)) => (
            [("content-type", "application/octet-stream")],
            value.into_vec(),
        )
            .into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, format!("no value under key {key:?}")),
        Err(err) => error_to_response(&err),
    }
}

async fn kv_delete(
    AxumState(front): AxumState<Front>,
    Path((name, key)): Path<(String, String)>,
) -> AxumResponse {
    match front.kv.get_by_name(&name).delete(key).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_to_response(&err),
    }
}

async fn kv_list(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
    Query(query): Query_,
) -> AxumResponse {
    let limit = match int_param(&query, "limit") {
        Ok(Some(limit)) if limit <= 0 => {
            return bad_request(format!("limit must be positive, got {limit}"));
        }
        Ok(limit) => limit.map(|l| l as usize),
        Err(response) => return *response,
    };
    let reverse = match query.get("reverse").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return bad_request(format!("reverse must be true or false, got {other:?}")),
    };
    let prefix = query.get("prefix").cloned();
    reply(
        front
            .kv
            .get_by_name(&name)
            .keys(prefix, limit, reverse)
            .await
            .map(|keys| json!({ "keys": keys })),
    )
}

async fn alarm_schedule(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
    Query(query): Query_,
) -> AxumResponse {
    let in_ms = match int_param(&query, "in_ms") {
        Ok(Some(in_ms)) if in_ms >= 0 => in_ms,
        Ok(Some(in_ms)) => return bad_request(format!("in_ms must not be negative, got {in_ms}")),
        Ok(None) => return bad_request("in_ms is required: POST /alarm/{name}?in_ms=1000"),
        Err(response) => return *response,
    };
    reply(
        front
            .alarms
            .get_by_name(&name)
            .schedule(in_ms)
            .await
            .map(|at| json!({ "scheduled_at": at })),
    )
}

async fn alarm_status(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
) -> AxumResponse {
    reply(front.alarms.get_by_name(&name).status().await)
}

async fn chat_socket(
    AxumState(front): AxumState<Front>,
    Path(room): Path<String>,
    request: Request,
) -> AxumResponse {
    forward(&front.rooms.get_by_name(&room), request).await
}

async fn chat_history(
    AxumState(front): AxumState<Front>,
    Path(room): Path<String>,
) -> AxumResponse {
    reply(
        front
            .rooms
            .get_by_name(&room)
            .history()
            .await
            .map(|messages| json!({ "messages": messages })),
    )
}

async fn chat_stats(AxumState(front): AxumState<Front>, Path(room): Path<String>) -> AxumResponse {
    reply(front.rooms.get_by_name(&room).stats().await)
}
