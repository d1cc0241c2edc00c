//! Object ids and the namespace keys that authenticate them.
//!
//! An [`ObjectId`] is 32 bytes, shown as 64 lowercase hex digits: a 16-byte *base* followed by
//! a 16-byte *tag*, the first half of `HMAC-SHA256(namespace key, "tag" ‖ base)`. The tag makes
//! ids self-authenticating: [`NamespaceKey::id_from_string`] recomputes it and rejects ids that
//! another namespace made, or that somebody made up, without touching storage.
//!
//! * `new_unique_id`: the base is 16 random bytes, supplied by the caller (this crate does no
//!   I/O, so it does not read the system's random source itself).
//! * `id_from_name`: the base is the first half of `HMAC-SHA256(key, "name" ‖ name)`, so the
//!   same name in the same namespace always gives the same id, also across restarts, while the
//!   same name in another namespace gives an unrelated id.
//!
//! The two HMAC inputs carry different prefixes so that a name can never be mistaken for a
//! base. The key itself is 32 random bytes created once per namespace and kept in the data
//! folder; losing it makes every id of the namespace unreachable.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of an id in bytes.
pub const ID_LEN: usize = 32;
/// Length of an id's random or name-derived part.
pub const BASE_LEN: usize = 16;
/// Length of the string form of an id.
pub const ID_HEX_LEN: usize = ID_LEN * 2;

const NAME_DOMAIN: &[u8] = b"durable-objects/name\0";
const TAG_DOMAIN: &[u8] = b"durable-objects/tag\0";

/// Why a string is not a valid [`ObjectId`] of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string is not 64 characters long.
    #[error("invalid durable object id: must be 64 hex digits, got {len} characters")]
    Length {
        /// Number of characters in the rejected string.
        len: usize,
    },
    /// The string has a character that is not a hex digit.
    #[error(
        "invalid durable object id: must be 64 hex digits, found {found:?} at position {position}"
    )]
    Character {
        /// Zero-based character position of the first bad character.
        position: usize,
        /// The bad character.
        found: char,
    },
    /// The string is well formed but its tag does not match this namespace's key: it belongs to
    /// another namespace, or it was made up or altered.
    #[error(
        "durable object id is not valid for this namespace: it was made by another namespace, or altered"
    )]
    ForeignNamespace,
}

/// The secret of one namespace: ids are derived from it and authenticated with it.
///
/// Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct NamespaceKey([u8; 32]);

impl fmt::Debug for NamespaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NamespaceKey(..)")
    }
}

impl NamespaceKey {
    /// Wraps 32 key bytes, normally random bytes created once for the namespace.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes, for persisting the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lowercase hex digits, the form kept in the data folder.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Parses the form written by [`NamespaceKey::to_hex`]; surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        decode_hex32(text.trim()).map(Self)
    }

    fn mac(&self, domain: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac accepts keys of any length");
        mac.update(domain);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    fn tag(&self, base: &[u8; BASE_LEN]) -> [u8; 16] {
        let full = self.mac(TAG_DOMAIN, base);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// The id of the object called `name` in this namespace; the same for the same name, always.
    ///
    /// The returned id remembers the name ([`ObjectId::name`]).
    pub fn id_from_name(&self, name: &str) -> ObjectId {
        let full = self.mac(NAME_DOMAIN, name.as_bytes());
        let mut base = [0u8; BASE_LEN];
        base.copy_from_slice(&full[..BASE_LEN]);
        let mut id = self.id_from_base(base);
        id.name = Some(Arc::from(name));
        id
    }

    /// The id whose base is `base`; with 16 random bytes this is `new_unique_id`.
    pub fn id_from_base(&self, base: [u8; BASE_LEN]) -> ObjectId {
        let mut bytes = [0u8; ID_LEN];
        bytes[..BASE_LEN].copy_from_slice(&base);
        bytes[BASE_LEN..].copy_from_slice(&self.tag(&base));
        ObjectId { bytes, name: None }
    }

    /// Parses the 64-hex-digit form of an id and checks that this namespace made it.
    ///
    /// Upper-case hex digits are accepted; [`ObjectId`]'s `Display` always prints lower case.
    pub fn id_from_string(&self, text: &str) -> Result<ObjectId, IdError> {
        let bytes = decode_hex32(text)?;
        let id = ObjectId { bytes, name: None };
        self.verify(&id)?;
        Ok(id)
    }

    /// Checks that `id` was made by this namespace.
    pub fn verify(&self, id: &ObjectId) -> Result<(), IdError> {
        let mut base = [0u8; BASE_LEN];
        base.copy_from_slice(&id.bytes[..BASE_LEN]);
        // Not constant time: ids are not secrets, and a forged id only reaches an empty object
        // of the namespace, so a timing oracle gives an attacker nothing.
        if self.tag(&base) == id.bytes[BASE_LEN..] {
            Ok(())
        } else {
            Err(IdError::ForeignNamespace)
        }
    }
}

/// The address of one object within its namespace: 32 bytes, shown as 64 lowercase hex digits.
///
/// Two ids are equal when their bytes are; the optional [`name`](ObjectId::name) does not take
/// part in equality, hashing or ordering.
#[derive(Clone)]
pub struct ObjectId {
    bytes: [u8; ID_LEN],
    name: Option<Arc<str>>,
}

impl ObjectId {
    /// The 32 id bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.bytes
    }

    /// The name this id was derived from, for ids made by `id_from_name` or `get_by_name`;
    /// `None` for unique ids and ids parsed from strings.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A well-spread 64-bit hash of the id, for choosing a shard. It reads tag bytes, which are
    /// HMAC output and so uniformly distributed.
    pub fn routing_hash(&self) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.bytes[BASE_LEN..BASE_LEN + 8]);
        u64::from_le_bytes(word)
    }

    /// The same id carrying `name`, for an object that learns the name it was addressed by.
    pub fn with_name(mut self, name: Option<Arc<str>>) -> Self {
        self.name = name;
        self
    }

    /// The name as a shared string, to pass along without copying.
    pub fn shared_name(&self) -> Option<Arc<str>> {
        self.name.clone()
    }
}

impl PartialEq for ObjectId {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ObjectId {}

impl Hash for ObjectId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl PartialOrd for ObjectId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.bytes))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "ObjectId({self}, name: {name:?})"),
            None => write!(f, "ObjectId({self})"),
        }
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

fn decode_hex32(text: &str) -> Result<[u8; 32], IdError> {
    let len = text.chars().count();
    if len != ID_HEX_LEN {
        return Err(IdError::Length { len });
    }
    // Length is 64 characters; check every one is an ASCII hex digit before touching bytes,
    // so that a multi-byte character is reported as a character, not as a length problem.
    if let Some((position, found)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(IdError::Character { position, found });
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        out[i] = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(out)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => unreachable!("digits are checked before decoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> NamespaceKey {
        NamespaceKey::from_bytes([seed; 32])
    }

    #[test]
    fn name_derived_ids_are_deterministic_and_namespace_specific() {
        let a = key(1).id_from_name("room-1");
        assert_eq!(a, key(1).id_from_name("room-1"));
        assert_ne!(a, key(1).id_from_name("room-2"));
        assert_ne!(a, key(2).id_from_name("room-1"));
        assert_eq!(a.name(), Some("room-1"));
    }

    #[test]
    fn string_form_round_trips_and_is_lower_hex() {
        let id = key(1).id_from_base([7; 16]);
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert!(text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        let parsed = key(1).id_from_string(&text).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(parsed.name(), None);
        assert_eq!(key(1).id_from_string(&text.to_uppercase()).unwrap(), id);
    }

    #[test]
    fn malformed_strings_say_which_rule_they_break() {
        let check = |text: &str, expected: IdError| {
            assert_eq!(
                key(1).id_from_string(text).unwrap_err(),
                expected,
                "{text:?}"
            );
        };
        check("", IdError::Length { len: 0 });
        check("abc", IdError::Length { len: 3 });
        check(&"a".repeat(65), IdError::Length { len: 65 });
        let mut bad = "0".repeat(64);
        bad.replace_range(10..11, "g");
        check(
            &bad,
            IdError::Character {
                position: 10,
                found: 'g',
            },
        );
        let mut multibyte = "0".repeat(63);
        multibyte.push('é');
        check(
            &multibyte,
            IdError::Character {
                position: 63,
                found: 'é',
            },
        );
        let message = key(1).id_from_string("abc").unwrap_err().to_string();
        assert!(message.contains("64 hex digits"), "{message}");
    }

    #[test]
    fn foreign_and_made_up_ids_are_rejected() {
        let foreign = key(2).id_from_name("x").to_string();
        assert_eq!(
            key(1).id_from_string(&foreign).unwrap_err(),
            IdError::ForeignNamespace
        );
        let made_up = "0".repeat(64);
        assert_eq!(
            key(1).id_from_string(&made_up).unwrap_err(),
            IdError::ForeignNamespace
        );
        let mut flipped = key(1).id_from_name("x").to_string();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.replace_range(63..64, last);
        assert_eq!(
            key(1).id_from_string(&flipped).unwrap_err(),
            IdError::ForeignNamespace
        );
    }

    #[test]
    fn equality_ignores_the_name() {
        let named = key(1).id_from_name("n");
        let parsed = key(1).id_from_string(&named.to_string()).unwrap();
        assert_eq!(named, parsed);
        assert_eq!(named.name(), Some("n"));
    }

    #[test]
    fn key_hex_round_trips_and_debug_hides_it() {
        let k = key(0xab);
        assert_eq!(
            NamespaceKey::from_hex(&format!(" {}\n", k.to_hex())).unwrap(),
            k
        );
        assert_eq!(format!("{k:?}"), "NamespaceKey(..)");
    }
}
