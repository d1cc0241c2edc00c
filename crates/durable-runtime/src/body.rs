//! The request and response types of an object's `fetch` handler.
//!
//! They are the `http` crate's types with a [`Body`] of our own. A body is either complete
//! (bytes in memory) or a stream of chunks fed by a [`BodySender`], so the server forwards a
//! large upload to an object without buffering it, and an object can stream its answer.

use std::fmt;

use bytes::{Bytes, BytesMut};
use durable_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;

/// An HTTP request delivered to an object's `fetch` handler.
pub type Request = ::http::Request<Body>;
/// An HTTP response returned by an object's `fetch` handler.
pub type Response = ::http::Response<Body>;

/// The body of a [`Request`] or [`Response`]: complete, or streamed in chunks.
///
/// ```
/// use durable_objects::Body;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let body = Body::from("hello");
/// assert_eq!(body.text().await.unwrap(), "hello");
///
/// let (sender, body) = Body::channel(4);
/// tokio::spawn(async move {
///     sender.send("hel").await.unwrap();
///     sender.send("lo").await.unwrap();
/// });
/// assert_eq!(body.bytes().await.unwrap(), "hello");
/// # });
/// ```
#[derive(Default)]
pub struct Body {
    inner: Inner,
}

enum Inner {
    Full(Bytes),
    Stream(mpsc::Receiver<Result<Bytes>>),
}

impl Default for Inner {
    fn default() -> Self {
        Inner::Full(Bytes::new())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Full(bytes) => f.debug_tuple("Body").field(bytes).finish(),
            Inner::Stream(_) => f.write_str("Body(<stream>)"),
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A streamed body and the sender that feeds it; at most `capacity` chunks wait in
    /// between (the sender waits when the reader is slower). The body ends when the sender
    /// is dropped.
    pub fn channel(capacity: usize) -> (BodySender, Body) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            BodySender { tx },
            Body {
                inner: Inner::Stream(rx),
            },
        )
    }

    /// The whole body, if it is complete in memory (not a stream).
    pub fn as_full(&self) -> Option<&Bytes> {
        match &self.inner {
            Inner::Full(bytes) => Some(bytes),
            Inner::Stream(_) => None,
        }
    }

    /// The next chunk; `None` at the end. A complete body is one chunk.
    pub async fn chunk(&mut self) -> Option<Result<Bytes>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Polls for the next chunk (for adapters to other body types).
    pub fn poll_chunk(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes>>> {
        match &mut self.inner {
            Inner::Full(bytes) if bytes.is_empty() => std::task::Poll::Ready(None),
            Inner::Full(bytes) => std::task::Poll::Ready(Some(Ok(std::mem::take(bytes)))),
            Inner::Stream(rx) => rx.poll_recv(cx),
        }
    }

    /// The whole body, read to the end.
    pub async fn bytes(self) -> Result<Bytes> {
        self.bytes_limited(usize::MAX).await
    }

    /// The whole body, or an error of kind [`ErrorKind::InvalidInput`] as soon as it
    /// passes `limit` bytes.
    pub async fn bytes_limited(mut self, limit: usize) -> Result<Bytes> {
        let too_large = || {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the body is larger than the limit of {limit} bytes"),
            )
        };
        if let Inner::Full(bytes) = &self.inner {
            return if bytes.len() > limit {
                Err(too_large())
            } else {
                Ok(bytes.clone())
            };
        }
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if all.len() + chunk.len() > limit {
                return Err(too_large());
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// The whole body as UTF-8 text.
    pub async fn text(self) -> Result<String> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.to_vec()).map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the body is not UTF-8 text: {}", err.utf8_error()),
            )
        })
    }
}

/// Feeds a streamed [`Body`]; see [`Body::channel`].
#[derive(Debug)]
pub struct BodySender {
    tx: mpsc::Sender<Result<Bytes>>,
}

impl BodySender {
    /// Sends one chunk; fails if the reader dropped the body.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<()> {
        self.tx.send(Ok(chunk.into())).await.map_err(|_| {
            Error::disconnected("the reader of the body went away before it was fully sent")
        })
    }

    /// Ends the body with an error the reader sees instead of the rest of the body.
    pub async fn abort(self, error: Error) {
        let _ = self.tx.send(Err(error)).await;
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Full(bytes),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self::from(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Self::from(text.into_bytes())
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Self::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Self::from(Bytes::from_static(bytes))
    }
}
