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

/// How far in the future an alarm may be set, in milliseconds (100 years of 365.25 days).
/// Cloudflare publishes no bound; one keeps a typo (seconds for milliseconds, a year 30000)
/// from scheduling an alarm that can never be observed to fire.
pub const MAX_ALARM_HORIZON_MS: i64 = 3_155_760_000_000;

/// How long an async storage transaction may run before it is cancelled and rolled back
/// (Cloudflare: 30 s).
pub const TRANSACTION_TIMEOUT_MS: u64 = 30_000;

/// Idle time after which an object without open work is evicted from memory (workerd: 70 s;
/// Cloudflare: 70–140 s).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 70_000;

/// Bytes of disk a node sets aside so deletes can run when the disk is full.
pub const DEFAULT_DISK_RESERVE_BYTES: u64 = 8 * 1024 * 1024;

/// How long one turn of a handler may run without yielding before its shard counts as
/// stalled (Cloudflare's default CPU limit per invocation: 30 s).
pub const DEFAULT_CPU_LIMIT_MS: u64 = 30_000;

/// Events (calls, requests) that may wait for or run in one object at once before new ones are
/// refused as overloaded. Cloudflare does not publish its number; this one bounds memory per
/// object to a few megabytes while leaving room for bursts.
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 32_768;

/// Bytes the events queued or running in one object may carry (WebSocket messages, encoded
/// calls) before new ones are refused as overloaded: room for two of the largest messages,
/// while a flood of smaller ones cannot take the node's memory.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// Keys per batch `get`, `put` or `delete` of the KV API (Cloudflare: 128).
pub const MAX_KV_BATCH_KEYS: usize = 128;

/// Largest KV key, in UTF-8 bytes (Cloudflare's KV-backed limit, 2,048; kept for the SQLite
/// backend too, so keys stay small enough to index and to show).
pub const MAX_KV_KEY_BYTES: usize = 2_048;

/// Largest KV key plus encoded value, in bytes (Cloudflare's SQLite-backed limit, 2 MB).
pub const MAX_KV_ENTRY_BYTES: usize = 2_000_000;

/// Largest string or BLOB bound to an SQL statement, in bytes (2 MiB; Cloudflare documents
/// "2 MB" for a string, BLOB or row). Checked before SQLite sees the value.
pub const MAX_SQL_VALUE_BYTES: usize = 2_097_152;

/// Largest row SQLite stores, and largest value it builds inside SQL (`SQLITE_LIMIT_LENGTH`):
/// [`MAX_SQL_VALUE_BYTES`] plus 4 KiB, so a value at its limit still fits in a row beside a
/// key and a few small columns (SQLite counts the whole encoded row against this limit).
pub const MAX_SQL_ROW_BYTES: usize = MAX_SQL_VALUE_BYTES + 4_096;

/// Longest SQL text passed to one `exec`, all its statements together, in bytes
/// (Cloudflare: 100 KB).
pub const MAX_SQL_STATEMENT_BYTES: usize = 100_000;

/// Most bytes the rows of one `exec` result may hold in memory before the call fails with a
/// catchable error instead of exhausting the process (values' sizes plus a small per-value
/// overhead). Cloudflare's objects run in 128 MB; half of that for one result.
pub const DEFAULT_MAX_SQL_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// Most columns per table (Cloudflare: 100).
pub const MAX_SQL_COLUMNS: i32 = 100;

/// Most bound parameters per statement (Cloudflare: 100).
pub const MAX_SQL_PARAMETERS: i32 = 100;

/// Longest LIKE or GLOB pattern, in bytes (Cloudflare: 50).
pub const MAX_SQL_LIKE_PATTERN_BYTES: i32 = 50;

/// Most arguments of an SQL function call (workerd: 127; Cloudflare's docs: 32).
pub const MAX_SQL_FUNCTION_ARGS: i32 = 32;

/// Most terms of a compound SELECT (workerd: 5).
pub const MAX_SQL_COMPOUND_SELECT: i32 = 5;

/// Deepest SQL expression tree (workerd: 100).
pub const MAX_SQL_EXPR_DEPTH: i32 = 100;

/// Deepest trigger recursion (workerd: 10).
pub const MAX_SQL_TRIGGER_DEPTH: i32 = 10;

/// Largest database of one object, in bytes (Cloudflare, paid plan: 10 GB).
pub const DEFAULT_MAX_DATABASE_BYTES: u64 = 10_000_000_000;

/// Hibernatable WebSockets one object may hold at once.
pub const MAX_HIBERNATABLE_WEB_SOCKETS: usize = 32_768;

/// Distinct tags of one hibernatable WebSocket.
pub const MAX_WEB_SOCKET_TAGS: usize = 10;

/// Characters of one WebSocket tag.
pub const MAX_WEB_SOCKET_TAG_CHARS: usize = 256;

/// Serialized bytes of one WebSocket attachment.
pub const MAX_WEB_SOCKET_ATTACHMENT_BYTES: usize = 16_384;

/// Bytes of the request and of the response of the WebSocket auto-response pair.
pub const MAX_WEB_SOCKET_AUTO_RESPONSE_BYTES: usize = 2_048;

/// Bytes of one WebSocket message, received or sent.
pub const MAX_WEB_SOCKET_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// UTF-8 bytes of a WebSocket close reason.
pub const MAX_WEB_SOCKET_CLOSE_REASON_BYTES: usize = 123;

/// Longest hibernatable WebSocket event timeout, in milliseconds (7 days).
pub const MAX_WEB_SOCKET_EVENT_TIMEOUT_MS: u64 = 604_800_000;

/// How long an instance whose only connections are hibernatable WebSockets stays in memory
/// without events, in milliseconds, before it is dropped (the sockets stay open).
pub const DEFAULT_HIBERNATION_TIMEOUT_MS: u64 = 10_000;
