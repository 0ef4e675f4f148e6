//! The request sequence: one authenticated exchange, written once for every
//! adapter.

use std::future::Future;

use http::Extensions;
use tracing::warn;
use url::Url;

use super::message::sealed::{Request as _, Response as _};
use super::message::{HttpRequest, HttpResponse, Origin};
use super::{NoAuth, ProviderHandle};
use crate::cache::{Credential, TokenAuth};
use crate::connection::Connection;
use crate::error::Error;
use crate::inject::Injection;

/// The HTTP client under an adapter, as the request sequence drives it: the
/// reqwest middleware's `Next`, the tower layer's inner service.
///
/// Everything else (routing, the connection, caller-wins, attaching the
/// credential, renewal and the one retry, redirect scope) is core's
/// [`Exchange::send`].
pub trait Transport: Send {
    /// `reqwest::Request` or `http::Request<B>`.
    type Request: HttpRequest;
    /// `reqwest::Response` or `http::Response<B>`.
    type Response: HttpResponse;
    /// The adapter's error type.
    type Error: Send;

    /// Sends `request` (at most twice per exchange: the first attempt and
    /// the one retry after a rejected credential).
    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;

    /// A copy of `request` for the retry, taken before the credential is
    /// attached; `None` when it cannot be copied (a streaming body): the
    /// request is then not retried.
    fn try_clone(&self, request: &Self::Request) -> Option<Self::Request>;

    /// `error` (no credential could be had, or it could not be attached) as
    /// the adapter's error.
    fn auth_error(&self, error: Error) -> Self::Error;

    /// `error` as it may leave the adapter, for errors that show the request
    /// URL (a query credential must be removed from it). Defaults to
    /// `error` unchanged.
    fn redact_error(&self, error: Self::Error, credential: &Credential) -> Self::Error {
        let _ = credential;
        error
    }
}

/// One request that gets a credential: the provider it goes to and the
/// connection it uses. Made by [`TokenAuth::exchange`], run by
/// [`Exchange::send`]; owned and `'static`, so it can move into a future.
#[derive(Clone, Debug)]
pub struct Exchange {
    provider: ProviderHandle,
    connection: Option<Connection>,
}

impl TokenAuth {
    /// Whether `request` gets a credential, and from which provider: `None`
    /// when it carries [`NoAuth`], lies outside every provider's `api`
    /// prefixes, or already has a credential the caller set (an
    /// `Authorization` header, the provider's inject header or query
    /// parameter); the adapter then sends it untouched.
    ///
    /// `extensions` are the request's (`Connection`, `NoAuth`); `origin`
    /// stands in for the scheme and authority of a path-only URI (tonic).
    pub fn exchange<R: HttpRequest>(
        &self,
        request: &R,
        extensions: &Extensions,
        origin: Option<&Origin>,
    ) -> Option<Exchange> {
        if extensions.get::<NoAuth>().is_some() {
            return None;
        }
        let index = self.inner.router.route(&request.target(origin)?)?;
        let provider = ProviderHandle::new(self.clone(), index);
        if provider.caller_authenticated(request.headers(), request.query()) {
            return None;
        }
        Some(Exchange {
            provider,
            connection: extensions.get::<Connection>().cloned(),
        })
    }
}

impl Exchange {
    /// The provider the request goes to.
    pub fn provider(&self) -> &ProviderHandle {
        &self.provider
    }

    /// Sends `request` through `transport` with the provider's credential:
    ///
    /// 1. gets the credential of the request's connection (a cache hit, or
    ///    one shared fetch); none: the request is not sent, the error is
    ///    [`Transport::auth_error`];
    /// 2. sends the path it was routed on (dot segments resolved);
    /// 3. keeps a copy for a retry when the provider may retry
    ///    ([`Transport::try_clone`]);
    /// 4. attaches the credential and sends;
    /// 5. refuses a response that a redirect took out of the provider's
    ///    prefixes with the credential on it (clients that follow redirects
    ///    themselves), and removes a query credential from what it hands
    ///    back;
    /// 6. on a rejection, renews (or takes the already renewed credential)
    ///    and sends the copy once more; never in a loop.
    pub async fn send<T: Transport>(
        self,
        transport: &mut T,
        mut request: T::Request,
    ) -> Result<T::Response, T::Error> {
        let connection = self.connection.as_ref();
        let credential = match self.provider.credential(connection).await {
            Ok(credential) => credential,
            Err(e) => return Err(transport.auth_error(e)),
        };
        // Send exactly the path that was routed, as reqwest sends its
        // parsed URL.
        if let Some(path) = request.resolved_path()
            && let Err(e) = request.set_path(&path)
        {
            return Err(transport.auth_error(self.uri_error(e)));
        }
        let retry = if self.provider.may_retry() {
            transport.try_clone(&request)
        } else {
            None
        };
        let response = self.attempt(transport, &credential, request).await?;
        let renewed = self
            .provider
            .after_response(response.status(), connection, &credential, retry.is_some())
            .await;
        match (renewed, retry) {
            (Err(e), _) => Err(transport.auth_error(e)),
            (Ok(Some(renewed)), Some(retry)) => {
                drop(response);
                self.attempt(transport, &renewed, retry).await
            }
            (Ok(_), _) => Ok(response),
        }
    }

    /// One attempt: attach, send, check and redact what comes back.
    async fn attempt<T: Transport>(
        &self,
        transport: &mut T,
        credential: &Credential,
        mut request: T::Request,
    ) -> Result<T::Response, T::Error> {
        if let Err(e) = credential.apply_to(&mut request) {
            return Err(transport.auth_error(self.uri_error(e)));
        }
        match transport.send(request).await {
            Ok(response) => {
                if let Some(url) = response.url()
                    && let Err(e) = self.check_response_url(credential, url)
                {
                    return Err(transport.auth_error(e));
                }
                Ok(response.redact(credential))
            }
            Err(e) => Err(transport.redact_error(e, credential)),
        }
    }

    fn uri_error(&self, source: http::Error) -> Error {
        Error::RequestUri {
            provider: self.provider.id().to_owned(),
            source: std::sync::Arc::new(source),
        }
    }

    /// Checks where the response to a request that carried `credential`
    /// came from, for an HTTP client that followed redirects on its own: a
    /// `url` outside this provider's prefixes means the credential may have
    /// gone there too (a custom header or a query parameter, which reqwest
    /// copies into `Referer`, anywhere; `Authorization` on the same origin,
    /// since reqwest, like browsers and curl, drops it for another origin).
    /// Then [`Error::RedirectLeftScope`], whose message says how to build
    /// the client; a client that follows
    /// [`may_follow_redirect`](TokenAuth::may_follow_redirect) never gets
    /// here.
    fn check_response_url(&self, credential: &Credential, url: &Url) -> Result<(), Error> {
        let inner = &self.provider.auth().inner;
        let index = self.provider.index();
        if inner.router.route_url(url) == Some(index) {
            return Ok(());
        }
        let carried = match credential.injection() {
            Injection::Header { name, .. } if name == http::header::AUTHORIZATION => inner
                .router
                .shares_origin(index, url)
                .then(|| "the Authorization header".to_owned()),
            Injection::Header { name, .. } => Some(format!("the `{name}` header")),
            Injection::Query { name, .. } => Some(format!(
                "the query parameter `{name}`, which reqwest copies into the Referer header of the next hop"
            )),
        };
        let Some(credential) = carried else {
            return Ok(());
        };
        let to = url.origin().ascii_serialization();
        warn!(provider = self.provider.id(), to = %to, "a redirect took the credential out of the provider's api prefixes; the response is withheld");
        Err(Error::RedirectLeftScope {
            provider: self.provider.id().to_owned(),
            to,
            credential,
        })
    }
}
