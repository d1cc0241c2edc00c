//! The admin API: the operator's commands as JSON over HTTP, on a listen address of its own
//! (`durable.admin.listen`; off when unset), behind a bearer token.
//!
//! The token is created at the first start with the admin API on, as `<data>/admin.token`
//! (32 random bytes in hex, readable by its owner only), and the address it listens on is
//! written to `<data>/admin.address`, so `durable` run on the same machine finds both. A
//! request without `Authorization: Bearer <token>` gets 401 and touches nothing.
//!
//! Reads come straight from the files (`durable_storage::inspect`, beside the runtime's
//! writes); writes run inside the object through [`Admin`] (its turn, its commit pipeline).
//!
//! | route | what |
//! |---|---|
//! | `GET /api/namespaces` | the classes and their bindings |
//! | `GET /api/objects?namespace=NS&prefix=P&limit=N` | the objects, one JSON object per line (streamed) |
//! | `GET /api/objects/{ns}/{object}` | one object: name, id, bytes, tables, alarm |
//! | `POST /api/objects/{ns}/{object}/sql` | `{"query": "...", "write": false}`: columns and rows |
//! | `GET /api/objects/{ns}/{object}/kv?prefix=&start_after=&limit=` | KV entries, decoded |
//! | `GET`, `PUT`, `DELETE /api/objects/{ns}/{object}/kv/{key}` | one entry (`PUT` takes the JSON value) |
//! | `GET`, `PUT`, `DELETE /api/objects/{ns}/{object}/alarm` | the alarm (`PUT` takes `{"time_ms": N}`) |
//! | `GET /api/objects/{ns}/{object}/export` | the object as `durable export` writes it (JSON lines) |
//! | `POST /api/objects/{ns}/{object}/import` | `durable import`'s content of one object, written as one transaction |
//! | `GET /api/metrics` | the runtime's counters and gauges |

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use durable_runtime::{Admin, AdminTarget, MetricsHandle};
use durable_storage::{
    DataLayout, InspectError, ListFilter, ObjectCatalog, ObjectListing, ObjectReader, SqlValue,
};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What every admin route shares.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) admin: Admin,
    pub(crate) metrics: MetricsHandle,
    token: Arc<str>,
}

impl AdminState {
    pub(crate) fn new(admin: Admin, metrics: MetricsHandle, token: String) -> Self {
        Self {
            admin,
            metrics,
            token: token.into(),
        }
    }

    /// True if `given` is the token (compared in time that does not depend on where it
    /// differs).
    pub(crate) fn token_matches(&self, given: &str) -> bool {
        same(given.as_bytes(), self.token.as_bytes())
    }

    /// True if the request carries the token: `Authorization: Bearer`, or the console's
    /// cookie.
    pub(crate) fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| self.token_matches(given.trim())) {
            return true;
        }
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == crate::console::COOKIE && self.token_matches(value))
    }
}

/// The node's admin token: read from the data folder, or created there (owner-only) at the
/// first start with the admin API on.
pub(crate) fn token(layout: &DataLayout) -> std::io::Result<String> {
    let path = layout.admin_token();
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() == 64 => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not an admin token (64 hex digits): remove it to have a new one made",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &format!("{token}\n"))?;
    Ok(token)
}

/// Writes `text` to `path`, readable and writable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The admin API's routes.
pub(crate) fn router(state: AdminState) -> Router<AdminState> {
    Router::new()
        .route("/api/namespaces", get(namespaces))
        .route("/api/objects", get(objects))
        .route("/api/objects/{ns}/{object}", get(object_info))
        .route("/api/objects/{ns}/{object}/sql", post(sql))
        .route("/api/objects/{ns}/{object}/kv", get(kv_list))
        .route(
            "/api/objects/{ns}/{object}/kv/{key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route(
            "/api/objects/{ns}/{object}/alarm",
            get(alarm_get).put(alarm_put).delete(alarm_delete),
        )
        .route("/api/objects/{ns}/{object}/import", post(import))
        .route("/api/objects/{ns}/{object}/export", get(export))
        .route("/api/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// Refuses a request without the bearer token (401), before any handler runs.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if state.authorized(request.headers()) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this admin API needs `Authorization: Bearer <token>`, the token in the node's data folder (admin.token)",
    )
    .into_response();
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Compares in time that does not depend on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<durable_core::Error> for ApiError {
    fn from(error: durable_core::Error) -> Self {
        use durable_core::ErrorKind;
        let status = match error.kind() {
            ErrorKind::InvalidInput | ErrorKind::InvalidId | ErrorKind::Codec => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            _ if error.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.message().to_owned())
    }
}

impl From<InspectError> for ApiError {
    fn from(error: InspectError) -> Self {
        let text = error.to_string();
        if text.contains("readonly") {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "the statement writes: send \"write\": true to run it inside the object",
            );
        }
        let status = match error {
            InspectError::Sql(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, text)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A blocking read of the files, off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn namespaces(State(state): State<AdminState>) -> Json<Value> {
    Json(json!(state.admin.namespaces()))
}

#[derive(Debug, Deserialize)]
struct ObjectsQuery {
    namespace: Option<String>,
    prefix: Option<String>,
    limit: Option<u64>,
}

/// An object as the API shows it.
pub(crate) fn listing_json(object: &ObjectListing) -> Value {
    json!({
        "namespace": object.class,
        "id": object.id,
        "name": object.name,
        "bytes": object.bytes,
        "last_active_ms": object.last_active_ms,
        "alarm_ms": object.alarm_ms,
    })
}

async fn objects(
    State(state): State<AdminState>,
    Query(query): Query<ObjectsQuery>,
) -> ApiResult<Response> {
    let class = query
        .namespace
        .as_deref()
        .map(|ns| state.admin.class_of(ns))
        .transpose()?;
    let filter = ListFilter {
        class,
        prefix: query.prefix,
    };
    let limit = query.limit.unwrap_or(u64::MAX);
    let layout = state.admin.layout().clone();
    let (lines, body) = mpsc::channel::<Bytes>(64);
    tokio::task::spawn_blocking(move || {
        let mut sent = 0u64;
        let listed = durable_storage::list_objects(&layout, &filter, |object| {
            let mut line = listing_json(&object).to_string();
            line.push('\n');
            sent += 1;
            lines.blocking_send(Bytes::from(line)).is_ok() && sent < limit
        });
        if let Err(error) = listed {
            let line = format!("{}\n", json!({ "error": error.to_string() }));
            let _ = lines.blocking_send(Bytes::from(line));
        }
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::new(LinesBody { lines: body }),
    )
        .into_response())
}

/// A response body of the lines a listing sends, as they come.
struct LinesBody {
    lines: mpsc::Receiver<Bytes>,
}

impl http_body::Body for LinesBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.lines
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok(http_body::Frame::data(line))))
    }
}

/// The object a route names, and its database's path.
pub(crate) fn target(state: &AdminState, ns: &str, object: &str) -> ApiResult<AdminTarget> {
    Ok(state.admin.resolve(ns, object)?)
}

/// The name the catalog knows for `target` (when it was named by id).
pub(crate) fn name_of(layout: &DataLayout, target: &AdminTarget) -> Option<String> {
    if let Some(name) = target.name() {
        return Some(name.to_owned());
    }
    ObjectCatalog::open_read_only(&layout.catalog())
        .ok()
        .flatten()
        .and_then(|catalog| {
            catalog
                .entry(&target.class, &target.id.to_string())
                .ok()
                .flatten()
        })
        .and_then(|entry| entry.name)
}

pub(crate) fn target_json(layout: &DataLayout, target: &AdminTarget) -> Value {
    json!({
        "namespace": target.class,
        "id": target.id.to_string(),
        "name": name_of(layout, target),
    })
}

async fn object_info(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let db = state.admin.database_path(&target);
    let layout = state.admin.layout().clone();
    blocking(move || {
        let bytes: u64 = [db.clone(), DataLayout::wal_of(&db)]
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum();
        let (tables, alarm) = match ObjectReader::open(&db)? {
            Some(reader) => (reader.tables()?, reader.alarm()?),
            None => (Vec::new(), None),
        };
        Ok(Json(json!({
            "object": target_json(&layout, &target),
            "bytes": bytes,
            "tables": tables,
            "alarm_ms": alarm,
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct SqlBody {
    query: String,
    #[serde(default)]
    write: bool,
    limit: Option<usize>,
}

fn rows_json(rows: &[Vec<SqlValue>]) -> Vec<Vec<Value>> {
    rows.iter()
        .map(|row| row.iter().map(durable_storage::sql_value_json).collect())
        .collect()
}

/// Runs a read-only query on the object's files: at most `limit` rows.
pub(crate) async fn read_query(
    state: &AdminState,
    target: &AdminTarget,
    query: String,
    limit: usize,
) -> ApiResult<durable_storage::QueryResult> {
    let db = state.admin.database_path(target);
    let describe = format!("{} {}", target.class, target.id);
    blocking(move || {
        let reader = ObjectReader::open(&db)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("{describe} has no data: it has never stored anything"),
            )
        })?;
        Ok(reader.query(&query, limit)?)
    })
    .await
}

async fn sql(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
    Json(body): Json<SqlBody>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let layout = state.admin.layout().clone();
    if body.write {
        let rows = state.admin.sql(&target, body.query).await?;
        return Ok(Json(json!({
            "object": target_json(&layout, &target),
            "columns": rows.columns,
            "rows": rows_json(&rows.rows),
            "rows_written": rows.rows_written,
        })));
    }
    let result = read_query(&state, &target, body.query, body.limit.unwrap_or(1000)).await?;
    Ok(Json(json!({
        "object": target_json(&layout, &target),
        "columns": result.columns,
        "rows": rows_json(&result.rows),
    })))
}

#[derive(Debug, Deserialize)]
struct KvQuery {
    #[serde(default)]
    prefix: String,
    start_after: Option<String>,
    limit: Option<usize>,
}

/// KV entries of the object's files, decoded.
pub(crate) async fn read_kv(
    state: &AdminState,
    target: &AdminTarget,
    prefix: String,
    start_after: Option<String>,
    limit: usize,
) -> ApiResult<Vec<(String, Value)>> {
    let db = state.admin.database_path(target);
    blocking(move || {
        let Some(reader) = ObjectReader::open(&db)? else {
            return Ok(Vec::new());
        };
        Ok(reader
            .kv_list(&prefix, start_after.as_deref(), limit)?
            .into_iter()
            .map(|(key, bytes)| (key, durable_storage::display_value(&bytes)))
            .collect())
    })
    .await
}

async fn kv_list(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
    Query(query): Query<KvQuery>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let entries = read_kv(
        &state,
        &target,
        query.prefix,
        query.start_after,
        query.limit.unwrap_or(1000),
    )
    .await?;
    Ok(Json(json!({
        "object": target_json(state.admin.layout(), &target),
        "entries": entries
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect::<Vec<_>>(),
    })))
}

async fn kv_get(
    State(state): State<AdminState>,
    UrlPath((ns, object, key)): UrlPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let db = state.admin.database_path(&target);
    let wanted = key.clone();
    let value = blocking(move || match ObjectReader::open(&db)? {
        Some(reader) => Ok(reader
            .kv_get(&wanted)?
            .map(|bytes| durable_storage::display_value(&bytes))),
        None => Ok(None),
    })
    .await?;
    Ok(Json(json!({
        "object": target_json(state.admin.layout(), &target),
        "key": key,
        "value": value,
    })))
}

async fn kv_put(
    State(state): State<AdminState>,
    UrlPath((ns, object, key)): UrlPath<(String, String, String)>,
    Json(value): Json<Value>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    state.admin.kv_put(&target, key.clone(), value).await?;
    Ok(Json(json!({ "key": key, "stored": true })))
}

async fn kv_delete(
    State(state): State<AdminState>,
    UrlPath((ns, object, key)): UrlPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let deleted = state.admin.kv_delete(&target, key.clone()).await?;
    Ok(Json(json!({ "key": key, "deleted": deleted })))
}

async fn alarm_get(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let db = state.admin.database_path(&target);
    let alarm = blocking(move || match ObjectReader::open(&db)? {
        Some(reader) => Ok(reader.alarm()?),
        None => Ok(None),
    })
    .await?;
    Ok(Json(json!({
        "object": target_json(state.admin.layout(), &target),
        "alarm_ms": alarm,
    })))
}

#[derive(Debug, Deserialize)]
struct AlarmBody {
    time_ms: i64,
}

async fn alarm_put(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
    Json(body): Json<AlarmBody>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    state.admin.set_alarm(&target, body.time_ms).await?;
    Ok(Json(json!({ "alarm_ms": body.time_ms })))
}

async fn alarm_delete(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    state.admin.delete_alarm(&target).await?;
    Ok(Json(json!({ "alarm_ms": null })))
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    #[serde(default)]
    schema: Vec<String>,
    #[serde(default)]
    rows: Vec<ImportTable>,
    #[serde(default)]
    kv: Vec<ImportEntry>,
    alarm_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ImportTable {
    table: String,
    rows: Vec<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct ImportEntry {
    key: String,
    /// The stored bytes, in hex.
    raw: String,
}

/// A SQL value from its JSON form (blobs as `{"blob": "<hex>"}`).
fn sql_value(value: &Value) -> ApiResult<SqlValue> {
    durable_storage::sql_value_from_json(value)
        .ok_or_else(|| bad("a SQL value is a number, text, null or {\"blob\": \"<hex>\"}"))
}

fn bad(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

async fn import(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
    Json(body): Json<ImportBody>,
) -> ApiResult<Json<Value>> {
    let target = target(&state, &ns, &object)?;
    let mut content = durable_runtime::ObjectContent {
        schema: body.schema,
        alarm_ms: body.alarm_ms,
        ..Default::default()
    };
    for table in body.rows {
        let rows = table
            .rows
            .iter()
            .map(|row| row.iter().map(sql_value).collect::<ApiResult<Vec<_>>>())
            .collect::<ApiResult<Vec<_>>>()?;
        content.rows.push((table.table, rows));
    }
    for entry in body.kv {
        let bytes = durable_storage::bytes_of_hex(&entry.raw)
            .ok_or_else(|| bad("a KV value's \"raw\" is not hex digits"))?;
        content.kv.push((entry.key, bytes));
    }
    let report = state.admin.import(&target, content).await?;
    Ok(Json(json!({
        "object": target_json(state.admin.layout(), &target),
        "imported": report,
    })))
}

/// One object as a whole export (`durable export`'s lines: a first line, the object's, an
/// end line), read from its files.
async fn export(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let target = target(&state, &ns, &object)?;
    let db = state.admin.database_path(&target);
    let header = target_json(state.admin.layout(), &target);
    let text = blocking(move || {
        let mut lines = vec![json!({ "durable_export": 1, "exported_at_ms": now_ms() })];
        let objects = match ObjectReader::open(&db)? {
            Some(reader) => {
                durable_storage::export_object(&reader, header, |line| {
                    lines.push(line);
                    Ok(())
                })?;
                1
            }
            None => 0,
        };
        let total = lines.len() + 1;
        lines.push(json!({ "end": { "objects": objects, "lines": total } }));
        Ok(lines
            .iter()
            .map(|line| format!("{line}\n"))
            .collect::<String>())
    })
    .await?;
    Ok(([(http::header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
}

/// Now, in milliseconds since the Unix epoch (an export's stamp).
fn now_ms() -> i64 {
    #[allow(clippy::disallowed_methods)] // An export is stamped with the real time.
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn metrics(State(state): State<AdminState>) -> Json<Value> {
    let m = state.metrics.snapshot();
    Json(json!({
        "active_objects": m.active_objects,
        "open_databases": m.open_databases,
        "web_sockets_open": m.web_sockets_open,
        "pending_alarms": m.pending_alarms,
        "rpc_calls": m.rpc_calls,
        "fetches": m.fetches,
        "web_socket_events": m.web_socket_events,
        "commits": m.commits,
        "alarms_run": m.alarms_run,
        "alarms_failed": m.alarms_failed,
        "stalled_turns": m.stalled_turns,
        "disk_full": m.disk_full,
    }))
}
