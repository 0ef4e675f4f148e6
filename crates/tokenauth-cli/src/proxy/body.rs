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
        let mut buffered = BytesMut::new();
        loop {
            let Some(frame) = body.frame().await else {
                return Ok(ProxyBody::Buffered {
                    data: (!buffered.is_empty()).then(|| buffered.freeze()),
                    trailers: None,
                });
            };
            let frame = frame.map_err(ReadError)?;
            match frame.into_data() {
                Ok(data) => {
                    buffered.extend_from_slice(&data);
                    if buffered.len() > limit {
                        return Ok(ProxyBody::Streaming {
                            head: Some(buffered.freeze()),
                            rest: body,
                        });
                    }
                }
                Err(frame) => {
                    // Trailers end the body.
                    return Ok(ProxyBody::Buffered {
                        data: (!buffered.is_empty()).then(|| buffered.freeze()),
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
