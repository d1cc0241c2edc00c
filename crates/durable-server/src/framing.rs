//! The request-framing guard: refuses an HTTP/1.1 request that carries both
//! `Content-Length` and `Transfer-Encoding`, the ambiguity request smuggling lives on.
//!
//! RFC 9112 (section 6.3) lets a server either reject such a request or frame it by
//! `Transfer-Encoding` alone, and requires closing the connection after it. hyper takes the
//! second way and drops the `Content-Length` header before the application sees it, so the
//! check happens below hyper: [`GuardedStream`] wraps each accepted connection, and
//! [`FramingCheck`] follows the framing of the bytes the client sends (request heads, bodies
//! by length, chunked bodies) to find every request head. A head with both fields gets a
//! `400` written directly and the connection closed; hyper never sees it. Upgraded
//! connections (WebSockets) are passed through once their head is seen.
//!
//! Knowing where request heads start also gives the header timeout: a client must send a
//! whole head within it, counted from the connection's start for the first request and from
//! the head's first byte for later ones (the wait between requests is hyper's keep-alive
//! timeout). A slow-header client is cut off instead of holding a connection forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head followed; past it the connection is passed through (hyper refuses
/// heads that long by itself).
const MAX_HEAD: usize = 64 * 1024;

/// What the bytes fed so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing wrong so far.
    Continue,
    /// A request head carries both fields: refuse, and say why.
    Reject(&'static str),
}

#[derive(Debug)]
enum State {
    /// Reading a request head (or the empty lines before one).
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping this many chunk bytes, then the CRLF after them.
    ChunkData(u64),
    /// Skipping the CRLF after a chunk: how many of its two bytes are still to come.
    ChunkEnd(u8),
    /// Reading the trailer section after the last chunk.
    Trailer(Vec<u8>),
    /// No longer followed (an upgraded connection, or framing this guard leaves to hyper).
    Tunnel,
}

/// Follows the framing of one connection's request bytes.
#[derive(Debug)]
pub(crate) struct FramingCheck {
    state: State,
    /// Request heads seen whole.
    heads: u64,
}

impl Default for FramingCheck {
    fn default() -> Self {
        Self {
            state: State::Head(Vec::new()),
            heads: 0,
        }
    }
}

/// How a request head frames what follows it.
enum Framing {
    None,
    Length(u64),
    Chunked,
    Tunnel,
    Ambiguous,
}

impl FramingCheck {
    /// True while part of a request head has arrived and the rest has not.
    pub(crate) fn in_partial_head(&self) -> bool {
        matches!(&self.state, State::Head(head) if !head.is_empty())
    }

    /// Follows `bytes`, the next bytes the client sent.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Verdict {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Tunnel => return Verdict::Continue,
                State::Head(head) => {
                    // Empty lines before a request line are allowed and ignored.
                    if head.is_empty() {
                        let skip = bytes
                            .iter()
                            .take_while(|b| **b == b'\r' || **b == b'\n')
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            break;
                        }
                    }
                    let start = head.len().saturating_sub(3);
                    head.extend_from_slice(bytes);
                    let Some(end) = find(&head[start..], b"\r\n\r\n").map(|p| start + p + 4) else {
                        if head.len() > MAX_HEAD {
                            self.state = State::Tunnel;
                        }
                        return Verdict::Continue;
                    };
                    let rest = head.split_off(end);
                    self.heads += 1;
                    self.state = match framing(head) {
                        Framing::Ambiguous => {
                            return Verdict::Reject(
                                "a request must not carry both Content-Length and Transfer-Encoding (RFC 9112, section 6.3)",
                            );
                        }
                        Framing::Tunnel => State::Tunnel,
                        Framing::None | Framing::Length(0) => State::Head(Vec::new()),
                        Framing::Length(length) => State::Body(length),
                        Framing::Chunked => State::ChunkSize(Vec::new()),
                    };
                    // The bytes after the head were taken into `head`: follow them now.
                    return self.feed(&rest);
                }
                State::Body(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => {
                    let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(bytes);
                        if line.len() > 1024 {
                            self.state = State::Tunnel;
                        }
                        return Verdict::Continue;
                    };
                    line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    let text = String::from_utf8_lossy(line);
                    let digits = text.split(';').next().unwrap_or("").trim();
                    self.state = match u64::from_str_radix(digits, 16) {
                        Ok(0) => State::Trailer(Vec::new()),
                        Ok(size) => State::ChunkData(size),
                        // A malformed chunk: hyper refuses it.
                        Err(_) => State::Tunnel,
                    };
                }
                State::ChunkData(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.state = State::ChunkEnd(2);
                    }
                }
                State::ChunkEnd(left) => {
                    let take = usize::from(*left).min(bytes.len());
                    *left -= take as u8;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailer(trailer) => {
                    trailer.extend_from_slice(bytes);
                    // The trailer section ends with an empty line: at once, or after fields.
                    let end = if trailer.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        find(trailer, b"\r\n\r\n").map(|p| p + 4)
                    };
                    let Some(end) = end else {
                        if trailer.len() > MAX_HEAD {
                            self.state = State::Tunnel;
                        }
                        return Verdict::Continue;
                    };
                    let rest = trailer.split_off(end);
                    self.state = State::Head(Vec::new());
                    return self.feed(&rest);
                }
            }
        }
        Verdict::Continue
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How the head `head` (ending with the empty line) frames its body.
fn framing(head: &[u8]) -> Framing {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    if request_line
        .split(' ')
        .next()
        .is_some_and(|method| method.eq_ignore_ascii_case("CONNECT"))
    {
        return Framing::Tunnel;
    }
    let mut length = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut upgrade = false;
    let mut connection_upgrade = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<u64>().ok().or(Some(u64::MAX));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        }
    }
    match (length, transfer_encoding) {
        (Some(_), true) => Framing::Ambiguous,
        _ if upgrade && connection_upgrade => Framing::Tunnel,
        (_, true) if chunked => Framing::Chunked,
        // Not chunked at the end: hyper refuses it; nothing more to follow.
        (_, true) => Framing::Tunnel,
        (Some(u64::MAX), false) => Framing::Tunnel,
        (Some(length), false) => Framing::Length(length),
        (None, false) => Framing::None,
    }
}

/// The answer to a refused request.
fn rejection(reason: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": reason, "code": "ambiguous_framing" }).to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A connection whose request framing is checked as hyper reads it.
#[derive(Debug)]
pub(crate) struct GuardedStream<S> {
    inner: S,
    check: FramingCheck,
    /// Set once a request was refused: the answer still to write.
    refusing: Option<(Vec<u8>, usize)>,
    header_timeout: Option<Duration>,
    /// When the head being read must be complete.
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    heads_seen: u64,
    /// What the connection holds of the server's connection cap; released with the stream
    /// (after an upgrade, when the WebSocket closes).
    _slot: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl<S> GuardedStream<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            check: FramingCheck::default(),
            refusing: None,
            header_timeout: None,
            head_deadline: None,
            heads_seen: 0,
            _slot: None,
        }
    }

    /// Cuts the connection off when a request head takes longer than `timeout` (the first
    /// one counted from now).
    pub(crate) fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = Some(timeout);
        self.head_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        self
    }

    /// Holds `slot` for as long as the connection lives.
    pub(crate) fn holding(mut self, slot: impl std::any::Any + Send + Sync) -> Self {
        self._slot = Some(Box::new(slot));
        self
    }

    /// After bytes were followed: a completed head ends its deadline; the first byte of
    /// the next one starts a new one.
    fn track_head_deadline(&mut self) {
        let Some(timeout) = self.header_timeout else {
            return;
        };
        if self.check.heads != self.heads_seen {
            self.heads_seen = self.check.heads;
            self.head_deadline = None;
        }
        if self.check.in_partial_head() && self.head_deadline.is_none() {
            self.head_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_none() {
            let before = buf.filled().len();
            let read = Pin::new(&mut this.inner).poll_read(cx, buf);
            if read.is_pending() {
                if let Some(deadline) = this.head_deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    tracing::debug!(
                        "a request head was not received within the header timeout; connection closed"
                    );
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head was not received within the header timeout",
                    )));
                }
                return Poll::Pending;
            }
            ready!(read)?;
            let verdict = this.check.feed(&buf.filled()[before..]);
            this.track_head_deadline();
            match verdict {
                Verdict::Continue => return Poll::Ready(Ok(())),
                Verdict::Reject(reason) => {
                    tracing::warn!(reason, "request refused before routing");
                    // hyper never sees the refused request.
                    buf.set_filled(before);
                    this.refusing = Some((rejection(reason), 0));
                }
            }
        }
        // Write the refusal, then end the connection (hyper reads end-of-file).
        if let Some((answer, written)) = &mut this.refusing {
            while *written < answer.len() {
                match ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*written..])) {
                    Ok(0) | Err(_) => return Poll::Ready(Ok(())),
                    Ok(n) => *written += n,
                }
            }
            let _ = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; the first rejection, if any.
    fn check(input: &[u8], step: usize) -> Verdict {
        let mut check = FramingCheck::default();
        for piece in input.chunks(step) {
            if let Verdict::Reject(reason) = check.feed(piece) {
                return Verdict::Reject(reason);
            }
        }
        Verdict::Continue
    }

    fn rejected(input: &[u8]) -> bool {
        // Any split of the bytes must give the same answer.
        let answers: Vec<bool> = [1, 2, 3, 7, 64, input.len().max(1)]
            .iter()
            .map(|step| check(input, *step) != Verdict::Continue)
            .collect();
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{answers:?} for {:?}",
            String::from_utf8_lossy(input)
        );
        answers[0]
    }

    #[test]
    fn both_fields_in_any_head_are_refused() {
        assert!(rejected(
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
        assert!(rejected(
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"
        ));
        // The second request of a keep-alive connection, after a body framed by length...
        assert!(rejected(
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        // ...and after a chunked body with extensions and trailers.
        assert!(rejected(
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn well_framed_requests_pass() {
        assert!(!rejected(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!rejected(
            b"POST /a HTTP/1.1\r\nContent-Length: 39\r\n\r\nTransfer-Encoding: chunked in the body\r\nGET / HTTP/1.1\r\n\r\n"
        ));
        assert!(!rejected(
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        // A WebSocket's frames are not HTTP.
        assert!(!rejected(
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[tokio::test]
    async fn a_refused_request_gets_a_400_and_the_connection_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(4096);
        let mut guarded = GuardedStream::new(server);
        let mut client = client;
        client
            .write_all(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        // What hyper would read: at most the start of the refused head (bytes pass as they
        // arrive), never a whole head, then end-of-file.
        guarded.read_to_end(&mut seen).await.unwrap();
        assert!(find(&seen, b"\r\n\r\n").is_none(), "{seen:?}");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("Content-Length and Transfer-Encoding"),
            "{answer}"
        );
    }
}
