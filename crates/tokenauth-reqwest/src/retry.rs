//! What the middleware keeps of a request for the one retry after a
//! rejected credential.
//!
//! The retry is rare; keeping what it needs happens on every request. Most
//! API calls reach the middleware with no body and no header yet (reqwest
//! adds its default headers below the middleware), and for those the
//! method, the URL, the version and the timeout are the whole request. The
//! URL is kept as its text, in place: cloning a `Url` allocates a `String`
//! and frees it again, on every request, for a copy that is almost never
//! used. The `Url` is parsed again only for a retry.

use std::time::Duration;

use http::{Method, Version};
use reqwest::{Request, Url};

/// A request as the retry needs it.
pub(crate) enum Kept {
    /// A request without a body or a header (most API calls).
    Bare {
        method: Method,
        url: UrlText,
        version: Version,
        timeout: Option<Duration>,
    },
    /// A request with a body or headers: copied whole.
    Whole(Request),
}

impl Kept {
    /// Writes into `kept` what a retry of `request` needs; `None` for a
    /// streaming body, which cannot be sent twice.
    pub(crate) fn keep(request: &Request, kept: &mut Option<Kept>) {
        if request.body().is_some() || !request.headers().is_empty() {
            *kept = copy(request).map(Kept::Whole);
            return;
        }
        // Written where it is kept, then the text into it: a `UrlText`
        // made apart and moved in costs two more copies of its bytes.
        *kept = Some(Kept::Bare {
            method: request.method().clone(),
            url: UrlText::EMPTY,
            version: request.version(),
            timeout: request.timeout().copied(),
        });
        if let Some(Kept::Bare { url, .. }) = kept {
            url.set(request.url().as_str());
        }
    }

    /// The serialization of the URL the request went to.
    pub(crate) fn url(&self) -> &[u8] {
        match self {
            Kept::Bare { url, .. } => url.as_bytes(),
            Kept::Whole(request) => request.url().as_str().as_bytes(),
        }
    }

    /// The request to send again. `None` only if the kept URL no longer
    /// parses to itself, which a `Url`'s own serialization always does
    /// (then the rejection is returned rather than a request sent
    /// elsewhere).
    pub(crate) fn into_request(self) -> Option<Request> {
        let (method, url, version, timeout) = match self {
            Kept::Whole(request) => return Some(request),
            Kept::Bare {
                method,
                url,
                version,
                timeout,
            } => (method, url, version, timeout),
        };
        let text = std::str::from_utf8(url.as_bytes()).ok()?;
        let parsed = Url::parse(text).ok().filter(|u| u.as_str() == text)?;
        let mut request = Request::new(method, parsed);
        *request.version_mut() = version;
        set_timeout(&mut request, timeout);
        Some(request)
    }
}

/// Sets the timeout of `request`, if there is one: `timeout_mut` allocates
/// the request's extension map even to store `None`.
fn set_timeout(request: &mut Request, timeout: Option<Duration>) {
    if timeout.is_some() {
        *request.timeout_mut() = timeout;
    }
}

/// A copy of `request` for the one retry: [`Request::try_clone`], without
/// its cost for a request without a body: reqwest's copy allocates an
/// extension map for the timeout on every copy, even when there is none. Of
/// a request's extensions reqwest 0.13 reads only that timeout
/// (`execute_request`). `None` for a streaming body.
fn copy(request: &Request) -> Option<Request> {
    if request.body().is_some() {
        return request.try_clone();
    }
    let mut copy = Request::new(request.method().clone(), request.url().clone());
    *copy.headers_mut() = request.headers().clone();
    *copy.version_mut() = request.version();
    set_timeout(&mut copy, request.timeout().copied());
    Some(copy)
}

/// The text of a URL: in place up to [`UrlText::INLINE`] bytes (nearly
/// every API URL), else on the heap.
pub(crate) enum UrlText {
    Inline {
        len: u8,
        bytes: [u8; UrlText::INLINE],
    },
    Heap(Box<str>),
}

impl UrlText {
    /// Sized so that a [`Kept::Bare`] is no bigger than the `Request` a
    /// [`Kept::Whole`] holds: keeping the text in place does not grow the
    /// future every request lives in.
    const INLINE: usize = 192;

    const EMPTY: UrlText = UrlText::Inline {
        len: 0,
        bytes: [0; UrlText::INLINE],
    };

    /// Sets the text to `text`: in place when it fits, else on the heap.
    fn set(&mut self, text: &str) {
        match (u8::try_from(text.len()), &mut *self) {
            (Ok(n), UrlText::Inline { len, bytes }) if text.len() <= Self::INLINE => {
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                *len = n;
            }
            _ => *self = UrlText::Heap(text.into()),
        }
    }

    #[cfg(test)]
    fn new(text: &str) -> Self {
        let mut url = Self::EMPTY;
        url.set(text);
        url
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            UrlText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            UrlText::Heap(text) => text.as_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kept, UrlText};
    use std::time::Duration;

    fn request(body: Option<reqwest::Body>, url: &str) -> reqwest::Request {
        let mut request = reqwest::Request::new(http::Method::PATCH, url.parse().unwrap());
        request
            .headers_mut()
            .insert("x-trace", http::HeaderValue::from_static("t-1"));
        *request.version_mut() = http::Version::HTTP_2;
        *request.timeout_mut() = Some(Duration::from_secs(7));
        *request.body_mut() = body;
        request
    }

    fn assert_same(copy: &reqwest::Request, original: &reqwest::Request) {
        assert_eq!(copy.method(), original.method());
        assert_eq!(copy.url(), original.url());
        assert_eq!(copy.headers(), original.headers());
        assert_eq!(copy.version(), original.version());
        assert_eq!(copy.timeout(), original.timeout());
        assert_eq!(
            copy.body().and_then(reqwest::Body::as_bytes),
            original.body().and_then(reqwest::Body::as_bytes)
        );
    }

    /// The retry is the request as reqwest would have sent it: method, URL,
    /// headers, version, timeout and body; with and without a body, a
    /// header, a timeout, and with a URL too long to keep in place.
    #[test]
    fn the_retry_is_the_request_reqwest_sends() {
        let long = format!("https://api.example.com/v1/{}?q=%20x", "a".repeat(300));
        for url in ["https://api.example.com/v1/items?x=1", &long] {
            for body in [None, Some(reqwest::Body::from("{\"a\":1}"))] {
                for headers in [true, false] {
                    for timeout in [Some(Duration::from_secs(7)), None] {
                        let mut original = request(
                            body.as_ref()
                                .map(|b| reqwest::Body::from(b.as_bytes().unwrap().to_vec())),
                            url,
                        );
                        if !headers {
                            original.headers_mut().clear();
                        }
                        *original.timeout_mut() = timeout;
                        let mut kept = None;
                        Kept::keep(&original, &mut kept);
                        let kept = kept.expect("a request that can be repeated");
                        assert_eq!(kept.url(), original.url().as_str().as_bytes());
                        let bare = matches!(kept, Kept::Bare { .. });
                        assert_eq!(bare, original.body().is_none() && !headers);
                        let retry = kept.into_request().expect("a retry");
                        assert_same(&retry, &original);
                    }
                }
            }
        }
    }

    /// URLs up to the inline size stay in place; longer ones, and one byte
    /// over, go to the heap, whole.
    #[test]
    fn url_text_keeps_every_byte() {
        for len in [
            0,
            1,
            UrlText::INLINE - 1,
            UrlText::INLINE,
            UrlText::INLINE + 1,
            300,
        ] {
            let text = "u".repeat(len);
            let kept = UrlText::new(&text);
            assert_eq!(kept.as_bytes(), text.as_bytes());
            assert_eq!(
                matches!(kept, UrlText::Inline { .. }),
                len <= UrlText::INLINE
            );
        }
    }

    /// Keeping the URL in place does not make what the future holds bigger
    /// than a copy of the whole request.
    #[test]
    fn a_bare_request_is_no_bigger_than_a_copy() {
        assert!(
            std::mem::size_of::<Kept>() <= std::mem::size_of::<reqwest::Request>(),
            "Kept: {} bytes, Request: {} bytes",
            std::mem::size_of::<Kept>(),
            std::mem::size_of::<reqwest::Request>()
        );
    }
}
