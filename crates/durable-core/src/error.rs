//! The one error type users see, and its kinds.
//!
//! [`Error`] is a struct with an [`ErrorKind`] plus two flags that mirror the properties
//! Cloudflare sets on errors thrown through a stub: `remote` (the error came from the object's
//! own code) and `retryable` (the call may not have reached the object, so trying again with a
//! new call is safe). A caller branches on those, never on the message: an error also carries,
//! where it applies, an [`ErrorDetail`] (which limit was exceeded, which SQLite result code
//! was reported) and, for errors an object raises itself, an application `code` and an HTTP
//! `status`. It serializes as all of these, so an error crosses an RPC boundary, in-process or
//! between nodes, without losing what callers test for.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::IdError;

/// `Result` with [`Error`] as the default error type; what object methods return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, at the level a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object's own code returned this error (see [`Error::user`]).
    User,
    /// An argument was refused: a malformed URL, a limit exceeded, a misuse of an API.
    InvalidInput,
    /// An id string is malformed or belongs to another namespace.
    InvalidId,
    /// A binding, class or method that does not exist.
    NotFound,
    /// The object's class does not implement the handler that was called.
    NotImplemented,
    /// The object has too much queued work; back off instead of retrying at once.
    Overloaded,
    /// The object was reset (its in-memory state discarded) while handling the call.
    Reset,
    /// The runtime could not deliver the call or its reply (for example it is shutting down).
    Disconnected,
    /// A value could not be encoded or decoded.
    Codec,
    /// Storage failed: the database reported an error, or a write could not be made durable.
    Storage,
    /// The disk under the data folder is full: writes are refused until space is freed, while
    /// reads and deletes keep working. Retrying at once does not help.
    DiskFull,
    /// The object was reset because a write's durability could not be confirmed (its fsync
    /// failed or did not return in time): the write may or may not have been applied. Read
    /// the state back before deciding to retry.
    OutcomeUnknown,
    /// A bug or an unexpected condition inside the runtime.
    Internal,
}

impl ErrorKind {
    /// The stable name of the kind, as carried in the RPC envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::User => "user",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::InvalidId => "invalid_id",
            ErrorKind::NotFound => "not_found",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Reset => "reset",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Codec => "codec",
            ErrorKind::Storage => "storage",
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind with this stable name; unknown names (from a newer peer) become `Internal`.
    pub fn from_name(name: &str) -> ErrorKind {
        match name {
            "user" => ErrorKind::User,
            "invalid_input" => ErrorKind::InvalidInput,
            "invalid_id" => ErrorKind::InvalidId,
            "not_found" => ErrorKind::NotFound,
            "not_implemented" => ErrorKind::NotImplemented,
            "overloaded" => ErrorKind::Overloaded,
            "reset" => ErrorKind::Reset,
            "disconnected" => ErrorKind::Disconnected,
            "codec" => ErrorKind::Codec,
            "storage" => ErrorKind::Storage,
            "disk_full" => ErrorKind::DiskFull,
            "outcome_unknown" => ErrorKind::OutcomeUnknown,
            _ => ErrorKind::Internal,
        }
    }
}

/// A platform limit, named so a program can tell which one a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// UTF-8 bytes of a KV key.
    KvKeyBytes,
    /// Bytes of a KV key and its encoded value together.
    KvEntryBytes,
    /// Keys of one batch KV operation.
    KvBatchKeys,
    /// Bytes of one SQL string or BLOB value (and of one row).
    SqlValueBytes,
    /// Bytes of one SQL row (and of a value built inside SQL).
    SqlRowBytes,
    /// Bytes of the SQL text passed to one `exec`.
    SqlStatementBytes,
    /// Bound parameters of one statement.
    SqlParameters,
    /// Bytes of one SQL result set held in memory.
    SqlResultBytes,
    /// Bytes of one object's database.
    DatabaseBytes,
    /// Bytes of one encoded RPC call or result.
    RpcMessageBytes,
    /// Events queued or running in one object.
    QueuedEvents,
    /// Bytes of the messages queued for one object.
    QueuedBytes,
    /// Bytes of one WebSocket message.
    WebSocketMessageBytes,
    /// Bytes of one WebSocket attachment.
    WebSocketAttachmentBytes,
    /// Tags of one hibernatable WebSocket.
    WebSocketTags,
    /// Characters of one WebSocket tag.
    WebSocketTagChars,
    /// Bytes of a WebSocket close reason.
    WebSocketCloseReasonBytes,
    /// Bytes of either side of the WebSocket auto-response.
    WebSocketAutoResponseBytes,
    /// Hibernatable WebSockets of one object.
    HibernatableWebSockets,
    /// Nesting of `block_concurrency_while`.
    BlockConcurrencyDepth,
    /// How far in the future an alarm may be set, in milliseconds.
    AlarmHorizon,
    /// Bytes of a request or response body.
    BodyBytes,
    /// A limit this version does not name (from a newer peer).
    Other,
}

impl Limit {
    const NAMES: [(Limit, &'static str); 23] = [
        (Limit::KvKeyBytes, "kv_key_bytes"),
        (Limit::KvEntryBytes, "kv_entry_bytes"),
        (Limit::KvBatchKeys, "kv_batch_keys"),
        (Limit::SqlValueBytes, "sql_value_bytes"),
        (Limit::SqlRowBytes, "sql_row_bytes"),
        (Limit::SqlStatementBytes, "sql_statement_bytes"),
        (Limit::SqlParameters, "sql_parameters"),
        (Limit::SqlResultBytes, "sql_result_bytes"),
        (Limit::DatabaseBytes, "database_bytes"),
        (Limit::RpcMessageBytes, "rpc_message_bytes"),
        (Limit::QueuedEvents, "queued_events"),
        (Limit::QueuedBytes, "queued_bytes"),
        (Limit::WebSocketMessageBytes, "web_socket_message_bytes"),
        (
            Limit::WebSocketAttachmentBytes,
            "web_socket_attachment_bytes",
        ),
        (Limit::WebSocketTags, "web_socket_tags"),
        (Limit::WebSocketTagChars, "web_socket_tag_chars"),
        (
            Limit::WebSocketCloseReasonBytes,
            "web_socket_close_reason_bytes",
        ),
        (
            Limit::WebSocketAutoResponseBytes,
            "web_socket_auto_response_bytes",
        ),
        (Limit::HibernatableWebSockets, "hibernatable_web_sockets"),
        (Limit::BlockConcurrencyDepth, "block_concurrency_depth"),
        (Limit::AlarmHorizon, "alarm_horizon"),
        (Limit::BodyBytes, "body_bytes"),
        (Limit::Other, "other"),
    ];

    /// The stable name of the limit (`kv_key_bytes`, ...), as carried over RPC and in JSON.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(limit, _)| *limit == self)
            .map_or("other", |(_, name)| name)
    }

    /// The limit with this stable name; unknown names become [`Limit::Other`].
    pub fn from_name(name: &str) -> Limit {
        Self::NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map_or(Limit::Other, |(limit, _)| *limit)
    }

    /// True for limits on a size in bytes (what HTTP calls "payload too large").
    pub fn is_size(self) -> bool {
        self.as_str().ends_with("_bytes") && self != Limit::AlarmHorizon
    }
}

/// What an error is about, for a program to branch on instead of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorDetail {
    /// A request went over a platform limit.
    Limit {
        /// Which one.
        limit: Limit,
        /// Its value.
        max: u64,
        /// What the request asked for, when known.
        actual: Option<u64>,
    },
    /// SQLite refused a statement with this extended result code (`SQLITE_CONSTRAINT_UNIQUE`,
    /// `SQLITE_TOOBIG`, ...).
    Sqlite {
        /// The code's name.
        code: String,
    },
}

/// The error of every public operation of durable-objects, and of object methods.
///
/// ```
/// use durable_objects::{Error, ErrorKind};
///
/// let err = Error::user("room is full");
/// assert_eq!(err.kind(), ErrorKind::User);
/// assert_eq!(err.to_string(), "room is full");
/// assert!(!err.is_retryable());
///
/// // An error a caller branches on carries a code (and an HTTP status for the front).
/// let sold_out = Error::user("the last seat was taken").with_code("sold_out").with_status(409);
/// assert_eq!(sold_out.code(), Some("sold_out"));
/// assert_eq!(sold_out.status(), Some(409));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireError", from = "WireError")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    remote: bool,
    retryable: bool,
    detail: Option<ErrorDetail>,
    code: Option<String>,
    status: Option<u16>,
}

impl Error {
    /// An error of `kind` with `message` (lower case, no trailing period, saying what to do).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            remote: false,
            retryable: kind == ErrorKind::Disconnected,
            detail: None,
            code: None,
            status: None,
        }
    }

    /// A request went over `limit` (of `max`; it asked for `actual`, if known). Of kind
    /// [`ErrorKind::InvalidInput`], with the limit as its [`ErrorDetail`].
    pub fn limit_exceeded(
        limit: Limit,
        max: u64,
        actual: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorKind::InvalidInput, message).with_detail(ErrorDetail::Limit {
            limit,
            max,
            actual,
        })
    }

    /// An error raised by an object's own code; what a method returns to fail a call.
    pub fn user(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::User, message.to_string())
    }

    /// The object is overloaded.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Overloaded, message)
    }

    /// The object was reset while handling the call.
    pub fn reset(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Reset, message)
    }

    /// The disk under the data folder is full (see [`ErrorKind::DiskFull`]).
    pub fn disk_full(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DiskFull, message)
    }

    /// The object was reset after a write whose durability is unknown (see
    /// [`ErrorKind::OutcomeUnknown`]).
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OutcomeUnknown, message)
    }

    /// The call or its reply could not be delivered; retryable.
    pub fn disconnected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Disconnected, message)
    }

    /// Marks the error as coming from the object's side of a call.
    pub fn into_remote(mut self) -> Self {
        self.remote = true;
        self
    }

    /// Sets whether a caller may safely retry the call.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Attaches what the error is about.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Sets an application code a caller can branch on (`"sold_out"`); it survives RPC.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the HTTP status a front should answer with (`409`); it survives RPC.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// What the error is about, if the runtime knows.
    pub fn detail(&self) -> Option<&ErrorDetail> {
        self.detail.as_ref()
    }

    /// The limit the request went over, if that is what failed.
    pub fn exceeded_limit(&self) -> Option<Limit> {
        match &self.detail {
            Some(ErrorDetail::Limit { limit, .. }) => Some(*limit),
            _ => None,
        }
    }

    /// SQLite's extended result code (`SQLITE_CONSTRAINT_UNIQUE`), if SQLite refused.
    pub fn sqlite_code(&self) -> Option<&str> {
        match &self.detail {
            Some(ErrorDetail::Sqlite { code }) => Some(code),
            _ => None,
        }
    }

    /// The application code set with [`with_code`](Self::with_code).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The HTTP status set with [`with_status`](Self::with_status).
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Prefixes the message with what was being done ("decode rpc result: ...").
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without kind or flags.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the call may not have reached the object, so sending it again on a new call
    /// is safe (Cloudflare's `.retryable`).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// True when the object refused the call because too much work is queued for it
    /// (Cloudflare's `.overloaded`); do not retry at once.
    pub fn is_overloaded(&self) -> bool {
        self.kind == ErrorKind::Overloaded
    }

    /// True when the error was raised on the object's side of a call, by its code or by its
    /// reset (Cloudflare's `.remote`).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// True when the object was reset while handling the call (Cloudflare's
    /// `.durableObjectReset`); its next call gets a fresh instance. An
    /// [`ErrorKind::OutcomeUnknown`] error is a reset too.
    pub fn is_reset(&self) -> bool {
        matches!(self.kind, ErrorKind::Reset | ErrorKind::OutcomeUnknown)
    }

    /// True when the disk under the data folder is full: writes fail until space is freed,
    /// reads and deletes still work.
    pub fn is_disk_full(&self) -> bool {
        self.kind == ErrorKind::DiskFull
    }

    /// True when a write may or may not have been applied: the object was reset because its
    /// durability could not be confirmed. Read before retrying.
    pub fn is_outcome_unknown(&self) -> bool {
        self.kind == ErrorKind::OutcomeUnknown
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("remote", &self.remote)
            .field("retryable", &self.retryable);
        if let Some(detail) = &self.detail {
            debug.field("detail", detail);
        }
        if let Some(code) = &self.code {
            debug.field("code", code);
        }
        if let Some(status) = &self.status {
            debug.field("status", status);
        }
        debug.finish()
    }
}

/// Turns any error into an [`Error`] an object's method can return with `?`.
///
/// ```
/// use durable_objects::{ErrorKind, Result, ResultExt};
///
/// fn parse(text: &str) -> Result<u32> {
///     // `?` on a std error (or an `anyhow::Error`) inside a method: say it is the object's.
///     text.parse::<u32>().user_err()
/// }
/// assert_eq!(parse("x").unwrap_err().kind(), ErrorKind::User);
/// ```
pub trait ResultExt<T> {
    /// Maps the error to [`Error::user`] with its message (`{:#}`, which includes the chain of
    /// causes of an `anyhow::Error`).
    fn user_err(self) -> Result<T>;
}

impl<T, E: fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn user_err(self) -> Result<T> {
        self.map_err(|err| Error::user(format!("{err:#}")))
    }
}

impl std::error::Error for Error {}

impl From<IdError> for Error {
    fn from(err: IdError) -> Self {
        Error::new(ErrorKind::InvalidId, err.to_string())
    }
}

/// With the `anyhow` feature: `?` on an `anyhow::Error` inside an object's method; it
/// becomes a user error with the error's chain of causes as its message.
#[cfg(feature = "anyhow")]
impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Error::user(format!("{err:#}"))
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::user(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::user(message)
    }
}

/// The wire form of [`Error`]: the kind travels by name so a newer peer's kinds degrade to
/// `internal` instead of failing to decode.
#[derive(Serialize, Deserialize)]
struct WireError {
    kind: String,
    message: String,
    #[serde(default)]
    remote: bool,
    #[serde(default)]
    retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<WireLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sqlite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

#[derive(Serialize, Deserialize)]
struct WireLimit {
    name: String,
    max: u64,
    actual: Option<u64>,
}

impl From<Error> for WireError {
    fn from(err: Error) -> Self {
        let (limit, sqlite) = match err.detail {
            Some(ErrorDetail::Limit { limit, max, actual }) => (
                Some(WireLimit {
                    name: limit.as_str().to_owned(),
                    max,
                    actual,
                }),
                None,
            ),
            Some(ErrorDetail::Sqlite { code }) => (None, Some(code)),
            None => (None, None),
        };
        WireError {
            kind: err.kind.as_str().to_owned(),
            message: err.message,
            remote: err.remote,
            retryable: err.retryable,
            limit,
            sqlite,
            code: err.code,
            status: err.status,
        }
    }
}

impl From<WireError> for Error {
    fn from(wire: WireError) -> Self {
        let detail = match (wire.limit, wire.sqlite) {
            (Some(limit), _) => Some(ErrorDetail::Limit {
                limit: Limit::from_name(&limit.name),
                max: limit.max,
                actual: limit.actual,
            }),
            (None, Some(code)) => Some(ErrorDetail::Sqlite { code }),
            (None, None) => None,
        };
        Error {
            kind: ErrorKind::from_name(&wire.kind),
            message: wire.message,
            remote: wire.remote,
            retryable: wire.retryable,
            detail,
            code: wire.code,
            status: wire.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_kind_and_flags() {
        assert!(Error::overloaded("x").is_overloaded());
        assert!(Error::reset("x").is_reset());
        assert!(Error::outcome_unknown("x").is_reset());
        assert!(Error::outcome_unknown("x").is_outcome_unknown());
        assert!(!Error::outcome_unknown("x").is_retryable());
        assert!(Error::disk_full("x").is_disk_full());
        assert!(!Error::disk_full("x").is_retryable());
        assert!(Error::disconnected("x").is_retryable());
        assert!(!Error::user("x").is_retryable());
        assert!(Error::user("x").into_remote().is_remote());
        assert!(!Error::user("x").is_remote());
    }

    #[test]
    fn every_kind_survives_the_wire() {
        let kinds = [
            ErrorKind::User,
            ErrorKind::InvalidInput,
            ErrorKind::InvalidId,
            ErrorKind::NotFound,
            ErrorKind::NotImplemented,
            ErrorKind::Overloaded,
            ErrorKind::Reset,
            ErrorKind::Disconnected,
            ErrorKind::Codec,
            ErrorKind::Storage,
            ErrorKind::DiskFull,
            ErrorKind::OutcomeUnknown,
            ErrorKind::Internal,
        ];
        for kind in kinds {
            assert_eq!(ErrorKind::from_name(kind.as_str()), kind);
            let err = Error::new(kind, "m").into_remote();
            let bytes = rmp_serde::to_vec_named(&err).unwrap();
            let back: Error = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, err);
        }
        assert_eq!(ErrorKind::from_name("from-the-future"), ErrorKind::Internal);
    }

    #[test]
    fn details_codes_and_statuses_survive_the_wire() {
        let errors = [
            Error::limit_exceeded(Limit::KvKeyBytes, 2_048, Some(3_000), "key too long"),
            Error::new(ErrorKind::InvalidInput, "dup").with_detail(ErrorDetail::Sqlite {
                code: "SQLITE_CONSTRAINT_UNIQUE".into(),
            }),
            Error::user("sold out")
                .with_code("sold_out")
                .with_status(409),
        ];
        for err in errors {
            let bytes = rmp_serde::to_vec_named(&err).unwrap();
            let back: Error = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, err);
        }
        let limited = Error::limit_exceeded(Limit::QueuedBytes, 10, None, "m");
        assert_eq!(limited.exceeded_limit(), Some(Limit::QueuedBytes));
        assert_eq!(limited.sqlite_code(), None);
    }

    #[test]
    fn every_limit_has_a_stable_name() {
        for (limit, name) in Limit::NAMES {
            assert_eq!(limit.as_str(), name);
            assert_eq!(Limit::from_name(name), limit);
        }
        assert_eq!(Limit::from_name("newer"), Limit::Other);
        assert!(Limit::KvEntryBytes.is_size() && !Limit::KvBatchKeys.is_size());
    }

    #[test]
    fn any_displayable_error_becomes_a_user_error() {
        let parsed: Result<u8> = "300".parse::<u8>().user_err();
        let err = parsed.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::User);
        assert!(err.message().contains("too large"), "{err}");
    }
}
