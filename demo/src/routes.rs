//! The demo's HTTP contract (fixed: outside checks use it). Errors are JSON
//! `{"error": "...", "code": "..."}` (`code` when there is one): 4xx for bad input (a
//! repeated query parameter included), 409 for a counter that would overflow, 413 over a size
//! limit, 503 with `Retry-After` when an object is overloaded. Handlers return
//! `Result<_, ApiError>` and use `?` on the runtime's errors; the mapping lives in
//! `durable_server::api`.
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
use durable_server::axum::extract::{Path, RawQuery, Request, State as AxumState};
use durable_server::axum::response::{IntoResponse, Response as AxumResponse};
use durable_server::axum::routing::{get, post};
use durable_server::axum::{Json, Router};
use durable_server::{ApiError, error_response, forward};
use serde_bytes::ByteBuf;
use serde_json::{Value, json};

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

/// A handler's JSON answer, or its error.
type Answer = std::result::Result<Json<Value>, ApiError>;

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

/// The query string as name → value, percent-decoded. A name given twice is refused: which
/// of `?by=1&by=5` was meant is the client's to say, not ours to guess.
fn query_params(raw: Option<String>) -> std::result::Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for pair in raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name)?, percent_decode(value)?);
        if params.contains_key(&name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} is given more than once; give it once"
            ))
            .with_code("repeated_parameter"));
        }
        params.insert(name, value);
    }
    Ok(params)
}

/// `%XX` escapes and `+` (a space) of a query component.
fn percent_decode(text: &str) -> std::result::Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("bad percent escape in the query: {text:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("the query string is not UTF-8 once decoded"))
}

fn int_param(
    query: &HashMap<String, String>,
    name: &str,
) -> std::result::Result<Option<i64>, ApiError> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter {name:?} must be an integer, got {text:?}"
            ))
        }),
    }
}

async fn counter_value(AxumState(front): AxumState<Front>, Path(name): Path<String>) -> Answer {
    let value = front.counters.get_by_name(&name).value().await?;
    Ok(Json(json!({ "value": value })))
}

async fn counter_increment(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = query_params(query)?;
    let by = int_param(&query, "by")?.unwrap_or(1);
    let value = front.counters.get_by_name(&name).increment(by).await?;
    Ok(Json(json!({ "value": value })))
}

async fn counter_id(AxumState(front): AxumState<Front>, Path(name): Path<String>) -> Answer {
    Ok(Json(
        json!({ "id": front.counters.id_from_name(&name).to_string() }),
    ))
}

async fn counter_by_id(AxumState(front): AxumState<Front>, Path(id): Path<String>) -> Answer {
    let id = front.counters.id_from_string(&id)?;
    let value = front.counters.get(&id).value().await?;
    Ok(Json(json!({ "value": value })))
}

async fn kv_put(
    AxumState(front): AxumState<Front>,
    Path((name, key)): Path<(String, String)>,
    request: Request,
) -> std::result::Result<StatusCode, ApiError> {
    let limit = durable_objects::limits::MAX_KV_ENTRY_BYTES;
    let key_limit = durable_objects::limits::MAX_KV_KEY_BYTES;
    if key.len() > key_limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "key of {} bytes is over the limit of {key_limit} bytes",
                key.len()
            ),
        ));
    }
    // Read at most the limit: a larger body is refused without being held in memory.
    let Ok(body) = durable_server::axum::body::to_bytes(request.into_body(), limit).await else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the value is over the limit of {limit} bytes (key and value together)"),
        ));
    };
    // The object checks the stored (encoded) entry against the limit; its error carries the
    // limit as a typed detail, which the server answers with 413.
    front
        .kv
        .get_by_name(&name)
        .put(key, ByteBuf::from(body.to_vec()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kv_get(
    AxumState(front): AxumState<Front>,
    Path((name, key)): Path<(String, String)>,
) -> std::result::Result<AxumResponse, ApiError> {
    match front.kv.get_by_name(&name).get(key.clone()).await? {
        Some(value) => Ok((
            [("content-type", "application/octet-stream")],
            value.into_vec(),
        )
            .into_response()),
        None => Err(ApiError::not_found(format!("no value under key {key:?}"))),
    }
}

async fn kv_delete(
    AxumState(front): AxumState<Front>,
    Path((name, key)): Path<(String, String)>,
) -> std::result::Result<StatusCode, ApiError> {
    front.kv.get_by_name(&name).delete(key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kv_list(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = query_params(query)?;
    let limit = match int_param(&query, "limit")? {
        Some(limit) if limit <= 0 => {
            return Err(ApiError::bad_request(format!(
                "limit must be positive, got {limit}"
            )));
        }
        limit => limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
    };
    let reverse = match query.get("reverse").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "reverse must be true or false, got {other:?}"
            )));
        }
    };
    let prefix = query.get("prefix").cloned();
    let keys = front
        .kv
        .get_by_name(&name)
        .keys(prefix, limit, reverse)
        .await?;
    Ok(Json(json!({ "keys": keys })))
}

async fn alarm_schedule(
    AxumState(front): AxumState<Front>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = query_params(query)?;
    let in_ms = match int_param(&query, "in_ms")? {
        Some(in_ms) if in_ms >= 0 => in_ms,
        Some(in_ms) => {
            return Err(ApiError::bad_request(format!(
                "in_ms must not be negative, got {in_ms}"
            )));
        }
        None => {
            return Err(ApiError::bad_request(
                "in_ms is required: POST /alarm/{name}?in_ms=1000",
            ));
        }
    };
    let at = front.alarms.get_by_name(&name).schedule(in_ms).await?;
    Ok(Json(json!({ "scheduled_at": at })))
}

async fn alarm_status(AxumState(front): AxumState<Front>, Path(name): Path<String>) -> Answer {
    let status = front.alarms.get_by_name(&name).status().await?;
    Ok(Json(json!(status)))
}

async fn chat_socket(
    AxumState(front): AxumState<Front>,
    Path(room): Path<String>,
    request: Request,
) -> AxumResponse {
    forward(&front.rooms.get_by_name(&room), request).await
}

async fn chat_history(AxumState(front): AxumState<Front>, Path(room): Path<String>) -> Answer {
    let messages = front.rooms.get_by_name(&room).history().await?;
    Ok(Json(json!({ "messages": messages })))
}

async fn chat_stats(AxumState(front): AxumState<Front>, Path(room): Path<String>) -> Answer {
    let stats = front.rooms.get_by_name(&room).stats().await?;
    Ok(Json(json!(stats)))
}
