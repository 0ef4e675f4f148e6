//! The body of a forwarded request: buffered when it is small enough to be
//! sent twice (the renew-and-retry after a rejected credential), streamed
//! otherwise.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokenauth_tower::CloneBody;

/// A request body on its way to the API.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// Read whole (at most the buffer limit): can be copied for the retry.
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// Larger than the limit (or of unknown length beyond it): what was
    /// read already, then the rest as it arrives. Not retried.
    Streaming { head: Option<Bytes>, rest: Incoming },
}

/// Why a request body could not be read.
#[derive(Debug)]
pub(crate) struct ReadError(pub(crate) hyper::Error);

impl ProxyBody {
    /// Reads `body` whole if it holds at most `limit` bytes; else keeps what
    /// was read and streams the rest.
    pub(crate) async fn read(mut body: Incoming, limit: usize) -> Result<Self, ReadError> {
        if body.is_end_stream() {
            return Ok(ProxyBody::Buffered {
                data: None,
                trailers: None,
            });
        }
        // A declared length over the limit: stream from the start.
        if body.size_hint().lower() > limit as u64 {
            return Ok(ProxyBody::Streaming {
                head: None,
                rest: body,
            });
        }
        let mut buffered = Collected::default();
        loop {
            let Some(frame) = body.frame().await else {
                return Ok(ProxyBody::Buffered {
                    data: buffered.into_bytes(),
                    trailers: None,
                });
            };
            let frame = frame.map_err(ReadError)?;
            match frame.into_data() {
                Ok(data) => {
                    buffered.push(data);
                    if buffered.len() > limit {
                        return Ok(ProxyBody::Streaming {
                            head: buffered.into_bytes(),
                            rest: body,
                        });
                    }
                }
                Err(frame) => {
                    // Trailers end the body.
                    return Ok(ProxyBody::Buffered {
                        data: buffered.into_bytes(),
                        trailers: frame.into_trailers().ok(),
                    });
                }
            }
        }
    }

    /// True when the body was read whole (and so may be sent again).
    pub(crate) fn is_buffered(&self) -> bool {
        matches!(self, ProxyBody::Buffered { .. })
    }
}

/// The data frames read so far. Most small bodies arrive in one frame:
/// it is kept as it came, and only a second frame makes a copy.
#[derive(Default)]
struct Collected {
    /// The only frame so far (`joined` is then empty).
    first: Option<Bytes>,
    /// Every frame, copied together, once there are two.
    joined: BytesMut,
}

impl Collected {
    fn push(&mut self, data: Bytes) {
        if self.joined.is_empty() {
            match self.first.take() {
                None => {
                    self.first = Some(data);
                    return;
                }
                Some(first) => self.joined.extend_from_slice(&first),
            }
        }
        self.joined.extend_from_slice(&data);
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    /// The bytes, or `None` when there are none.
    fn into_bytes(self) -> Option<Bytes> {
        let bytes = self.first.unwrap_or_else(|| self.joined.freeze());
        (!bytes.is_empty()).then_some(bytes)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Buffered { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            ProxyBody::Streaming { head, rest } => match head.take() {
                Some(head) => Poll::Ready(Some(Ok(Frame::data(head)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            ProxyBody::Streaming { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Streaming { head, rest } => {
                let head = head.as_ref().map_or(0, |h| h.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(head));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(head));
                }
                hint
            }
        }
    }
}

/// The tower layer's retry policy for the proxy: a buffered body is copied
/// (cheaply: `Bytes`), a streaming one is not, so it is not retried.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BufferedOnly;

impl CloneBody<ProxyBody> for BufferedOnly {
    fn clone_body(&self, body: &ProxyBody) -> Option<ProxyBody> {
        match body {
            ProxyBody::Buffered { data, trailers } => Some(ProxyBody::Buffered {
                data: data.clone(),
                trailers: trailers.clone(),
            }),
            ProxyBody::Streaming { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_is_kept_as_it_came_several_are_joined_in_order() {
        let one = Bytes::from_static(b"{\"small\":true}");
        let mut collected = Collected::default();
        collected.push(one.clone());
        assert_eq!(collected.len(), one.len());
        let kept = collected.into_bytes().unwrap();
        assert_eq!(kept.as_ptr(), one.as_ptr(), "copied");

        let mut collected = Collected::default();
        for frame in ["", "ab", "", "c", "def"] {
            collected.push(Bytes::from_static(frame.as_bytes()));
        }
        assert_eq!(collected.len(), 6);
        assert_eq!(collected.into_bytes().unwrap(), "abcdef");

        let mut empty = Collected::default();
        empty.push(Bytes::new());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.into_bytes(), None);
        assert_eq!(Collected::default().into_bytes(), None);
    }
}
