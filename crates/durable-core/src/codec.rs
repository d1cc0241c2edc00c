//! The self-describing value codec: serde values as MessagePack with named fields.
//!
//! Stored values and RPC payloads use MessagePack maps (field names included), so a tool can
//! show a stored value without knowing its Rust type, and a struct can gain optional fields
//! without breaking what was written before.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Serialization of a value of `type_name` failed.
    #[error("encode {type_name}: {reason}")]
    Encode {
        /// The Rust type being encoded.
        type_name: &'static str,
        /// What serde reported.
        reason: String,
    },
    /// The bytes do not decode into `type_name`.
    #[error("decode {type_name}: {reason}")]
    Decode {
        /// The Rust type asked for.
        type_name: &'static str,
        /// What serde reported.
        reason: String,
    },
}

impl From<CodecError> for Error {
    fn from(err: CodecError) -> Self {
        Error::new(ErrorKind::Codec, err.to_string())
    }
}

/// Encodes `value` as self-describing MessagePack (field names included, so tools can show
/// stored values without knowing their Rust types).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|err| CodecError::Encode {
        type_name: std::any::type_name::<T>(),
        reason: err.to_string(),
    })
}

/// Decodes bytes written by [`encode`] into a `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|err| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct V1 {
        a: u32,
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct V2 {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn values_round_trip() {
        let bytes = encode(&("hi", 3)).unwrap();
        let back: (String, i32) = decode(&bytes).unwrap();
        assert_eq!(back, ("hi".to_string(), 3));
    }

    #[test]
    fn named_fields_let_structs_grow() {
        let old = encode(&V1 { a: 7 }).unwrap();
        let new: V2 = decode(&old).unwrap();
        assert_eq!(new, V2 { a: 7, b: None });
        let newer = encode(&V2 {
            a: 1,
            b: Some("x".into()),
        })
        .unwrap();
        assert_eq!(decode::<V1>(&newer).unwrap(), V1 { a: 1 });
    }

    #[test]
    fn a_type_mismatch_names_the_type() {
        let bytes = encode(&"text").unwrap();
        let err = decode::<u64>(&bytes).unwrap_err();
        assert!(err.to_string().starts_with("decode u64:"), "{err}");
    }
}
