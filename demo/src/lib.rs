//! The demo app of durable-objects as a library: its object classes ([`objects`]) and its
//! HTTP front ([`routes`]); the `durable-demo` binary serves them.

pub mod objects;
pub mod routes;

/// The demo's own configuration (`demo/wrangler.jsonc`), built in.
pub const BUILT_IN_CONFIG: &str = include_str!("../wrangler.jsonc");
