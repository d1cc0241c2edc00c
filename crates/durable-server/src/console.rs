//! The web console, served by the admin listener: namespaces → objects → an object's SQL
//! tables (rows a page at a time), KV entries (decoded), alarm and open WebSockets (tags and
//! attachments), live metrics, and a read-only SQL box. Pages are rendered here, as HTML
//! with a little inline CSS; the only script refreshes the metrics. Nothing is built with
//! npm.
//!
//! A person signs in once with the admin token (`/login`, a form; the token is then kept in
//! an `HttpOnly`, `SameSite=Strict` cookie): every other page answers 401 with the sign-in
//! form until then, and reads nothing. The console only reads: changes go through the
//! `durable` tool or the admin API.

use std::fmt::Write as _;

use axum::Form;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use durable_storage::{ListFilter, ObjectReader, QueryResult, SqlValue};
use http::StatusCode;
use serde::Deserialize;

use crate::admin::{self, AdminState, ApiError};

/// Rows and objects shown per page.
const PAGE: usize = 50;

/// The name of the cookie that holds the token.
pub(crate) const COOKIE: &str = "durable_admin";

/// The console's pages.
pub(crate) fn router(state: AdminState) -> Router<AdminState> {
    Router::new()
        .route("/", get(home))
        .route("/ns/{ns}", get(namespace))
        .route("/ns/{ns}/{object}", get(object))
        .route("/ns/{ns}/{object}/table/{table}", get(table))
        .route("/ns/{ns}/{object}/sql", get(sql_box))
        .layer(axum::middleware::from_fn_with_state(state, require_login))
        .route("/login", get(login_page).post(login))
}

/// Shows the sign-in form (401) to a request without the token, before any page reads.
async fn require_login(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if state.authorized(request.headers()) {
        return next.run(request).await;
    }
    let wanted = request.uri().path().to_owned();
    (StatusCode::UNAUTHORIZED, sign_in(&wanted, None)).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

async fn login_page(Query(query): Query<LoginQuery>) -> Html<String> {
    sign_in(&query.next, None)
}

/// Checks the token from the form; on success keeps it in a cookie and goes on to `next`.
async fn login(State(state): State<AdminState>, Form(form): Form<LoginForm>) -> Response {
    if !state.token_matches(form.token.trim()) {
        return (
            StatusCode::UNAUTHORIZED,
            sign_in(&form.next, Some("That is not this node's admin token.")),
        )
            .into_response();
    }
    // Only a path of this site: never somewhere else.
    let next = if form.next.starts_with('/') && !form.next.starts_with("//") {
        form.next
    } else {
        "/".to_owned()
    };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        form.token.trim()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .insert(http::header::SET_COOKIE, value);
    }
    response
}

fn sign_in(next: &str, problem: Option<&str>) -> Html<String> {
    let problem = problem.map_or(String::new(), |p| {
        format!("<p class=problem>{}</p>", escape(p))
    });
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{problem}
             <p>Paste the admin token from the node's data folder (<code>admin.token</code>).</p>
             <form method=post action=/login>
               <input type=password name=token id=token autocomplete=off size=70 required>
               <input type=hidden name=next value=\"{}\">
               <button type=submit>Sign in</button>
             </form>",
            escape(next)
        ),
    )
}

/// The page's frame: title, style, breadcrumbs-free body.
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>
         <title>{} · durable console</title>
         <style>
           body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
           table {{ border-collapse: collapse; margin: 1em 0; }}
           th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
           th {{ background: #f3f3f3; }}
           code, td.mono {{ font-family: ui-monospace, monospace; }}
           .problem {{ color: #a00; }}
           nav a {{ margin-right: 1em; }}
         </style></head><body>
         <nav><a href=\"/\">Namespaces</a></nav>
         {body}</body></html>",
        escape(title)
    ))
}

/// Text made safe to put in HTML (text and attribute values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one URL path segment.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn time_text(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "-".to_owned(),
        |ms| {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
            humantime::format_rfc3339_seconds(time).to_string()
        },
    )
}

fn failure(error: ApiError) -> Response {
    (
        error.status,
        page(
            "Error",
            &format!(
                "<h1>Error</h1><p class=problem>{}</p>",
                escape(&error.message)
            ),
        ),
    )
        .into_response()
}

/// Namespaces and live metrics.
async fn home(State(state): State<AdminState>) -> Response {
    let mut rows = String::new();
    for ns in state.admin.namespaces() {
        let _ = write!(
            rows,
            "<tr><td><a href=\"/ns/{}\">{}</a></td><td>{}</td></tr>",
            segment(&ns.class),
            escape(&ns.class),
            escape(&ns.bindings.join(", "))
        );
    }
    let m = state.metrics.snapshot();
    let metrics = [
        (
            "active_objects",
            m.active_objects as u64,
            "objects in memory",
        ),
        ("open_databases", m.open_databases as u64, "open databases"),
        (
            "web_sockets_open",
            m.web_sockets_open as u64,
            "open WebSockets",
        ),
        ("pending_alarms", m.pending_alarms as u64, "pending alarms"),
        ("commits", m.commits, "commits"),
        ("rpc_calls", m.rpc_calls, "RPC calls"),
        ("fetches", m.fetches, "fetches"),
    ];
    let mut cells = String::new();
    for (key, value, label) in metrics {
        let _ = write!(
            cells,
            "<tr><th>{label}</th><td id=\"metric-{key}\" data-metric=\"{key}\">{value}</td></tr>"
        );
    }
    page(
        "Namespaces",
        &format!(
            "<h1>Namespaces</h1>
             <table id=namespaces><tr><th>class</th><th>bindings</th></tr>{rows}</table>
             <h2>Metrics</h2><table id=metrics>{cells}</table>
             <script>
               async function refresh() {{
                 try {{
                   const answer = await fetch('/api/metrics', {{ credentials: 'same-origin' }});
                   if (!answer.ok) return;
                   const metrics = await answer.json();
                   for (const cell of document.querySelectorAll('[data-metric]')) {{
                     cell.textContent = metrics[cell.dataset.metric];
                   }}
                   document.body.dataset.refreshed = 'yes';
                 }} catch (e) {{}}
               }}
               refresh();
               setInterval(refresh, 2000);
             </script>"
        ),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct NamespaceQuery {
    after: Option<String>,
    prefix: Option<String>,
}

/// One namespace's objects, a page at a time (in id order; `after` the last one shown).
async fn namespace(
    State(state): State<AdminState>,
    UrlPath(ns): UrlPath<String>,
    Query(query): Query<NamespaceQuery>,
) -> Response {
    let class = match state.admin.class_of(&ns) {
        Ok(class) => class,
        Err(error) => return failure(error.into()),
    };
    let layout = state.admin.layout().clone();
    let filter = ListFilter {
        class: Some(class.clone()),
        prefix: query.prefix.clone(),
    };
    let after = query.after.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let mut shown = Vec::new();
        let mut more = false;
        durable_storage::list_objects(&layout, &filter, |object| {
            if after
                .as_ref()
                .is_some_and(|after| object.id.as_str() <= after.as_str())
            {
                return true;
            }
            if shown.len() == PAGE {
                more = true;
                return false;
            }
            shown.push(object);
            true
        })
        .map(|_| (shown, more))
    })
    .await;
    let (objects, more) = match listed {
        Ok(Ok(listed)) => listed,
        Ok(Err(error)) => return failure(error.into()),
        Err(error) => {
            return failure(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                error.to_string(),
            ));
        }
    };
    let mut rows = String::new();
    for object in &objects {
        let link = format!("/ns/{}/{}", segment(&class), object.id);
        let _ = write!(
            rows,
            "<tr><td><a href=\"{link}\">{}</a></td><td class=mono>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(object.name.as_deref().unwrap_or("(no name)")),
            object.id,
            object.bytes,
            time_text(object.last_active_ms),
            time_text(object.alarm_ms),
        );
    }
    let prefix = query.prefix.unwrap_or_default();
    let next = match objects.last() {
        Some(last) if more => format!(
            "<p><a id=next href=\"/ns/{}?after={}&prefix={}\">Next page</a></p>",
            segment(&class),
            last.id,
            segment(&prefix)
        ),
        _ => String::new(),
    };
    page(
        &class,
        &format!(
            "<h1>{class}</h1>
             <form method=get><input name=prefix value=\"{}\" placeholder=\"name or id prefix\"> <button>Filter</button></form>
             <table id=objects><tr><th>name</th><th>id</th><th>bytes</th><th>last active</th><th>alarm</th></tr>{rows}</table>{next}",
            escape(&prefix),
            class = escape(&class),
        ),
    )
    .into_response()
}

/// One object: its tables, KV entries, alarm and WebSockets.
async fn object(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
) -> Response {
    let target = match admin::target(&state, &ns, &object) {
        Ok(target) => target,
        Err(error) => return failure(error),
    };
    let db = state.admin.database_path(&target);
    let read = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        match ObjectReader::open(&db)? {
            Some(reader) => {
                let mut tables = Vec::new();
                for table in reader.tables()? {
                    let count = reader
                        .query(&format!("SELECT count(*) FROM {}", quote(&table)), 1)?
                        .rows
                        .first()
                        .and_then(|row| row.first().cloned());
                    tables.push((table, count));
                }
                let kv = reader.kv_list("", None, 100)?;
                Ok((tables, kv, reader.alarm()?))
            }
            None => Ok((Vec::new(), Vec::new(), None)),
        }
    })
    .await;
    let (tables, kv, alarm) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => return failure(error),
        Err(error) => {
            return failure(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                error.to_string(),
            ));
        }
    };
    let base = format!("/ns/{}/{}", segment(&target.class), target.id);
    let name = admin::name_of(state.admin.layout(), &target);
    let mut table_rows = String::new();
    for (table, count) in &tables {
        let _ = write!(
            table_rows,
            "<tr><td><a href=\"{base}/table/{}\">{}</a></td><td>{}</td></tr>",
            segment(table),
            escape(table),
            count.as_ref().map_or("?".into(), value_text)
        );
    }
    let mut kv_rows = String::new();
    for (key, bytes) in &kv {
        let _ = write!(
            kv_rows,
            "<tr><td class=mono>{}</td><td class=mono>{}</td></tr>",
            escape(key),
            escape(&durable_storage::display_value(bytes).to_string())
        );
    }
    let mut socket_rows = String::new();
    let sockets = state.admin.web_sockets(&target);
    for socket in &sockets {
        let attachment = socket
            .attachment
            .as_deref()
            .map_or("-".to_owned(), |bytes| {
                durable_storage::display_value(bytes).to_string()
            });
        let _ = write!(
            socket_rows,
            "<tr><td>{}</td><td class=mono>{}</td></tr>",
            escape(&socket.tags.join(", ")),
            escape(&attachment)
        );
    }
    let title = name.clone().unwrap_or_else(|| target.id.to_string());
    page(
        &title,
        &format!(
            "<h1>{class} <span id=object-name>{title}</span></h1>
             <p>id <code>{id}</code></p>
             <h2>Alarm</h2><p id=alarm>{alarm}</p>
             <h2>SQL tables</h2><table id=tables><tr><th>table</th><th>rows</th></tr>{table_rows}</table>
             <form method=get action=\"{base}/sql\"><textarea name=q rows=3 cols=80 placeholder=\"SELECT ...\"></textarea><br><button>Run (read-only)</button></form>
             <h2>KV entries</h2><table id=kv><tr><th>key</th><th>value</th></tr>{kv_rows}</table>
             <h2>WebSockets ({count} open)</h2><table id=sockets><tr><th>tags</th><th>attachment</th></tr>{socket_rows}</table>",
            class = escape(&target.class),
            title = escape(&title),
            id = target.id,
            alarm = escape(&time_text(alarm)),
            count = sockets.len(),
        ),
    )
    .into_response()
}

/// A table name quoted for SQL.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn value_text(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(n) => n.to_string(),
        SqlValue::Real(x) => x.to_string(),
        SqlValue::Text(text) => text.clone(),
        SqlValue::Blob(bytes) => format!(
            "x'{}'",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// Rows as an HTML table.
fn rows_table(id: &str, result: &QueryResult) -> String {
    let mut out = format!("<table id={id}><tr>");
    for column in &result.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr>");
    for row in &result.rows {
        out.push_str("<tr>");
        for value in row {
            let _ = write!(out, "<td>{}</td>", escape(&value_text(value)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

#[derive(Debug, Deserialize)]
struct TableQuery {
    #[serde(default)]
    page: usize,
}

/// One table's rows, a page at a time.
async fn table(
    State(state): State<AdminState>,
    UrlPath((ns, object, table)): UrlPath<(String, String, String)>,
    Query(query): Query<TableQuery>,
) -> Response {
    let target = match admin::target(&state, &ns, &object) {
        Ok(target) => target,
        Err(error) => return failure(error),
    };
    let db = state.admin.database_path(&target);
    let name = table.clone();
    let offset = query.page.saturating_mul(PAGE);
    let read = tokio::task::spawn_blocking(move || -> Result<QueryResult, ApiError> {
        let reader = ObjectReader::open(&db)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the object has no data"))?;
        if !reader.tables()?.contains(&name) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the object has no table {name:?}"),
            ));
        }
        Ok(reader.query(
            &format!(
                "SELECT * FROM {} ORDER BY rowid LIMIT {} OFFSET {offset}",
                quote(&name),
                PAGE + 1
            ),
            PAGE + 1,
        )?)
    })
    .await;
    let mut result = match read {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => return failure(error),
        Err(error) => {
            return failure(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                error.to_string(),
            ));
        }
    };
    let more = result.rows.len() > PAGE;
    result.rows.truncate(PAGE);
    let base = format!(
        "/ns/{}/{}/table/{}",
        segment(&target.class),
        target.id,
        segment(&table)
    );
    let mut links = String::new();
    if query.page > 0 {
        let _ = write!(
            links,
            "<a id=previous href=\"{base}?page={}\">Previous page</a> ",
            query.page - 1
        );
    }
    if more {
        let _ = write!(
            links,
            "<a id=next href=\"{base}?page={}\">Next page</a>",
            query.page + 1
        );
    }
    page(
        &table,
        &format!(
            "<h1>{} <small>page {}</small></h1>{}<p>{links}</p>",
            escape(&table),
            query.page + 1,
            rows_table("rows", &result)
        ),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct SqlQuery {
    #[serde(default)]
    q: String,
}

/// The read-only SQL box's answer.
async fn sql_box(
    State(state): State<AdminState>,
    UrlPath((ns, object)): UrlPath<(String, String)>,
    Query(query): Query<SqlQuery>,
) -> Response {
    let target = match admin::target(&state, &ns, &object) {
        Ok(target) => target,
        Err(error) => return failure(error),
    };
    let base = format!("/ns/{}/{}", segment(&target.class), target.id);
    let form = format!(
        "<form method=get action=\"{base}/sql\"><textarea name=q rows=3 cols=80>{}</textarea><br><button>Run (read-only)</button></form>",
        escape(&query.q)
    );
    let answer = if query.q.trim().is_empty() {
        String::new()
    } else {
        match admin::read_query(&state, &target, query.q.clone(), 1000).await {
            Ok(result) => format!(
                "{}<p>({} rows)</p>",
                rows_table("result", &result),
                result.rows.len()
            ),
            Err(error) => format!("<p class=problem id=error>{}</p>", escape(&error.message)),
        }
    };
    page(
        "SQL",
        &format!(
            "<h1>SQL <small><a href=\"{base}\">back to the object</a></small></h1>{form}{answer}"
        ),
    )
    .into_response()
}
