//! The one error type users see, and its kinds.
//!
//! [`Error`] is a struct with an [`ErrorKind`] plus two flags that mirror the properties
//! Cloudflare sets on errors thrown through a stub: `remote` (the error came from the object's
//! own code) and `retryable` (the call may not have reached the object, so trying again with a
//! new call is safe). It serializes as kind + message + flags, so an error crosses an RPC
//! boundary, in-process or between nodes, without losing what callers test for.

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
            _ => ErrorKind::Internal,
        }
    }
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
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireError", from = "WireError")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    remote: bool,
    retryable: bool,
}

impl Error {
    /// An error of `kind` with `message` (lower case, no trailing period, saying what to do).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            remote: false,
            retryable: kind == ErrorKind::Disconnected,
        }
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
    /// `.durableObjectReset`); its next call gets a fresh instance.
    pub fn is_reset(&self) -> bool {
        self.kind == ErrorKind::Reset
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("remote", &self.remote)
            .field("retryable", &self.retryable)
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<IdError> for Error {
    fn from(err: IdError) -> Self {
        Error::new(ErrorKind::InvalidId, err.to_string())
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
}

impl From<Error> for WireError {
    fn from(err: Error) -> Self {
        WireError {
            kind: err.kind.as_str().to_owned(),
            message: err.message,
            remote: err.remote,
            retryable: err.retryable,
        }
    }
}

impl From<WireError> for Error {
    fn from(wire: WireError) -> Self {
        Error {
            kind: ErrorKind::from_name(&wire.kind),
            message: wire.message,
            remote: wire.remote,
            retryable: wire.retryable,
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
}
