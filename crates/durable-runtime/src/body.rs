//! The request and response types of an object's `fetch` handler.
//!
//! They are the `http` crate's types with a [`Body`] of our own, so the server can later make
//! bodies stream without changing what handlers see.

use bytes::Bytes;

/// An HTTP request delivered to an object's `fetch` handler.
pub type Request = ::http::Request<Body>;
/// An HTTP response returned by an object's `fetch` handler.
pub type Response = ::http::Response<Body>;

/// The body of a [`Request`] or [`Response`].
///
/// ```
/// use durable_runtime::Body;
///
/// let body = Body::from("hello");
/// assert_eq!(body.as_bytes(), b"hello");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    bytes: Bytes,
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The whole body.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole body, consuming it.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The body as UTF-8 text, or an error naming the first bad byte.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.bytes)
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self { bytes }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Bytes::from(bytes),
        }
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Self::from(text.into_bytes())
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Self {
            bytes: Bytes::from_static(text.as_bytes()),
        }
    }
}
