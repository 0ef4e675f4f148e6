//! The response body type: whole, truncated (errors mid-way) or streamed.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Error used to make hyper abort a connection (service or body error).
#[derive(Debug)]
pub(crate) struct Abort(pub(crate) &'static str);

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Abort {}

/// A response body.
pub(crate) enum EmuBody {
    /// The whole body, with an exact size (hyper sends `Content-Length`).
    Full(Option<Bytes>),
    /// Sends the bytes, waits a moment (so hyper flushes them), then fails:
    /// hyper closes the connection mid-body.
    Truncated(Option<Bytes>, Option<Pin<Box<tokio::time::Sleep>>>),
    /// `head`, then `chunk` repeated until `remaining` bytes were sent
    /// (the last one cut to fit), then `tail`; no size hint (chunked).
    Stream {
        head: Option<Bytes>,
        chunk: Bytes,
        remaining: u64,
        tail: Option<Bytes>,
    },
}

impl EmuBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        EmuBody::Full(Some(b.into()))
    }
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = Abort;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Abort>>> {
        let this = self.get_mut();
        let frame = match this {
            EmuBody::Full(b) => b.take().map(|b| Ok(Frame::data(b))),
            EmuBody::Truncated(b, delay) => match b.take() {
                Some(b) => Some(Ok(Frame::data(b))),
                None => {
                    let sleep = delay.get_or_insert_with(|| {
                        Box::pin(tokio::time::sleep(Duration::from_millis(20)))
                    });
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    Some(Err(Abort("truncated body fault")))
                }
            },
            EmuBody::Stream {
                head,
                chunk,
                remaining,
                tail,
            } => {
                if let Some(h) = head.take() {
                    Some(Ok(Frame::data(h)))
                } else if *remaining > 0 {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(chunk.len());
                    *remaining -= n as u64;
                    Some(Ok(Frame::data(chunk.slice(..n))))
                } else {
                    tail.take().map(|t| Ok(Frame::data(t)))
                }
            }
        };
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EmuBody::Full(b) => b.is_none(),
            EmuBody::Truncated(..) => false,
            EmuBody::Stream {
                head,
                remaining,
                tail,
                ..
            } => head.is_none() && *remaining == 0 && tail.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            EmuBody::Truncated(..) | EmuBody::Stream { .. } => SizeHint::default(),
        }
    }
}
