//! The KV API's rules: key and entry limits, batch sizes and `list` options.
//!
//! KV entries live in the reserved table `_cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT
//! ROWID` of the object's own database, so KV and SQL writes of one turn commit together.
//! Keys order by their UTF-8 bytes (SQLite's BINARY collation), as on Cloudflare. Values are
//! stored as self-describing MessagePack (`durable_core::codec`).

use durable_core::limits::{MAX_KV_BATCH_KEYS, MAX_KV_ENTRY_BYTES, MAX_KV_KEY_BYTES};

use crate::error::KvError;

pub(crate) const KV_TABLE: &str = "_cf_KV";

pub(crate) fn check_key(key: &str) -> Result<(), KvError> {
    if key.len() > MAX_KV_KEY_BYTES {
        return Err(KvError::KeyTooLarge {
            len: key.len(),
            limit: MAX_KV_KEY_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_entry(key: &str, value: &[u8]) -> Result<(), KvError> {
    check_key(key)?;
    if key.len() + value.len() > MAX_KV_ENTRY_BYTES {
        return Err(KvError::EntryTooLarge {
            key_len: key.len(),
            value_len: value.len(),
            limit: MAX_KV_ENTRY_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_batch(len: usize) -> Result<(), KvError> {
    if len > MAX_KV_BATCH_KEYS {
        return Err(KvError::BatchTooLarge {
            len,
            limit: MAX_KV_BATCH_KEYS,
        });
    }
    Ok(())
}

/// Which keys `list` returns, in which order.
///
/// ```
/// use durable_objects::storage::ListOptions;
///
/// let options = ListOptions::new().prefix("user:").limit(10).reverse(true);
/// assert_eq!(options.get_limit(), Some(10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    start: Option<String>,
    start_after: Option<String>,
    end: Option<String>,
    prefix: Option<String>,
    reverse: bool,
    limit: Option<usize>,
}

impl ListOptions {
    /// All keys, ascending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys at or after `key`.
    pub fn start(mut self, key: impl Into<String>) -> Self {
        self.start = Some(key.into());
        self
    }

    /// Keys strictly after `key` (not together with `start`).
    pub fn start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }

    /// Keys strictly before `key`.
    pub fn end(mut self, key: impl Into<String>) -> Self {
        self.end = Some(key.into());
        self
    }

    /// Keys that start with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Descending order; `start` and `end` keep their meaning (start is still the lowest key).
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    /// At most `limit` keys (must be positive).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The limit, if set.
    pub fn get_limit(&self) -> Option<usize> {
        self.limit
    }

    /// The query and its parameters.
    pub(crate) fn compile(&self) -> Result<(String, Vec<String>), KvError> {
        if self.start.is_some() && self.start_after.is_some() {
            return Err(KvError::StartAndStartAfter);
        }
        if self.limit == Some(0) {
            return Err(KvError::ZeroLimit);
        }
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut bound = |op: &str, value: &str| {
            params.push(value.to_owned());
            conditions.push(format!("key {op} ?{}", params.len()));
        };
        if let Some(start) = &self.start {
            bound(">=", start);
        }
        if let Some(after) = &self.start_after {
            bound(">", after);
        }
        if let Some(end) = &self.end {
            bound("<", end);
        }
        if let Some(prefix) = &self.prefix {
            bound(">=", prefix);
            if let Some(upper) = successor(prefix) {
                bound("<", &upper);
            }
        }
        let mut sql = format!("SELECT key, value FROM {KV_TABLE}");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(if self.reverse {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        if let Some(limit) = self.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        Ok((sql, params))
    }
}

/// The smallest string greater than every string starting with `prefix`, if one exists.
///
/// UTF-8 byte order equals code point order, so bumping the last character that can be
/// bumped (and dropping what follows it) gives the bound.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(bumped) = char::from_u32(next) {
            chars.push(bumped);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
    }

    #[test]
    fn bad_options_are_refused() {
        let both = ListOptions::new().start("a").start_after("b").compile();
        assert_eq!(both.unwrap_err(), KvError::StartAndStartAfter);
        assert_eq!(
            ListOptions::new().limit(0).compile().unwrap_err(),
            KvError::ZeroLimit
        );
    }

    #[test]
    fn limits_name_the_numbers() {
        let key = "k".repeat(MAX_KV_KEY_BYTES + 1);
        let err = check_key(&key).unwrap_err().to_string();
        assert_eq!(err, "key is 2049 bytes; the limit is 2048 bytes");
        assert!(check_entry("k", &vec![0; MAX_KV_ENTRY_BYTES]).is_err());
        assert!(check_entry("k", &vec![0; MAX_KV_ENTRY_BYTES - 1]).is_ok());
        assert!(check_batch(128).is_ok());
        assert_eq!(
            check_batch(129).unwrap_err().to_string(),
            "a batch operation takes at most 128 keys; 129 were given"
        );
    }
}
