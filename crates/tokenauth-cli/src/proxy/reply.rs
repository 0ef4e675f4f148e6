//! The proxy's own replies: errors a worker can act on, health and stats.
//!
//! Every error is a small JSON body and a `Tokenauth-Error` header holding
//! the same code, so a worker tells the proxy's errors from the API's own
//! (which pass through untouched, without that header):
//!
//! ```text
//! HTTP/1.1 404 Not Found
//! tokenauth-error: unknown_provider
//! content-type: application/json
//!
//! {"error":"unknown_provider","provider":"nope","detail":"no provider `nope` in the description; it has: bro, reobtimaal, twoba"}
//! ```

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokenauth_core::Error;

/// The body of every response the proxy sends: the API's, streamed, or one
/// of its own.
pub(crate) type Body = http_body_util::Either<Incoming, Full<Bytes>>;

/// The header that marks the proxy's own errors.
pub(crate) const ERROR_HEADER: &str = "tokenauth-error";

/// A request the proxy answers itself, with the reason.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// A stable, machine-readable code (`unknown_provider`, …).
    pub(crate) code: &'static str,
    pub(crate) provider: Option<String>,
    /// What is wrong and how to fix it; never a secret.
    pub(crate) detail: String,
    /// When to try again (`Retry-After`), where that is known.
    pub(crate) retry_after: Option<std::time::Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, provider: Option<&str>, detail: String) -> Self {
        Refusal {
            retry_after: None,
            status,
            code,
            provider: provider.map(str::to_owned),
            detail,
        }
    }

    pub(crate) fn method_not_allowed(detail: String) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
            detail,
        )
    }

    pub(crate) fn not_found(detail: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", None, detail)
    }

    pub(crate) fn unknown_provider(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn bad_connection(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unknown_connection",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn missing_input(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_input",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn outside_api(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "outside_api",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn bad_request(provider: Option<&str>, detail: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", provider, detail)
    }

    pub(crate) fn body_timeout(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn store(provider: &str, detail: String) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "store", Some(provider), detail)
    }

    pub(crate) fn key(detail: String) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "proxy_key", None, detail)
    }

    pub(crate) fn not_local(detail: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "not_local", None, detail)
    }

    pub(crate) fn unreachable(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn upstream(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            Some(provider),
            detail,
        )
    }

    pub(crate) fn timeout(provider: &str, detail: String) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            Some(provider),
            detail,
        )
    }

    /// No credential could be had for `provider`: what the worker, or the
    /// proxy's operator, can do about it. Core's messages name the input
    /// and its variable and never hold a secret.
    pub(crate) fn auth(provider: &str, error: &Error) -> Self {
        let (status, code) = match error {
            Error::MissingInput { .. } => (StatusCode::BAD_REQUEST, "missing_input"),
            // A connection's value that cannot be used (its signing key
            // included): nothing was sent, the connection must change.
            Error::InvalidInput { .. }
            | Error::InvalidHeaderValue { .. }
            | Error::AssertionKey { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            Error::NoRefreshToken { .. } => (StatusCode::BAD_REQUEST, "no_refresh_token"),
            // The request's own path or query: it was not sent.
            Error::OutsideConnectionPrefixes { .. }
            | Error::OutsideApiBase { .. }
            | Error::RequestUri { .. } => (StatusCode::BAD_REQUEST, "outside_api"),
            Error::Store { .. } | Error::StoreUnavailable { .. } => {
                (StatusCode::BAD_GATEWAY, "store")
            }
            // Not a failure of this request's token endpoint call: a recent
            // failure is being waited out, or another process holds the
            // fetch. Try again later (`Retry-After` says when, if known).
            Error::BackedOff { .. } | Error::LeaseWait { .. } | Error::LeaseLost { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "token_backoff")
            }
            _ => (StatusCode::BAD_GATEWAY, "token_endpoint"),
        };
        let mut refusal = Self::new(status, code, Some(provider), error.to_string());
        refusal.retry_after = error.retry_after();
        refusal
    }

    /// The JSON response.
    pub(crate) fn into_response(self) -> Response<Body> {
        let body = ErrorBody {
            error: self.code,
            provider: self.provider.as_deref(),
            detail: &self.detail,
        };
        let mut response = json(self.status, &body);
        response
            .headers_mut()
            .insert(ERROR_HEADER, HeaderValue::from_static(self.code));
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: never sooner than the engine would.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tokenauth proxy\""),
            );
        }
        response
    }
}

/// An error's body, in this order.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    provider: Option<&'a str>,
    detail: &'a str,
}

/// A JSON response of the proxy's own.
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    let mut response = Response::new(Body::Right(Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors where nothing was sent are the connection's or the request's
    /// to fix (400), not a token endpoint that failed (502).
    #[test]
    fn errors_before_anything_was_sent_are_the_callers_to_fix() {
        let key = Error::AssertionKey {
            provider: "p".into(),
            connection: "c".into(),
            input: "signing_key".into(),
            algorithm: "RS256",
            reason: "is not a PEM private key",
        };
        let refusal = Refusal::auth("p", &key);
        assert_eq!(
            (refusal.status, refusal.code),
            (StatusCode::BAD_REQUEST, "invalid_input")
        );

        let http_error = http::Uri::builder()
            .path_and_query("not a path")
            .build()
            .unwrap_err();
        let uri = Error::RequestUri {
            provider: "p".into(),
            source: std::sync::Arc::new(http_error),
        };
        let refusal = Refusal::auth("p", &uri);
        assert_eq!(
            (refusal.status, refusal.code),
            (StatusCode::BAD_REQUEST, "outside_api")
        );
    }

    /// A backoff another process published is a "later", not a failed call:
    /// 503 with when to try again.
    #[test]
    fn a_backoff_is_503_with_retry_after() {
        let backed_off = Error::BackedOff {
            provider: "p".into(),
            connection: "c".into(),
            reason: "the token endpoint answered 500".into(),
            retry_in: std::time::Duration::from_millis(2_500),
        };
        let response = Refusal::auth("p", &backed_off).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[ERROR_HEADER], "token_backoff");
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "3");
    }
}
