//! Platform limits, with where each number comes from.
//!
//! Numbers follow Cloudflare's published limits (and workerd's source where the two differ and
//! workerd is the more precise oracle), so code written against Cloudflare keeps working.

/// Largest encoded RPC argument list or result, in bytes (workerd: 32 MiB).
pub const MAX_RPC_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Deepest nesting of `block_concurrency_while` calls (workerd: 64).
pub const MAX_BLOCK_CONCURRENCY_DEPTH: u32 = 64;

/// How long `block_concurrency_while` may run before the object is reset (30 s).
pub const BLOCK_CONCURRENCY_TIMEOUT_MS: u64 = 30_000;

/// Idle time after which an object without open work is evicted from memory (workerd: 70 s;
/// Cloudflare: 70–140 s).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 70_000;

/// Events (calls, requests) that may wait for or run in one object at once before new ones are
/// refused as overloaded. Cloudflare does not publish its number; this one bounds memory per
/// object to a few megabytes while leaving room for bursts.
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 32_768;
