//! Errors as HTTP clients see them: [`ApiError`], the error type route handlers return
//! (`Result<_, ApiError>` with `?` on the runtime's [`Error`]), and the mapping from an
//! error to a status and a JSON body.
//!
//! The body is always `{"error": message}`, plus `"code"` when the error carries one (a
//! user error's own code, or the platform's for a limit) and `"limit"` (`{"name", "max",
//! "actual"}`) when a platform limit was exceeded. A 503 carries `Retry-After`.
//!
//! What the mapping will not show a client: the text of a 5xx that is not the object's own
//! message (storage failures, SQL errors in the object's code, undecodable stored state)
//! is replaced by a generic sentence and logged in full instead, and a constraint failure is
//! answered 409 without SQLite's text (which names tables and columns).

use axum::response::{IntoResponse, Response as AxumResponse};
use durable_core::{Error, ErrorDetail, ErrorKind, Limit};
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

/// An error a route handler returns; converts from the runtime's [`Error`] with `?`.
///
/// ```
/// use durable_server::ApiError;
/// use durable_server::axum::http::StatusCode;
/// use durable_server::axum::response::IntoResponse;
///
/// fn parse_amount(text: &str) -> Result<i64, ApiError> {
///     text.parse()
///         .map_err(|_| ApiError::bad_request(format!("amount must be an integer, got {text:?}")))
/// }
///
/// let response = parse_amount("ten").unwrap_err().into_response();
/// assert_eq!(response.status(), StatusCode::BAD_REQUEST);
/// ```
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    code: Option<String>,
    limit: Option<(Limit, u64, Option<u64>)>,
}

impl ApiError {
    /// An error with `status` and `message` (shown to the client as it is).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
            limit: None,
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The same error with a machine-readable `code` in its body.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message the client sees.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The machine-readable code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::from(&error)
    }
}

impl From<&Error> for ApiError {
    fn from(error: &Error) -> Self {
        let status = status_for(error);
        let limit = match error.detail() {
            Some(ErrorDetail::Limit { limit, max, actual }) => Some((*limit, *max, *actual)),
            _ => None,
        };
        let message = public_message(error, status);
        let code = error
            .code()
            .map(str::to_owned)
            .or_else(|| limit.map(|(limit, ..)| limit.as_str().to_owned()))
            .or_else(|| is_constraint(error).then(|| "conflict".to_owned()))
            .or_else(|| {
                matches!(
                    error.kind(),
                    ErrorKind::DiskFull | ErrorKind::OutcomeUnknown
                )
                .then(|| error.kind().as_str().to_owned())
            });
        ApiError {
            status,
            message,
            code,
            limit,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> AxumResponse {
        let mut body = Map::new();
        body.insert("error".to_owned(), Value::String(self.message));
        if let Some(code) = self.code {
            body.insert("code".to_owned(), Value::String(code));
        }
        if let Some((limit, max, actual)) = self.limit {
            body.insert(
                "limit".to_owned(),
                json!({ "name": limit.as_str(), "max": max, "actual": actual }),
            );
        }
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn is_constraint(error: &Error) -> bool {
    error
        .sqlite_code()
        .is_some_and(|code| code.starts_with("SQLITE_CONSTRAINT"))
}

/// The HTTP status for a runtime error:
///
/// * the status a user error carries ([`Error::with_status`]), if it is a 4xx or 5xx;
/// * 413 for a size limit, 400 for another limit (503 for the queue limits: overload);
/// * 409 for a constraint failure (a UNIQUE key taken, ...);
/// * 507 for a full disk and for an object whose database reached its size limit;
/// * 400 for other bad input and malformed ids, 404 for not found, 501 for a missing
///   handler, 503 for overload and retryable failures;
/// * 500 for the rest: SQL errors of the object's own code, undecodable stored state,
///   storage failures, and user errors without a status.
pub fn status_for(error: &Error) -> StatusCode {
    if let Some(status) = error
        .status()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .filter(|status| status.is_client_error() || status.is_server_error())
    {
        return status;
    }
    if let Some(limit) = error.exceeded_limit() {
        return match limit {
            Limit::QueuedEvents | Limit::QueuedBytes => StatusCode::SERVICE_UNAVAILABLE,
            Limit::DatabaseBytes => StatusCode::INSUFFICIENT_STORAGE,
            limit if limit.is_size() => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
    }
    if is_constraint(error) {
        return StatusCode::CONFLICT;
    }
    match error.kind() {
        // Any other SQLite error is a mistake of the object's SQL, not of the request.
        ErrorKind::InvalidInput if error.sqlite_code().is_some() => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        ErrorKind::InvalidInput | ErrorKind::InvalidId => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Overloaded | ErrorKind::Disconnected => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
        _ if error.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What the client reads: the error's own message, unless it is a server-side failure
/// whose text is not meant for clients (logged here instead) or SQLite's text.
fn public_message(error: &Error, status: StatusCode) -> String {
    if status == StatusCode::CONFLICT && is_constraint(error) {
        tracing::info!(error = %error, "request refused by a constraint");
        return "the request conflicts with data already stored (a uniqueness or other constraint failed)".to_owned();
    }
    // These messages are written for callers and carry no server-side detail.
    let own_words = matches!(error.kind(), ErrorKind::User | ErrorKind::DiskFull)
        || error.exceeded_limit() == Some(Limit::DatabaseBytes);
    if status.is_server_error() && !own_words && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(kind = error.kind().as_str(), error = %error, "request failed");
        return match error.kind() {
            ErrorKind::NotImplemented => error.message().to_owned(),
            ErrorKind::Storage => {
                "the object's storage failed; the request may be retried".to_owned()
            }
            ErrorKind::OutcomeUnknown => {
                "the outcome of the request is unknown: the object was reset before its writes were confirmed durable, so they may or may not have been applied; read the state back before retrying".to_owned()
            }
            _ => "internal error: the request failed on the server (see its log)".to_owned(),
        };
    }
    error.message().to_owned()
}

/// A JSON error response: `{"error": message}`; 503 answers carry `Retry-After`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> AxumResponse {
    ApiError::new(status, message).into_response()
}

/// The response for a runtime error: [`ApiError::from`] it.
pub fn error_to_response(error: &Error) -> AxumResponse {
    ApiError::from(error).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(error: Error) -> ApiError {
        ApiError::from(error)
    }

    #[test]
    fn statuses_follow_the_error() {
        let cases = [
            (
                Error::user("room is full"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::user("sold out").with_status(409),
                StatusCode::CONFLICT,
            ),
            (Error::disk_full("full"), StatusCode::INSUFFICIENT_STORAGE),
            (
                Error::limit_exceeded(Limit::DatabaseBytes, 10, None, "database full"),
                StatusCode::INSUFFICIENT_STORAGE,
            ),
            (
                Error::outcome_unknown("fsync /data/x-wal: EIO"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::user("odd").with_status(200),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::limit_exceeded(Limit::KvEntryBytes, 10, Some(11), "too big"),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                Error::limit_exceeded(Limit::KvBatchKeys, 128, Some(129), "too many"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Error::overloaded("busy").with_detail(ErrorDetail::Limit {
                    limit: Limit::QueuedBytes,
                    max: 1,
                    actual: None,
                }),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::new(ErrorKind::InvalidInput, "UNIQUE constraint failed: t.email")
                    .with_detail(ErrorDetail::Sqlite {
                        code: "SQLITE_CONSTRAINT_UNIQUE".into(),
                    }),
                StatusCode::CONFLICT,
            ),
            (
                Error::new(ErrorKind::InvalidInput, "no such table: t").with_detail(
                    ErrorDetail::Sqlite {
                        code: "SQLITE_ERROR".into(),
                    },
                ),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::new(ErrorKind::InvalidInput, "bad key"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Error::new(ErrorKind::Codec, "cannot read REAL as i64"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::new(ErrorKind::NotFound, "none"),
                StatusCode::NOT_FOUND,
            ),
            (Error::disconnected("gone"), StatusCode::SERVICE_UNAVAILABLE),
        ];
        for (error, status) in cases {
            assert_eq!(status_for(&error), status, "{error:?}");
        }
    }

    #[test]
    fn server_side_text_and_sqlite_text_stay_on_the_server() {
        let unique = api(Error::new(
            ErrorKind::InvalidInput,
            "UNIQUE constraint failed: profile.email: SQLITE_CONSTRAINT_UNIQUE",
        )
        .with_detail(ErrorDetail::Sqlite {
            code: "SQLITE_CONSTRAINT_UNIQUE".into(),
        }));
        assert!(!unique.message().contains("profile"), "{unique}");
        assert_eq!(unique.code(), Some("conflict"));
        let codec = api(Error::new(
            ErrorKind::Codec,
            "column \"value\": cannot read REAL as i64",
        ));
        assert!(!codec.message().contains("REAL"), "{codec}");
        let storage = api(Error::new(
            ErrorKind::Storage,
            "fsync /data/x.sqlite-wal: EIO",
        ));
        assert!(!storage.message().contains("/data"), "{storage}");
        let unknown = api(Error::outcome_unknown("fsync /data/x.sqlite-wal: EIO"));
        assert!(!unknown.message().contains("/data"), "{unknown}");
        assert!(unknown.message().contains("may or may not"), "{unknown}");
        let full = api(Error::disk_full("the disk of the data folder is full"));
        assert_eq!(full.message(), "the disk of the data folder is full");
        assert_eq!(full.code(), Some("disk_full"));
        assert_eq!(unknown.code(), Some("outcome_unknown"));
        // The object's own words are its to show; so is bad input.
        assert_eq!(api(Error::user("room is full")).message(), "room is full");
        assert_eq!(
            api(Error::new(ErrorKind::InvalidInput, "key is too long")).message(),
            "key is too long"
        );
    }

    #[tokio::test]
    async fn the_body_carries_code_and_limit() {
        let response = api(Error::limit_exceeded(
            Limit::KvEntryBytes,
            2_000_000,
            Some(2_000_001),
            "value too large",
        ))
        .into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "error": "value too large",
                "code": "kv_entry_bytes",
                "limit": {"name": "kv_entry_bytes", "max": 2_000_000, "actual": 2_000_001}
            })
        );
        let response = api(Error::user("sold out")
            .with_code("sold_out")
            .with_status(409))
        .into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"error": "sold out", "code": "sold_out"}));
        let overloaded = api(Error::overloaded("busy")).into_response();
        assert_eq!(overloaded.headers()["retry-after"], "1");
    }
}
