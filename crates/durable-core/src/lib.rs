//! The vocabulary every other crate of durable-objects speaks.
//!
//! This crate owns the types that cross crate and process boundaries: object ids and the
//! namespace keys that authenticate them ([`id`]), the public [`Error`] ([`error`]), the
//! [`Clock`] through which all wall-clock time flows ([`clock`]), the self-describing value
//! codec ([`codec`]), the versioned RPC envelope ([`envelope`]) and the platform limits
//! ([`limits`]).
//!
//! Architecture invariant: this crate does no I/O and reads no clock. Randomness (for
//! [`ObjectId`]s made by `new_unique_id`) is passed in by the caller, so everything here is
//! deterministic and unit-testable.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod clock;
pub mod codec;
pub mod envelope;
pub mod error;
pub mod id;
pub mod limits;

pub use clock::{Clock, ClockListener, ManualClock};
pub use error::{Error, ErrorDetail, ErrorKind, Limit, Result, ResultExt};
pub use id::{IdError, NamespaceKey, ObjectId};
