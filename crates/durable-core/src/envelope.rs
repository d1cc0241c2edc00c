//! The versioned RPC envelope: how a call and its reply look as bytes.
//!
//! A call is `{v, method, args}` and a reply is `{v, ok}` or `{v, err}`, MessagePack maps
//! whose `args` and `ok` fields hold the arguments tuple and the result encoded with
//! [`crate::codec`]. The version is read before anything else, so a peer speaking a newer
//! version gets a clear "unsupported version" error instead of a garbled decode. The
//! in-process fast path skips this encoding; a stub that may cross nodes always uses it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::error::{Error, ErrorKind};
use crate::limits::MAX_RPC_MESSAGE_BYTES;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// Why an envelope could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The envelope was written by a peer speaking another version.
    #[error("rpc envelope version {found} is not supported; this node speaks version {supported}")]
    UnsupportedVersion {
        /// Version found in the envelope.
        found: u32,
        /// Version this build speaks.
        supported: u32,
    },
    /// The encoded message exceeds the RPC size limit.
    #[error(
        "serialized rpc {what} are {bytes} bytes; the limit is {limit} bytes: pass large data in smaller pieces"
    )]
    TooLarge {
        /// "arguments" or "result".
        what: &'static str,
        /// Encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not an envelope at all.
    #[error("malformed rpc envelope: {reason}")]
    Malformed {
        /// What the decoder reported.
        reason: String,
    },
    /// Arguments or result could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl From<EnvelopeError> for Error {
    fn from(err: EnvelopeError) -> Self {
        if let EnvelopeError::TooLarge { bytes, limit, .. } = err {
            // Typed, so a caller (and the server's status mapping) sees which limit it was.
            let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            return Error::new(ErrorKind::InvalidInput, err.to_string()).with_detail(
                crate::ErrorDetail::Limit {
                    limit: crate::Limit::RpcMessageBytes,
                    max: wide(limit),
                    actual: Some(wide(bytes)),
                },
            );
        }
        Error::new(ErrorKind::Codec, err.to_string())
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    v: u32,
}

fn check_version(bytes: &[u8]) -> Result<(), EnvelopeError> {
    let probe: VersionProbe =
        rmp_serde::from_slice(bytes).map_err(|err| EnvelopeError::Malformed {
            reason: err.to_string(),
        })?;
    if probe.v == ENVELOPE_VERSION {
        Ok(())
    } else {
        Err(EnvelopeError::UnsupportedVersion {
            found: probe.v,
            supported: ENVELOPE_VERSION,
        })
    }
}

fn check_size(what: &'static str, bytes: Vec<u8>) -> Result<Vec<u8>, EnvelopeError> {
    if bytes.len() > MAX_RPC_MESSAGE_BYTES {
        return Err(EnvelopeError::TooLarge {
            what,
            bytes: bytes.len(),
            limit: MAX_RPC_MESSAGE_BYTES,
        });
    }
    Ok(bytes)
}

/// One RPC call as it travels: the method name and the encoded arguments tuple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEnvelope {
    v: u32,
    /// The method to call.
    pub method: String,
    #[serde(with = "serde_bytes")]
    args: Vec<u8>,
}

impl CallEnvelope {
    /// Encodes a call of `method` with the arguments tuple `args`; [`CallEnvelope::decode`]
    /// reads it back, and [`CallEnvelope::args`] gives the tuple.
    pub fn encode<A: Serialize>(method: &str, args: &A) -> Result<Vec<u8>, EnvelopeError> {
        let envelope = CallEnvelope {
            v: ENVELOPE_VERSION,
            method: method.to_owned(),
            args: codec::encode(args)?,
        };
        check_size("arguments", codec::encode(&envelope)?)
    }

    /// Reads an envelope written by [`CallEnvelope::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        check_version(bytes)?;
        rmp_serde::from_slice(bytes).map_err(|err| EnvelopeError::Malformed {
            reason: err.to_string(),
        })
    }

    /// Decodes the arguments tuple.
    pub fn args<A: DeserializeOwned>(&self) -> Result<A, EnvelopeError> {
        Ok(codec::decode(&self.args)?)
    }
}

/// One RPC reply as it travels: the encoded result, or the error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    v: u32,
    #[serde(default, with = "serde_bytes")]
    ok: Option<Vec<u8>>,
    #[serde(default)]
    err: Option<Error>,
}

impl ReplyEnvelope {
    /// Encodes a successful result.
    pub fn encode_ok<R: Serialize>(value: &R) -> Result<Vec<u8>, EnvelopeError> {
        let envelope = ReplyEnvelope {
            v: ENVELOPE_VERSION,
            ok: Some(codec::encode(value)?),
            err: None,
        };
        check_size("result", codec::encode(&envelope)?)
    }

    /// Encodes a failed call.
    pub fn encode_err(error: &Error) -> Vec<u8> {
        let envelope = ReplyEnvelope {
            v: ENVELOPE_VERSION,
            ok: None,
            err: Some(error.clone()),
        };
        codec::encode(&envelope).expect("an error always encodes: it is two strings and flags")
    }

    /// Reads a reply: `Ok(Ok(value))` for a result, `Ok(Err(error))` for a failed call.
    pub fn decode<R: DeserializeOwned>(bytes: &[u8]) -> Result<Result<R, Error>, EnvelopeError> {
        check_version(bytes)?;
        let envelope: ReplyEnvelope =
            rmp_serde::from_slice(bytes).map_err(|err| EnvelopeError::Malformed {
                reason: err.to_string(),
            })?;
        match (envelope.ok, envelope.err) {
            (_, Some(err)) => Ok(Err(err)),
            (Some(ok), None) => Ok(Ok(codec::decode(&ok)?)),
            (None, None) => Err(EnvelopeError::Malformed {
                reason: "reply has neither a result nor an error".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_replies_round_trip() {
        let bytes = CallEnvelope::encode("increment", &(5i64,)).unwrap();
        let call = CallEnvelope::decode(&bytes).unwrap();
        assert_eq!(call.method, "increment");
        assert_eq!(call.args::<(i64,)>().unwrap(), (5,));
        let ok = ReplyEnvelope::encode_ok(&42u8).unwrap();
        assert_eq!(ReplyEnvelope::decode::<u8>(&ok).unwrap(), Ok(42));
        let err = ReplyEnvelope::encode_err(&Error::user("no"));
        assert_eq!(
            ReplyEnvelope::decode::<u8>(&err).unwrap(),
            Err(Error::user("no"))
        );
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        #[derive(Serialize)]
        struct Future {
            v: u32,
            method: String,
            shape: Vec<u32>,
        }
        let bytes = codec::encode(&Future {
            v: 9,
            method: "m".into(),
            shape: vec![1],
        })
        .unwrap();
        let err = CallEnvelope::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::UnsupportedVersion {
                found: 9,
                supported: 1
            }
        );
        assert!(ReplyEnvelope::decode::<u8>(&bytes).is_err());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff", b"\x93\x01\x02\x03"] {
            assert!(matches!(
                CallEnvelope::decode(bytes),
                Err(EnvelopeError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn oversized_arguments_are_refused() {
        let big = vec![0u8; MAX_RPC_MESSAGE_BYTES + 1];
        let err = CallEnvelope::encode("m", &(serde_bytes::ByteBuf::from(big),)).unwrap_err();
        assert!(matches!(
            err,
            EnvelopeError::TooLarge {
                what: "arguments",
                ..
            }
        ));
        assert_eq!(Error::from(err).kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn wrong_argument_types_are_codec_errors() {
        let bytes = CallEnvelope::encode("m", &("text",)).unwrap();
        let call = CallEnvelope::decode(&bytes).unwrap();
        let err = call.args::<(u64,)>().unwrap_err();
        assert_eq!(Error::from(err).kind(), ErrorKind::Codec);
    }
}
